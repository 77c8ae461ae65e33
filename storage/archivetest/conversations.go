package archivetest

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
)

// ConversationStore is what RunConversations tests: an archive that also
// lists conversations for the console's inbox and reads media back.
type ConversationStore interface {
	Store
	relay.ConversationIndex
	relay.MediaReader
}

// RunConversations runs the conformance suite of relay.ConversationIndex
// and relay.MediaReader. open is called once per subtest, from parallel
// subtests, and must return a new, empty store, as for Run.
//
// What it pins down beyond the interfaces' doc comments:
//
//   - A summary's Employee is the Employee of the conversation's latest
//     message (highest Seq); Account and Client are the latest message's.
//   - Status follows relay.ConversationStatus: resolved when the latest
//     internal resolve has a higher Seq than the latest internal reopen
//     and than the latest inbound interaction; open otherwise.
//   - LastInteraction is the AcceptedAt of the latest inbound interaction
//     (to the millisecond, UTC), zero if none.
//   - Order: latest message's AcceptedAt descending, then Conv ascending.
//   - Filters combine; ActiveSince is strict; Limit <= 0 means none.
//     Employees, like Employee, looks at the latest message's Employee.
//   - A replayed message changes no summary and no count.
//   - CountInbound counts inbound messages only (not outbound, not
//     internal), with Seq strictly above the mark.
//   - MessageMedia: ok is false before PutMedia and for unknown ids; the
//     media's ContentType is the stored content's, FileName and MediaID
//     the link's.
func RunConversations(t *testing.T, open func(t *testing.T) ConversationStore) {
	t.Helper()
	for _, c := range []struct {
		name string
		run  func(t *testing.T, s ConversationStore)
	}{
		{"InternalMessagesRoundTrip", testInternalRoundTrip},
		{"Summaries", testSummaries},
		{"SummaryFilters", testSummaryFilters},
		{"SummariesIgnoreReplays", testSummaryReplays},
		{"CountInbound", testCountInbound},
		{"MessageMedia", testMessageMedia},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t, open(t))
		})
	}
}

// staffMessage returns an internal message of c with seq, accepted at
// base + offset and filed under emp.
func staffMessage(c relay.ConversationID, seq uint64, kind relay.Kind, emp string, offset time.Duration) relay.Message {
	m := message(c, seq)
	m.ID = relay.StaffID(c, kind, fmt.Sprint("k", seq))
	m.Direction = relay.Internal
	m.Kind = kind
	m.WxMsgID = ""
	m.Raw = nil
	m.Text = ""
	m.Attrs = map[string]string{relay.AttrBy: "sup"}
	m.Employee = emp
	m.AcceptedAt = base.Add(offset)
	m.CreatedAt = m.AcceptedAt
	if kind == relay.KindNote {
		m.Text = "内部备注 " + fmt.Sprint(seq)
	}
	return m
}

// in returns an inbound text of c with seq for emp at base + offset.
func in(c relay.ConversationID, seq uint64, emp string, offset time.Duration) relay.Message {
	m := inbound(c, seq, relay.KindText, "", offset)
	m.Employee = emp
	return m
}

// out returns an outbound text of c with seq for emp at base + offset.
func out(c relay.ConversationID, seq uint64, emp string, offset time.Duration) relay.Message {
	m := outMessage(c, seq, offset)
	m.Employee = emp
	return m
}

func conversations(t *testing.T, s ConversationStore, f relay.ConversationFilter) []relay.ConversationSummary {
	t.Helper()
	got, err := s.Conversations(testCtx(t), f)
	if err != nil {
		t.Fatalf("Conversations(%+v): %v", f, err)
	}
	return got
}

func convList(sums []relay.ConversationSummary) string {
	parts := make([]string, len(sums))
	for i, s := range sums {
		parts[i] = string(s.Conv)
	}
	return strings.Join(parts, " ")
}

func wantConvs(t *testing.T, what string, got []relay.ConversationSummary, want ...relay.ConversationID) {
	t.Helper()
	w := make([]string, len(want))
	for i, c := range want {
		w[i] = string(c)
	}
	if g := convList(got); g != strings.Join(w, " ") {
		t.Errorf("%s: conversations [%s], want [%s]", what, g, strings.Join(w, " "))
	}
}

