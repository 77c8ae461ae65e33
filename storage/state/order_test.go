package state

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
)

// Tickets of a conversation rise in the order places were taken, even
// from many clients at once; Lines shows the places lowest first, with
// when each was taken; Leave takes exactly the given places out.
func TestRedisOrderLines(t *testing.T) {
	rdb, prefix := testRedis(t)
	a, b := NewRedisOrder(rdb, prefix), NewRedisOrder(rdb, prefix) // two instances
	ctx := context.Background()
	at := time.UnixMilli(1700000000123)

	t1, err := a.Take(ctx, "acct:c1", "m1", at)
	if err != nil {
		t.Fatal(err)
	}
	t2, err := b.Take(ctx, "acct:c1", "m2", at.Add(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if t2 <= t1 {
		t.Fatalf("tickets %d then %d: a later place must have a greater ticket", t1, t2)
	}
	if _, err := a.Take(ctx, "acct:c2", "x1", at); err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := b.Take(ctx, "acct:c3", fmt.Sprint("p", i), at); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()

	lines, err := a.Lines(ctx, []relay.ConversationID{"acct:c1", "acct:c2", "acct:c3", "acct:none"})
	if err != nil {
		t.Fatal(err)
	}
	c1 := lines["acct:c1"]
	want := []relay.Place{
		{Conv: "acct:c1", ID: "m1", Ticket: t1, At: at},
		{Conv: "acct:c1", ID: "m2", Ticket: t2, At: at.Add(time.Millisecond)},
	}
	if len(c1) != 2 || c1[0] != want[0] || c1[1] != want[1] {
		t.Fatalf("line of c1 = %+v, want %+v", c1, want)
	}
	if len(lines["acct:c2"]) != 1 || len(lines["acct:none"]) != 0 {
		t.Fatalf("lines: %+v", lines)
	}
	c3 := lines["acct:c3"]
	if len(c3) != 20 {
		t.Fatalf("line of c3 has %d places, want 20", len(c3))
	}
	for i := 1; i < len(c3); i++ {
		if c3[i].Ticket <= c3[i-1].Ticket {
			t.Fatalf("line of c3 not in ticket order: %+v", c3)
		}
	}

	if err := b.Leave(ctx, []relay.Place{c1[0], lines["acct:c2"][0]}); err != nil {
		t.Fatal(err)
	}
	lines, err = a.Lines(ctx, []relay.ConversationID{"acct:c1", "acct:c2"})
	if err != nil {
		t.Fatal(err)
	}
	if len(lines["acct:c1"]) != 1 || lines["acct:c1"][0].ID != "m2" || len(lines["acct:c2"]) != 0 {
		t.Fatalf("after leaving m1 and x1: %+v", lines)
	}
	// A place taken later still goes behind, after the line emptied.
	t3, err := a.Take(ctx, "acct:c2", "x2", at)
	if err != nil || t3 < 2 {
		t.Fatalf("ticket %d, %v: want 2 or more", t3, err)
	}
}
