package relay

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// instances are pipelines with spools and writers of their own, sharing
// an archive, the dedupe and sequence stores and the line of accepted
// messages, as relays behind one balancer do.
type instances struct {
	archive *memArchive
	order   *memOrder
	spools  []*memSpool
	p       []*Pipeline
}

func newInstances(t *testing.T, n int, orderWait time.Duration) *instances {
	t.Helper()
	in := &instances{archive: &memArchive{}, order: &memOrder{}}
	dedupe, seq, assign := &memDedupe{}, &memSeq{}, &memAssign{}
	bus := newMemBus(in.archive)
	for i := range n {
		sp := newMemSpool()
		p, err := NewPipeline(Config{
			Writer: "relay-" + string(rune('a'+i)), Linger: time.Millisecond,
			RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond, OrderWait: orderWait,
		}, Deps{
			Spool: sp, Archive: in.archive, Bus: bus, Dedupe: dedupe, Sequencer: seq, Order: in.order,
			Router: NewRouter(assign, map[string][]string{"acct": {"alice"}}),
		})
		if err != nil {
			t.Fatal(err)
		}
		in.spools, in.p = append(in.spools, sp), append(in.p, p)
	}
	return in
}

func (in *instances) seqOf(t *testing.T, id string) uint64 {
	t.Helper()
	in.archive.mu.Lock()
	defer in.archive.mu.Unlock()
	for _, m := range in.archive.rows {
		if m.ID == id {
			return m.Seq
		}
	}
	t.Fatalf("%s not archived", id)
	return 0
}

// A message accepted on one instance after WeChat was told `success`
// for an earlier one on another is numbered after it, even when its own
// writer gets to it first: the writer holds it back until the earlier
// one is numbered. (The chaos suite counted these as "client order
// inverted".)
func TestPipelineNumbersInAcceptanceOrderAcrossInstances(t *testing.T) {
	in := newInstances(t, 2, time.Minute)
	a, b := in.p[0], in.p[1]
	x, y := text("c1", "1", "first"), text("c1", "2", "second")
	other := text("c2", "3", "another conversation")
	ctx := context.Background()
	if err := a.Accept(ctx, x); err != nil { // A's writer is slow: not running yet
		t.Fatal(err)
	}
	for _, m := range []Message{y, other} {
		if err := b.Accept(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	runPipeline(t, b)
	testenv.Until(t, "B holding the second message back", func() bool {
		return testutil.ToFloat64(b.d.Metrics.orderHeld) > 0
	})
	testenv.Until(t, "B archiving the other conversation meanwhile", func() bool { return in.archive.has(other.ID) })
	if in.archive.has(y.ID) {
		t.Fatal("the second message was archived before the first")
	}
	runPipeline(t, a)
	testenv.Until(t, "both archived", func() bool { return in.archive.has(x.ID) && in.archive.has(y.ID) })
	if sx, sy := in.seqOf(t, x.ID), in.seqOf(t, y.ID); sx != 1 || sy != 2 {
		t.Fatalf("first at seq %d, second at seq %d: want 1 and 2", sx, sy)
	}
	testenv.Until(t, "the line empty", func() bool { return len(in.order.line()) == 0 })
}

// An instance that took a place and never numbers it (dead, hung) holds
// its conversation back only for the wait.
func TestPipelineGivesUpOrderAfterTheWait(t *testing.T) {
	in := newInstances(t, 2, 50*time.Millisecond)
	a, b := in.p[0], in.p[1]
	x, y := text("c1", "1", "first"), text("c1", "2", "second")
	ctx := context.Background()
	if err := a.Accept(ctx, x); err != nil { // A never runs
		t.Fatal(err)
	}
	if err := b.Accept(ctx, y); err != nil {
		t.Fatal(err)
	}
	runPipeline(t, b)
	testenv.Until(t, "the second message archived once the wait is over", func() bool { return in.archive.has(y.ID) })
}

// failingSpool refuses every append, as a full disk.
type failingSpool struct{ *memSpool }

func (failingSpool) Append(context.Context, Message) error {
	return errors.New("no space left on device")
}

// A place taken for an append that failed is given back at once: nothing
// was accepted, so nothing may be waited for.
func TestPipelineLeavesTheLineWhenTheAppendFails(t *testing.T) {
	order := &memOrder{}
	p, err := NewPipeline(Config{Writer: "relay-full"}, Deps{
		Spool: failingSpool{newMemSpool()}, Archive: &memArchive{}, Bus: newMemBus(&memArchive{}), Dedupe: &memDedupe{},
		Sequencer: &memSeq{}, Order: order, Router: NewRouter(&memAssign{}, map[string][]string{"acct": {"alice"}}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Accept(context.Background(), text("c1", "1", "x")); err == nil {
		t.Fatal("accepted with a spool that refuses everything")
	}
	if line := order.line(); len(line) != 0 {
		t.Fatalf("places left in line after a failed append: %+v", line)
	}
}
