package archivetest

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/relay/report"
)

// ReportStore is what RunReports tests: an archive that computes the
// reports' figures.
type ReportStore interface {
	Store
	report.Store
	AppendHits(ctx context.Context, hits []relay.LexiconHit) error
	AppendAudit(ctx context.Context, e relay.AuditEntry) error
}

// RunReports runs the conformance suite of report.Store. open is called
// once per subtest, from parallel subtests, and must return a new, empty
// store, as for Run.
//
// Every subtest archives the same desk (seedDesk): five conversations on
// two accounts over two days of China Standard Time, with known timings,
// replayed copies and delivery events, and asserts every figure of the
// definitions in relay/report exactly. Days are counted at UTC+8, where
// they differ from the UTC dates of the same messages.
func RunReports(t *testing.T, open func(t *testing.T) ReportStore) {
	t.Helper()
	for _, c := range []struct {
		name string
		run  func(t *testing.T, s ReportStore)
	}{
		{"Volume", testReportVolume},
		{"Clients", testReportClients},
		{"Conversations", testReportConversations},
		{"Responses", testReportResponses},
		{"Waiting", testReportWaiting},
		{"Closing", testReportClosing},
		{"Delivery", testReportDelivery},
		{"NoEmployees", testReportNoEmployees},
		{"HitsAndActions", testReportHitsAndActions},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			seedDesk(t, s)
			c.run(t, s)
		})
	}
}

// d0 is the desk's first day, midnight in China (16:00 UTC the day
// before); the reports cover [d0, d0+48h).
var d0 = time.Date(2026, 3, 14, 0, 0, 0, 0, cst)

// deskFilter is the whole desk's range, at UTC+8.
func deskFilter() report.Filter {
	return report.Filter{From: d0, To: d0.Add(48 * time.Hour), Offset: 8 * time.Hour}
}

// The desk's conversations.
var (
	deskC1 = relay.Conversation("acc", "c1")  // e1; a returning client, resolved, writes again, waits now
	deskC2 = relay.Conversation("acc", "c2")  // e2; new (subscribes), resolved, reopened by staff, writes again, waits now
	deskC3 = relay.Conversation("acc2", "c3") // e1; new, answered twice, waits now, window closing
	deskC4 = relay.Conversation("acc", "c4")  // e3; new, answered exactly at the range's end
	deskC5 = relay.Conversation("acc", "c5")  // e2; new, first message exactly at the range's start
)

// deskMsg returns a message of c with seq at d0 + at, for emp: in (text),
// out, an event (subscribe) or internal (resolve, reopen).
func deskMsg(c relay.ConversationID, seq uint64, what, emp string, at time.Duration) relay.Message {
	var m relay.Message
	switch what {
	case "in":
		m = message(c, seq)
	case "out":
		m = outMessage(c, seq, 0)
	case "subscribe":
		m = inbound(c, seq, relay.KindEvent, "subscribe", 0)
	case "resolve", "reopen":
		m = staffMessage(c, seq, relay.Kind(what), emp, 0)
	default:
		panic("deskMsg: " + what)
	}
	m.Account, m.Client = c.Split()
	m.ID = fmt.Sprintf("%s:%s:%d", what, c, seq)
	m.Employee = emp
	m.AcceptedAt = d0.Add(at)
	m.CreatedAt = m.AcceptedAt.Truncate(time.Second)
	return m
}

// desk holds the seeded messages by name, for the events and the wants.
type desk map[string]relay.Message

