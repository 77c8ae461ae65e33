package state

import (
	"context"
	"fmt"
	"testing"

	"github.com/wechat-relay/wechat-relay/relay"
)

// BenchmarkRouteBatch routes a writer's batch of 500 messages over 100
// assigned conversations, as the writer did (one HGET each), then with
// one HMGET for the batch; compare the two ns/op of one run.
func BenchmarkRouteBatch(b *testing.B) {
	rdb, prefix := testRedis(b)
	a := NewRedisAssignments(rdb, prefix)
	ctx := context.Background()
	router := relay.NewRouter(a, map[string][]string{"acct": {"alice", "bob"}})
	batch := make([]relay.Message, 500)
	for i := range batch {
		client := fmt.Sprint("c", i%100)
		conv := relay.Conversation("acct", client)
		batch[i] = relay.Message{ID: fmt.Sprint("m", i), Account: "acct", Client: client, Conv: conv,
			Direction: relay.Inbound, Kind: relay.KindText, Text: "hi"}
		if err := a.Set(ctx, conv, "alice"); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("one-by-one", func(b *testing.B) {
		for b.Loop() {
			for _, m := range batch {
				if _, err := router.Route(ctx, m); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("batch", func(b *testing.B) {
		for b.Loop() {
			if _, err := router.RouteBatch(ctx, batch); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkReserveBatch numbers a writer's batch (5 messages in each of
// 100 conversations) and releases the ids, one conversation per call,
// then the whole batch in one call (one pipelined round trip); compare
// the two ns/op of one run.
func BenchmarkReserveBatch(b *testing.B) {
	rdb, prefix := testRedis(b)
	s := NewRedisSequencer(rdb, prefix)
	ctx := context.Background()
	ids := map[relay.ConversationID][]string{}
	for i := range 100 {
		conv := relay.Conversation("acct", fmt.Sprint("c", i))
		for j := range 5 {
			ids[conv] = append(ids[conv], fmt.Sprintf("m%d-%d", i, j))
		}
		if err := s.Seed(ctx, conv, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("one-by-one", func(b *testing.B) {
		for b.Loop() {
			for conv, list := range ids {
				one := map[relay.ConversationID][]string{conv: list}
				if _, err := s.Number(ctx, "w", one, nil); err != nil {
					b.Fatal(err)
				}
				if err := s.Release(ctx, one); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("batch", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.Number(ctx, "w", ids, nil); err != nil {
				b.Fatal(err)
			}
			if err := s.Release(ctx, ids); err != nil {
				b.Fatal(err)
			}
		}
	})
}
