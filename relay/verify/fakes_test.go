package verify_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/storage/state"

	"github.com/wechat-relay/wechat-relay/relay"
)

// In-memory stand-ins for the storage a relay.Pipeline needs, copied
// down from relay's own test fakes to what these tests use. The archive
// is a verify.Source too.

var errDown = errors.New("archive down")

type memArchive struct {
	mu   sync.Mutex
	rows []relay.Message // every insert, duplicates included
	// Seals and event rows as stored (copies included).
	seals    []relay.Seal
	evRows   []relay.DeliveryEvent
	sealDown bool // InsertSeal fails
	// lostAck makes Insert and AppendEvents store the rows, then fail,
	// as when an acknowledgement is lost.
	lostAck bool
}

func (a *memArchive) Insert(_ context.Context, msgs []relay.Message) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.rows = append(a.rows, msgs...)
	if a.lostAck {
		return errDown
	}
	return nil
}

func (a *memArchive) InsertSeal(_ context.Context, s relay.Seal) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.sealDown {
		return errDown
	}
	a.seals = append(a.seals, s)
	return nil
}

func (a *memArchive) LatestSeal(_ context.Context, writer, stream string) (relay.Seal, bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var (
		best relay.Seal
		ok   bool
	)
	for _, s := range a.seals {
		if s.Writer == writer && s.Stream == stream && (!ok || s.Number > best.Number) {
			best, ok = s, true
		}
	}
	return best, ok, nil
}

func (a *memArchive) SettleInserts(context.Context, string) error { return nil }

func (a *memArchive) BatchRows(_ context.Context, batch string) ([]relay.StoredRow, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []relay.StoredRow
	a.scanLocked(func(r relay.StoredRow) bool { return r.BatchID() == batch }, func(r relay.StoredRow) error {
		out = append(out, r)
		return nil
	})
	return out, nil
}

// scanLocked calls fn for each stored row that keep accepts.
func (a *memArchive) scanLocked(keep func(relay.StoredRow) bool, fn func(relay.StoredRow) error) error {
	for i := range a.rows {
		m := a.rows[i]
		r := relay.StoredRow{Message: &m, Interaction: m.IsInteraction()}
		if keep(r) {
			if err := fn(r); err != nil {
				return err
			}
		}
	}
	for i := range a.evRows {
		e := a.evRows[i]
		r := relay.StoredRow{Event: &e}
		if keep(r) {
			if err := fn(r); err != nil {
				return err
			}
		}
	}
	return nil
}

func keyOf(s relay.Seal) relay.SealKey {
	return relay.SealKey{Writer: s.Writer, Stream: s.Stream, Number: s.Number}
}

func (a *memArchive) Seals(_ context.Context, after *relay.SealKey, limit int) ([]relay.Seal, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	all := slices.Clone(a.seals)
	slices.SortStableFunc(all, func(x, y relay.Seal) int { return compareKeys(keyOf(x), keyOf(y)) })
	var out []relay.Seal
	for _, s := range all {
		if after != nil && compareKeys(keyOf(s), *after) <= 0 {
			continue
		}
		if limit > 0 && len(out) == limit {
			break
		}
		out = append(out, s)
	}
	return out, nil
}

func compareKeys(x, y relay.SealKey) int {
	if c := strings.Compare(x.Writer, y.Writer); c != 0 {
		return c
	}
	if c := strings.Compare(x.Stream, y.Stream); c != 0 {
		return c
	}
	return cmp.Compare(x.Number, y.Number)
}

func (a *memArchive) ScanBatches(_ context.Context, from, to string, fn func(relay.StoredRow) error) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.scanLocked(func(r relay.StoredRow) bool { return r.BatchID() >= from && r.BatchID() <= to }, fn)
}

func (a *memArchive) ScanUnsealed(_ context.Context, fn func(relay.StoredRow) error) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	ids := map[string]bool{}
	for _, s := range a.seals {
		ids[s.ID] = true
	}
	return a.scanLocked(func(r relay.StoredRow) bool { return !ids[r.BatchID()] }, fn)
}

