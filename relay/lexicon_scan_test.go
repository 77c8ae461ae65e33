package relay

import (
	"bytes"
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

	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// scanArchive is an in-memory archive for the catch-up scan: Search
// (newest first, cursor paging, pageSize messages a page at most) and an
// AlertStore.
type scanArchive struct {
	mu       sync.Mutex
	msgs     []Message
	hits     map[string]LexiconHit
	appends  int // AppendHits calls
	lookups  int // Hit calls
	searches []SearchQuery
	pageSize int
	// searchErr and alertsErr, while set, fail Search and Alerts.
	searchErr, alertsErr error
	searched             chan struct{} // told of every Search, if set
}

func newScanArchive() *scanArchive { return &scanArchive{hits: map[string]LexiconHit{}} }

func (a *scanArchive) add(ms ...Message) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, m := range ms {
		m.AcceptedAt = millis(m.AcceptedAt)
		a.msgs = append(a.msgs, m)
	}
}

func (a *scanArchive) Search(_ context.Context, q SearchQuery) (SearchPage, error) {
	a.mu.Lock()
	defer func() {
		a.mu.Unlock()
		if a.searched != nil {
			select {
			case a.searched <- struct{}{}:
			default:
			}
		}
	}()
	a.searches = append(a.searches, q)
	if a.searchErr != nil {
		return SearchPage{}, a.searchErr
	}
	if err := q.Validate(); err != nil {
		return SearchPage{}, err
	}
	var sel []Message
	for _, m := range a.msgs {
		if (q.From.IsZero() || !m.AcceptedAt.Before(q.From)) && (q.To.IsZero() || m.AcceptedAt.Before(q.To)) &&
			(q.Direction == "" || q.Direction == m.Direction) {
			sel = append(sel, m)
		}
	}
	slices.SortFunc(sel, func(x, y Message) int {
		return cmp.Or(y.AcceptedAt.Compare(x.AcceptedAt), strings.Compare(y.ID, x.ID))
	})
	if ms, id, _ := q.After(); id != "" {
		sel = slices.DeleteFunc(sel, func(m Message) bool {
			at := archivedMillis(m.AcceptedAt)
			return at > ms || at == ms && m.ID >= id
		})
	}
	n := min(q.PageSize(), cmp.Or(a.pageSize, q.PageSize()))
	var p SearchPage
	if len(sel) > n {
		sel = sel[:n]
		p.Next = SearchCursor(sel[n-1])
	}
	p.Messages = slices.Clone(sel)
	return p, nil
}

func (a *scanArchive) AppendHits(_ context.Context, hits []LexiconHit) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.appends++
	for _, h := range hits {
		if _, ok := a.hits[h.ID]; !ok {
			a.hits[h.ID] = h
		}
	}
	return nil
}

func (a *scanArchive) AppendReview(context.Context, AlertReview) error { return nil }

func (a *scanArchive) Alerts(_ context.Context, q AlertQuery) ([]LexiconHit, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.alertsErr != nil {
		return nil, a.alertsErr
	}
	var out []LexiconHit
	for _, h := range a.hits {
		if (q.From.IsZero() || !h.At.Before(q.From)) && (q.To.IsZero() || h.At.Before(q.To)) {
			out = append(out, h)
		}
	}
	slices.SortFunc(out, func(x, y LexiconHit) int { return cmp.Or(y.At.Compare(x.At), strings.Compare(x.ID, y.ID)) })
	limit := q.Limit
	if limit <= 0 || limit > 10000 {
		limit = 500
	}
	return FilterAlerts(out, q.Status, limit), nil
}

func (a *scanArchive) Hit(_ context.Context, id string) (LexiconHit, bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.lookups++
	h, ok := a.hits[id]
	return h, ok, nil
}

func (a *scanArchive) stored(id string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.hits[id]
	return ok
}

func (a *scanArchive) fail(search, alerts error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.searchErr, a.alertsErr = search, alerts
}

func (a *scanArchive) queries() []SearchQuery {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.searches)
}

// scanBus delivers what is published to the one subscriber, and closes
// its channel when the subscription's ctx ends.
type scanBus struct{ ch chan Event }

