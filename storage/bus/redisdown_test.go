package bus

import (
	"context"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"

	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// TestRedisDown checks that Publish and Subscribe fail within their ctx
// deadline while Redis is killed or hung, that an existing subscription
// stays open through the outage, and that it receives again once Redis
// is back (go-redis resubscribes by itself).
func TestRedisDown(t *testing.T) {
	t.Parallel()
	srv, rdb := testenv.RedisToTakeDown(t)
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
			ctx, cancel := context.WithTimeout(context.Background(), testenv.DownDeadline)
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
		testenv.FailPromptly(t, how, "Publish", func(ctx context.Context) error {
			return b.Publish(ctx, relay.Event{Type: relay.EventMessage, Conv: conv})
		})
		testenv.FailPromptly(t, how, "Subscribe", func(ctx context.Context) error {
			_, err := b.Subscribe(ctx)
			return err
		})
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
