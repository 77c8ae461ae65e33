package archivetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/relay/export"
)

// SearchStore is what RunSearch tests: an archive that searches and
// feeds exports.
type SearchStore interface {
	Store
	export.Source
	relay.ProfileStore // exported with the conversations (export.ProfileSource)
}

// RunSearch runs the conformance suite of relay.Searcher and
// export.Source, and of export.Run over them. open is called once
// per subtest, from parallel subtests, and must return a new, empty
// store, as for Run.
//
// What it pins down beyond the interfaces' doc comments:
//
//   - Results are newest first: AcceptedAt descending (to the
//     millisecond), then ID descending. From is inclusive, To exclusive.
//   - Text is a case-insensitive substring: ASCII and other cased
//     scripts (Ä/ä) fold; Chinese matches as is.
//   - A replayed message is one result, and counts once in Total.
//   - Employees selects the messages of any of its employees, and
//     combines with Employee by AND; pages and Total follow it.
//   - A cursor page and an offset page of the same query agree; the
//     last page has no Next; a cursor the backend did not make is an
//     error.
//   - MessageEvents returns every event of the messages (not just the
//     latest); SealsByID skips unknown ids.
func RunSearch(t *testing.T, open func(t *testing.T) SearchStore) {
	t.Helper()
	for _, c := range []struct {
		name string
		run  func(t *testing.T, s SearchStore)
	}{
		{"SearchFilters", testSearchFilters},
		{"SearchText", testSearchText},
		{"SearchPaging", testSearchPaging},
		{"SearchReplaysCollapsed", testSearchReplays},
		{"SearchEmployeesPaging", testSearchEmployeesPaging},
		{"SearchBadQueries", testSearchBad},
		{"ExportReads", testExportReads},
		{"ExportContents", testExportContents},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t, open(t))
		})
	}
}

// searchFixture archives messages of three conversations, two accounts
// and two employees, each accepted at its own time, and returns them by
// name.
func searchFixture(t *testing.T, s SearchStore) map[string]relay.Message {
	a, b := conv("o_a"), conv("o_b")
	at := func(m relay.Message, d time.Duration) relay.Message {
		m.AcceptedAt = base.Add(d)
		m.CreatedAt = m.AcceptedAt.Add(-time.Second).Truncate(time.Second)
		return m
	}
	ms := map[string]relay.Message{}

	m := at(message(a, 1), time.Second)
	m.Text = "你好，我想问一下退款的事情"
	ms["a1"] = m

	m = at(outMessage(a, 2, 0), 2*time.Second)
	m.Text = "REFUND processed 已退款"
	ms["a2"] = m

	m = at(message(a, 3), 3*time.Second)
	m.ID, m.Direction, m.Kind, m.WxMsgID, m.Raw = "staff:a:3", relay.Internal, relay.KindNote, "", nil
	m.Text = "Ärger mit dem Kunden"
	ms["a3"] = m

	m = at(mediaMessage(b, 1, relay.KindImage, "MEDIA_B1", 0), 4*time.Second)
	m.Employee = "emp2"
	ms["b1"] = m

	m = at(message(b, 2), 5*time.Second)
	m.ID, m.Kind, m.WxMsgID, m.Text, m.Event = "ev:acc:b2", relay.KindEvent, "", "", "subscribe"
	m.Employee = "emp2"
	ms["b2"] = m

	m = at(message(b, 3), time.Hour)
	m.Text = "hello World"
	m.Employee = "emp2"
	ms["b3"] = m

	m = at(message(relay.Conversation("acc2", "o_c"), 1), 48*time.Hour)
	m.ID, m.Account = "in:acc2:o_c:1", "acc2"
	m.Text = "另一个账户 退款 question"
	ms["c1"] = m

	all := make([]relay.Message, 0, len(ms))
	for _, m := range ms {
		all = append(all, m)
	}
	insert(t, s, all...)
	return ms
}

func search(t *testing.T, s SearchStore, q relay.SearchQuery) relay.SearchPage {
	t.Helper()
	p, err := s.Search(testCtx(t), q)
	if err != nil {
		t.Fatalf("Search(%s): %v", q, err)
	}
	return p
}

