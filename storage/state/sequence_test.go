package state

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/wechat-relay/wechat-relay/relay"
)

func TestSequencerRedis(t *testing.T) {
	t.Parallel()
	testSequencer(t, func(t *testing.T) relay.Sequencer {
		rdb, prefix := testRedis(t)
		return NewRedisSequencer(rdb, prefix)
	})
}

func TestSequencerMemory(t *testing.T) {
	t.Parallel()
	testSequencer(t, func(*testing.T) relay.Sequencer { return NewMemorySequencer() })
}

// testSequencer is the contract of relay.Sequencer, run against every
// backend.
func testSequencer(t *testing.T, newSequencer func(t *testing.T) relay.Sequencer) {
	ctx := context.Background()
	conv := relay.Conversation("acct", "openid-1")

	t.Run("next many", func(t *testing.T) {
		t.Parallel()
		s := newSequencer(t)
		bulk, ok := s.(relay.BulkSequencer)
		if !ok {
			t.Skip("reserves one conversation at a time")
		}
		a, b, c := relay.Conversation("acct", "a"), relay.Conversation("acct", "b"), relay.Conversation("acct", "c")
		if err := s.Seed(ctx, a, 10); err != nil {
			t.Fatal(err)
		}
		if err := s.Seed(ctx, b, 0); err != nil {
			t.Fatal(err)
		}
		last, unseeded, err := bulk.NextMany(ctx, map[relay.ConversationID]int{a: 3, b: 1, c: 2})
		if err != nil || last[a] != 13 || last[b] != 1 || len(last) != 2 || len(unseeded) != 1 || unseeded[0] != c {
			t.Fatalf("NextMany = %v, unseeded %v, %v; want a: 13, b: 1, c unseeded", last, unseeded, err)
		}
		if n, err := s.Next(ctx, a, 1); err != nil || n != 14 {
			t.Fatalf("Next after NextMany = %d, %v; want 14", n, err)
		}
		if _, _, err := bulk.NextMany(ctx, map[relay.ConversationID]int{a: 0}); err == nil {
			t.Fatal("NextMany with n = 0: no error")
		}
	})

	t.Run("unseeded", func(t *testing.T) {
		t.Parallel()
		s := newSequencer(t)
		if _, err := s.Next(ctx, conv, 1); !errors.Is(err, relay.ErrUnseeded) {
			t.Fatalf("Next on a new conversation: err = %v, want ErrUnseeded", err)
		}
		// A failed Next must not have created the counter.
		if _, err := s.Next(ctx, conv, 1); !errors.Is(err, relay.ErrUnseeded) {
			t.Fatalf("second Next: err = %v, want ErrUnseeded", err)
		}
	})

	t.Run("dense after seed", func(t *testing.T) {
		t.Parallel()
		s := newSequencer(t)
		if err := s.Seed(ctx, conv, 41); err != nil {
			t.Fatal(err)
		}
		for _, step := range []struct {
			n    int
			want uint64
		}{{1, 42}, {1, 43}, {5, 48}, {1, 49}} {
			got, err := s.Next(ctx, conv, step.n)
			if err != nil {
				t.Fatal(err)
			}
			if got != step.want {
				t.Fatalf("Next(%d) = %d, want %d", step.n, got, step.want)
			}
		}
		other := relay.Conversation("acct", "openid-2")
		if _, err := s.Next(ctx, other, 1); !errors.Is(err, relay.ErrUnseeded) {
			t.Fatalf("another conversation: err = %v, want ErrUnseeded", err)
		}
	})

	t.Run("seed at zero", func(t *testing.T) {
		t.Parallel()
		s := newSequencer(t)
		if err := s.Seed(ctx, conv, 0); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Next(ctx, conv, 1); err != nil || got != 1 {
			t.Fatalf("Next = %d, %v; want 1", got, err)
		}
	})

	t.Run("seed never lowers", func(t *testing.T) {
		t.Parallel()
		s := newSequencer(t)
		if err := s.Seed(ctx, conv, 100); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Next(ctx, conv, 10); err != nil {
			t.Fatal(err)
		}
		for _, floor := range []uint64{0, 50, 100, 200} {
			if err := s.Seed(ctx, conv, floor); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := s.Next(ctx, conv, 1); err != nil || got != 111 {
			t.Fatalf("Next after reseeding = %d, %v; want 111", got, err)
		}
	})

	t.Run("concurrent next is distinct", func(t *testing.T) {
		t.Parallel()
		s := newSequencer(t)
		const floor, workers = 1000, 50
		if err := s.Seed(ctx, conv, floor); err != nil {
			t.Fatal(err)
		}
		got := make([]uint64, workers)
		var wg sync.WaitGroup
		for i := range workers {
			wg.Go(func() {
				v, err := s.Next(ctx, conv, 1)
				if err != nil {
					t.Error(err)
				}
				got[i] = v
			})
		}
		wg.Wait()
		slices.Sort(got)
		for i, v := range got {
			if want := uint64(floor + 1 + i); v != want {
				t.Fatalf("sorted results[%d] = %d, want %d (all: %v)", i, v, want, got)
			}
		}
	})

	t.Run("bad n", func(t *testing.T) {
		t.Parallel()
		s := newSequencer(t)
		if err := s.Seed(ctx, conv, 7); err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{0, -1} {
			if _, err := s.Next(ctx, conv, n); err == nil {
				t.Errorf("Next(%d): no error", n)
			}
		}
		if got, err := s.Next(ctx, conv, 1); err != nil || got != 8 {
			t.Fatalf("Next after refused calls = %d, %v; want 8", got, err)
		}
	})
}
