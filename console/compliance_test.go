package console

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wechat-relay/wechat-relay/relay"
)

const (
	cmpTok = "cmp-token-0123456789ab"
	admTok = "adm-token-0123456789ab"
)

func newComplianceEnv(t *testing.T) (*consoleEnv, *fakeCompliance, *httptest.Server) {
	t.Helper()
	st := &fakeCompliance{}
	e := newConsoleEnv(t, Config{Employees: []Employee{
		{ID: "cmp", Role: RoleCompliance, Token: cmpTok},
		{ID: "adm", Role: RoleAdmin, Token: admTok},
	}}, func(d *Deps) { d.Compliance = ComplianceDeps{Audit: st, Alerts: st, Holds: legalHolds(t, st)} })
	return e, st, e.srv
}

func TestComplianceAndAdminRoles(t *testing.T) {
	e, _, _ := newComplianceEnv(t)
	e.history.add(at("acct:c-alice", 1, "alice", relay.Inbound, time.Now()))
	const conv = "/api/conversations/acct:c-alice"

	// Compliance reads every conversation, audited, and never writes.
	if status, _ := e.do(t, "GET", conv+"/messages", cmpTok, "", nil); status != http.StatusOK {
		t.Fatalf("compliance read: %d", status)
	}
	recs := e.audit.all()
	if len(recs) != 1 || recs[0].Employee != "cmp" || recs[0].Role != RoleCompliance || recs[0].Action != AuditOpenConversation {
		t.Fatalf("audit = %+v", recs)
	}
	if status, _ := e.post(t, conv+"/messages", cmpTok, `{"key":"k1","kind":"text","text":"hi"}`); status != http.StatusForbidden {
		t.Errorf("compliance send: %d, want 403", status)
	}
	if status, _ := e.post(t, conv+"/transfer", cmpTok, `{"to":"bob"}`); status != http.StatusForbidden {
		t.Errorf("compliance transfer: %d, want 403", status)
	}
	// Admins manage like supervisors; the transfer is audited.
	if status, body := e.post(t, conv+"/transfer", admTok, `{"to":"bob","note":"n"}`); status != http.StatusAccepted {
		t.Errorf("admin transfer: %d %v", status, body)
	}
	if !slices.ContainsFunc(e.audit.all(), func(r AuditRecord) bool {
		return r.Employee == "adm" && r.Action == AuditTransfer && r.Target == "bob" && r.Conv == "acct:c-alice"
	}) {
		t.Errorf("transfer not audited: %+v", e.audit.all())
	}
	// A view whose record cannot be written is refused.
	e.audit.fail(errors.New("archive down"))
	if status, _ := e.do(t, "GET", conv+"/messages", cmpTok, "", nil); status != http.StatusServiceUnavailable {
		t.Errorf("compliance read without an audit trail: %d, want 503", status)
	}
}

func TestAlertFramesGoToSupervisorsOnly(t *testing.T) {
	e, _, _ := newComplianceEnv(t)
	alice, sup, cmp, adm := e.dial(t, aliceTok), e.dial(t, supTok), e.dial(t, cmpTok), e.dial(t, admTok)
	hit := relay.LexiconHit{ID: "hit-1", Account: "acct", Conv: "acct:c-alice", MessageID: "m1", Direction: relay.Inbound,
		Rule: "promise", Matched: "保证收益", Excerpt: "你们保证收益吗", At: time.Now()}
	e.server.Alert(hit)
	for _, ws := range []*websocket.Conn{sup, cmp, adm} {
		f := read(t, ws)
		if f.Type != FrameAlert || f.Conv != "acct:c-alice" || f.Alert == nil || f.Alert.ID != "hit-1" || f.Alert.Matched != "保证收益" {
			t.Errorf("frame = %+v", f)
		}
	}
	expectNothing(t, alice)
	var live []string
	for _, r := range e.audit.all() {
		if r.Action == AuditLiveView {
			live = append(live, r.Employee)
		}
	}
	slices.Sort(live)
	if !slices.Equal(live, []string{"adm", "cmp", "sup"}) {
		t.Errorf("live views audited for %v, want adm, cmp, sup", live)
	}
}