// wantIDs fails unless got holds exactly the named fixture messages, in
// that order.
func wantIDs(t *testing.T, what string, got []relay.Message, fx map[string]relay.Message, names ...string) {
	t.Helper()
	want := make([]string, len(names))
	for i, n := range names {
		want[i] = fx[n].ID
	}
	ids := make([]string, len(got))
	for i, m := range got {
		ids[i] = m.ID
	}
	if !slices.Equal(ids, want) {
		t.Errorf("%s: got %v, want %v", what, ids, want)
	}
}

func testSearchFilters(t *testing.T, s SearchStore) {
	fx := searchFixture(t, s)
	for _, c := range []struct {
		what string
		q    relay.SearchQuery
		want []string
	}{
		{"everything", relay.SearchQuery{}, []string{"c1", "b3", "b2", "b1", "a3", "a2", "a1"}},
		{"client", relay.SearchQuery{Client: "o_b"}, []string{"b3", "b2", "b1"}},
		{"employee", relay.SearchQuery{Employee: "emp2"}, []string{"b3", "b2", "b1"}},
		{"account", relay.SearchQuery{Account: "acc2"}, []string{"c1"}},
		{"conversation", relay.SearchQuery{Conv: conv("o_a")}, []string{"a3", "a2", "a1"}},
		{"direction out", relay.SearchQuery{Direction: relay.Outbound}, []string{"a2"}},
		{"direction internal", relay.SearchQuery{Direction: relay.Internal}, []string{"a3"}},
		{"kind", relay.SearchQuery{Kind: relay.KindImage}, []string{"b1"}},
		{"kind event", relay.SearchQuery{Kind: relay.KindEvent}, []string{"b2"}},
		{"from inclusive, to exclusive", relay.SearchQuery{From: base.Add(3 * time.Second), To: base.Add(time.Hour)}, []string{"b2", "b1", "a3"}},
		{"from only", relay.SearchQuery{From: base.Add(time.Hour)}, []string{"c1", "b3"}},
		{"to only", relay.SearchQuery{To: base.Add(2 * time.Second)}, []string{"a1"}},
		{"days later", relay.SearchQuery{From: base.Add(24 * time.Hour), To: base.Add(72 * time.Hour)}, []string{"c1"}},
		{"combined", relay.SearchQuery{Client: "o_b", Kind: relay.KindText, Employee: "emp2"}, []string{"b3"}},
		{"combined with text", relay.SearchQuery{Account: "acc", Text: "退款"}, []string{"a2", "a1"}},
		{"nothing", relay.SearchQuery{Client: "o_nobody"}, nil},
		{"employees, one", relay.SearchQuery{Employees: []string{"emp2"}}, []string{"b3", "b2", "b1"}},
		{"employees, both", relay.SearchQuery{Employees: []string{"emp2", "emp1"}}, []string{"c1", "b3", "b2", "b1", "a3", "a2", "a1"}},
		{"employees, one unknown", relay.SearchQuery{Employees: []string{"emp9", "emp2"}}, []string{"b3", "b2", "b1"}},
		{"employees, none known", relay.SearchQuery{Employees: []string{"emp9"}}, nil},
		{"employees, no injection", relay.SearchQuery{Employees: []string{"emp2' OR '1'='1", `emp2\`}}, nil},
		{"employees and employee agree", relay.SearchQuery{Employee: "emp2", Employees: []string{"emp1", "emp2"}}, []string{"b3", "b2", "b1"}},
		{"employees and employee disagree", relay.SearchQuery{Employee: "emp1", Employees: []string{"emp2"}}, nil},
		{"employees and account", relay.SearchQuery{Account: "acc", Employees: []string{"emp1"}}, []string{"a3", "a2", "a1"}},
		{"employees with text", relay.SearchQuery{Employees: []string{"emp1"}, Text: "退款"}, []string{"c1", "a2", "a1"}},
		{"employees with dates", relay.SearchQuery{Employees: []string{"emp2", "emp1"}, From: base.Add(3 * time.Second), To: base.Add(time.Hour)}, []string{"b2", "b1", "a3"}},
	} {
		q := c.q
		q.WithTotal = true
		p := search(t, s, q)
		wantIDs(t, c.what, p.Messages, fx, c.want...)
		if p.Total != len(c.want) {
			t.Errorf("%s: Total %d, want %d", c.what, p.Total, len(c.want))
		}
		if p.Next != "" {
			t.Errorf("%s: one page, but Next %q", c.what, p.Next)
		}
	}
	// Without WithTotal, Total is -1.
	if p := search(t, s, relay.SearchQuery{}); p.Total != -1 {
		t.Errorf("Total without WithTotal = %d, want -1", p.Total)
	}
	// Results carry every field.
	p := search(t, s, relay.SearchQuery{Conv: conv("o_a"), Direction: relay.Outbound})
	if len(p.Messages) == 1 {
		if d := diff(p.Messages[0], fx["a2"]); len(d) > 0 {
			t.Errorf("a search result differs from what was archived:\n\t%s", strings.Join(d, "\n\t"))
		}
	}
}

func testSearchText(t *testing.T, s SearchStore) {
	fx := searchFixture(t, s)
	for _, c := range []struct {
		text string
		want []string
	}{
		{"退款", []string{"c1", "a2", "a1"}},
		{"问一下退款", []string{"a1"}},
		{"refund", []string{"a2"}},
		{"REFUND PROCESSED 已退", []string{"a2"}},
		{"world", []string{"b3"}},
		{"HELLO wORLD", []string{"b3"}},
		{"äRGER", []string{"a3"}}, // not ASCII, folded all the same
		{"QUESTION", []string{"c1"}},
		{"不存在的词", nil},
		{"%", nil}, // no wildcards
		{"_", nil},
	} {
		p := search(t, s, relay.SearchQuery{Text: c.text, WithTotal: true})
		wantIDs(t, fmt.Sprintf("text %q", c.text), p.Messages, fx, c.want...)
		if p.Total != len(c.want) {
			t.Errorf("text %q: Total %d, want %d", c.text, p.Total, len(c.want))
		}
	}
}

// pagingFixture archives n text messages of one conversation, two of
// them in the same millisecond (the ID breaks the tie), every third one
// mentioning 合同.
func pagingFixture(t *testing.T, s SearchStore, n int) []relay.Message {
	c := conv("o_pages")
	msgs := make([]relay.Message, n)
	for i := range msgs {
		msgs[i] = message(c, uint64(i+1))
		if i%3 == 0 {
			msgs[i].Text = fmt.Sprintf("关于合同 %d", i+1)
		}
	}
	msgs[5].AcceptedAt = msgs[4].AcceptedAt
	insert(t, s, msgs...)
	// Newest first: by AcceptedAt, then ID, descending.
	want := slices.Clone(msgs)
	slices.SortFunc(want, func(a, b relay.Message) int {
		if c := b.AcceptedAt.Truncate(time.Millisecond).Compare(a.AcceptedAt.Truncate(time.Millisecond)); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	return want
}

func testSearchPaging(t *testing.T, s SearchStore) {
	want := pagingFixture(t, s, 25)
	for _, text := range []string{"", "合同"} {
		var expect []string
		for _, m := range want {
			if text == "" || strings.Contains(m.Text, text) {
				expect = append(expect, m.ID)
			}
		}
		q := relay.SearchQuery{Conv: conv("o_pages"), Text: text, Limit: 4}
		var got []string
		for pages := 0; ; pages++ {
			if pages > 10 {
				t.Fatalf("text %q: more pages than there are messages", text)
			}
			p := search(t, s, q)
			// The same page by offset.
			byOffset := search(t, s, relay.SearchQuery{Conv: q.Conv, Text: text, Limit: 4, Offset: len(got)})
			if !slices.Equal(idsOf(p.Messages), idsOf(byOffset.Messages)) {
				t.Errorf("text %q, page %d: cursor %v, offset %v", text, pages, idsOf(p.Messages), idsOf(byOffset.Messages))
			}
			got = append(got, idsOf(p.Messages)...)
			if p.Next == "" {
				break
			}
			if len(p.Messages) != 4 {
				t.Errorf("text %q: a page of %d before the last", text, len(p.Messages))
			}
			q.Cursor = p.Next
		}
		if !slices.Equal(got, expect) {
			t.Errorf("text %q: pages gave\n\t%v\nwant\n\t%v", text, got, expect)
		}
	}
	// An offset past the end is an empty page.
	if p := search(t, s, relay.SearchQuery{Offset: 100}); len(p.Messages) != 0 || p.Next != "" {
		t.Errorf("offset past the end: %d messages, next %q", len(p.Messages), p.Next)
	}
	// The default page size, and the exact fit: 25 with a limit of 25
	// is one page without Next.
	if p := search(t, s, relay.SearchQuery{Limit: 25}); len(p.Messages) != 25 || p.Next != "" {
		t.Errorf("limit 25 over 25 messages: %d messages, next %q", len(p.Messages), p.Next)
	}
	if p := search(t, s, relay.SearchQuery{Limit: 24}); len(p.Messages) != 24 || p.Next == "" {
		t.Errorf("limit 24 over 25 messages: %d messages, next %q", len(p.Messages), p.Next)
	}
}

// testSearchEmployeesPaging pages through a search for a set of
// employees, some messages replayed: cursor and offset pages agree, every
// match comes once, in order, and Total counts distinct matches.
func testSearchEmployeesPaging(t *testing.T, s SearchStore) {
	c := conv("o_staffset")
	emps := []string{"e0", "e1", "e2"}
	msgs := make([]relay.Message, 30)
	for i := range msgs {
		msgs[i] = message(c, uint64(i+1))
		msgs[i].Employee = emps[i%3]
		if i%4 == 0 {
			msgs[i].Text = fmt.Sprintf("对账单 %d", i+1)
		}
	}
	msgs[7].AcceptedAt = msgs[6].AcceptedAt // a tie, broken by ID
	insert(t, s, msgs...)
	insert(t, s, msgs[20:]...) // replays, the newest among them
	want := slices.Clone(msgs)
	slices.SortFunc(want, func(a, b relay.Message) int {
		if c := b.AcceptedAt.Truncate(time.Millisecond).Compare(a.AcceptedAt.Truncate(time.Millisecond)); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	for _, q := range []relay.SearchQuery{
		{Employees: []string{"e0", "e2"}, Limit: 4},
		{Employees: []string{"e2", "e0"}, Limit: 4, Text: "对账单"},
		{Employees: []string{"e1"}, Employee: "e1", Limit: 3},
		{Employees: []string{"e1", "e9"}, Limit: 25, From: msgs[3].AcceptedAt, To: msgs[27].AcceptedAt},
	} {
		var expect []string
		for _, m := range want {
			if slices.Contains(q.Employees, m.Employee) && (q.Employee == "" || q.Employee == m.Employee) &&
				strings.Contains(m.Text, q.Text) &&
				(q.From.IsZero() || !m.AcceptedAt.Truncate(time.Millisecond).Before(q.From.Truncate(time.Millisecond))) &&
				(q.To.IsZero() || m.AcceptedAt.Truncate(time.Millisecond).Before(q.To.Truncate(time.Millisecond))) {
				expect = append(expect, m.ID)
			}
		}
		if len(expect) == 0 {
			t.Fatalf("%s: the fixture selects nothing", q)
		}
		var got []string
		cur := q
		cur.WithTotal = true
		for pages := 0; ; pages++ {
			if pages > len(msgs) {
				t.Fatalf("%v: more pages than there are messages", q.Employees)
			}
			p := search(t, s, cur)
			if pages == 0 && p.Total != len(expect) {
				t.Errorf("%v %s: Total %d, want %d", q.Employees, q, p.Total, len(expect))
			}
			byOffset := q
			byOffset.Offset = len(got)
			if o := search(t, s, byOffset); !slices.Equal(idsOf(p.Messages), idsOf(o.Messages)) {
				t.Errorf("%v %s, page %d: cursor %v, offset %v", q.Employees, q, pages, idsOf(p.Messages), idsOf(o.Messages))
			}
			for _, m := range p.Messages {
				if !slices.Contains(q.Employees, m.Employee) {
					t.Errorf("%v: got %s of %q", q.Employees, m.ID, m.Employee)
				}
			}
			got = append(got, idsOf(p.Messages)...)
			if p.Next == "" {
				break
			}
			if len(p.Messages) != q.PageSize() {
				t.Errorf("%v: a page of %d before the last", q.Employees, len(p.Messages))
			}
			cur.Cursor, cur.WithTotal = p.Next, false
		}
		if !slices.Equal(got, expect) {
			t.Errorf("%v %s: pages gave\n\t%v\nwant\n\t%v", q.Employees, q, got, expect)
		}
	}
}

func idsOf(msgs []relay.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}

func testSearchReplays(t *testing.T, s SearchStore) {
	c := conv("o_replay")
	msgs := messages(c, 1, 2, 3)
	msgs[1].Text = "重复 replayed"
	insert(t, s, msgs...)
	insert(t, s, msgs...) // a replay after a crash
	insert(t, s, msgs[1]) // and another of one message
	insert(t, s, message(c, 4))
	insert(t, s, message(c, 4)) // the newest replayed: a page of one sees two copies first
	for _, q := range []relay.SearchQuery{
		{Conv: c, WithTotal: true},
		{Conv: c, WithTotal: true, Limit: 1},
		{Text: "REPLAYED", WithTotal: true},
	} {
		var got []string
		total := -1
		for {
			p := search(t, s, q)
			if total < 0 {
				total = p.Total
			}
			got = append(got, idsOf(p.Messages)...)
			if p.Next == "" {
				break
			}
			q.Cursor = p.Next
		}
		want := []string{message(c, 4).ID, msgs[2].ID, msgs[1].ID, msgs[0].ID}
		if q.Text != "" {
			want = []string{msgs[1].ID}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s (limit %d): got %v, want %v", q, q.Limit, got, want)
		}
		if total != len(want) {
			t.Errorf("%s: Total %d, want %d", q, total, len(want))
		}
	}
}

func testSearchBad(t *testing.T, s SearchStore) {
	insert(t, s, message(conv("o_bad"), 1))
	for _, q := range []relay.SearchQuery{
		{Cursor: "not a cursor!"},
		{Cursor: "bm90LWEtY3Vyc29y"}, // base64 of "not-a-cursor"
		{From: base, To: base},
		{From: base.Add(time.Hour), To: base},
		{Limit: relay.MaxSearchLimit + 1},
		{Offset: -1},
		{Direction: "sideways"},
	} {
		if _, err := s.Search(testCtx(t), q); err == nil {
			t.Errorf("Search(%+v): no error", q)
		} else if q.Cursor != "" && !errors.Is(err, relay.ErrBadCursor) {
			t.Errorf("Search with cursor %q: %v, want ErrBadCursor", q.Cursor, err)
		}
	}
}

func testExportReads(t *testing.T, s SearchStore) {
	c := conv("o_reads")
	m1, m2 := outMessage(c, 1, time.Second), outMessage(c, 2, 2*time.Second)
	insert(t, s, m1, m2)
	e1 := deliveryEvent(m1, relay.DeliverySending, base.Add(3*time.Second))
	e2 := deliveryEvent(m1, relay.DeliverySent, base.Add(4*time.Second))
	e3 := deliveryEvent(m2, relay.DeliveryFailed, base.Add(5*time.Second))
	e3.ErrCode, e3.ErrMsg = 45015, "response out of time limit"
	appendEvents(t, s, e1, e2, e3)
	appendEvents(t, s, e2) // a replay
	evs, err := s.MessageEvents(testCtx(t), []string{m1.ID, m2.ID, "out:nothing"})
	if err != nil {
		t.Fatalf("MessageEvents: %v", err)
	}
	var got []string
	for _, e := range evs {
		got = append(got, e.ID)
	}
	want := []string{e1.ID, e2.ID, e3.ID}
	if m1.ID > m2.ID {
		want = []string{e3.ID, e1.ID, e2.ID}
	}
	if !slices.Equal(got, want) {
		t.Errorf("MessageEvents: %v, want %v", got, want)
	}
	for _, e := range evs {
		if e.ID == e3.ID && (e.ErrCode != 45015 || e.ErrMsg != e3.ErrMsg || !e.At.Equal(e3.At)) {
			t.Errorf("MessageEvents: %+v, want %+v", e, e3)
		}
	}
	if evs, err := s.MessageEvents(testCtx(t), nil); err != nil || len(evs) != 0 {
		t.Errorf("MessageEvents(nil) = %v, %v", evs, err)
	}

	s1 := seal("w1", relay.StreamMessages, 1, "", stamp([]relay.Message{m1}, relay.BatchID("w1", relay.StreamMessages, 1)), base)
	s2 := seal("w1", relay.StreamMessages, 2, s1.Hash, stamp([]relay.Message{m2}, relay.BatchID("w1", relay.StreamMessages, 2)), base.Add(time.Second))
	insertSeal(t, s, s1, s2, s1)
	seals, err := s.SealsByID(testCtx(t), []string{s2.ID, "w9/messages/00000000000000000001", s1.ID})
	if err != nil {
		t.Fatalf("SealsByID: %v", err)
	}
	if len(seals) != 2 || seals[0].ID != s1.ID || seals[1].ID != s2.ID {
		t.Fatalf("SealsByID: %d seals, want %s and %s", len(seals), s1.ID, s2.ID)
	}
	sameSeal(t, "SealsByID", seals[0], s1)
	sameSeal(t, "SealsByID", seals[1], s2)
}