func testInternalRoundTrip(t *testing.T, s ConversationStore) {
	c := conv("o_internal")
	tr := staffMessage(c, 2, relay.KindTransfer, "bob", 2*time.Second)
	tr.Attrs[relay.AttrFrom], tr.Attrs[relay.AttrTo] = "alice", "bob"
	tr.Text = "客户要求换人"
	msgs := []relay.Message{in(c, 1, "alice", time.Second), tr, staffMessage(c, 3, relay.KindNote, "bob", 3*time.Second)}
	insert(t, s, msgs...)
	sameMessages(t, "Since", since(t, s, c, 0, 0), msgs)
	// Internal messages are neither interactions nor sends.
	wantInteraction(t, s, "after internal messages", c, msgs[0].AcceptedAt, 0)
	sameMessages(t, "Unsettled", unsettled(t, s, base, 0), nil)
}

// summaryFixture archives five conversations and returns them:
//
//	a: in, out              → open, alice, latest at +50s
//	b: in, note, resolve    → resolved, bob, latest at +40s
//	c: in, resolve, in      → open again (the client wrote), alice, +30s
//	d: in, resolve, reopen  → open, bob, +20s
//	e: out only, account 2  → open, no interaction, carol, +10s
func summaryFixture(t *testing.T, s ConversationStore) (a, b, c, d, e relay.ConversationID, all []relay.Message) {
	a, b, c, d = conv("o_a"), conv("o_b"), conv("o_c"), conv("o_d")
	e = relay.Conversation("acc2", "o_e")
	eMsg := out(e, 1, "carol", 10*time.Second)
	eMsg.Account = "acc2"
	all = []relay.Message{
		in(a, 1, "alice", 1*time.Second), out(a, 2, "alice", 50*time.Second),
		in(b, 1, "bob", 2*time.Second), staffMessage(b, 2, relay.KindNote, "bob", 3*time.Second), staffMessage(b, 3, relay.KindResolve, "bob", 40*time.Second),
		in(c, 1, "alice", 4*time.Second), staffMessage(c, 2, relay.KindResolve, "alice", 5*time.Second), in(c, 3, "alice", 30*time.Second),
		in(d, 1, "bob", 6*time.Second), staffMessage(d, 2, relay.KindResolve, "bob", 7*time.Second), staffMessage(d, 3, relay.KindReopen, "bob", 20*time.Second),
		eMsg,
	}
	insert(t, s, all...)
	return a, b, c, d, e, all
}

func testSummaries(t *testing.T, s ConversationStore) {
	a, b, c, d, e, all := summaryFixture(t, s)
	got := conversations(t, s, relay.ConversationFilter{})
	wantConvs(t, "all", got, a, b, c, d, e)
	last := func(conv relay.ConversationID) relay.Message {
		var m relay.Message
		for _, x := range all {
			if x.Conv == conv && x.Seq > m.Seq {
				m = x
			}
		}
		return m
	}
	lastIn := func(conv relay.ConversationID) time.Time {
		var at time.Time
		for _, x := range all {
			if x.Conv == conv && x.IsInteraction() && x.AcceptedAt.After(at) {
				at = x.AcceptedAt
			}
		}
		return at.Truncate(time.Millisecond)
	}
	want := map[relay.ConversationID]struct {
		emp    string
		status relay.ConversationStatus
	}{
		a: {"alice", relay.StatusOpen}, b: {"bob", relay.StatusResolved}, c: {"alice", relay.StatusOpen},
		d: {"bob", relay.StatusOpen}, e: {"carol", relay.StatusOpen},
	}
	for _, sum := range got {
		w := want[sum.Conv]
		lm := last(sum.Conv)
		if sum.Employee != w.emp || sum.Status != w.status || sum.LastSeq != lm.Seq {
			t.Errorf("%s: employee %q, status %q, last seq %d; want %q, %q, %d", sum.Conv, sum.Employee, sum.Status, sum.LastSeq, w.emp, w.status, lm.Seq)
		}
		if sum.Account != lm.Account || sum.Client != lm.Client {
			t.Errorf("%s: account %q client %q, want %q %q", sum.Conv, sum.Account, sum.Client, lm.Account, lm.Client)
		}
		if d := diff(sum.Last, lm); len(d) > 0 {
			t.Errorf("%s: latest message differs:\n\t%s", sum.Conv, strings.Join(d, "\n\t"))
		}
		if wantAt := lastIn(sum.Conv); !sum.LastInteraction.Equal(wantAt) || (!wantAt.IsZero() && sum.LastInteraction.Location() != time.UTC) {
			t.Errorf("%s: last interaction %s, want %s (UTC)", sum.Conv, fmtTime(sum.LastInteraction), fmtTime(wantAt))
		}
	}
}