func TestComplianceAPI(t *testing.T) {
	e, st, srv := newComplianceEnv(t)
	st.hits = []relay.LexiconHit{{ID: "hit-1", Account: "acct", Conv: "acct:c-alice", Rule: "promise"}}
	call := func(method, path, token, body string) int {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		method, path, body string
		want               map[string]int // token -> status
	}{
		{"GET", "/api/audit?who=sup&from=2026-01-01", "", map[string]int{aliceTok: 403, supTok: 403, cmpTok: 200, admTok: 200}},
		{"GET", "/api/audit?from=yesterday", "", map[string]int{cmpTok: 400}},
		{"GET", "/api/alerts?status=open", "", map[string]int{aliceTok: 403, supTok: 200, cmpTok: 200}},
		{"GET", "/api/alerts?status=deleted", "", map[string]int{cmpTok: 400}},
		{"POST", "/api/alerts/hit-1/review", `{"decision":"escalated","comment":"c"}`, map[string]int{supTok: 403, cmpTok: 201}},
		{"POST", "/api/alerts/hit-2/review", `{"decision":"reviewed"}`, map[string]int{cmpTok: 404}},
		{"POST", "/api/alerts/hit-1/review", `{"decision":"ignored"}`, map[string]int{cmpTok: 400}},
		{"POST", "/api/holds", `{"account":"acct","client":"c-alice","reason":"litigation"}`, map[string]int{supTok: 403, cmpTok: 201, admTok: 201}},
		{"POST", "/api/holds", `{"account":"acct","reason":"no client"}`, map[string]int{cmpTok: 400}},
		{"GET", "/api/holds", "", map[string]int{aliceTok: 403, cmpTok: 200}},
		{"DELETE", "/api/holds", "", map[string]int{cmpTok: 405}},
	} {
		for tok, want := range c.want {
			if got := call(c.method, c.path, tok, c.body); got != want {
				t.Errorf("%s %s as %s: %d, want %d", c.method, c.path, tok[:3], got, want)
			}
		}
	}
	if len(st.reviews) != 1 || st.reviews[0].Reviewer != "cmp" || st.reviews[0].Decision != relay.DecisionEscalated {
		t.Errorf("reviews = %+v", st.reviews)
	}
	if len(st.holds) != 2 || !slices.ContainsFunc(st.holds, func(h relay.Hold) bool { return h.PlacedBy == "cmp" && h.Client == "c-alice" }) {
		t.Errorf("holds = %+v", st.holds)
	}
	actions := map[string]int{}
	for _, r := range e.audit.all() {
		actions[r.Action]++
	}
	if actions[AuditReadAudit] != 2 || actions[AuditReview] != 1 || actions[AuditLegalHold] != 2 || actions[AuditReadAlerts] != 2 {
		t.Errorf("audited actions = %v", actions)
	}
	// Nothing is answered without its audit record.
	e.audit.fail(errors.New("archive down"))
	if got := call("GET", "/api/audit", cmpTok, ""); got != http.StatusServiceUnavailable {
		t.Errorf("audit read without an audit trail: %d, want 503", got)
	}
	if got := call("POST", "/api/holds", cmpTok, `{"account":"acct","client":"x","reason":"r"}`); got != http.StatusServiceUnavailable || len(st.holds) != 2 {
		t.Errorf("hold without an audit trail: %d (%d holds), want 503 and nothing placed", got, len(st.holds))
	}
}

// fakeCompliance is the compliance stores in memory.
type fakeCompliance struct {
	mu      sync.Mutex
	asked   []relay.AlertQuery // every Alerts query
	hits    []relay.LexiconHit
	reviews []relay.AlertReview
	holds   []relay.Hold
}

func (f *fakeCompliance) AppendAudit(context.Context, relay.AuditEntry) error { return nil }
func (f *fakeCompliance) LatestAudit(context.Context, string) (relay.AuditEntry, bool, error) {
	return relay.AuditEntry{}, false, nil
}
func (f *fakeCompliance) SearchAudit(context.Context, relay.AuditQuery) ([]relay.AuditEntry, error) {
	return nil, nil
}
func (f *fakeCompliance) ScanAudit(context.Context, func(relay.AuditEntry) error) error { return nil }

func (f *fakeCompliance) AppendHits(_ context.Context, hits []relay.LexiconHit) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hits = append(f.hits, hits...)
	return nil
}

func (f *fakeCompliance) AppendReview(_ context.Context, r relay.AlertReview) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reviews = append(f.reviews, r)
	return nil
}

func (f *fakeCompliance) Alerts(_ context.Context, q relay.AlertQuery) ([]relay.LexiconHit, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, q)
	return slices.Clone(f.hits), nil
}

func (f *fakeCompliance) Hit(_ context.Context, id string) (relay.LexiconHit, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, h := range f.hits {
		if h.ID == id {
			return h, true, nil
		}
	}
	return relay.LexiconHit{}, false, nil
}

func (f *fakeCompliance) AppendHold(_ context.Context, h relay.Hold) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.holds = append(f.holds, h)
	return nil
}

func (f *fakeCompliance) HoldRecords(context.Context) ([]relay.Hold, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.holds), nil
}

func (f *fakeCompliance) MonthCounts(context.Context, []relay.Hold) ([]relay.MonthCount, error) {
	return nil, nil
}

// legalHolds is the holds of st, unchecked (no keys).
func legalHolds(t *testing.T, st relay.RetentionStore) *relay.LegalHolds {
	t.Helper()
	lh, err := relay.NewLegalHolds(st, relay.RecordTrust{})
	if err != nil {
		t.Fatal(err)
	}
	return lh
}

// A supervisor in teams asks the archive for their members' alerts (not
// nobody's), so that the archive filters before its limit: other teams'
// newer alerts must not crowd theirs out of the page.
func TestAlertsOfATeamSupervisorAreFilteredByTheArchive(t *testing.T) {
	st := &fakeCompliance{}
	e := adminEnv(t, func(d *Deps) { d.Compliance = ComplianceDeps{Audit: st, Alerts: st, Holds: legalHolds(t, st)} })
	if code, body := e.adminDo(t, "GET", "/api/alerts?limit=1", "lead-token-0123456789ab", nil); code != http.StatusOK {
		t.Fatalf("team supervisor's alerts: %d %v", code, body)
	}
	if code, body := e.adminDo(t, "GET", "/api/alerts?limit=1", rootTok, nil); code != http.StatusOK {
		t.Fatalf("admin's alerts: %d %v", code, body)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.asked) != 2 {
		t.Fatalf("asked the archive %d times, want 2", len(st.asked))
	}
	lead, root := st.asked[0], st.asked[1]
	slices.Sort(lead.Employees)
	if !slices.Contains(lead.Employees, "alice") || slices.Contains(lead.Employees, "") || slices.Contains(lead.Employees, "bob") || lead.Limit != 1 {
		t.Fatalf("team supervisor's query = %+v, want alice's alerts (not nobody's), limit 1", lead)
	}
	if root.Employees != nil {
		t.Fatalf("admin's query = %+v, want every employee's alerts", root)
	}
}
