package state

import (
	"context"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"

	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// TestRedisDown checks that, with the client options the relay uses,
// every Redis-backed call fails within its ctx deadline when Redis is
// killed or hangs, and works again once Redis is back.
func TestRedisDown(t *testing.T) {
	t.Parallel()
	srv, rdb := testenv.RedisToTakeDown(t)

	dedupe := NewRedisDedupe(rdb, "")
	seq := NewRedisSequencer(rdb, "")
	assign := NewRedisAssignments(rdb, "")
	order := NewRedisOrder(rdb, "")
	tokens := NewRedisTokenCache(rdb, "", TokenCacheOptions{Timeout: testenv.DownDeadline, Logger: testenv.Logger(t)})
	conv := relay.Conversation("acct", "openid")

	ops := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"Claim", func(ctx context.Context) error { _, err := dedupe.Claim(ctx, "k", "a", time.Minute); return err }},
		{"Finish", func(ctx context.Context) error { return dedupe.Finish(ctx, "k", time.Minute) }},
		{"Release", func(ctx context.Context) error { return dedupe.Release(ctx, "k", "a") }},
		{"Seed", func(ctx context.Context) error { return seq.Seed(ctx, conv, 10) }},
		{"Number", func(ctx context.Context) error {
			_, err := seq.Number(ctx, "w", map[relay.ConversationID][]string{conv: {"m1"}}, nil)
			return err
		}},
		{"SeqRelease", func(ctx context.Context) error {
			return seq.Release(ctx, map[relay.ConversationID][]string{conv: {"m1"}})
		}},
		{"Get", func(ctx context.Context) error { _, err := assign.Get(ctx, conv); return err }},
		{"SetIfAbsent", func(ctx context.Context) error { _, err := assign.SetIfAbsent(ctx, conv, "alice"); return err }},
		{"TokenSet", func(ctx context.Context) error { return tokens.SetContext(ctx, "t", "v", time.Minute) }},
		{"Take", func(ctx context.Context) error {
			_, err := order.Take(ctx, relay.Place{Conv: conv, ID: "m1", Writer: "w", At: time.Now()})
			return err
		}},
		{"Alive", func(ctx context.Context) error { _, err := order.Alive(ctx, "w", time.Now()); return err }},
		{"Lines", func(ctx context.Context) error {
			_, err := order.Lines(ctx, []relay.Place{{Conv: conv, ID: "m1", Writer: "w", Ticket: 1, At: time.Now()}})
			return err
		}},
		{"PutBack", func(ctx context.Context) error {
			return order.PutBack(ctx, []relay.Place{{Conv: conv, ID: "m1", Writer: "w", Ticket: 1, At: time.Now()}})
		}},
		{"Forget", func(ctx context.Context) error {
			return order.Forget(ctx, []relay.Place{{Conv: conv, ID: "m1", Writer: "w", Ticket: 1, At: time.Now()}})
		}},
		{"Leave", func(ctx context.Context) error {
			return order.Leave(ctx, []relay.Place{{Conv: conv, ID: "m1", Ticket: 1, At: time.Now()}})
		}},
	}

	// failAll checks that every op fails, promptly.
	failAll := func(t *testing.T, how string) {
		t.Helper()
		for _, op := range ops {
			testenv.FailPromptly(t, how, op.name, op.call)
		}
		start := time.Now()
		if v := tokens.Get("t"); v != nil {
			t.Errorf("token Get with Redis %s = %#v, want nil", how, v)
		}
		if took := time.Since(start); took > testenv.DownDeadline+testenv.DownSlack {
			t.Errorf("token Get with Redis %s took %v", how, took)
		}
	}

	// workAll checks that every op succeeds, allowing the client a few
	// seconds to reconnect.
	workAll := func(t *testing.T) {
		t.Helper()
		for _, op := range ops {
			deadline := time.Now().Add(5 * time.Second)
			for {
				ctx, cancel := context.WithTimeout(context.Background(), testenv.DownDeadline)
				err := op.call(ctx)
				cancel()
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s after Redis came back: %v", op.name, err)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}

	workAll(t)

	t.Run("killed", func(t *testing.T) {
		srv.Kill()
		failAll(t, "killed")
		srv.Start()
		// The new server starts empty: the counter is gone, and Number
		// says so rather than restarting at 1. go-redis' pool may keep failing
		// fast for about a second until its background redial succeeds.
		deadline := time.Now().Add(5 * time.Second)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), testenv.DownDeadline)
			got, err := seq.Number(ctx, "w", map[relay.ConversationID][]string{conv: {"m2"}}, nil)
			cancel()
			if err == nil && len(got.Unseeded) == 1 {
				break
			}
			if err == nil || time.Now().After(deadline) {
				t.Fatalf("Number on the restarted, empty Redis: %+v, %v; want it unseeded", got, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		workAll(t)
	})

	t.Run("hung", func(t *testing.T) {
		srv.Pause()
		failAll(t, "hung")
		srv.Resume()
		workAll(t)
	})
}