func testSummaryFilters(t *testing.T, s ConversationStore) {
	a, b, c, d, e, _ := summaryFixture(t, s)
	for _, tc := range []struct {
		name string
		f    relay.ConversationFilter
		want []relay.ConversationID
	}{
		{"open", relay.ConversationFilter{Status: relay.StatusOpen}, []relay.ConversationID{a, c, d, e}},
		{"resolved", relay.ConversationFilter{Status: relay.StatusResolved}, []relay.ConversationID{b}},
		{"alice", relay.ConversationFilter{Employee: "alice"}, []relay.ConversationID{a, c}},
		{"bob open", relay.ConversationFilter{Employee: "bob", Status: relay.StatusOpen}, []relay.ConversationID{d}},
		{"nobody", relay.ConversationFilter{Employee: "dave"}, nil},
		{"account", relay.ConversationFilter{Account: "acc2"}, []relay.ConversationID{e}},
		{"account and employee", relay.ConversationFilter{Account: "acc", Employee: "carol"}, nil},
		{"one conversation", relay.ConversationFilter{Conv: c}, []relay.ConversationID{c}},
		{"unknown conversation", relay.ConversationFilter{Conv: conv("o_none")}, nil},
		{"conversations", relay.ConversationFilter{Convs: []relay.ConversationID{c, e, conv("o_none")}}, []relay.ConversationID{c, e}},
		{"conversations and status", relay.ConversationFilter{Convs: []relay.ConversationID{b, c}, Status: relay.StatusOpen}, []relay.ConversationID{c}},
		{"conversations, none", relay.ConversationFilter{Convs: []relay.ConversationID{}}, nil},
		{"limit", relay.ConversationFilter{Limit: 2}, []relay.ConversationID{a, b}},
		// d's latest message is at +20s: "since +20s" is strict.
		{"active since", relay.ConversationFilter{ActiveSince: base.Add(20 * time.Second)}, []relay.ConversationID{a, b, c}},
		{"active since, before", relay.ConversationFilter{ActiveSince: base.Add(20*time.Second - time.Millisecond)}, []relay.ConversationID{a, b, c, d}},
		{"active since and account", relay.ConversationFilter{ActiveSince: base, Account: "acc2"}, []relay.ConversationID{e}},
		{"active since, later than all", relay.ConversationFilter{ActiveSince: base.Add(time.Hour)}, nil},
		{"employees", relay.ConversationFilter{Employees: []string{"bob", "carol"}}, []relay.ConversationID{b, d, e}},
		{"employees, one", relay.ConversationFilter{Employees: []string{"alice"}}, []relay.ConversationID{a, c}},
		{"employees, one unknown", relay.ConversationFilter{Employees: []string{"dave", "carol"}}, []relay.ConversationID{e}},
		{"employees, none known", relay.ConversationFilter{Employees: []string{"dave"}}, nil},
		{"employees, no injection", relay.ConversationFilter{Employees: []string{"alice' OR '1'='1"}}, nil},
		{"employees and employee agree", relay.ConversationFilter{Employee: "bob", Employees: []string{"alice", "bob"}}, []relay.ConversationID{b, d}},
		{"employees and employee disagree", relay.ConversationFilter{Employee: "alice", Employees: []string{"bob"}}, nil},
		{"employees and status", relay.ConversationFilter{Employees: []string{"alice", "bob"}, Status: relay.StatusOpen}, []relay.ConversationID{a, c, d}},
		{"employees and account", relay.ConversationFilter{Employees: []string{"alice", "carol"}, Account: "acc2"}, []relay.ConversationID{e}},
		{"employees and limit", relay.ConversationFilter{Employees: []string{"carol", "bob"}, Limit: 2}, []relay.ConversationID{b, d}},
		{"employees and active since", relay.ConversationFilter{Employees: []string{"alice", "bob"}, ActiveSince: base.Add(20 * time.Second)}, []relay.ConversationID{a, b, c}},
	} {
		wantConvs(t, tc.name, conversations(t, s, tc.f), tc.want...)
	}
	// Employees looks at the latest message only: f was alice's, then
	// transferred to dave.
	f := conv("o_f")
	insert(t, s, in(f, 1, "alice", 8*time.Second), staffMessage(f, 2, relay.KindTransfer, "dave", 9*time.Second))
	wantConvs(t, "employees after a transfer, old holder", conversations(t, s, relay.ConversationFilter{Employees: []string{"alice"}}), a, c)
	wantConvs(t, "employees after a transfer, new holder", conversations(t, s, relay.ConversationFilter{Employees: []string{"dave", "carol"}}), e, f)
	// ActiveSince selects conversations, not messages: b's summary still
	// counts its resolve, older than the bound... and its status stays.
	got := conversations(t, s, relay.ConversationFilter{Conv: b, ActiveSince: base.Add(39 * time.Second)})
	if len(got) != 1 || got[0].Status != relay.StatusResolved || got[0].LastSeq != 3 {
		t.Errorf("b since +39s: %+v", got)
	}
	// A bound that only an older message of a conversation passes still
	// summarises the whole conversation.
	got = conversations(t, s, relay.ConversationFilter{Conv: c, ActiveSince: base.Add(29 * time.Second)})
	if len(got) != 1 || got[0].LastSeq != 3 {
		t.Errorf("c since +29s: %+v", got)
	}
}

