package relay

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

type harness struct {
	spool   *memSpool
	archive *memArchive
	bus     *memBus
	dedupe  *memDedupe
	seq     *memSeq
	assign  *memAssign
	p       *Pipeline
	cancel  context.CancelFunc
	done    chan error
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{spool: newMemSpool(), archive: &memArchive{}, dedupe: &memDedupe{}, seq: &memSeq{}, assign: &memAssign{}}
	h.bus = newMemBus(h.archive)
	p, err := NewPipeline(Config{Linger: time.Millisecond, RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond}, Deps{
		Spool: h.spool, Archive: h.archive, Bus: h.bus, Dedupe: h.dedupe, Sequencer: h.seq,
		Router: NewRouter(h.assign, map[string][]string{"acct": {"alice", "bob"}}),
	})
	if err != nil {
		t.Fatal(err)
	}
	h.p = p
	return h
}

func (h *harness) start(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan error, 1)
	go func() { h.done <- h.p.Run(ctx) }()
	t.Cleanup(h.stop)
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	<-h.done
	h.cancel = nil
}

func text(client, msgID, body string) Message {
	return Message{
		ID: InboundID("acct", client, msgID, 0, "", ""), Account: "acct", Client: client,
		Conv: Conversation("acct", client), Direction: Inbound, Kind: KindText, WxMsgID: msgID, Text: body,
		CreatedAt: time.Unix(1700000000, 0),
	}
}

