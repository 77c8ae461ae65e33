package relay

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLexiconMatch(t *testing.T) {
	t.Parallel()
	l, err := NewLexicon([]LexiconRule{
		{Name: "promise", Words: []string{"保证收益", "Guaranteed Return"}},
		{Name: "rate", Regex: []string{`\d+\s*%\s*(yield|回报)`}, Direction: "inbound"},
		{Name: "off", Words: []string{"WhatsApp"}, Direction: "outbound", Block: true, Reason: "stay on the account", Accounts: []string{"a1"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	rules := func(ms []LexiconMatch) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.Rule)
		}
		return out
	}
	for _, c := range []struct {
		account string
		dir     Direction
		text    string
		want    []string
	}{
		{"a1", Inbound, "你们保证收益吗", []string{"promise"}},
		{"a1", Inbound, "GUARANTEED RETURN?", []string{"promise"}},
		{"a1", Inbound, "保证 收益", nil},
		{"a1", Inbound, "年化 8% 回报", []string{"rate"}},
		{"a1", Outbound, "8 % YIELD", nil}, // rate is inbound only
		{"a1", Inbound, "8% Yield", []string{"rate"}},
		{"a1", Outbound, "add me on whatsapp", []string{"off"}},
		{"a2", Outbound, "add me on whatsapp", nil}, // off is for a1 only
		{"a1", Outbound, "", nil},
	} {
		if got := rules(l.Match(c.account, "", c.dir, c.text)); !slices.Equal(got, c.want) {
			t.Errorf("Match(%s, %s, %q) = %v, want %v", c.account, c.dir, c.text, got, c.want)
		}
	}
	var blocked []string
	l.OnBlocked(func(_ context.Context, req SendRequest, m LexiconMatch) { blocked = append(blocked, m.Rule) })
	err = l.checkOutbound(context.Background(), SendRequest{Conv: "a1:c", Employee: "alice", Text: "WhatsApp me"})
	var pe *PolicyError
	if !errors.As(err, &pe) || pe.Code != ErrCodeLexicon || !strings.Contains(pe.Reason, `"off"`) || !strings.Contains(pe.Reason, "stay on the account") {
		t.Fatalf("checkOutbound = %v", err)
	}
	if !slices.Equal(blocked, []string{"off"}) {
		t.Errorf("OnBlocked calls = %v", blocked)
	}
	if err := l.checkOutbound(context.Background(), SendRequest{Conv: "a1:c", Kind: KindLink,
		Attrs: map[string]string{"title": "Chat on WhatsApp", "url": "https://x"}}); err == nil {
		t.Error("a link whose title matches a blocking rule was not refused")
	}
	w := &LexiconWatcher{Lexicon: l}
	if hits := w.Hits(Message{ID: "m", Account: "a1", Conv: "a1:c", Direction: Inbound, Kind: KindLink,
		Attrs: map[string]string{"description": "年化 12% 回报"}}); len(hits) != 1 || hits[0].Rule != "rate" || !strings.Contains(hits[0].Excerpt, "回报") {
		t.Errorf("link description hits = %+v", hits)
	}
	if err := l.checkOutbound(context.Background(), SendRequest{Conv: "a1:c", Text: "保证收益"}); err != nil {
		t.Errorf("a non-blocking rule refused a send: %v", err)
	}
	var nilLex *Lexicon
	if nilLex.Match("a1", "", Inbound, "保证收益") != nil || nilLex.checkOutbound(context.Background(), SendRequest{Text: "x"}) != nil {
		t.Error("a nil lexicon matched")
	}
}

func TestLexiconTeams(t *testing.T) {
	t.Parallel()
	l, err := NewLexicon([]LexiconRule{
		{Name: "desk-a-only", Words: []string{"内幕"}, Teams: []string{"desk-a"}},
		{Name: "block-b", Words: []string{"微信转账"}, Teams: []string{"desk-b"}, Direction: "outbound", Block: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Without the directory, team rules match nothing.
	if got := l.Match("a1", "alice", Inbound, "内幕消息"); got != nil {
		t.Fatalf("a team rule matched without a directory: %v", got)
	}
	teams := map[string][]string{"alice": {"desk-a"}, "bob": {"desk-b"}}
	l.TeamsOf(func(emp string) []string { return teams[emp] })
	for _, c := range []struct {
		emp, text string
		want      bool
	}{
		{"alice", "内幕消息", true},
		{"bob", "内幕消息", false},
		{"", "内幕消息", false}, // nobody's conversation: no team
		{"carol", "内幕消息", false},
	} {
		if got := len(l.Match("a1", c.emp, Inbound, c.text)) == 1; got != c.want {
			t.Errorf("Match for %q: %t, want %t", c.emp, got, c.want)
		}
	}
	if err := l.checkOutbound(context.Background(), SendRequest{Conv: "a1:c", Employee: "bob", Text: "请微信转账"}); err == nil {
		t.Error("desk-b's blocking rule let bob send")
	}
	if err := l.checkOutbound(context.Background(), SendRequest{Conv: "a1:c", Employee: "alice", Text: "请微信转账"}); err != nil {
		t.Errorf("desk-b's blocking rule refused alice (desk-a): %v", err)
	}
	// Membership is read at match time: a move applies at once.
	teams["alice"] = []string{"desk-b"}
	if err := l.checkOutbound(context.Background(), SendRequest{Conv: "a1:c", Employee: "alice", Text: "请微信转账"}); err == nil {
		t.Error("alice moved to desk-b, and desk-b's rule let her send")
	}
	w := &LexiconWatcher{Lexicon: l}
	hits := w.Hits(Message{ID: "m", Account: "a1", Conv: "a1:c", Direction: Outbound, Text: "微信转账", Employee: "bob",
		Attrs: map[string]string{"sent_by": "alice"}})
	if len(hits) != 1 || hits[0].Employee != "alice" {
		t.Errorf("hits of alice's send in bob's conversation: %+v", hits)
	}
}

func TestLexiconConfigErrors(t *testing.T) {
	t.Parallel()
	_, err := NewLexicon([]LexiconRule{
		{Name: "", Words: []string{"x"}},
		{Name: "dup", Words: []string{"x"}},
		{Name: "dup", Words: []string{"y"}},
		{Name: "badre", Regex: []string{"("}},
		{Name: "empty"},
		{Name: "dir", Words: []string{"x"}, Direction: "sideways"},
		{Name: "inblock", Words: []string{"x"}, Direction: "inbound", Block: true},
	})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"name is required", `duplicate name "dup"`, "badre", "needs words or regex", "sideways", "outbound messages only"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

// memAudit is an AuditStore in memory whose records a test can tamper with.
type memAudit struct {
	mu   sync.Mutex
	recs []AuditEntry
	fail error
}

func (m *memAudit) AppendAudit(_ context.Context, e AuditEntry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	m.recs = append(m.recs, e)
	return nil
}

func (m *memAudit) LatestAudit(_ context.Context, writer string) (AuditEntry, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var best AuditEntry
	ok := false
	for _, e := range m.recs {
		if e.Writer == writer && (!ok || e.Number > best.Number) {
			best, ok = e, true
		}
	}
	return best, ok, nil
}

func (m *memAudit) SearchAudit(context.Context, AuditQuery) ([]AuditEntry, error) { return nil, nil }

func (m *memAudit) ScanAudit(_ context.Context, fn func(AuditEntry) error) error {
	m.mu.Lock()
	recs := slices.Clone(m.recs)
	m.mu.Unlock()
	slices.SortStableFunc(recs, func(a, b AuditEntry) int {
		if c := strings.Compare(a.Writer, b.Writer); c != 0 {
			return c
		}
		return int(a.Number) - int(b.Number)
	})
	for _, e := range recs {
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

func TestVerifyAudit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	build := func() *memAudit {
		st := &memAudit{}
		for _, w := range []string{"w1", "w2"} {
			l, err := NewAuditLog(st, w, nil, func() time.Time { return time.Unix(1700000000, 0) })
			if err != nil {
				t.Fatal(err)
			}
			for i := range 4 {
				if _, err := l.Append(ctx, AuditEntry{Employee: "sup", Action: "open_conversation", Conv: "a:c", Target: string(rune('a' + i))}); err != nil {
					t.Fatal(err)
				}
			}
		}
		return st
	}
	st := build()
	rep, err := VerifyAudit(ctx, st)
	if err != nil || !rep.OK || rep.Records != 8 || len(rep.Chains) != 2 {
		t.Fatalf("clean: %+v, %v", rep, err)
	}
	id2 := "w1/audit/00000000000000000002"
	for _, c := range []struct {
		name   string
		tamper func(m *memAudit)
		kind   ProblemKind
		id     string
	}{
		{"altered", func(m *memAudit) { m.recs[1].Target = "forged" }, ProblemAltered, id2},
		{"altered and rehashed", func(m *memAudit) {
			m.recs[1].Target = "forged"
			m.recs[1].Hash = m.recs[1].ComputeHash()
		}, ProblemChainBroken, "w1/audit/00000000000000000003"},
		{"deleted", func(m *memAudit) { m.recs = slices.Delete(m.recs, 1, 2) }, ProblemSealMissing, "w1/audit/00000000000000000003"},
		{"second copy", func(m *memAudit) {
			e := m.recs[1]
			e.Detail = "inserted"
			e.Hash = e.ComputeHash()
			m.recs = append(m.recs, e)
		}, ProblemInserted, id2},
		{"first deleted", func(m *memAudit) { m.recs = m.recs[1:] }, ProblemSealMissing, id2},
	} {
		st := build()
		c.tamper(st)
		rep, err := VerifyAudit(ctx, st)
		if err != nil {
			t.Fatal(err)
		}
		if rep.OK || !slices.ContainsFunc(rep.Problems, func(p AuditProblem) bool { return p.Kind == c.kind && p.ID == c.id }) {
			t.Errorf("%s: want %s %s, got %+v", c.name, c.kind, c.id, rep.Problems)
		}
	}
	// Witnessed hashes: the newest record's is found; a removed one is not.
	st = build()
	last, _, _ := st.LatestAudit(ctx, "w1")
	if rep, _ := VerifyAudit(ctx, st, last.Hash); !rep.OK || len(rep.Witnesses) != 1 || !rep.Witnesses[0].Found {
		t.Errorf("witness of the newest record: %+v", rep)
	}
	st.recs = slices.DeleteFunc(st.recs, func(e AuditEntry) bool { return e.ID == last.ID })
	if rep, _ := VerifyAudit(ctx, st, last.Hash); rep.OK || rep.Witnesses[0].Found {
		t.Errorf("the newest record removed, its witness still found: %+v", rep)
	}
	// A retried identical record is not a problem.
	st = build()
	st.recs = append(st.recs, st.recs[2])
	if rep, _ := VerifyAudit(ctx, st); !rep.OK {
		t.Errorf("identical copy reported: %+v", rep.Problems)
	}
}

func TestAuditLogRereadsAfterError(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := &memAudit{}
	l, err := NewAuditLog(st, "w1", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, AuditEntry{Action: "a"}); err != nil {
		t.Fatal(err)
	}
	st.fail = errors.New("down")
	if _, err := l.Append(ctx, AuditEntry{Action: "b"}); err == nil {
		t.Fatal("no error from a failing store")
	}
	st.fail = nil
	// Someone (a record stored despite an error) moved the chain on.
	other, _ := NewAuditLog(st, "w1", nil, nil)
	if _, err := other.Append(ctx, AuditEntry{Action: "c"}); err != nil {
		t.Fatal(err)
	}
	e, err := l.Append(ctx, AuditEntry{Action: "d"})
	if err != nil || e.Number != 3 {
		t.Fatalf("after an error the log did not reread its chain: %+v, %v", e, err)
	}
	if rep, _ := VerifyAudit(ctx, st); !rep.OK {
		t.Errorf("chain broken: %+v", rep.Problems)
	}
	if _, err := NewAuditLog(st, "bad/writer", nil, nil); err == nil {
		t.Error("a bad writer id was accepted")
	}
}

// lateAudit is an audit store whose failing insert still lands, later:
// what a cancelled or timed-out insert into ClickHouse can do.
type lateAudit struct {
	*memAudit
	late []AuditEntry
}

func (s *lateAudit) AppendAudit(ctx context.Context, e AuditEntry) error {
	if s.fail != nil {
		s.late = append(s.late, e)
		return s.fail
	}
	return s.memAudit.AppendAudit(ctx, e)
}

func (s *lateAudit) land() {
	s.recs = append(s.recs, s.late...)
	s.late = nil
}

// A record whose store failed but landed later is not forked: the next
// record is chained after it, never given its number.
func TestAuditFailedStoreIsNotForked(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := &lateAudit{memAudit: &memAudit{}}
	l, err := NewAuditLog(st, "w1", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, AuditEntry{Action: "a"}); err != nil {
		t.Fatal(err)
	}
	st.fail = errors.New("context canceled")
	if _, err := l.Append(ctx, AuditEntry{Action: "b"}); err == nil {
		t.Fatal("no error from a failing store")
	}
	st.fail = nil
	e, err := l.Append(ctx, AuditEntry{Action: "c"})
	if err != nil || e.Number != 3 {
		t.Fatalf("the record after a failed store: %+v, %v; want number 3", e, err)
	}
	st.land() // the failed insert of b lands now
	if rep, _ := VerifyAudit(ctx, st); !rep.OK {
		t.Errorf("chain forked: %+v", rep.Problems)
	}
}

func TestRetention(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in string
		ok bool
	}{{"7y", true}, {"18m", true}, {"90d", true}, {"7", false}, {"0y", false}, {"-1y", false}, {"7w", false}, {"", false}} {
		if _, err := ParseRetention(c.in); (err == nil) != c.ok {
			t.Errorf("ParseRetention(%q) = %v", c.in, err)
		}
	}
	now := time.Date(2026, 6, 15, 0, 0, 0, 0, time.UTC)
	r, _ := ParseRetention("18m")
	if got := r.Cutoff(now); !got.Equal(time.Date(2024, 12, 15, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("cutoff = %v", got)
	}
	for _, h := range []Hold{
		{Account: "a", Reason: "r"},
		{Account: "a", Client: "c"},
		{Client: "c", Reason: "r"},
		{Account: "a", Conv: "b:c", Reason: "r"},
	} {
		if ValidateHold(h) == nil {
			t.Errorf("ValidateHold(%+v) accepted", h)
		}
	}
	if err := ValidateHold(Hold{Account: "a", Conv: "a:c", Reason: "r"}); err != nil {
		t.Error(err)
	}
}
