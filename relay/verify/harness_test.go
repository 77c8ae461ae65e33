package verify_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/storage/archivetest"
	"github.com/wechat-relay/wechat-relay/storage/bus"
	"github.com/wechat-relay/wechat-relay/storage/embedded"
	"github.com/wechat-relay/wechat-relay/storage/spool"
	"github.com/wechat-relay/wechat-relay/storage/state"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// The pipeline these tests seal with runs on the project's own storage:
// the embedded archive in a file of the test's own (ClickHouse where a
// test needs physical copies of one id, which only it keeps), the spool
// in a temporary directory, and the memory bus, sequencer, dedupe and
// assignments. The archive is what verify reads, too.

var errDown = errors.New("archive down")

// testArchive is a real archive with the two failures a writer must
// survive switched on at will, and the tampering the tests do.
type testArchive struct {
	archivetest.Store
	sealDown atomic.Bool  // InsertSeal fails
	lostAck  atomic.Bool  // Insert and AppendEvents store the rows, then fail
	lost     atomic.Int64 // acknowledgements lost so far
}

// embeddedArchive is the embedded archive, in a file of the test's own.
func embeddedArchive(t *testing.T) *testArchive {
	t.Helper()
	a, err := embedded.Open(context.Background(), filepath.Join(t.TempDir(), "archive.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return &testArchive{Store: a}
}

// clickhouseArchive is the ClickHouse archive, on a database of the
// test's own: the test is skipped without a server (outside CI).
func clickhouseArchive(t *testing.T) *testArchive {
	t.Helper()
	return &testArchive{Store: archivetest.ClickHouse(t)}
}

func (a *testArchive) Insert(ctx context.Context, msgs []relay.Message) error {
	if err := a.Store.Insert(ctx, msgs); err != nil {
		return err
	}
	return a.ack()
}

func (a *testArchive) AppendEvents(ctx context.Context, evs []relay.DeliveryEvent) error {
	if err := a.Store.AppendEvents(ctx, evs); err != nil {
		return err
	}
	return a.ack()
}

// ack is the acknowledgement of a write that stored its rows.
func (a *testArchive) ack() error {
	if a.lostAck.Load() {
		a.lost.Add(1)
		return errDown
	}
	return nil
}

func (a *testArchive) InsertSeal(ctx context.Context, s relay.Seal) error {
	if a.sealDown.Load() {
		return errDown
	}
	return a.Store.InsertSeal(ctx, s)
}

// stored returns every stored row, copies included: the messages in
// the order they were accepted, the events by time (then by id).
func (a *testArchive) stored(t *testing.T) (msgs []relay.Message, evs []relay.DeliveryEvent) {
	t.Helper()
	a.scan(t, func(r relay.StoredRow) {
		if r.Message != nil {
			msgs = append(msgs, *r.Message)
		} else {
			evs = append(evs, *r.Event)
		}
	})
	slices.SortStableFunc(msgs, func(x, y relay.Message) int {
		return cmp.Or(x.AcceptedAt.Compare(y.AcceptedAt), cmp.Compare(x.ID, y.ID))
	})
	slices.SortStableFunc(evs, func(x, y relay.DeliveryEvent) int { return cmp.Or(x.At.Compare(y.At), cmp.Compare(x.ID, y.ID)) })
	return msgs, evs
}

func (a *testArchive) messages(t *testing.T) []relay.Message {
	t.Helper()
	msgs, _ := a.stored(t)
	return msgs
}

func (a *testArchive) events(t *testing.T) []relay.DeliveryEvent {
	t.Helper()
	_, evs := a.stored(t)
	return evs
}

// scan calls fn for every stored row, sealed or not (whatever its
// batch id, the empty one included).
func (a *testArchive) scan(t *testing.T, fn func(relay.StoredRow)) {
	t.Helper()
	if err := a.ScanBatches(context.Background(), "", "\xff", func(r relay.StoredRow) error { fn(r); return nil }); err != nil {
		t.Fatal(err)
	}
}

// count returns how many stored rows have id.
func (a *testArchive) count(t *testing.T, id string) int {
	t.Helper()
	n := 0
	a.scan(t, func(r relay.StoredRow) {
		if r.ID() == id {
			n++
		}
	})
	return n
}

// seals returns the stored seals of writer, copies included: its
// events chain, then its messages chain, each in order.
func (a *testArchive) seals(t *testing.T, writer string) []relay.Seal {
	t.Helper()
	return append(a.chain(t, writer, relay.StreamEvents), a.chain(t, writer, relay.StreamMessages)...)
}

// chain returns the stored seals of writer's stream, copies included, in
// order.
func (a *testArchive) chain(t *testing.T, writer, stream string) []relay.Seal {
	t.Helper()
	// After number 0 with no limit: the whole chain, and perhaps more.
	seals, err := a.Seals(context.Background(), &relay.SealKey{Writer: writer, Stream: stream}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return slices.DeleteFunc(seals, func(s relay.Seal) bool { return s.Writer != writer || s.Stream != stream })
}

// insert stores msgs as they are, as a forger or a replay would.
func (a *testArchive) insert(t *testing.T, msgs ...relay.Message) {
	t.Helper()
	if err := a.Store.Insert(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
}

// insertSeal stores s as it is.
func (a *testArchive) insertSeal(t *testing.T, s relay.Seal) {
	t.Helper()
	if err := a.Store.InsertSeal(context.Background(), s); err != nil {
		t.Fatal(err)
	}
}

// erase deletes the rows and seals with ids behind the archive's back
// (the embedded archive's tamper hook).
func (a *testArchive) erase(t *testing.T, ids ...string) {
	t.Helper()
	e, ok := a.Store.(*embedded.Archive)
	if !ok {
		t.Fatalf("cannot erase from %T: the tests tamper with the embedded archive", a.Store)
	}
	if err := embedded.Erase(context.Background(), e, ids...); err != nil {
		t.Fatal(err)
	}
}

// replace stores m in place of the row with its id, behind the
// archive's back.
func (a *testArchive) replace(t *testing.T, m relay.Message) {
	t.Helper()
	a.erase(t, m.ID)
	a.insert(t, m)
}

// replaceSeal stores s in place of the seal with its id, behind the
// archive's back.
func (a *testArchive) replaceSeal(t *testing.T, s relay.Seal) {
	t.Helper()
	a.erase(t, s.ID)
	a.insertSeal(t, s)
}

// harness is a pipeline over the storage above.
type harness struct {
	dir     string // the spool's
	spool   *spool.Spool
	archive *testArchive
	bus     *delivered
	cfg     relay.Config
	deps    relay.Deps
	p       *relay.Pipeline
	stop    func() // stops the pipeline started, if any
}

// delivered is what a subscriber of the bus received.
type delivered struct {
	ch  <-chan relay.Event
	got []relay.Event
}

// published returns every event received so far.
func (d *delivered) published() []relay.Event {
	for {
		select {
		case e := <-d.ch:
			d.got = append(d.got, e)
		default:
			return d.got
		}
	}
}

// newHarness builds a pipeline over archive (a new embedded one for
// nil), tuned by cfg (the test timings are filled in). It returns
// NewPipeline's error.
func newHarness(t *testing.T, archive *testArchive, cfg relay.Config, log *slog.Logger) (*harness, error) {
	t.Helper()
	if archive == nil {
		archive = embeddedArchive(t)
	}
	b := bus.NewMemoryBus(bus.Options{Logger: log})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	sub, err := b.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{dir: t.TempDir(), archive: archive, bus: &delivered{ch: sub}, stop: func() {}}
	h.spool = openSpool(t, h.dir)
	cfg.Linger, cfg.RetryMin, cfg.RetryMax, cfg.DrainTimeout = time.Millisecond, time.Millisecond, 5*time.Millisecond, 50*time.Millisecond
	h.cfg = cfg
	h.deps = relay.Deps{
		Spool: h.spool, Archive: h.archive, Bus: b, Dedupe: state.NewMemoryDedupe(), Sequencer: state.NewMemorySequencer(),
		Router: relay.NewRouter(state.NewMemoryAssignments(), map[string][]string{"acct": {"alice", "bob"}}), Logger: log,
	}
	p, err := relay.NewPipeline(h.cfg, h.deps)
	h.p = p
	return h, err
}

func openSpool(t *testing.T, dir string) *spool.Spool {
	t.Helper()
	s, err := spool.Open(spool.Options{Dir: dir, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// sealHarness is a pipeline harness with a fixed writer id, over archive
// (a new embedded one for nil).
func sealHarness(t *testing.T, archive *testArchive, writer string) *harness {
	t.Helper()
	h, err := newHarness(t, archive, relay.Config{Writer: writer}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// restart is h's instance started again, as a new process: its spool
// opened again from its directory, a new pipeline over it and the same
// archive, bus and the rest, with the same writer id.
func (h *harness) restart(t *testing.T) *harness {
	t.Helper()
	h.stop()
	if err := h.spool.Close(); err != nil {
		t.Fatal(err)
	}
	r := *h
	r.stop = func() {}
	r.spool = openSpool(t, h.dir)
	r.deps.Spool = r.spool
	p, err := relay.NewPipeline(r.cfg, r.deps)
	if err != nil {
		t.Fatal(err)
	}
	r.p = p
	return &r
}

// start runs the pipeline (once per harness) until h.stop is called or
// the test ends.
func (h *harness) start(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		h.p.Run(ctx)
	}()
	h.stop = sync.OnceFunc(func() { cancel(); <-ran })
	t.Cleanup(h.stop)
}

// waitEvents waits until n messages were published and returns their
// events.
func (h *harness) waitEvents(t *testing.T, n int) []relay.Event {
	t.Helper()
	var ev []relay.Event
	testenv.Until(t, fmt.Sprintf("%d messages published", n), func() bool {
		ev = slices.DeleteFunc(slices.Clone(h.bus.published()), func(e relay.Event) bool { return e.Type != relay.EventMessage })
		return len(ev) >= n
	})
	return ev
}

// archiveSpooled runs the pipeline until what msgs were put in its spool
// is archived, sealed and done, and stops it.
func (h *harness) archiveSpooled(t *testing.T, msgs ...relay.Message) {
	t.Helper()
	for _, m := range msgs {
		if err := h.spool.Append(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	h.start(t)
	testenv.Until(t, "the spool to drain", func() bool { return h.spool.Len() == 0 })
	h.stop()
}

func text(client, msgID, body string) relay.Message {
	return relay.Message{
		ID: relay.InboundID("acct", client, msgID, 0, "", ""), Account: "acct", Client: client,
		Conv: relay.Conversation("acct", client), Direction: relay.Inbound, Kind: relay.KindText, WxMsgID: msgID, Text: body,
		CreatedAt: time.Unix(1700000000, 0),
	}
}

func testEvent(i int) relay.DeliveryEvent {
	return relay.DeliveryEvent{
		ID: fmt.Sprintf("out:acct:c1:k%d/sent", i), MessageID: fmt.Sprintf("out:acct:c1:k%d", i), Account: "acct", Conv: "acct:c1",
		State: relay.DeliverySent, At: time.UnixMilli(1700000000000 + int64(i)),
	}
}

// leafHashes returns the hashes of s's leaves in order.
func leafHashes(s relay.Seal) []string {
	out := make([]string, len(s.Leaves))
	for i, l := range s.Leaves {
		out[i] = l.Hash
	}
	return out
}
