package console

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/relay/export"
	"github.com/wechat-relay/wechat-relay/storage/embedded"
)

const (
	searchAgentTok = "search-agent-token-0123456789"
	searchSupTok   = "search-sup-token-0123456789"
	searchCompTok  = "search-comp-token-0123456789"
)

type searchEnv struct {
	srv   *httptest.Server
	audit *fakeAudit
	arch  *embedded.Archive
}

// memoryArchive is a real archive (embedded, in memory) of the test's own.
func memoryArchive(t *testing.T) *embedded.Archive {
	t.Helper()
	arch, err := embedded.Open(context.Background(), embedded.MemoryPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { arch.Close() })
	return arch
}

// newSearchEnv serves the console over a real (embedded, in-memory)
// archive holding a few messages of two conversations.
func newSearchEnv(t *testing.T) *searchEnv {
	t.Helper()
	arch := memoryArchive(t)
	base := time.Date(2026, 11, 2, 3, 4, 5, 0, time.UTC)
	var msgs []relay.Message
	for i, text := range []string{"你好，我要退款", "REFUND done", "hello", "合同已发送"} {
		conv := relay.Conversation("acct", "o_one")
		if i >= 2 {
			conv = relay.Conversation("acct", "o_two")
		}
		_, client, _ := strings.Cut(string(conv), ":")
		msgs = append(msgs, relay.Message{
			ID: fmt.Sprintf("in:acct:%d", i), Account: "acct", Client: client, Conv: conv, Seq: uint64(i + 1),
			Direction: relay.Inbound, Kind: relay.KindText, Text: text, Raw: []byte("<xml/>"),
			AcceptedAt: base.Add(time.Duration(i) * time.Minute), Employee: "agent",
		})
	}
	if err := arch.Insert(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
	e := &searchEnv{audit: &fakeAudit{}, arch: arch}
	cs := NewServer(Config{Employees: []Employee{
		{ID: "agent", Role: RoleAgent, Token: searchAgentTok},
		{ID: "sup", Name: "Sue", Role: RoleSupervisor, AllTeams: true, Token: searchSupTok},
		{ID: "comp", Name: "Chen", Role: RoleCompliance, Token: searchCompTok},
	}}, Deps{
		Bus: &fakeBus{}, History: arch, Search: arch, Export: arch, Assignments: &fakeAssign{m: map[relay.ConversationID]string{}}, Audit: e.audit,
	})
	e.srv = httptest.NewServer(cs.Handler())
	t.Cleanup(func() {
		e.srv.Close()
		cs.Shutdown(context.Background())
	})
	return e
}

func (e *searchEnv) do(t *testing.T, method, path, token string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.srv.URL+path, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (e *searchEnv) actions() []string {
	var out []string
	for _, r := range e.audit.all() {
		out = append(out, r.Employee+":"+r.Action)
	}
	return out
}

func TestSearchRolesAndAudit(t *testing.T) {
	e := newSearchEnv(t)
	if code, body := e.do(t, "GET", "/api/search?text=refund", searchAgentTok, nil); code != http.StatusForbidden {
		t.Fatalf("agent search: %d %s, want 403", code, body)
	}
	if n := len(e.audit.all()); n != 0 {
		t.Fatalf("a refused search was audited: %v", e.actions())
	}
	for _, tok := range []string{searchSupTok, searchCompTok} {
		code, body := e.do(t, "GET", "/api/search?text="+url.QueryEscape("退款")+"&from=2026-11-01&to=2026-11-02", tok, nil)
		if code != http.StatusOK {
			t.Fatalf("search: %d %s", code, body)
		}
		var res struct {
			Messages []WireMessage `json:"messages"`
			Next     string        `json:"next"`
			Total    int           `json:"total"`
		}
		if err := json.Unmarshal(body, &res); err != nil {
			t.Fatal(err)
		}
		if len(res.Messages) != 1 || res.Messages[0].Text != "你好，我要退款" || res.Total != 1 || res.Next != "" {
			t.Fatalf("search result: %s", body)
		}
		if strings.Contains(string(body), "<xml/>") {
			t.Error("search results carry the raw callback body")
		}
	}
	recs := e.audit.all()
	if len(recs) != 2 || recs[0].Action != AuditArchiveSearch || recs[0].Employee != "sup" || recs[1].Employee != "comp" ||
		!strings.Contains(recs[0].Target, `text="退款"`) || recs[0].From == "" {
		t.Fatalf("audit records: %+v", recs)
	}

	// Paging by cursor.
	code, body := e.do(t, "GET", "/api/search?limit=3", searchSupTok, nil)
	var page struct {
		Messages []WireMessage `json:"messages"`
		Next     string        `json:"next"`
		Total    int           `json:"total"`
	}
	json.Unmarshal(body, &page)
	if code != 200 || len(page.Messages) != 3 || page.Next == "" || page.Total != 4 || page.Messages[0].Text != "合同已发送" {
		t.Fatalf("first page: %d %s", code, body)
	}
	code, body = e.do(t, "GET", "/api/search?limit=3&cursor="+page.Next, searchSupTok, nil)
	json.Unmarshal(body, &page)
	if code != 200 || len(page.Messages) != 1 || page.Next != "" || page.Messages[0].Text != "你好，我要退款" {
		t.Fatalf("second page: %d %s", code, body)
	}

	// Bad requests.
	for _, q := range []string{"from=yesterday", "limit=x", "limit=5000", "cursor=bogus!", "direction=up", "from=2026-11-02&to=2026-11-01",
		"offset=10001", "offset=9223372036854775800", "offset=99999999999999999999"} {
		if code, body := e.do(t, "GET", "/api/search?"+q, searchSupTok, nil); code != http.StatusBadRequest {
			t.Errorf("search ?%s: %d %s, want 400", q, code, body)
		}
	}

	// No audit record, no search.
	e.audit.fail(errors.New("audit store down"))
	if code, _ := e.do(t, "GET", "/api/search?text=a", searchSupTok, nil); code != http.StatusServiceUnavailable {
		t.Errorf("search with the audit trail down: %d, want 503", code)
	}
}

func TestExportJobs(t *testing.T) {
	e := newSearchEnv(t)
	body := map[string]string{"conv": "acct:o_one"}
	if code, b := e.do(t, "POST", "/api/exports", searchAgentTok, body); code != http.StatusForbidden {
		t.Fatalf("agent export: %d %s, want 403", code, b)
	}
	if code, b := e.do(t, "POST", "/api/exports", searchSupTok, map[string]string{}); code != http.StatusBadRequest {
		t.Fatalf("export of everything: %d %s, want 400", code, b)
	}
	code, b := e.do(t, "POST", "/api/exports", searchSupTok, body)
	if code != http.StatusAccepted {
		t.Fatalf("export: %d %s", code, b)
	}
	var job exportView
	json.Unmarshal(b, &job)
	if job.ID == "" {
		t.Fatalf("export answer: %s", b)
	}
	deadline := time.Now().Add(10 * time.Second)
	for job.State == "running" && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		code, b = e.do(t, "GET", "/api/exports/"+job.ID, searchSupTok, nil)
		if code != http.StatusOK {
			t.Fatalf("export status: %d %s", code, b)
		}
		job = exportView{}
		json.Unmarshal(b, &job)
	}
	if job.State != "done" || job.Counts == nil || job.Counts.Messages != 2 || job.Progress.Rows != 2 || job.Download == "" {
		t.Fatalf("export job: %s", b)
	}
	// Another employee does not see the job; an agent is refused.
	if code, _ := e.do(t, "GET", "/api/exports/"+job.ID, searchCompTok, nil); code != http.StatusNotFound {
		t.Errorf("someone else's export: %d, want 404", code)
	}
	if code, _ := e.do(t, "GET", "/api/exports/"+job.ID+"/download", searchAgentTok, nil); code != http.StatusForbidden {
		t.Errorf("agent download: %d, want 403", code)
	}
	code, b = e.do(t, "GET", job.Download, searchSupTok, nil)
	if code != http.StatusOK {
		t.Fatalf("download: %d %s", code, b)
	}
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("download is not a zip: %v", err)
	}
	var man export.Manifest
	for _, f := range zr.File {
		if f.Name == "manifest.json" {
			r, _ := f.Open()
			json.NewDecoder(r).Decode(&man)
			r.Close()
		}
	}
	if man.Counts.Messages != 2 || !strings.HasPrefix(man.ExportedBy, "sup") || man.Query.Conv != "acct:o_one" {
		t.Errorf("manifest: %+v", man)
	}
	if got := strings.Join(e.actions(), " "); got != "sup:"+AuditArchiveExport+" sup:"+AuditArchiveExportDownload {
		t.Errorf("audit: %s", got)
	}
	if code, _ := e.do(t, "GET", "/api/exports/nope", searchSupTok, nil); code != http.StatusNotFound {
		t.Errorf("unknown export: %d, want 404", code)
	}
}

