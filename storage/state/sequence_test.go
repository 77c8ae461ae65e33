package state

import (
	"context"
	"fmt"
	"maps"
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
	// number numbers ids of conv and returns their numbers in order.
	number := func(t *testing.T, s relay.Sequencer, conv relay.ConversationID, ids ...string) []uint64 {
		t.Helper()
		got, err := s.Number(ctx, "w1", map[relay.ConversationID][]string{conv: ids}, nil)
		if err != nil || len(got.Unseeded) != 0 || len(got.Held) != 0 {
			t.Fatalf("Number(%s, %v) = %+v, %v", conv, ids, got, err)
		}
		out := make([]uint64, len(ids))
		for i, id := range ids {
			out[i] = got.Nums[id]
		}
		return out
	}

	t.Run("many conversations", func(t *testing.T) {
		t.Parallel()
		s := newSequencer(t)
		a, b, c := relay.Conversation("acct", "a"), relay.Conversation("acct", "b"), relay.Conversation("acct", "c")
		if err := s.Seed(ctx, a, 10); err != nil {
			t.Fatal(err)
		}
		if err := s.Seed(ctx, b, 0); err != nil {
			t.Fatal(err)
		}
		got, err := s.Number(ctx, "w1", map[relay.ConversationID][]string{a: {"a1", "a2", "a3"}, b: {"b1"}, c: {"c1", "c2"}}, nil)
		want := map[string]uint64{"a1": 11, "a2": 12, "a3": 13, "b1": 1}
		if err != nil || !maps.Equal(got.Nums, want) || !slices.Equal(got.Unseeded, []relay.ConversationID{c}) {
			t.Fatalf("Number = %+v, %v; want %v, c unseeded", got, err, want)
		}
		if got := number(t, s, a, "a4"); got[0] != 14 {
			t.Fatalf("next of a = %d, want 14", got[0])
		}
	})

	t.Run("unseeded", func(t *testing.T) {
		t.Parallel()
		s := newSequencer(t)
		for range 2 { // a refused call must not have created the counter
			got, err := s.Number(ctx, "w1", map[relay.ConversationID][]string{conv: {"m1"}}, nil)
			if err != nil || len(got.Nums) != 0 || !slices.Equal(got.Unseeded, []relay.ConversationID{conv}) {
				t.Fatalf("Number on a new conversation = %+v, %v; want it unseeded", got, err)
			}
		}
	})

	t.Run("dense after seed", func(t *testing.T) {
		t.Parallel()
		s := newSequencer(t)
		if err := s.Seed(ctx, conv, 41); err != nil {
			t.Fatal(err)
		}
		if got := number(t, s, conv, "m1"); !slices.Equal(got, []uint64{42}) {
			t.Fatalf("first = %v, want [42]", got)
		}
		if got := number(t, s, conv, "m2", "m3", "m4"); !slices.Equal(got, []uint64{43, 44, 45}) {
			t.Fatalf("next three = %v, want [43 44 45]", got)
		}
	})

	// A writer killed after numbering and before recording the numbers
	// gets the same numbers when it (or another instance) numbers the
	// same ids again: no gap. Released ids are new ids.
	t.Run("an id keeps its number until released", func(t *testing.T) {
		t.Parallel()
		s := newSequencer(t)
		if err := s.Seed(ctx, conv, 0); err != nil {
			t.Fatal(err)
		}
		if got := number(t, s, conv, "m1", "m2"); !slices.Equal(got, []uint64{1, 2}) {
			t.Fatalf("first numbering = %v, want [1 2]", got)
		}
		if got := number(t, s, conv, "m2", "m3", "m1"); !slices.Equal(got, []uint64{2, 3, 1}) {
			t.Fatalf("numbering again = %v, want [2 3 1]", got)
		}
		if err := s.Release(ctx, map[relay.ConversationID][]string{conv: {"m1", "m2", "m3"}}); err != nil {
			t.Fatal(err)
		}
		// Released means archived: for a while a copy of it is told so,
		// rather than given a second number.
		got, err := s.Number(ctx, "w2", map[relay.ConversationID][]string{conv: {"m1", "m4"}}, map[string]string{"m1": "w1"})
		if err != nil || got.Held["m1"] != relay.HeldArchived || got.Nums["m4"] != 4 || len(got.Nums) != 1 {
			t.Fatalf("numbering a released id and a new one = %+v, %v; want m1 archived, m4 at 4", got, err)
		}
	})

	// A copy of a message another writer numbered is not numbered again:
	// the caller is told who holds it, until that writer is named as
	// dead for it, which hands its number over.
	t.Run("another writer's id", func(t *testing.T) {
		t.Parallel()
		s := newSequencer(t)
		if err := s.Seed(ctx, conv, 0); err != nil {
			t.Fatal(err)
		}
		number(t, s, conv, "m1") // w1 holds m1 at 1
		got, err := s.Number(ctx, "w2", map[relay.ConversationID][]string{conv: {"m1", "m2"}}, nil)
		if err != nil || got.Held["m1"] != "w1" || got.Nums["m2"] != 2 || len(got.Nums) != 1 {
			t.Fatalf("w2 numbering m1 and m2 = %+v, %v; want m1 held by w1, m2 at 2", got, err)
		}
		got, err = s.Number(ctx, "w2", map[relay.ConversationID][]string{conv: {"m1"}}, map[string]string{"m1": "w3"})
		if err != nil || got.Held["m1"] != "w1" {
			t.Fatalf("w2 taking m1 over from w3 = %+v, %v; want it still held by w1", got, err)
		}
		got, err = s.Number(ctx, "w2", map[relay.ConversationID][]string{conv: {"m1"}}, map[string]string{"m1": "w1"})
		if err != nil || got.Nums["m1"] != 1 || len(got.Held) != 0 {
			t.Fatalf("w2 taking m1 over from w1 = %+v, %v; want m1 at 1", got, err)
		}
		got, err = s.Number(ctx, "w1", map[relay.ConversationID][]string{conv: {"m1"}}, nil)
		if err != nil || got.Held["m1"] != "w2" {
			t.Fatalf("w1 after the takeover = %+v, %v; want m1 held by w2", got, err)
		}
	})

	t.Run("seed never lowers", func(t *testing.T) {
		t.Parallel()
		s := newSequencer(t)
		if err := s.Seed(ctx, conv, 100); err != nil {
			t.Fatal(err)
		}
		number(t, s, conv, "a", "b", "c")
		for _, floor := range []uint64{0, 50, 100, 200} {
			if err := s.Seed(ctx, conv, floor); err != nil {
				t.Fatal(err)
			}
		}
		if got := number(t, s, conv, "d"); got[0] != 104 {
			t.Fatalf("next after reseeding = %d; want 104", got[0])
		}
	})

	t.Run("concurrent numbering is dense and distinct", func(t *testing.T) {
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
				n, err := s.Number(ctx, "w1", map[relay.ConversationID][]string{conv: {fmt.Sprint("w", i)}}, nil)
				if err != nil {
					t.Error(err)
				}
				got[i] = n.Nums[fmt.Sprint("w", i)]
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
}