// waitEvents waits until n events were published and returns them.
func (h *harness) waitEvents(t *testing.T, n int) []Event {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		var ev []Event
		for _, e := range h.bus.published() {
			if e.Type == EventMessage {
				ev = append(ev, e)
			}
		}
		if len(ev) >= n {
			return ev
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("published %d events, want %d", len(h.bus.published()), n)
	return nil
}

func TestPipelineArchivesThenPublishesInOrder(t *testing.T) {
	h := newHarness(t)
	h.start(t)
	ctx := context.Background()
	for i := range 20 {
		client := fmt.Sprintf("client%d", i%3)
		if err := h.p.Accept(ctx, text(client, fmt.Sprint(1000+i), fmt.Sprint("m", i))); err != nil {
			t.Fatal(err)
		}
	}
	ev := h.waitEvents(t, 20)
	if len(h.bus.unarchived) > 0 {
		t.Fatalf("published before archived: %v", h.bus.unarchived)
	}
	last := map[ConversationID]uint64{}
	lastBody := map[ConversationID]int{}
	for _, e := range ev {
		m := e.Message
		if m.Seq != last[m.Conv]+1 {
			t.Fatalf("conv %s: seq %d after %d", m.Conv, m.Seq, last[m.Conv])
		}
		last[m.Conv] = m.Seq
		var n int
		fmt.Sscanf(m.Text, "m%d", &n)
		if n < lastBody[m.Conv] {
			t.Fatalf("conv %s: message %d delivered after %d", m.Conv, n, lastBody[m.Conv])
		}
		lastBody[m.Conv] = n
		if e.Employee == "" || e.Employee != m.Employee {
			t.Fatalf("event employee %q, message employee %q", e.Employee, m.Employee)
		}
	}
	if h.spool.Len() != 0 {
		t.Fatalf("spool still holds %d", h.spool.Len())
	}
}

func TestPipelineDropsRetries(t *testing.T) {
	h := newHarness(t)
	h.start(t)
	m := text("c1", "42", "hello")
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := h.p.Accept(context.Background(), m); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if err := h.p.Accept(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	h.waitEvents(t, 1)
	time.Sleep(50 * time.Millisecond)
	if n := h.archive.count(m.ID); n != 1 {
		t.Fatalf("archived %d times", n)
	}
	if n := len(h.bus.published()); n != 1 {
		t.Fatalf("published %d times", n)
	}
}

// When the dedupe store forgot (or is down), the archive's key still
// keeps a retry from being archived or delivered twice.
func TestPipelineArchiveKeyCatchesRetryDedupeMissed(t *testing.T) {
	h := newHarness(t)
	h.start(t)
	m := text("c1", "43", "hello")
	if err := h.p.Accept(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	h.waitEvents(t, 1)
	h.dedupe.fail = true
	if err := h.p.Accept(context.Background(), m); err != nil {
		t.Fatalf("accept with dedupe down: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for h.spool.Len() > 0 && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	if n := h.archive.count(m.ID); n != 1 {
		t.Fatalf("archived %d times", n)
	}
	if n := len(h.bus.published()); n != 1 {
		t.Fatalf("published %d times", n)
	}
}

func TestPipelineArchiveDownHoldsDelivery(t *testing.T) {
	h := newHarness(t)
	h.archive.setDown(true)
	h.start(t)
	for i := range 5 {
		if err := h.p.Accept(context.Background(), text("c1", fmt.Sprint(i+1), "x")); err != nil {
			t.Fatalf("accept while archive down: %v", err)
		}
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(h.bus.published()); n != 0 {
		t.Fatalf("published %d events while the archive was down", n)
	}
	if h.spool.Len() != 5 {
		t.Fatalf("spool holds %d, want 5", h.spool.Len())
	}
	h.archive.setDown(false)
	ev := h.waitEvents(t, 5)
	if len(h.bus.unarchived) > 0 {
		t.Fatalf("published before archived: %v", h.bus.unarchived)
	}
	for i, e := range ev {
		if e.Message.Seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d", i, e.Message.Seq)
		}
	}
}

// A crash after the insert but before the spool was marked done: the
// replay delivers the message with its original sequence and does not
// insert it again; one that was never archived is inserted with the
// sequence recorded before the crash.
func TestPipelineReplayAfterCrash(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	a, b := text("c1", "1", "a"), text("c1", "2", "b")
	a.Seq, b.Seq = 1, 2
	a.Employee = "alice"
	if err := h.archive.Insert(ctx, []Message{a}); err != nil {
		t.Fatal(err)
	}
	h.seq.Seed(ctx, a.Conv, 2)
	h.spool.Append(ctx, a)
	h.spool.Append(ctx, b)
	h.start(t)
	ev := h.waitEvents(t, 2)
	if ev[0].Message.ID != a.ID || ev[0].Message.Seq != 1 || ev[1].Message.ID != b.ID || ev[1].Message.Seq != 2 {
		t.Fatalf("replayed events: %+v", ev)
	}
	if h.archive.count(a.ID) != 1 || h.archive.count(b.ID) != 1 {
		t.Fatalf("rows: a=%d b=%d", h.archive.count(a.ID), h.archive.count(b.ID))
	}
}

func TestPipelineSeedsSequenceFromArchive(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	old := text("c9", "7", "old")
	old.Seq = 41
	h.archive.Insert(ctx, []Message{old})
	h.start(t)
	if err := h.p.Accept(ctx, text("c9", "8", "new")); err != nil {
		t.Fatal(err)
	}
	ev := h.waitEvents(t, 1)
	if ev[0].Message.Seq != 42 {
		t.Fatalf("seq %d, want 42 (after the archive's 41)", ev[0].Message.Seq)
	}
}

func TestPipelineStopDrains(t *testing.T) {
	h := newHarness(t)
	h.start(t)
	h.archive.setDown(true)
	h.p.Accept(context.Background(), text("c1", "1", "x"))
	time.Sleep(20 * time.Millisecond)
	h.archive.setDown(false)
	h.stop()
	if !h.archive.has(text("c1", "1", "x").ID) {
		t.Fatal("message not archived by the final drain")
	}
}

func TestAcceptRejectsIncompleteMessage(t *testing.T) {
	h := newHarness(t)
	if err := h.p.Accept(context.Background(), Message{}); err == nil {
		t.Fatal("accepted a message without id")
	}
	if h.spool.Len() != 0 {
		t.Fatal("spooled an invalid message")
	}
}

// runPipeline runs p's writer until the test ends; the channel gets what
// Run returns (a test that takes it puts it back).
func runPipeline(t *testing.T, p *Pipeline) chan error {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return done
}

// downBus refuses every publication, as a Redis that was killed.
type downBus struct{}

func (downBus) Publish(context.Context, Event) error {
	return fmt.Errorf("dial tcp: connection refused")
}
func (downBus) Subscribe(context.Context) (<-chan Event, error) {
	return nil, fmt.Errorf("dial tcp: connection refused")
}

// ctxSpool honours the context of Done, as the real spool does.
type ctxSpool struct{ *memSpool }

func (s ctxSpool) Done(ctx context.Context, ids []string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.memSpool.Done(ctx, ids)
}

// With the bus down, publishing a batch gives up quickly and the spool
// is still marked done: the writer goes on archiving. (Publishing used
// to spend the budget marking the spool done needed, and the writer
// stopped for good.)
func TestPipelineKeepsArchivingWithTheBusDown(t *testing.T) {
	archive := &memArchive{}
	sp := newMemSpool()
	p, err := NewPipeline(Config{Linger: time.Millisecond, RetryMin: 20 * time.Millisecond, RetryMax: 40 * time.Millisecond,
		PublishAttempts: 3, DrainTimeout: 100 * time.Millisecond}, Deps{
		Spool: ctxSpool{sp}, Archive: archive, Bus: downBus{}, Dedupe: &memDedupe{}, Sequencer: &memSeq{},
		Router: NewRouter(&memAssign{}, map[string][]string{"acct": {"alice"}}),
	})
	if err != nil {
		t.Fatal(err)
	}
	done := runPipeline(t, p)
	for round := range 3 {
		for i := range 20 {
			if err := p.Accept(context.Background(), text(fmt.Sprintf("c%d", i), fmt.Sprintf("%d-%d", round, i), "hi")); err != nil {
				t.Fatal(err)
			}
		}
		deadline := time.Now().Add(30 * time.Second)
		for sp.Len() > 0 {
			select {
			case err := <-done:
				done <- err // for the deferred wait
				t.Fatalf("the writer stopped with the bus down: %v", err)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: %d messages still spooled", round, sp.Len())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if p.Running() != nil {
		t.Fatal("the writer is not running")
	}
}

// batchBus publishes whole batches, as the Redis bus does; down refuses
// them all.
type batchBus struct {
	*memBus
	mu      sync.Mutex
	batches [][]Event
	down    bool
}

func (b *batchBus) PublishBatch(ctx context.Context, events []Event) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.down {
		return fmt.Errorf("dial tcp: connection refused")
	}
	b.batches = append(b.batches, events)
	for _, e := range events {
		if err := b.memBus.Publish(ctx, e); err != nil {
			return err
		}
	}
	return nil
}

// A bus that publishes batches gets each archived batch in one call, in
// conversation order; while it is down the writer goes on archiving.
func TestPipelinePublishesBatchesInOneCall(t *testing.T) {
	archive := &memArchive{}
	sp := newMemSpool()
	bus := &batchBus{memBus: newMemBus(archive)}
	p, err := NewPipeline(Config{Linger: 50 * time.Millisecond, RetryMin: time.Millisecond, RetryMax: 2 * time.Millisecond,
		PublishAttempts: 2, DrainTimeout: 100 * time.Millisecond}, Deps{
		Spool: ctxSpool{sp}, Archive: archive, Bus: bus, Dedupe: &memDedupe{}, Sequencer: &memSeq{},
		Router: NewRouter(&memAssign{}, map[string][]string{"acct": {"alice"}}),
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		if err := p.Accept(context.Background(), text(fmt.Sprintf("c%d", i%2), fmt.Sprint(i), "hi")); err != nil {
			t.Fatal(err)
		}
	}
	runPipeline(t, p)
	testenv.Until(t, "the batch published", func() bool {
		bus.mu.Lock()
		defer bus.mu.Unlock()
		return len(bus.batches) > 0
	})
	bus.mu.Lock()
	first := bus.batches[0]
	bus.mu.Unlock()
	if len(first) != 6 {
		t.Fatalf("first batch published %d events in one call, want all 6", len(first))
	}
	last := map[ConversationID]uint64{}
	for _, e := range first {
		if e.Message.Seq <= last[e.Conv] {
			t.Fatalf("published out of order: %s seq %d after %d", e.Conv, e.Message.Seq, last[e.Conv])
		}
		last[e.Conv] = e.Message.Seq
	}
	bus.mu.Lock()
	bus.down = true
	bus.mu.Unlock()
	if err := p.Accept(context.Background(), text("c9", "99", "hi")); err != nil {
		t.Fatal(err)
	}
	testenv.Until(t, "archived with the bus down", func() bool { return sp.Len() == 0 && archive.has(text("c9", "99", "").ID) })
	if p.Running() != nil {
		t.Fatal("the writer stopped with the bus down")
	}
}

// A batch's sequence numbers are reserved for all its conversations at
// once, and are dense: new conversations are seeded from the archive,
// known ones continue.
func TestPipelineReservesSequencesInBulk(t *testing.T) {
	archive := &memArchive{}
	sp := newMemSpool()
	seq := &memSeq{}
	p, err := NewPipeline(Config{Linger: 50 * time.Millisecond, RetryMin: time.Millisecond, RetryMax: 2 * time.Millisecond}, Deps{
		Spool: sp, Archive: archive, Bus: newMemBus(archive), Dedupe: &memDedupe{}, Sequencer: seq,
		Router: NewRouter(&memAssign{}, map[string][]string{"acct": {"alice"}}),
	})
	if err != nil {
		t.Fatal(err)
	}
	runPipeline(t, p)
	for round := range 2 {
		for i := range 6 {
			m := text(fmt.Sprintf("c%d", i%3), fmt.Sprintf("%d-%d", round, i), "hi")
			if err := p.Accept(context.Background(), m); err != nil {
				t.Fatal(err)
			}
		}
		testenv.Until(t, "the round archived", func() bool { return sp.Len() == 0 })
	}
	for i := range 3 {
		msgs, _ := archive.Since(context.Background(), Conversation("acct", fmt.Sprintf("c%d", i)), 0, 10)
		for j, m := range msgs {
			if m.Seq != uint64(j+1) {
				t.Fatalf("c%d: message %d has seq %d, want %d", i, j, m.Seq, j+1)
			}
		}
		if len(msgs) != 4 {
			t.Fatalf("c%d: %d messages archived, want 4", i, len(msgs))
		}
	}
	// Per batch: one call, and one more for its new conversations.
	archive.mu.Lock()
	batches := archive.inserts
	archive.mu.Unlock()
	if seq.calls > 2*batches {
		t.Fatalf("%d calls to number %d batches, want at most 2 a batch", seq.calls, batches)
	}
}

// lostAckArchive stores the first batch inserted but answers an error,
// as a ClickHouse killed or hung after the insert landed.
type lostAckArchive struct {
	*memArchive
	lost atomic.Bool
}

func (a *lostAckArchive) Insert(ctx context.Context, msgs []Message) error {
	err := a.memArchive.Insert(ctx, msgs)
	if err == nil && a.lost.CompareAndSwap(false, true) {
		return errDown
	}
	return err
}

// The retry of an insert whose answer was lost inserts nothing twice.
func TestPipelineRetryAfterLostInsertAckInsertsOnce(t *testing.T) {
	archive := &lostAckArchive{memArchive: &memArchive{}}
	sp := newMemSpool()
	p, err := NewPipeline(Config{Linger: 20 * time.Millisecond, RetryMin: time.Millisecond, RetryMax: 2 * time.Millisecond}, Deps{
		Spool: sp, Archive: archive, Bus: newMemBus(archive.memArchive), Dedupe: &memDedupe{}, Sequencer: &memSeq{},
		Router: NewRouter(&memAssign{}, map[string][]string{"acct": {"alice"}}),
	})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 3 {
		m := text(fmt.Sprintf("c%d", i), fmt.Sprint(i), "hi")
		ids = append(ids, m.ID)
		if err := p.Accept(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	runPipeline(t, p)
	testenv.Until(t, "the batch archived", func() bool { return sp.Len() == 0 })
	for _, id := range ids {
		if n := archive.count(id); n != 1 {
			t.Fatalf("%s inserted %d times, want once", id, n)
		}
	}
}

// An insert whose answer was lost may still be running, and land after
// the retry has read the archive: the retry waits for it to be over
// first, so that nothing is inserted twice (the chaos suite saw this
// after a shutdown cut an insert short).
func TestPipelineRetryAfterAnUnfinishedInsertInsertsOnce(t *testing.T) {
	h := newHarness(t)
	h.archive.lateInsert = true
	var ids []string
	for i := range 3 {
		m := text(fmt.Sprintf("c%d", i), fmt.Sprint(i), "hi")
		ids = append(ids, m.ID)
		if err := h.p.Accept(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	h.start(t)
	testenv.Until(t, "the batch archived", func() bool { return h.spool.Len() == 0 })
	h.stop()
	for _, id := range ids {
		if n := h.archive.count(id); n != 1 {
			t.Fatalf("%s inserted %d times, want once", id, n)
		}
	}
}

// The same for a batch of delivery events, where the next call heals
// the open batch from what the archive holds: it reads only once the
// unfinished attempt is over.
func TestSealedEventsRetryAfterAnUnfinishedInsertAppendsOnce(t *testing.T) {
	h := sealHarness(t, nil, "relay-late")
	ctx := context.Background()
	if err := h.p.seals.heal(ctx); err != nil {
		t.Fatal(err)
	}
	log := h.p.SealedEvents(memEventLog{h.archive})
	h.archive.lateInsert = true
	ev := testEvent(1)
	if err := log.AppendEvents(ctx, []DeliveryEvent{ev}); err == nil {
		t.Fatal("the first append succeeded; the fake should have failed it")
	}
	if err := log.AppendEvents(ctx, []DeliveryEvent{ev}); err != nil {
		t.Fatal(err)
	}
	h.archive.mu.Lock()
	defer h.archive.mu.Unlock()
	n := 0
	for _, e := range h.archive.evRows {
		if e.ID == ev.ID {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("event %s stored %d times, want once", ev.ID, n)
	}
}
