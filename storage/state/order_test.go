package state

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
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

	t1, err := a.Take(ctx, relay.Place{Conv: "acct:c1", ID: "m1", Writer: "relay-a", At: at})
	if err != nil {
		t.Fatal(err)
	}
	t2, err := b.Take(ctx, relay.Place{Conv: "acct:c1", ID: "m2", Writer: "relay-b", At: at.Add(time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	if t2 <= t1 {
		t.Fatalf("tickets %d then %d: a later place must have a greater ticket", t1, t2)
	}
	if _, err := a.Take(ctx, relay.Place{Conv: "acct:c2", ID: "x1", Writer: "relay-a", At: at}); err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := b.Take(ctx, relay.Place{Conv: "acct:c3", ID: fmt.Sprint("p", i), Writer: "relay-b", At: at}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()

	if t1 < uint64(at.UnixMicro()) {
		t.Fatalf("ticket %d is below its acceptance time %d µs", t1, at.UnixMicro())
	}
	// Read through places already in line: putting them back changes nothing.
	m1 := relay.Place{Conv: "acct:c1", ID: "m1", Writer: "relay-a", Ticket: t1, At: at}
	x1 := relay.Place{Conv: "acct:c2", ID: "x1", Writer: "relay-a", Ticket: uint64(at.UnixMicro()), At: at}
	// Lines returns, up to the highest ticket asked about, the places of
	// other messages than those asked about.
	want := []relay.Place{m1, {Conv: "acct:c1", ID: "m2", Writer: "relay-b", Ticket: t2, At: at.Add(time.Millisecond)}}
	asked := []relay.Place{want[1], x1, {Conv: "acct:c3", ID: "p0", Writer: "relay-b", Ticket: uint64(at.UnixMicro()) + 100, At: at}}
	if err := a.PutBack(ctx, asked); err != nil { // all in line already: nothing changes
		t.Fatal(err)
	}
	got, err := a.Lines(ctx, asked)
	if err != nil {
		t.Fatal(err)
	}
	lines, epoch := got.Conv, got.Epoch
	if c1 := lines["acct:c1"]; len(c1) != 1 || c1[0] != m1 {
		t.Fatalf("line of c1 read for m2 = %+v, want %+v", c1, m1)
	}
	if len(lines["acct:c2"]) != 0 {
		t.Fatalf("line of c2 read for x1 = %+v, want nothing but x1's own place", lines["acct:c2"])
	}
	if c1 := lineOf(t, rdb, a, "acct:c1"); len(c1) != 2 || c1[0] != want[0] || c1[1] != want[1] {
		t.Fatalf("line of c1 = %+v, want %+v", c1, want)
	}
	if c2 := lineOf(t, rdb, a, "acct:c2"); len(c2) != 1 || c2[0] != x1 {
		t.Fatalf("line of c2 = %+v, want %+v", c2, x1)
	}
	if c3 := lines["acct:c3"]; len(c3) != 19 {
		t.Fatalf("line of c3 read for p0 has %d places, want the 19 others", len(c3))
	}
	c3 := lineOf(t, rdb, a, "acct:c3")
	if len(c3) != 20 {
		t.Fatalf("line of c3 has %d places, want 20", len(c3))
	}
	for i := 1; i < len(c3); i++ {
		if c3[i].Ticket <= c3[i-1].Ticket {
			t.Fatalf("line of c3 not in ticket order: %+v", c3)
		}
	}

	if err := b.Leave(ctx, []relay.Place{m1, x1}); err != nil {
		t.Fatal(err)
	}
	m2 := want[1]
	got, err = a.Lines(ctx, []relay.Place{m2})
	if err != nil {
		t.Fatal(err)
	}
	epoch2 := got.Epoch
	if line := lineOf(t, rdb, a, "acct:c1"); len(line) != 1 || line[0].ID != "m2" || len(got.Conv["acct:c1"]) != 0 || epoch2 != epoch || epoch == "" {
		t.Fatalf("after leaving m1 and x1: %+v (read %+v), epoch %q then %q", line, got.Conv, epoch, epoch2)
	}
	// A place taken later, with an earlier time, still goes behind.
	t3, err := a.Take(ctx, relay.Place{Conv: "acct:c1", ID: "m3", Writer: "relay-a", At: at})
	if err != nil || t3 <= t2 {
		t.Fatalf("ticket %d, %v: want more than %d", t3, err, t2)
	}

	// Redis loses everything: the epoch changes, the places put back are
	// in line again, and a place taken since ranks after them; a message
	// accepted while Redis was away takes its place at its own time.
	iter := rdb.Scan(ctx, 0, prefix+"*", 100).Iterator()
	for iter.Next(ctx) {
		rdb.Del(ctx, iter.Val())
	}
	t4, err := b.Take(ctx, relay.Place{Conv: "acct:c1", ID: "m4", Writer: "relay-b", At: at.Add(3 * time.Millisecond)})
	if err != nil || t4 <= t3 {
		t.Fatalf("ticket after the loss %d, %v: want more than %d", t4, err, t3)
	}
	unplaced := relay.Place{Conv: "acct:c1", ID: "m5", Writer: "relay-a", Ticket: uint64(at.Add(2 * time.Millisecond).UnixMicro()), At: at.Add(2 * time.Millisecond)}
	m4 := relay.Place{Conv: "acct:c1", ID: "m4", Writer: "relay-b", Ticket: t4, At: at.Add(3 * time.Millisecond)}
	if err := a.PutBack(ctx, []relay.Place{m2, unplaced}); err != nil {
		t.Fatal(err)
	}
	got, err = a.Lines(ctx, []relay.Place{m2, unplaced, m4})
	if err != nil {
		t.Fatal(err)
	}
	epoch3 := got.Epoch
	var ids []string
	for _, p := range lineOf(t, rdb, a, "acct:c1") {
		ids = append(ids, p.ID)
	}
	if epoch3 == epoch || fmt.Sprint(ids) != "[m2 m5 m4]" {
		t.Fatalf("after the loss: epoch %q (was %q), line %v; want a new epoch and [m2 m5 m4]", epoch3, epoch, ids)
	}

	// A writer says it is alive; every reader sees until when.
	until := time.UnixMilli(time.Now().Add(time.Minute).UnixMilli())
	if e, err := a.Alive(ctx, "relay-a", until); err != nil || e != epoch3 {
		t.Fatalf("Alive = epoch %q, %v; want %q", e, err, epoch3)
	}
	got, err = b.Lines(ctx, []relay.Place{m2})
	if err != nil || !got.Alive["relay-a"].Equal(until) {
		t.Fatalf("writers alive = %v, %v; want relay-a until %v", got.Alive, err, until)
	}
}

// A restarted process puts the places of the spool it replays back in
// line: it takes them over, and the line keeps one place per message —
// the dead process's copies would otherwise pile up in front of every
// line, one spool's worth per restart.
func TestRedisOrderTakesPlacesOver(t *testing.T) {
	rdb, prefix := testRedis(t)
	o := NewRedisOrder(rdb, prefix)
	ctx := context.Background()
	at := time.UnixMilli(1700000000123)
	old := relay.Place{Conv: "acct:c1", ID: "m1", Writer: "relay-a/dead", At: at}
	ticket, err := o.Take(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	again := relay.Place{Conv: "acct:c1", ID: "m1", Writer: "relay-a/restarted", Ticket: ticket, At: at}
	if err := o.PutBack(ctx, []relay.Place{again}); err != nil {
		t.Fatal(err)
	}
	if line := lineOf(t, rdb, o, "acct:c1"); len(line) != 1 || line[0] != again {
		t.Fatalf("line after the takeover = %+v, want only %+v", line, again)
	}
	// The dead process's place is not forgotten: it was taken over.
	if err := o.Forget(ctx, []relay.Place{old}); err != nil {
		t.Fatal(err)
	}
	if line := lineOf(t, rdb, o, "acct:c1"); len(line) != 1 || line[0] != again {
		t.Fatalf("after forgetting the dead process's place: %+v; want the taken-over one", line)
	}
	// A retry of the message, accepted again, keeps the place, its
	// ticket and its owner: forgetting the retry's place (its append
	// failed) leaves the first copy's.
	copyTicket, err := o.Take(ctx, relay.Place{Conv: "acct:c1", ID: "m1", Writer: "relay-b/p", At: at.Add(time.Second)})
	if err != nil || copyTicket != ticket {
		t.Fatalf("ticket of a copy = %d, %v; want the message's %d", copyTicket, err, ticket)
	}
	retry := relay.Place{Conv: "acct:c1", ID: "m1", Writer: "relay-b/p", Ticket: ticket, At: at.Add(time.Second)}
	if err := o.Forget(ctx, []relay.Place{retry}); err != nil {
		t.Fatal(err)
	}
	if got, err := o.Lines(ctx, []relay.Place{{Conv: "acct:c1", ID: "m0", Writer: "relay-b/p", Ticket: ticket + 5, At: at}}); err != nil ||
		len(got.Conv["acct:c1"]) != 1 || got.Conv["acct:c1"][0] != again || len(lineOf(t, rdb, o, "acct:c1")) != 1 {
		t.Fatalf("after forgetting a retry's place: %+v, %v; want the first copy's %+v", got.Conv, err, again)
	}
	if err := o.Leave(ctx, []relay.Place{again}); err != nil {
		t.Fatal(err)
	}
	if err := o.PutBack(ctx, []relay.Place{{Conv: "acct:c1", ID: "m2", Writer: "relay-b/p", Ticket: ticket + 1, At: at}}); err != nil {
		t.Fatal(err)
	}
	if line := lineOf(t, rdb, o, "acct:c1"); len(line) != 1 || line[0].ID != "m2" {
		t.Fatalf("after leaving m1: %+v; want m2 alone", line)
	}
}

// A line longer than one read is read as far as it can be, and says so:
// a place behind the part read may be another instance's, earlier than
// the message asked about, and must hold it back.
func TestRedisOrderSaysWhereALongLineWasCut(t *testing.T) {
	rdb, prefix := testRedis(t)
	o := NewRedisOrder(rdb, prefix)
	ctx := context.Background()
	at := time.UnixMilli(1700000000123)
	for i := range foreignRead + 10 {
		if _, err := o.Take(ctx, relay.Place{Conv: "acct:c1", ID: fmt.Sprint("stale", i), Writer: "relay-a/dead", At: at}); err != nil {
			t.Fatal(err)
		}
	}
	mine := relay.Place{Conv: "acct:c1", ID: "mine", Writer: "relay-b/p", At: at}
	ticket, err := o.Take(ctx, mine)
	if err != nil {
		t.Fatal(err)
	}
	mine.Ticket = ticket
	got, err := o.Lines(ctx, []relay.Place{mine})
	if err != nil {
		t.Fatal(err)
	}
	cut, ok := got.Cut["acct:c1"]
	if n := len(got.Conv["acct:c1"]); !ok || cut >= ticket || n != foreignRead {
		t.Fatalf("read %d places, cut at %d (%v); want %d read and a cut before ticket %d", n, cut, ok, foreignRead, ticket)
	}
	short, err := o.Lines(ctx, []relay.Place{{Conv: "acct:c2", ID: "x", Writer: "relay-b/p", Ticket: 5, At: at}})
	if err != nil || short.Cut != nil {
		t.Fatalf("a short line: cut %v, %v; want none", short.Cut, err)
	}
}

// lineOf reads conv's whole line straight from Redis, lowest first.
func lineOf(t *testing.T, rdb redis.UniversalClient, o *RedisOrder, conv relay.ConversationID) []relay.Place {
	t.Helper()
	ctx := context.Background()
	_, line, owners := o.keys(conv)
	zs, err := rdb.ZRangeWithScores(ctx, line, 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	who, err := rdb.HGetAll(ctx, owners).Result()
	if err != nil {
		t.Fatal(err)
	}
	var out []relay.Place
	for _, z := range zs {
		id, _ := z.Member.(string)
		if p, ok := parsePlace(conv, id, strconv.FormatFloat(z.Score, 'f', -1, 64), who[id]); ok {
			out = append(out, p)
		}
	}
	return out
}
