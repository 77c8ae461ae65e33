package bus

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wechat-relay/wechat-relay/relay"

	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// downDeadline is the ctx deadline given to each call while Redis is
// unavailable; downSlack is how late past it an error may come back.
const (
	downDeadline = 300 * time.Millisecond
	downSlack    = time.Second
)

// downClientOptions leaves go-redis' socket timeouts at their 5 s
// defaults, so that a call failing within downDeadline+downSlack shows
// that the ctx deadline, not a socket timeout, bounded it.
func downClientOptions(addr string) *redis.Options {
	return &redis.Options{Addr: addr, ContextTimeoutEnabled: true}
}

// TestRedisDown checks that Publish and Subscribe fail within their ctx
// deadline while Redis is killed or hung, that an existing subscription
// stays open through the outage, and that it receives again once Redis
// is back (go-redis resubscribes by itself).
func TestRedisDown(t *testing.T) {
	t.Parallel()
	srv := testenv.StartRedis(t)
	rdb := redis.NewClient(downClientOptions(srv.Addr))
	t.Cleanup(func() { rdb.Close() })
	b := NewRedisBus(rdb, "", Options{Logger: testenv.Logger(t)})
	ch := subscribe(t, b)
	conv := relay.Conversation("acct", "openid")
	var seq uint64

	// publishUntilReceived publishes numbered events until one arrives on
	// ch: after an outage, the subscription comes back on its own time.
	publishUntilReceived := func(t *testing.T) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			seq++
			ctx, cancel := context.WithTimeout(context.Background(), downDeadline)
			err := b.Publish(ctx, relay.Event{Type: relay.EventMessage, Conv: conv, Message: &relay.Message{Seq: seq}})
			cancel()
			if err != nil {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			wait := time.After(200 * time.Millisecond)
			for {
				select {
				case e, ok := <-ch:
					if !ok {
						t.Fatal("subscription closed by the outage")
					}
					// A Publish that failed may still have been delivered:
					// skip those and older events.
					if e.Message != nil && e.Message.Seq == seq {
						return
					}
					continue
				case <-wait:
				}
				break
			}
		}
		t.Fatal("subscription did not receive again within 10s")
	}

	// failAll checks that Publish and Subscribe fail, promptly, and that
	// the existing subscription stays open.
	failAll := func(t *testing.T, how string) {
		t.Helper()
		for name, call := range map[string]func(ctx context.Context) error{
			"Publish": func(ctx context.Context) error {
				return b.Publish(ctx, relay.Event{Type: relay.EventMessage, Conv: conv})
			},
			"Subscribe": func(ctx context.Context) error {
				_, err := b.Subscribe(ctx)
				return err
			},
		} {
			ctx, cancel := context.WithTimeout(context.Background(), downDeadline)
			start := time.Now()
			err := call(ctx)
			took := time.Since(start)
			cancel()
			t.Logf("%s with Redis %s: %v after %v", name, how, err, took.Round(time.Millisecond))
			if err == nil {
				t.Errorf("%s with Redis %s: no error", name, how)
			}
			if took > downDeadline+downSlack {
				t.Errorf("%s with Redis %s took %v, want at most %v", name, how, took, downDeadline+downSlack)
			}
		}
		select {
		case _, ok := <-ch:
			if !ok {
				t.Fatal("subscription closed by the outage")
			}
		default:
		}
	}

	publishUntilReceived(t)

	t.Run("killed", func(t *testing.T) {
		srv.Kill()
		failAll(t, "killed")
		srv.Start()
		publishUntilReceived(t)
	})

	t.Run("hung", func(t *testing.T) {
		srv.Pause()
		failAll(t, "hung")
		srv.Resume()
		publishUntilReceived(t)
	})
}