func testSummaryReplays(t *testing.T, s ConversationStore) {
	a, b, c, d, e, all := summaryFixture(t, s)
	before := conversations(t, s, relay.ConversationFilter{})
	insert(t, s, all...)
	insert(t, s, all[len(all)/2:]...)
	after := conversations(t, s, relay.ConversationFilter{})
	wantConvs(t, "after replays", after, a, b, c, d, e)
	for i := range min(len(before), len(after)) {
		x, y := before[i], after[i]
		if x.Employee != y.Employee || x.Status != y.Status || x.LastSeq != y.LastSeq || x.Last.ID != y.Last.ID {
			t.Errorf("%s changed by a replay: %+v → %+v", x.Conv, x, y)
		}
	}
	counts := countInbound(t, s, map[relay.ConversationID]uint64{a: 0, c: 0})
	if counts[a] != 1 || counts[c] != 2 {
		t.Errorf("counts after replays: %v", counts)
	}
}

func countInbound(t *testing.T, s ConversationStore, after map[relay.ConversationID]uint64) map[relay.ConversationID]int {
	t.Helper()
	got, err := s.CountInbound(testCtx(t), after)
	if err != nil {
		t.Fatalf("CountInbound: %v", err)
	}
	if got == nil {
		t.Fatal("CountInbound returned a nil map")
	}
	return got
}

func testCountInbound(t *testing.T, s ConversationStore) {
	a, b, c, d, e, _ := summaryFixture(t, s)
	if got := countInbound(t, s, nil); len(got) != 0 {
		t.Errorf("CountInbound of nothing: %v", got)
	}
	got := countInbound(t, s, map[relay.ConversationID]uint64{a: 0, b: 0, c: 1, d: 1, e: 0, conv("o_none"): 0})
	want := map[relay.ConversationID]int{a: 1, b: 1, c: 1}
	for _, cv := range []relay.ConversationID{a, b, c, d, e, conv("o_none")} {
		if got[cv] != want[cv] {
			t.Errorf("CountInbound[%s] = %d, want %d (all: %v)", cv, got[cv], want[cv], got)
		}
	}
	// Many conversations at once, with marks in the middle.
	var many []relay.Message
	marks := map[relay.ConversationID]uint64{}
	for i := range 450 {
		cv := conv(fmt.Sprintf("o_many_%03d", i))
		for seq := uint64(1); seq <= 3; seq++ {
			many = append(many, in(cv, seq, "alice", time.Duration(seq)*time.Second))
		}
		marks[cv] = uint64(i % 4)
	}
	insert(t, s, many...)
	got = countInbound(t, s, marks)
	for cv, mark := range marks {
		if w := 3 - int(min(mark, 3)); got[cv] != w {
			t.Fatalf("CountInbound[%s] with mark %d = %d, want %d", cv, mark, got[cv], w)
		}
	}
}

