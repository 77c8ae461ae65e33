package bus

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

func events(n int) []relay.Event {
	out := make([]relay.Event, n)
	for i := range out {
		m := relay.Message{ID: fmt.Sprint("m", i), Conv: "acct:c1", Seq: uint64(i + 1), Kind: relay.KindText, Text: "你好"}
		out[i] = relay.Event{Type: relay.EventMessage, Conv: m.Conv, Employee: "alice", Message: &m}
	}
	return out
}

// A batch reaches every subscriber whole and in order.
func TestRedisPublishBatch(t *testing.T) {
	t.Parallel()
	prefix := testenv.UniqueName("wr") + ":"
	pub := NewRedisBus(newTestClient(t), prefix, Options{})
	sub := NewRedisBus(newTestClient(t), prefix, Options{})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ch, err := sub.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.PublishBatch(ctx, events(300)); err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		select {
		case e := <-ch:
			if e.Message == nil || e.Message.Seq != uint64(i+1) {
				t.Fatalf("event %d: %+v", i, e.Message)
			}
		case <-time.After(testenv.Wait):
			t.Fatalf("only %d of 300 events arrived", i)
		}
	}
	if err := pub.PublishBatch(ctx, nil); err != nil {
		t.Fatalf("an empty batch: %v", err)
	}
}

// BenchmarkRedisPublish publishes a writer's batch of 500 events one
// PUBLISH at a time, then in one pipelined round trip; compare the two
// ns/op of one run (b.N batches each).
func BenchmarkRedisPublish(b *testing.B) {
	bus := NewRedisBus(newTestClient(b), testenv.UniqueName("wr")+":", Options{})
	batch := events(500)
	ctx := context.Background()
	b.Run("one-by-one", func(b *testing.B) {
		for b.Loop() {
			for _, e := range batch {
				if err := bus.Publish(ctx, e); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("batch", func(b *testing.B) {
		for b.Loop() {
			if err := bus.PublishBatch(ctx, batch); err != nil {
				b.Fatal(err)
			}
		}
	})
}