func seedDesk(t *testing.T, s ReportStore) desk {
	t.Helper()
	h, m := time.Hour, time.Minute
	msgs := []struct {
		name string
		m    relay.Message
	}{
		{"c1.1", deskMsg(deskC1, 1, "in", "e1", -72*h+10*h)},
		{"c1.2", deskMsg(deskC1, 2, "out", "e1", -72*h+10*h+10*m)},
		{"c1.3", deskMsg(deskC1, 3, "in", "e1", 7*h)},
		{"c1.4", deskMsg(deskC1, 4, "in", "e1", 7*h+1*m)},
		{"c1.5", deskMsg(deskC1, 5, "out", "e1", 7*h+5*m)}, // 300 s
		{"c1.6", deskMsg(deskC1, 6, "resolve", "e1", 8*h)},
		{"c1.7", deskMsg(deskC1, 7, "in", "e1", 9*h)},      // reopens
		{"c1.8", deskMsg(deskC1, 8, "out", "e1", 9*h+2*m)}, // 120 s
		{"c1.9", deskMsg(deskC1, 9, "in", "e1", 20*h)},     // waiting
		{"c2.1", deskMsg(deskC2, 1, "subscribe", "e2", 10*h)},
		{"c2.2", deskMsg(deskC2, 2, "in", "e2", 10*h+1*m)},
		{"c2.3", deskMsg(deskC2, 3, "out", "e2", 10*h+11*m)}, // first, 600 s
		{"c2.4", deskMsg(deskC2, 4, "in", "e2", 26*h)},
		{"c2.5", deskMsg(deskC2, 5, "out", "e2", 27*h)}, // 3600 s
		{"c2.6", deskMsg(deskC2, 6, "resolve", "e2", 27*h+10*m)},
		{"c2.7", deskMsg(deskC2, 7, "reopen", "e2", 28*h)},
		{"c2.8", deskMsg(deskC2, 8, "in", "e2", 29*h)}, // after a reopen: not one more; waiting
		{"c3.1", deskMsg(deskC3, 1, "in", "e1", 30*h)},
		{"c3.2", deskMsg(deskC3, 2, "out", "e1", 30*h+30*time.Second)}, // first, 30 s
		{"c3.3", deskMsg(deskC3, 3, "out", "e1", 30*h+40*time.Second)}, // answers nothing
		{"c3.4", deskMsg(deskC3, 4, "in", "e1", 31*h)},                 // waiting since
		{"c3.5", deskMsg(deskC3, 5, "in", "e1", 31*h+5*m)},
		{"c4.1", deskMsg(deskC4, 1, "in", "e3", 47*h)},
		{"c4.2", deskMsg(deskC4, 2, "out", "e3", 48*h)}, // at the end: outside
		{"c5.1", deskMsg(deskC5, 1, "in", "e2", 0)},     // at the start: inside
		{"c5.2", deskMsg(deskC5, 2, "out", "e2", 1*h)},  // first, 3600 s
	}
	d := desk{}
	var all []relay.Message
	for _, x := range msgs {
		d[x.name] = x.m
		all = append(all, x.m)
	}
	insert(t, s, all[:12]...)
	insert(t, s, all[12:]...)
	insert(t, s, all[2:9]...) // a replay: counted once
	ev := func(name string, st relay.DeliveryState, code int, after time.Duration) relay.DeliveryEvent {
		e := deliveryEvent(d[name], st, d[name].AcceptedAt.Add(after))
		e.ErrCode = code
		return e
	}
	appendEvents(t, s,
		ev("c1.5", relay.DeliverySending, 0, time.Millisecond), ev("c1.5", relay.DeliverySent, 0, time.Second),
		ev("c1.8", relay.DeliverySending, 0, time.Millisecond), ev("c1.8", relay.DeliveryFailed, relay.ErrCodeOutOfWindow, time.Second),
		ev("c2.3", relay.DeliverySending, 0, time.Second), ev("c2.3", relay.DeliverySent, 0, time.Second), // a tie: sent
		ev("c2.5", relay.DeliverySending, 0, time.Millisecond), ev("c2.5", relay.DeliveryUnknown, 0, time.Minute),
		ev("c3.2", relay.DeliveryFailed, relay.ErrCodeSystemBusy, time.Millisecond), ev("c3.2", relay.DeliverySent, 0, time.Second),
		ev("c3.3", relay.DeliveryRefused, relay.ErrCodeSendQuota, time.Millisecond),
		ev("c4.2", relay.DeliverySent, 0, time.Second), // outside the range
		// c5.2: no event, pending.
	)
	appendEvents(t, s, ev("c1.8", relay.DeliveryFailed, relay.ErrCodeOutOfWindow, time.Second)) // a replay
	return d
}

