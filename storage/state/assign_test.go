package state

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/wechat-relay/wechat-relay/relay"
)

func TestAssignmentsRedis(t *testing.T) {
	t.Parallel()
	testAssignments(t, func(t *testing.T) relay.Assignments {
		rdb, prefix := testRedis(t)
		return NewRedisAssignments(rdb, prefix)
	})
}

func TestAssignmentsMemory(t *testing.T) {
	t.Parallel()
	testAssignments(t, func(*testing.T) relay.Assignments { return NewMemoryAssignments() })
}

// testAssignments is the contract of relay.Assignments, run against every
// backend.
func testAssignments(t *testing.T, newAssignments func(t *testing.T) relay.Assignments) {
	ctx := context.Background()
	conv := relay.Conversation("acct", "openid-1")

	t.Run("get many", func(t *testing.T) {
		t.Parallel()
		a := newAssignments(t)
		bulk, ok := a.(relay.BulkAssignments)
		if !ok {
			t.Skip("reads one at a time")
		}
		other := relay.Conversation("acct", "openid-2")
		if err := a.Set(ctx, conv, "alice"); err != nil {
			t.Fatal(err)
		}
		got, err := bulk.GetMany(ctx, []relay.ConversationID{conv, other})
		if err != nil || len(got) != 1 || got[conv] != "alice" {
			t.Fatalf("GetMany = %v, %v; want only %s: alice", got, err, conv)
		}
		if got, err := bulk.GetMany(ctx, nil); err != nil || len(got) != 0 {
			t.Fatalf("GetMany of none = %v, %v", got, err)
		}
	})

	t.Run("get set", func(t *testing.T) {
		t.Parallel()
		a := newAssignments(t)
		if got, err := a.Get(ctx, conv); err != nil || got != "" {
			t.Fatalf("Get of unassigned = %q, %v; want empty", got, err)
		}
		for _, emp := range []string{"alice", "bob"} {
			if err := a.Set(ctx, conv, emp); err != nil {
				t.Fatal(err)
			}
			if got, err := a.Get(ctx, conv); err != nil || got != emp {
				t.Fatalf("Get = %q, %v; want %q", got, err, emp)
			}
		}
		if err := a.Set(ctx, conv, ""); err != nil {
			t.Fatal(err)
		}
		if got, err := a.Get(ctx, conv); err != nil || got != "" {
			t.Fatalf("Get after unassigning = %q, %v; want empty", got, err)
		}
	})

	t.Run("set if absent", func(t *testing.T) {
		t.Parallel()
		a := newAssignments(t)
		if got, err := a.SetIfAbsent(ctx, conv, "alice"); err != nil || got != "alice" {
			t.Fatalf("first SetIfAbsent = %q, %v; want alice", got, err)
		}
		if got, err := a.SetIfAbsent(ctx, conv, "bob"); err != nil || got != "alice" {
			t.Fatalf("second SetIfAbsent = %q, %v; want alice", got, err)
		}
		if err := a.Set(ctx, conv, "carol"); err != nil {
			t.Fatal(err)
		}
		if got, err := a.SetIfAbsent(ctx, conv, "bob"); err != nil || got != "carol" {
			t.Fatalf("SetIfAbsent after Set = %q, %v; want carol", got, err)
		}
		if _, err := a.SetIfAbsent(ctx, relay.Conversation("acct", "x"), ""); err == nil {
			t.Fatal("SetIfAbsent with an empty employee: no error")
		}
	})

	t.Run("set if absent race", func(t *testing.T) {
		t.Parallel()
		a := newAssignments(t)
		const workers = 20
		got := make([]string, workers)
		var wg sync.WaitGroup
		for i := range workers {
			wg.Go(func() {
				v, err := a.SetIfAbsent(ctx, conv, fmt.Sprintf("emp%d", i))
				if err != nil {
					t.Error(err)
				}
				got[i] = v
			})
		}
		wg.Wait()
		winner, err := a.Get(ctx, conv)
		if err != nil {
			t.Fatal(err)
		}
		if winner == "" {
			t.Fatal("no one holds the conversation")
		}
		for i, v := range got {
			if v != winner {
				t.Fatalf("worker %d was told %q holds it, but %q does", i, v, winner)
			}
		}
	})
}