// A supervisor in a team searches and exports what the team's members
// handled, nothing of other teams nor what nobody held.
func TestSearchTeamSupervisor(t *testing.T) {
	arch := memoryArchive(t)
	now := time.Now().UTC()
	var msgs []relay.Message
	for i, emp := range []string{"in-team", "other-team", ""} {
		conv := relay.Conversation("acct", fmt.Sprintf("o_%d", i))
		_, client, _ := strings.Cut(string(conv), ":")
		msgs = append(msgs, relay.Message{
			ID: fmt.Sprintf("m%d", i), Account: "acct", Client: client, Conv: conv, Seq: 1,
			Direction: relay.Inbound, Kind: relay.KindText, Text: "退款 " + emp, AcceptedAt: now, Employee: emp,
		})
	}
	if err := arch.Insert(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
	audit := &fakeAudit{}
	const leadTok = "lead-token-0123456789ab"
	cs := NewServer(Config{
		Teams: []Team{{ID: "t1"}, {ID: "t2"}},
		Employees: []Employee{
			{ID: "in-team", Role: RoleAgent, Teams: []string{"t1"}, Token: "in-team-token-0123456789"},
			{ID: "other-team", Role: RoleAgent, Teams: []string{"t2"}, Token: "other-token-0123456789"},
			{ID: "lead", Role: RoleSupervisor, Teams: []string{"t1"}, Token: leadTok},
		},
	}, Deps{Bus: &fakeBus{}, History: arch, Search: arch, Export: arch, Assignments: &fakeAssign{m: map[relay.ConversationID]string{}}, Audit: audit})
	e := &searchEnv{srv: httptest.NewServer(cs.Handler()), audit: audit, arch: arch}
	t.Cleanup(e.srv.Close)

	code, body := e.do(t, "GET", "/api/search?text="+url.QueryEscape("退款"), leadTok, nil)
	var res struct {
		Messages []WireMessage `json:"messages"`
		Total    int           `json:"total"`
	}
	json.Unmarshal(body, &res)
	var got []string
	for _, m := range res.Messages {
		got = append(got, m.ID)
	}
	slices.Sort(got)
	if code != http.StatusOK || strings.Join(got, ",") != "m0" || res.Total != 1 {
		t.Fatalf("team supervisor's search: %d %s, want m0 (the team's) only, not m2 (nobody's)", code, body)
	}
	recs := audit.all()
	if len(recs) != 1 || !strings.Contains(recs[0].Target, `employees="lead,in-team"`) {
		t.Fatalf("the audit record does not show the narrowed search: %+v", recs)
	}
	// Asking for another team's employee by name finds nothing.
	code, body = e.do(t, "GET", "/api/search?employee=other-team", leadTok, nil)
	if code != http.StatusOK || strings.Contains(string(body), "m1") {
		t.Fatalf("team supervisor searching another team's employee: %d %s", code, body)
	}
}

// Search and export are mounted only with their dependencies: the
// console never guesses them from what History happens to implement.
func TestSearchAndExportNeedTheirDeps(t *testing.T) {
	e := newConsoleEnv(t, Config{}) // no Deps.Search, no Deps.Export
	for _, route := range []struct{ method, path string }{
		{"GET", "/api/search?text=x"},
		{"POST", "/api/exports"},
		{"GET", "/api/exports/x"},
	} {
		if code, _ := e.do(t, route.method, route.path, supTok, "application/json", []byte(`{}`)); code != http.StatusNotFound {
			t.Errorf("%s %s without its dependency: %d, want 404", route.method, route.path, code)
		}
	}
}