func messageMedia(t *testing.T, s ConversationStore, id string) (relay.Message, relay.Media, bool) {
	t.Helper()
	m, md, ok, err := s.MessageMedia(testCtx(t), id)
	if err != nil {
		t.Fatalf("MessageMedia(%s): %v", id, err)
	}
	return m, md, ok
}

func testMessageMedia(t *testing.T, s ConversationStore) {
	c := conv("o_mm")
	m1 := mediaMessage(c, 1, relay.KindImage, "MEDIA_1", time.Second)
	m2 := mediaMessage(c, 2, relay.KindFile, "MEDIA_2", 2*time.Second)
	txt := message(c, 3)
	insert(t, s, m1, m2, txt)
	for _, id := range []string{m1.ID, txt.ID, "in:acc:nothing"} {
		if _, _, ok := messageMedia(t, s, id); ok {
			t.Errorf("MessageMedia(%s) before any PutMedia: ok", id)
		}
	}
	picture := blob(300<<10, 7)
	putMedia(t, s, media(m1, picture))
	got, md, ok := messageMedia(t, s, m1.ID)
	if !ok {
		t.Fatal("MessageMedia after PutMedia: not ok")
	}
	if d := diff(got, m1); len(d) > 0 {
		t.Errorf("message differs:\n\t%s", strings.Join(d, "\n\t"))
	}
	want := media(m1, picture)
	if !bytes.Equal(md.Data, picture) || md.SHA256 != want.SHA256 || md.MessageID != m1.ID || md.MediaID != "MEDIA_1" ||
		md.ContentType != "image/jpeg" || md.FileName != "图片.jpg" {
		t.Errorf("media = %s %s %s %q %q, %d bytes; want %s %s MEDIA_1 image/jpeg 图片.jpg, %d bytes",
			md.SHA256, md.MessageID, md.MediaID, md.ContentType, md.FileName, len(md.Data), want.SHA256, m1.ID, len(picture))
	}

	// The same bytes for another message: the stored content type, the
	// second link's own name and media id.
	again := media(m2, picture)
	again.ContentType, again.FileName, again.MediaID = "application/pdf", "报告.pdf", "MEDIA_2"
	putMedia(t, s, again)
	got, md, ok = messageMedia(t, s, m2.ID)
	if !ok || got.ID != m2.ID || got.Conv != c || md.ContentType != "image/jpeg" || md.FileName != "报告.pdf" || md.MediaID != "MEDIA_2" || !bytes.Equal(md.Data, picture) {
		t.Errorf("second message: ok %v, %s, %q %q %q", ok, got.ID, md.ContentType, md.FileName, md.MediaID)
	}

	// Media linked before its message is archived (an employee's upload):
	// not ok until the message is there.
	up := outMessage(c, 4, 4*time.Second)
	up.Kind, up.Text, up.MediaID = relay.KindImage, "", "UP_1"
	small := blob(100, 9)
	putMedia(t, s, relay.Media{MessageID: up.ID, MediaID: "UP_1", ContentType: "image/png", FileName: "chart.png", Data: small})
	if _, _, ok := messageMedia(t, s, up.ID); ok {
		t.Error("MessageMedia of an upload whose message is not archived: ok")
	}
	insert(t, s, up)
	got, md, ok = messageMedia(t, s, up.ID)
	if !ok || got.Direction != relay.Outbound || md.ContentType != "image/png" || !bytes.Equal(md.Data, small) {
		t.Errorf("upload after archiving: ok %v, %+v, %q", ok, got.Direction, md.ContentType)
	}

	// A replayed message still reads once.
	insert(t, s, m1)
	if _, md, ok := messageMedia(t, s, m1.ID); !ok || !bytes.Equal(md.Data, picture) {
		t.Error("MessageMedia after a replay")
	}
	// A second content linked to one message: one of them, the same on
	// every read.
	putMedia(t, s, media(m1, blob(64, 11)))
	_, first, _ := messageMedia(t, s, m1.ID)
	for range 3 {
		if _, md, _ := messageMedia(t, s, m1.ID); md.SHA256 != first.SHA256 {
			t.Fatal("MessageMedia of a message with two contents changes between reads")
		}
	}
	if !slices.Contains([]string{media(m1, picture).SHA256, media(m1, blob(64, 11)).SHA256}, first.SHA256) {
		t.Errorf("MessageMedia returned content %s, linked to neither", first.SHA256)
	}
}