func (a *memArchive) Existing(_ context.Context, msgs []relay.Message) (map[string]uint64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[string]uint64{}
	for _, r := range a.rows {
		if slices.ContainsFunc(msgs, func(m relay.Message) bool { return m.ID == r.ID }) {
			out[r.ID] = r.Seq
		}
	}
	return out, nil
}

func (a *memArchive) Since(_ context.Context, conv relay.ConversationID, after uint64, limit int) ([]relay.Message, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []relay.Message
	for _, r := range a.rows {
		if r.Conv == conv && r.Seq > after && len(out) < limit {
			out = append(out, r)
		}
	}
	return out, nil
}

func (a *memArchive) MaxSeq(_ context.Context, conv relay.ConversationID) (uint64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var m uint64
	for _, r := range a.rows {
		if r.Conv == conv {
			m = max(m, r.Seq)
		}
	}
	return m, nil
}

func (a *memArchive) has(id string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.ContainsFunc(a.rows, func(m relay.Message) bool { return m.ID == id })
}

func (a *memArchive) count(id string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, r := range a.rows {
		if r.ID == id {
			n++
		}
	}
	return n
}

func (a *memArchive) setSealDown(down bool) {
	a.mu.Lock()
	a.sealDown = down
	a.mu.Unlock()
}

func (a *memArchive) setLostAck(lost bool) {
	a.mu.Lock()
	a.lostAck = lost
	a.mu.Unlock()
}

func (a *memArchive) sealCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.seals)
}

// memEventLog stores delivery events among the memory archive's rows,
// so that sealing and verification see them.
type memEventLog struct{ a *memArchive }

func (l memEventLog) AppendEvents(_ context.Context, evs []relay.DeliveryEvent) error {
	l.a.mu.Lock()
	defer l.a.mu.Unlock()
	l.a.evRows = append(l.a.evRows, evs...)
	if l.a.lostAck {
		return errDown
	}
	return nil
}

func (l memEventLog) LatestEvents(context.Context, []string) (map[string]relay.DeliveryEvent, error) {
	return map[string]relay.DeliveryEvent{}, nil
}

func (l memEventLog) Unsettled(context.Context, time.Time, int) ([]relay.Message, error) {
	return nil, nil
}

type memSpool struct {
	mu      sync.Mutex
	pending []relay.Message
	notify  chan struct{}
}

func newMemSpool() *memSpool { return &memSpool{notify: make(chan struct{}, 1)} }

func (s *memSpool) Append(_ context.Context, m relay.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.pending {
		if p.ID == m.ID {
			return relay.ErrDuplicate
		}
	}
	s.pending = append(s.pending, m)
	select {
	case s.notify <- struct{}{}:
	default:
	}
	return nil
}

func (s *memSpool) Pending(max int) []relay.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := min(max, len(s.pending))
	return slices.Clone(s.pending[:n])
}

func (s *memSpool) Notify() <-chan struct{} { return s.notify }

func (s *memSpool) Assign(_ context.Context, seqs map[string]uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.pending {
		if q, ok := seqs[s.pending[i].ID]; ok {
			s.pending[i].Seq = q
		}
	}
	return nil
}

func (s *memSpool) Done(_ context.Context, ids []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending = slices.DeleteFunc(s.pending, func(m relay.Message) bool { return slices.Contains(ids, m.ID) })
	return nil
}

func (s *memSpool) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pending)
}

// memBus records publications.
type memBus struct {
	mu     sync.Mutex
	events []relay.Event
	ch     chan relay.Event
}

func newMemBus() *memBus { return &memBus{ch: make(chan relay.Event, 1000)} }

func (b *memBus) Publish(_ context.Context, e relay.Event) error {
	b.mu.Lock()
	b.events = append(b.events, e)
	b.mu.Unlock()
	b.ch <- e
	return nil
}

func (b *memBus) Subscribe(context.Context) (<-chan relay.Event, error) { return b.ch, nil }

func (b *memBus) published() []relay.Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.events)
}

// memDedupe is a Dedupe in memory: a key is held by an owner until its
// lease ends, or done.
type memDedupe struct {
	mu   sync.Mutex
	keys map[string]memClaim
}

type memClaim struct {
	owner   string // "" once done
	expires time.Time
}