func (b *scanBus) Publish(ctx context.Context, e Event) error {
	select {
	case b.ch <- e:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *scanBus) Subscribe(ctx context.Context) (<-chan Event, error) {
	out := make(chan Event)
	go func() {
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case e := <-b.ch:
				select {
				case out <- e:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// alerts records the hits alerted.
type alerts struct {
	mu  sync.Mutex
	ids []string
	ch  chan string
}

func newAlerts() *alerts { return &alerts{ch: make(chan string, 100)} }

func (a *alerts) alert(h LexiconHit) {
	a.mu.Lock()
	a.ids = append(a.ids, h.ID)
	a.mu.Unlock()
	a.ch <- h.ID
}

func (a *alerts) list() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.ids)
}

func (a *alerts) wait(t *testing.T, want string) {
	t.Helper()
	select {
	case id := <-a.ch:
		if id != want {
			t.Fatalf("alerted %s, want %s", id, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no alert of %s", want)
	}
}

var scanT0 = time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)

func scanLexicon(t *testing.T) *Lexicon {
	t.Helper()
	l, err := NewLexicon([]LexiconRule{{Name: "promise", Words: []string{"保证收益", "guaranteed return"}}})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// scanMsg is a message of conversation acc:client accepted at.
func scanMsg(id string, d Direction, text string, at time.Time) Message {
	return Message{ID: id, Account: "acc", Client: "c-" + id, Conv: Conversation("acc", "c-"+id), Direction: d,
		Kind: KindText, Text: text, Employee: "e1", AcceptedAt: at}
}

func newScanWatcher(t *testing.T, a *scanArchive, clock *fakeClock, al *alerts) *LexiconWatcher {
	return &LexiconWatcher{Lexicon: scanLexicon(t), Bus: &scanBus{ch: make(chan Event)}, Store: a, Scan: a,
		Alert: al.alert, Now: clock.Now, Log: slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))}
}

func catchUp(t *testing.T, w *LexiconWatcher, want int) {
	t.Helper()
	n, err := w.CatchUp(t.Context())
	if err != nil {
		t.Fatalf("CatchUp: %v", err)
	}
	if n != want {
		t.Fatalf("CatchUp caught up %d hits, want %d", n, want)
	}
}

// A message archived but never published is matched by the scan,
// archived, alerted once, and logged as caught up; a later scan (the
// windows overlap), another watcher (a restart) and a late publication do
// not alert it again.
func TestLexiconScanCatchesUnpublished(t *testing.T) {
	t.Parallel()
	a, clock, al := newScanArchive(), &fakeClock{t: scanT0}, newAlerts()
	var logs bytes.Buffer
	w := newScanWatcher(t, a, clock, al)
	w.Log = slog.New(slog.NewTextHandler(&logs, nil))
	lost := scanMsg("lost", Inbound, "你们保证收益吗", scanT0.Add(-2*time.Minute))
	out := scanMsg("out", Outbound, "A Guaranteed Return!", scanT0.Add(-time.Minute))
	a.add(lost, out,
		scanMsg("plain", Inbound, "你好", scanT0.Add(-time.Minute)),
		scanMsg("note", Internal, "保证收益", scanT0.Add(-time.Minute)), // internal: not matched
		scanMsg("old", Inbound, "保证收益", scanT0.Add(-time.Hour)),     // before the first window
		scanMsg("new", Inbound, "保证收益", scanT0.Add(-time.Second)),   // not settled yet
	)
	lostHit, outHit := HitID("lost", "promise"), HitID("out", "promise")
	catchUp(t, w, 2)
	if got := al.list(); !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values([]string{lostHit, outHit}))) {
		t.Fatalf("alerts = %v, want the hits of lost and out", got)
	}
	if !a.stored(lostHit) || !a.stored(outHit) || a.stored(HitID("note", "promise")) || a.stored(HitID("old", "promise")) {
		t.Fatalf("archived hits = %v", a.hits)
	}
	if !strings.Contains(logs.String(), "level=INFO msg=\"lexicon catch-up scan\"") || !strings.Contains(logs.String(), "caught_up=2") {
		t.Errorf("log = %s, want an INFO line with caught_up=2", logs.String())
	}

	clock.Add(time.Minute)
	catchUp(t, w, 1) // "new" has settled; lost and out are in the window again
	if got := al.list(); len(got) != 3 || got[2] != HitID("new", "promise") {
		t.Fatalf("alerts = %v, want the hit of new third, nothing twice", got)
	}

	// A restart: a new watcher knows nothing, the store knows the hits.
	al2 := newAlerts()
	w2 := newScanWatcher(t, a, clock, al2)
	catchUp(t, w2, 0)
	if len(al2.list()) != 0 {
		t.Fatalf("after a restart alerts = %v, want none", al2.list())
	}

	// The bus delivers lost late: the scan alerted it already.
	ctx, cancel := context.WithCancel(t.Context())
	w.ScanEvery = time.Hour
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	bus := w.Bus.(*scanBus)
	if err := bus.Publish(ctx, Event{Type: EventMessage, Conv: lost.Conv, Message: &lost}); err != nil {
		t.Fatal(err)
	}
	fresh := scanMsg("fresh", Inbound, "保证收益", clock.Now())
	if err := bus.Publish(ctx, Event{Type: EventMessage, Conv: fresh.Conv, Message: &fresh}); err != nil {
		t.Fatal(err)
	}
	// Events are handled in order: once fresh is alerted, lost was
	// handled.
	for {
		id := <-al.ch
		if id == HitID("fresh", "promise") {
			break
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := al.list(); len(got) != 4 || got[3] != HitID("fresh", "promise") {
		t.Fatalf("alerts = %v, want lost, out and new once, then fresh", got)
	}
}

// A message seen on the bus and then scanned is alerted once.
func TestLexiconScanAfterBus(t *testing.T) {
	t.Parallel()
	a, clock, al := newScanArchive(), &fakeClock{t: scanT0}, newAlerts()
	a.searched = make(chan struct{}, 1)
	w := newScanWatcher(t, a, clock, al)
	w.ScanEvery = time.Hour // only the scan at start, then the ones called here
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	<-a.searched // the scan at start ran (on an empty archive)

	m := scanMsg("m1", Inbound, "保证收益", scanT0.Add(-time.Minute))
	a.add(m) // archived, then published
	if err := w.Bus.Publish(ctx, Event{Type: EventMessage, Conv: m.Conv, Message: &m}); err != nil {
		t.Fatal(err)
	}
	al.wait(t, HitID("m1", "promise"))
	clock.Add(time.Minute)
	catchUp(t, w, 0)
	clock.Add(time.Minute)
	catchUp(t, w, 0)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := al.list(); len(got) != 1 {
		t.Fatalf("alerts = %v, want one", got)
	}
	// The hit was found among this watcher's own alerts: no lookups.
	if a.lookups != 0 {
		t.Errorf("Hit lookups = %d, want 0", a.lookups)
	}

	// A hit archived by another instance (its bus got the message, this
	// one's did not) is not alerted by this one's scan.
	other := scanMsg("m2", Outbound, "guaranteed return", clock.Now().Add(-time.Minute))
	a.add(other)
	if err := a.AppendHits(t.Context(), (&LexiconWatcher{Lexicon: w.Lexicon}).Hits(other)); err != nil {
		t.Fatal(err)
	}
	clock.Add(time.Minute)
	catchUp(t, w, 0)
	if got := al.list(); len(got) != 1 {
		t.Fatalf("alerts = %v, want still one", got)
	}
}

// A failed scan is logged and survived: the watcher goes on, and the next
// scan covers the failed one's window.
func TestLexiconScanErrorSurvived(t *testing.T) {
	t.Parallel()
	a, clock, al := newScanArchive(), &fakeClock{t: scanT0}, newAlerts()
	a.searched = make(chan struct{}, 1)
	var logs testenv.SyncBuffer
	w := newScanWatcher(t, a, clock, al)
	w.Log = slog.New(slog.NewTextHandler(&logs, nil))
	w.ScanEvery = time.Hour
	m := scanMsg("m1", Inbound, "保证收益", scanT0.Add(-time.Minute))
	a.add(m)
	a.fail(errors.New("clickhouse down"), nil)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	<-a.searched // the scan at start failed
	// The bus path still works.
	m2 := scanMsg("m2", Outbound, "guaranteed return", scanT0)
	if err := w.Bus.Publish(ctx, Event{Type: EventMessage, Conv: m2.Conv, Message: &m2}); err != nil {
		t.Fatal(err)
	}
	al.wait(t, HitID("m2", "promise"))
	for !strings.Contains(logs.String(), "lexicon catch-up scan failed") {
		time.Sleep(10 * time.Millisecond) // the log line follows the Search
	}

	// Failing scans do not advance the window...
	clock.Add(time.Minute)
	if _, err := w.CatchUp(t.Context()); err == nil || !strings.Contains(err.Error(), "clickhouse down") {
		t.Fatalf("CatchUp = %v, want the search's error", err)
	}
	a.fail(nil, errors.New("alerts unreadable"))
	if _, err := w.CatchUp(t.Context()); err == nil || !strings.Contains(err.Error(), "alerts unreadable") {
		t.Fatalf("CatchUp = %v, want the alerts' error", err)
	}
	if len(al.list()) != 1 {
		t.Fatalf("alerts = %v, want only m2's", al.list())
	}
	// ... so the next good one catches m1, an hour on.
	a.fail(nil, nil)
	clock.Add(time.Hour)
	catchUp(t, w, 1)
	al.wait(t, HitID("m1", "promise"))
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// A cancelled scan returns the ctx's error.
	cctx, ccancel := context.WithCancel(t.Context())
	ccancel()
	if _, err := w.CatchUp(cctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("CatchUp(cancelled) = %v", err)
	}
}

// The window: [previous upper bound − overlap, now − settle), the first
// one reaching back overlap; it stays put while scans fail.
func TestLexiconScanWindowAdvances(t *testing.T) {
	t.Parallel()
	a, clock, al := newScanArchive(), &fakeClock{t: scanT0.Add(123 * time.Microsecond)}, newAlerts()
	w := newScanWatcher(t, a, clock, al)
	w.ScanOverlap, w.ScanSettle = 2*time.Minute, 3*time.Second
	type window struct{ from, to time.Time }
	last := func() window {
		q := a.queries()
		return window{q[len(q)-1].From, q[len(q)-1].To}
	}
	settled := scanT0.Add(-3 * time.Second)

	catchUp(t, w, 0)
	if got, want := last(), (window{settled.Add(-2 * time.Minute), settled}); got != want {
		t.Fatalf("first window = %v, want %v", got, want)
	}
	clock.Add(time.Minute)
	catchUp(t, w, 0)
	if got, want := last(), (window{settled.Add(-2 * time.Minute), settled.Add(time.Minute)}); got != want {
		t.Fatalf("second window = %v, want %v", got, want)
	}
	clock.Add(time.Minute)
	a.fail(errors.New("down"), nil)
	if _, err := w.CatchUp(t.Context()); err == nil {
		t.Fatal("CatchUp succeeded on a failing archive")
	}
	if got, want := last(), (window{settled.Add(-time.Minute), settled.Add(2 * time.Minute)}); got != want {
		t.Fatalf("failed window = %v, want %v", got, want)
	}
	a.fail(nil, nil)
	clock.Add(time.Minute)
	catchUp(t, w, 0)
	if got, want := last(), (window{settled.Add(-time.Minute), settled.Add(3 * time.Minute)}); got != want {
		t.Fatalf("window after the failure = %v, want %v", got, want)
	}
	clock.Add(time.Minute)
	catchUp(t, w, 0)
	if got, want := last(), (window{settled.Add(time.Minute), settled.Add(4 * time.Minute)}); got != want {
		t.Fatalf("next window = %v, want %v", got, want)
	}
	// Called again at once: the window is the overlap alone.
	catchUp(t, w, 0)
	if got, want := last(), (window{settled.Add(2 * time.Minute), settled.Add(4 * time.Minute)}); got != want {
		t.Fatalf("immediate window = %v, want %v", got, want)
	}

	// Defaults: 10 minutes back, 5 seconds' settling.
	d := newScanWatcher(t, a, clock, al)
	catchUp(t, d, 0)
	now := clock.Now().Truncate(time.Millisecond)
	if got, want := last(), (window{now.Add(-5*time.Second - 10*time.Minute), now.Add(-5 * time.Second)}); got != want {
		t.Fatalf("default window = %v, want %v", got, want)
	}
}

// Many messages: the scan pages through them; when the store holds more
// hits in the window than it lists at once, the scan asks for each of its
// hits.
func TestLexiconScanPagesAndLooksUp(t *testing.T) {
	t.Parallel()
	a, clock, al := newScanArchive(), &fakeClock{t: scanT0}, newAlerts()
	a.pageSize = 3
	w := newScanWatcher(t, a, clock, al)
	var want []string
	for i := range 10 {
		m := scanMsg(fmt.Sprint("m", i), Inbound, "保证收益", scanT0.Add(-time.Minute).Add(-time.Duration(i)*time.Second))
		a.add(m)
		if i < 7 {
			want = append(want, HitID(m.ID, "promise"))
		}
	}
	// m7..m9 are archived with their hits already, below 10000 others.
	var old []LexiconHit
	for i := 7; i < 10; i++ {
		old = append(old, w.Hits(a.msgs[i])...)
	}
	for i := range alertsPage {
		old = append(old, LexiconHit{ID: fmt.Sprint("other-", i), Rule: "promise", At: scanT0.Add(-30 * time.Second)})
	}
	if err := a.AppendHits(t.Context(), old); err != nil {
		t.Fatal(err)
	}
	catchUp(t, w, 7)
	if got := al.list(); !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))) {
		t.Fatalf("alerts = %v, want %v", got, want)
	}
	if n := len(a.queries()); n != 4 {
		t.Errorf("searches = %d, want 4 pages of 3", n)
	}
	if a.lookups != 10 {
		t.Errorf("Hit lookups = %d, want one per hit", a.lookups)
	}
}