func same[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func withEmployees(f report.Filter, ids ...string) report.Filter {
	f.Employees = append([]string{}, ids...)
	return f
}

func testReportVolume(t *testing.T, s ReportStore) {
	f := deskFilter()
	vol := func(f report.Filter, g report.Group) []report.VolumeRow {
		t.Helper()
		rows, err := s.ReportVolume(testCtx(t), f, g)
		if err != nil {
			t.Fatalf("ReportVolume(%s): %v", g, err)
		}
		return rows
	}
	type r = report.VolumeRow
	vr := func(k string, in, out int64) r { return r{Key: k, In: in, Out: out} }
	same(t, "by day", vol(f, report.GroupDay), []r{vr("2026-03-14", 6, 4), vr("2026-03-15", 6, 3)})
	same(t, "by hour", vol(f, report.GroupHour), []r{
		vr("00", 1, 0), vr("01", 0, 1), vr("02", 1, 0), vr("03", 0, 1), vr("05", 1, 0), vr("06", 1, 2),
		vr("07", 4, 1), vr("09", 1, 1), vr("10", 1, 1), vr("20", 1, 0), vr("23", 1, 0),
	})
	same(t, "by account", vol(f, report.GroupAccount), []r{vr("acc", 9, 5), vr("acc2", 3, 2)})
	same(t, "by employee", vol(f, report.GroupEmployee), []r{vr("e1", 7, 4), vr("e2", 4, 3), vr("e3", 1, 0)})
	same(t, "all", vol(f, report.GroupAll), []r{vr("", 12, 7)})
	same(t, "all of e2 and e3", vol(withEmployees(f, "e2", "e3"), report.GroupAll), []r{vr("", 5, 3)})
	acc2 := f
	acc2.Account = "acc2"
	same(t, "acc2 by day", vol(acc2, report.GroupDay), []r{vr("2026-03-15", 3, 2)})
	// In UTC the first day's morning is the day before.
	utc := f
	utc.Offset = 0
	same(t, "by day in UTC", vol(utc, report.GroupDay), []r{vr("2026-03-13", 3, 2), vr("2026-03-14", 8, 5), vr("2026-03-15", 1, 0)})
	// One day only: [d0+24h, d0+48h).
	day2 := f
	day2.From = d0.Add(24 * time.Hour)
	same(t, "second day", vol(day2, report.GroupAll), []r{vr("", 6, 3)})
}

func testReportClients(t *testing.T, s ReportStore) {
	got, err := s.ReportClients(testCtx(t), deskFilter())
	if err != nil {
		t.Fatalf("ReportClients: %v", err)
	}
	same(t, "clients", got, []report.ClientsRow{{Day: "2026-03-14", New: 2, Returning: 1}, {Day: "2026-03-15", New: 2, Returning: 1}})
	got, err = s.ReportClients(testCtx(t), withEmployees(deskFilter(), "e1"))
	if err != nil {
		t.Fatalf("ReportClients(e1): %v", err)
	}
	same(t, "clients of e1", got, []report.ClientsRow{{Day: "2026-03-14", New: 0, Returning: 1}, {Day: "2026-03-15", New: 1, Returning: 0}})
}

func testReportConversations(t *testing.T, s ReportStore) {
	got, err := s.ReportConversations(testCtx(t), deskFilter())
	if err != nil {
		t.Fatalf("ReportConversations: %v", err)
	}
	same(t, "conversations", got, []report.ConversationsRow{{Day: "2026-03-14", Opened: 2, Resolved: 1, Reopened: 1}, {Day: "2026-03-15", Opened: 2, Resolved: 1, Reopened: 1}})
	got, err = s.ReportConversations(testCtx(t), withEmployees(deskFilter(), "e2"))
	if err != nil {
		t.Fatalf("ReportConversations(e2): %v", err)
	}
	same(t, "conversations of e2", got, []report.ConversationsRow{{Day: "2026-03-14", Opened: 2, Resolved: 0, Reopened: 0}, {Day: "2026-03-15", Opened: 0, Resolved: 1, Reopened: 1}})
}

func testReportResponses(t *testing.T, s ReportStore) {
	resp := func(f report.Filter, g report.Group) []report.ResponseRow {
		t.Helper()
		rows, err := s.ReportResponses(testCtx(t), f, g)
		if err != nil {
			t.Fatalf("ReportResponses(%s): %v", g, err)
		}
		return rows
	}
	const sec = 1000
	type r = report.ResponseRow
	same(t, "by employee", resp(deskFilter(), report.GroupEmployee), []r{
		{Key: "e1", Replies: 3, MedianMS: 120 * sec, P90MS: 300 * sec, FirstReplies: 1, FirstMS: 30 * sec, FirstP90MS: 30 * sec},
		{Key: "e2", Replies: 3, MedianMS: 3600 * sec, P90MS: 3600 * sec, FirstReplies: 2, FirstMS: 600 * sec, FirstP90MS: 3600 * sec},
	})
	same(t, "all", resp(deskFilter(), report.GroupAll), []r{
		{Key: "", Replies: 6, MedianMS: 300 * sec, P90MS: 3600 * sec, FirstReplies: 3, FirstMS: 600 * sec, FirstP90MS: 3600 * sec},
	})
	same(t, "e3 (whose reply is outside)", resp(withEmployees(deskFilter(), "e3"), report.GroupEmployee), []r(nil))
	day1 := deskFilter()
	day1.To = d0.Add(24 * time.Hour)
	same(t, "first day", resp(day1, report.GroupAll), []r{
		{Key: "", Replies: 4, MedianMS: 300 * sec, P90MS: 3600 * sec, FirstReplies: 2, FirstMS: 600 * sec, FirstP90MS: 3600 * sec},
	})
}

func testReportWaiting(t *testing.T, s ReportStore) {
	wait := func(f report.Filter) []report.WaitingRow {
		t.Helper()
		rows, err := s.ReportWaiting(testCtx(t), f)
		if err != nil {
			t.Fatalf("ReportWaiting: %v", err)
		}
		return rows
	}
	c1 := report.WaitingRow{Conv: deskC1, Employee: "e1", Since: d0.Add(20 * time.Hour).UTC()}
	c3 := report.WaitingRow{Conv: deskC3, Employee: "e1", Since: d0.Add(31 * time.Hour).UTC()}
	c2 := report.WaitingRow{Conv: deskC2, Employee: "e2", Since: d0.Add(29 * time.Hour).UTC()}
	same(t, "waiting", wait(deskFilter()), []report.WaitingRow{c1, c2, c3})
	same(t, "waiting for e2", wait(withEmployees(deskFilter(), "e2")), []report.WaitingRow{c2})
	same(t, "waiting for e3", wait(withEmployees(deskFilter(), "e3")), []report.WaitingRow(nil))
	acc2 := deskFilter()
	acc2.Account = "acc2"
	same(t, "waiting on acc2", wait(acc2), []report.WaitingRow{c3})
}

func testReportClosing(t *testing.T, s ReportStore) {
	now := d0.Add(48 * time.Hour)
	closing := func(f report.Filter, within time.Duration) []report.ClosingRow {
		t.Helper()
		rows, err := s.ReportClosing(testCtx(t), f, now, within)
		if err != nil {
			t.Fatalf("ReportClosing(%s): %v", within, err)
		}
		return rows
	}
	c1 := report.ClosingRow{Conv: deskC1, Employee: "e1", LastInteraction: d0.Add(20 * time.Hour).UTC()}
	c3 := report.ClosingRow{Conv: deskC3, Employee: "e1", LastInteraction: d0.Add(31*time.Hour + 5*time.Minute).UTC()}
	same(t, "within 24h", closing(deskFilter(), 24*time.Hour), []report.ClosingRow{c1})
	c2 := report.ClosingRow{Conv: deskC2, Employee: "e2", LastInteraction: d0.Add(29 * time.Hour).UTC()}
	same(t, "within 48h", closing(deskFilter(), 48*time.Hour), []report.ClosingRow{c1, c2, c3})
	same(t, "within 1h", closing(deskFilter(), time.Hour), []report.ClosingRow(nil))
	same(t, "within 48h for e2", closing(withEmployees(deskFilter(), "e2"), 48*time.Hour), []report.ClosingRow{c2})
	same(t, "within 48h for e3", closing(withEmployees(deskFilter(), "e3"), 48*time.Hour), []report.ClosingRow(nil))
}

func testReportDelivery(t *testing.T, s ReportStore) {
	del := func(f report.Filter) []report.DeliveryRow {
		t.Helper()
		rows, err := s.ReportDelivery(testCtx(t), f)
		if err != nil {
			t.Fatalf("ReportDelivery: %v", err)
		}
		return rows
	}
	type r = report.DeliveryRow
	same(t, "delivery", del(deskFilter()), []r{
		{Day: "2026-03-14", State: relay.DeliveryFailed, ErrCode: relay.ErrCodeOutOfWindow, Count: 1},
		{Day: "2026-03-14", State: relay.DeliveryPending, ErrCode: 0, Count: 1},
		{Day: "2026-03-14", State: relay.DeliverySent, ErrCode: 0, Count: 2},
		{Day: "2026-03-15", State: relay.DeliveryRefused, ErrCode: relay.ErrCodeSendQuota, Count: 1},
		{Day: "2026-03-15", State: relay.DeliverySent, ErrCode: 0, Count: 1},
		{Day: "2026-03-15", State: relay.DeliveryUnknown, ErrCode: 0, Count: 1},
	})
	same(t, "delivery of e2", del(withEmployees(deskFilter(), "e2")), []r{
		{Day: "2026-03-14", State: relay.DeliveryPending, ErrCode: 0, Count: 1},
		{Day: "2026-03-14", State: relay.DeliverySent, ErrCode: 0, Count: 1},
		{Day: "2026-03-15", State: relay.DeliveryUnknown, ErrCode: 0, Count: 1},
	})
}

// testReportNoEmployees: an empty, non-nil employee list counts nothing.
func testReportNoEmployees(t *testing.T, s ReportStore) {
	f := withEmployees(deskFilter())
	ctx := testCtx(t)
	vol, err := s.ReportVolume(ctx, f, report.GroupAll)
	if err != nil || len(vol) != 0 {
		t.Errorf("ReportVolume(no employees) = %v, %v; want nothing", vol, err)
	}
	resp, err := s.ReportResponses(ctx, f, report.GroupAll)
	if err != nil || len(resp) != 0 {
		t.Errorf("ReportResponses(no employees) = %v, %v; want nothing", resp, err)
	}
	wait, err := s.ReportWaiting(ctx, f)
	if err != nil || len(wait) != 0 {
		t.Errorf("ReportWaiting(no employees) = %v, %v; want nothing", wait, err)
	}
	del, err := s.ReportDelivery(ctx, f)
	if err != nil || len(del) != 0 {
		t.Errorf("ReportDelivery(no employees) = %v, %v; want nothing", del, err)
	}
}

func testReportHitsAndActions(t *testing.T, s ReportStore) {
	ctx := testCtx(t)
	h, m := time.Hour, time.Minute
	hit := func(id, rule, emp, account string, at time.Duration) relay.LexiconHit {
		return relay.LexiconHit{ID: id, Account: account, Conv: relay.Conversation(account, "c1"), MessageID: "m-" + id,
			Direction: relay.Inbound, Employee: emp, Rule: rule, Matched: "保证收益", Excerpt: "……保证收益……", At: d0.Add(at)}
	}
	h1 := hit("h1", "returns", "e1", "acc", 7*h)
	if err := s.AppendHits(ctx, []relay.LexiconHit{h1, hit("h2", "returns", "e2", "acc", 26*h), hit("h3", "insult", "e1", "acc2", 30*h),
		hit("h4", "returns", "e1", "acc", -1*h), hit("h5", "returns", "e3", "acc", 48*h)}); err != nil {
		t.Fatalf("AppendHits: %v", err)
	}
	if err := s.AppendHits(ctx, []relay.LexiconHit{h1}); err != nil { // a retried insert
		t.Fatalf("AppendHits: %v", err)
	}
	n := uint64(0)
	audit := func(action, emp string, at time.Duration) relay.AuditEntry {
		n++
		return relay.AuditEntry{ID: fmt.Sprintf("w/audit/%d", n), Writer: "w", Number: n, At: d0.Add(at), Employee: emp,
			Role: "agent", Action: action, Hash: fmt.Sprintf("hash%d", n)}
	}
	a1 := audit(relay.AuditSendBlocked, "e1", 8*h)
	for _, e := range []relay.AuditEntry{a1, audit("archive_export", "sup", 20*h), audit(relay.AuditExport, "cmp", 30*h),
		audit(relay.AuditSignIn, "e1", 9*h), audit(relay.AuditSendBlocked, "e2", 47*h+59*m), a1} {
		if err := s.AppendAudit(ctx, e); err != nil {
			t.Fatalf("AppendAudit: %v", err)
		}
	}

	hits := func(f report.Filter) []report.DayCount {
		t.Helper()
		rows, err := s.ReportHits(ctx, f)
		if err != nil {
			t.Fatalf("ReportHits: %v", err)
		}
		return rows
	}
	type hr = report.DayCount
	same(t, "hits", hits(deskFilter()), []hr{{Day: "2026-03-14", Key: "returns", Count: 1}, {Day: "2026-03-15", Key: "insult", Count: 1}, {Day: "2026-03-15", Key: "returns", Count: 1}})
	same(t, "hits of e1", hits(withEmployees(deskFilter(), "e1")), []hr{{Day: "2026-03-14", Key: "returns", Count: 1}, {Day: "2026-03-15", Key: "insult", Count: 1}})
	acc2 := deskFilter()
	acc2.Account = "acc2"
	same(t, "hits on acc2", hits(acc2), []hr{{Day: "2026-03-15", Key: "insult", Count: 1}})
	same(t, "hits of nobody", hits(withEmployees(deskFilter())), []hr(nil))

	acts := func(f report.Filter, actions ...string) []report.DayCount {
		t.Helper()
		rows, err := s.ReportActions(ctx, f, actions)
		if err != nil {
			t.Fatalf("ReportActions: %v", err)
		}
		return rows
	}
	type ar = report.DayCount
	same(t, "actions", acts(deskFilter(), relay.AuditSendBlocked, "archive_export", relay.AuditExport), []ar{
		{Day: "2026-03-14", Key: "archive_export", Count: 1}, {Day: "2026-03-14", Key: relay.AuditSendBlocked, Count: 1},
		{Day: "2026-03-15", Key: relay.AuditExport, Count: 1}, {Day: "2026-03-15", Key: relay.AuditSendBlocked, Count: 1},
	})
	same(t, "blocked sends of e1 and e2", acts(withEmployees(deskFilter(), "e1", "e2"), relay.AuditSendBlocked), []ar{
		{Day: "2026-03-14", Key: relay.AuditSendBlocked, Count: 1}, {Day: "2026-03-15", Key: relay.AuditSendBlocked, Count: 1},
	})
	same(t, "no actions asked", acts(deskFilter()), []ar(nil))
}