func (d *memDedupe) Claim(_ context.Context, key, owner string, lease time.Duration) (relay.ClaimState, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.keys == nil {
		d.keys = map[string]memClaim{}
	}
	if c, ok := d.keys[key]; ok && time.Now().Before(c.expires) {
		if c.owner == "" {
			return relay.ClaimDone, nil
		}
		return relay.ClaimHeld, nil
	}
	d.keys[key] = memClaim{owner: owner, expires: time.Now().Add(lease)}
	return relay.ClaimWon, nil
}

func (d *memDedupe) Finish(_ context.Context, key string, ttl time.Duration) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.keys == nil {
		d.keys = map[string]memClaim{}
	}
	d.keys[key] = memClaim{expires: time.Now().Add(ttl)}
	return nil
}

func (d *memDedupe) Release(_ context.Context, key, owner string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c, ok := d.keys[key]; ok && c.owner == owner && owner != "" {
		delete(d.keys, key)
	}
	return nil
}

type memAssign struct {
	mu sync.Mutex
	m  map[relay.ConversationID]string
}

func (a *memAssign) Get(_ context.Context, conv relay.ConversationID) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.m[conv], nil
}

func (a *memAssign) Set(_ context.Context, conv relay.ConversationID, emp string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.m == nil {
		a.m = map[relay.ConversationID]string{}
	}
	a.m[conv] = emp
	return nil
}

func (a *memAssign) SetIfAbsent(_ context.Context, conv relay.ConversationID, emp string) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.m == nil {
		a.m = map[relay.ConversationID]string{}
	}
	if cur, ok := a.m[conv]; ok {
		return cur, nil
	}
	a.m[conv] = emp
	return emp, nil
}

// harness is a pipeline over the fakes.
type harness struct {
	spool   *memSpool
	archive *memArchive
	bus     *memBus
	cfg     relay.Config
	deps    relay.Deps
	p       *relay.Pipeline
	cancel  context.CancelFunc
	done    chan error
}

// newHarness builds a pipeline over archive (a new one for nil), tuned
// by cfg (the test timings are filled in). It returns NewPipeline's
// error.
func newHarness(t *testing.T, archive *memArchive, cfg relay.Config, log *slog.Logger) (*harness, error) {
	t.Helper()
	if archive == nil {
		archive = &memArchive{}
	}
	h := &harness{spool: newMemSpool(), archive: archive, bus: newMemBus()}
	cfg.Linger, cfg.RetryMin, cfg.RetryMax, cfg.DrainTimeout = time.Millisecond, time.Millisecond, 5*time.Millisecond, 50*time.Millisecond
	h.cfg = cfg
	h.deps = relay.Deps{
		Spool: h.spool, Archive: h.archive, Bus: h.bus, Dedupe: &memDedupe{}, Sequencer: state.NewMemorySequencer(),
		Router: relay.NewRouter(&memAssign{}, map[string][]string{"acct": {"alice", "bob"}}), Logger: log,
	}
	p, err := relay.NewPipeline(h.cfg, h.deps)
	h.p = p
	return h, err
}

// sealHarness is a pipeline harness with a fixed writer id, over archive
// (a new one for nil).
func sealHarness(t *testing.T, archive *memArchive, writer string) *harness {
	t.Helper()
	h, err := newHarness(t, archive, relay.Config{Writer: writer}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// restart is h's instance started again: a new pipeline over the same
// spool, archive, bus and the rest, with the same writer id.
func (h *harness) restart(t *testing.T) *harness {
	t.Helper()
	h.stop()
	p, err := relay.NewPipeline(h.cfg, h.deps)
	if err != nil {
		t.Fatal(err)
	}
	return &harness{spool: h.spool, archive: h.archive, bus: h.bus, cfg: h.cfg, deps: h.deps, p: p}
}

// start runs the pipeline (once per harness) until stop.
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

// waitFor waits until cond holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitEvents waits until n events were published and returns them.
func (h *harness) waitEvents(t *testing.T, n int) []relay.Event {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		var ev []relay.Event
		for _, e := range h.bus.published() {
			if e.Type == relay.EventMessage {
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
	waitFor(t, "the spool to drain", func() bool { return h.spool.Len() == 0 })
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
