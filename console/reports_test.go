package console

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/relay/report"
	"github.com/wechat-relay/wechat-relay/storage/embedded"
)

const (
	repAgentTok   = "report-agent-token-0123456789"
	repTeamSupTok = "report-teamsup-token-0123456789"
	repCompTok    = "report-comp-token-0123456789"
)

type reportEnv struct {
	srv   *httptest.Server
	audit *fakeAudit
}

// newReportEnv serves the console over a real (embedded, in-memory)
// archive: on 2026-11-02 (UTC) agent a1 (team red) got two messages and
// answered one after 90 s; agent a2 (team blue) got one, unanswered.
func newReportEnv(t *testing.T) *reportEnv {
	t.Helper()
	return newReportEnvWith(t, nil)
}

// newReportEnvWith is newReportEnv with the compliance services that
// compliance builds over its archive (nil: none).
func newReportEnvWith(t *testing.T, compliance func(*embedded.Archive) ComplianceDeps) *reportEnv {
	t.Helper()
	arch := memoryArchive(t)
	var cd ComplianceDeps
	if compliance != nil {
		cd = compliance(arch)
	}
	base := time.Date(2026, 11, 2, 3, 0, 0, 0, time.UTC)
	msg := func(emp, client string, seq uint64, dir relay.Direction, at time.Duration) relay.Message {
		conv := relay.Conversation("acct", client)
		return relay.Message{
			ID: fmt.Sprintf("%s:%s:%d", dir, client, seq), Account: "acct", Client: client, Conv: conv, Seq: seq,
			Direction: dir, Kind: relay.KindText, Text: "x", AcceptedAt: base.Add(at), Employee: emp,
		}
	}
	if err := arch.Insert(context.Background(), []relay.Message{
		msg("a1", "o_1", 1, relay.Inbound, 0),
		msg("a1", "o_1", 2, relay.Inbound, 30*time.Second),
		msg("a1", "o_1", 3, relay.Outbound, 90*time.Second),
		msg("a2", "o_2", 1, relay.Inbound, time.Hour),
	}); err != nil {
		t.Fatal(err)
	}
	e := &reportEnv{audit: &fakeAudit{}}
	cs := NewServer(Config{
		Teams: []Team{{ID: "red"}, {ID: "blue"}},
		Employees: []Employee{
			{ID: "a1", Role: RoleAgent, Teams: []string{"red"}, Token: repAgentTok},
			{ID: "a2", Role: RoleAgent, Teams: []string{"blue"}},
			{ID: "sup", Role: RoleSupervisor, Teams: []string{"red"}, Token: repTeamSupTok},
			{ID: "comp", Role: RoleCompliance, Token: repCompTok},
		},
	}, Deps{
		Bus: &fakeBus{}, History: arch, Reports: arch, Assignments: &fakeAssign{m: map[relay.ConversationID]string{}}, Audit: e.audit,
		Now: func() time.Time { return base.Add(2 * time.Hour) }, Compliance: cd,
	})
	e.srv = httptest.NewServer(cs.Handler())
	t.Cleanup(func() {
		e.srv.Close()
		cs.Shutdown(context.Background())
	})
	return e
}

func (e *reportEnv) get(t *testing.T, path, token string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func (e *reportEnv) report(t *testing.T, path, token string) *report.Report {
	t.Helper()
	code, _, body := e.get(t, path, token)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, code, body)
	}
	var rep report.Report
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.UseNumber() // counts and milliseconds print as written
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, body)
	}
	return &rep
}

// rows returns the rows of table id as strings ("a1 2 1").
func rows(t *testing.T, rep *report.Report, id string) []string {
	t.Helper()
	tab, ok := rep.Table(id)
	if !ok {
		t.Fatalf("the %s report has no table %s", rep.Name, id)
	}
	var out []string
	for _, r := range tab.Rows {
		cells := make([]string, len(r))
		for i, c := range r {
			cells[i] = fmt.Sprint(c)
		}
		out = append(out, strings.Join(cells, " "))
	}
	return out
}

func sameRows(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("%s:\n got %q\nwant %q", what, got, want)
	}
}

func TestReportFiguresAndScope(t *testing.T) {
	e := newReportEnv(t)
	const q = "?from=2026-11-02&to=2026-11-02"

	rep := e.report(t, "/api/reports/volume"+q, repCompTok)
	sameRows(t, "compliance: volume by employee", rows(t, rep, "by_employee"), "a1 2 1", "a2 1 0")
	sameRows(t, "compliance: volume by team", rows(t, rep, "by_team"), "blue 1 0", "red 2 1")
	sameRows(t, "compliance: volume by day", rows(t, rep, "by_day"), "2026-11-02 3 1")

	// The team supervisor sees red's members (and their own) only.
	rep = e.report(t, "/api/reports/volume"+q, repTeamSupTok)
	sameRows(t, "team supervisor: volume by employee", rows(t, rep, "by_employee"), "a1 2 1")
	sameRows(t, "team supervisor: volume by team", rows(t, rep, "by_team"), "red 2 1")

	rep = e.report(t, "/api/reports/responsiveness"+q, repTeamSupTok)
	sameRows(t, "team supervisor: responses by employee", rows(t, rep, "by_employee"), "a1 1 90000 90000 1 90000 90000")
	sameRows(t, "team supervisor: waiting", rows(t, rep, "waiting"))
	rep = e.report(t, "/api/reports/responsiveness"+q, repCompTok)
	sameRows(t, "compliance: waiting", rows(t, rep, "waiting"), "acct:o_2 a2 2026-11-02T04:00:00Z 3600000")

	for _, c := range []struct {
		path, token string
		want        int
	}{
		{"/api/reports/volume" + q, repAgentTok, http.StatusForbidden},
		{"/api/reports", repAgentTok, http.StatusForbidden},
		{"/api/reports/volume" + q + "&team=blue", repTeamSupTok, http.StatusForbidden},
		{"/api/reports/volume" + q + "&employee=a2", repTeamSupTok, http.StatusForbidden},
		{"/api/reports/volume" + q + "&team=red", repTeamSupTok, http.StatusOK},
		{"/api/reports/volume" + q + "&employee=a2", repCompTok, http.StatusOK},
		// The compliance report counts audit records: not a supervisor's.
		{"/api/reports/compliance" + q, repTeamSupTok, http.StatusForbidden},
		{"/api/reports/compliance" + q, repCompTok, http.StatusOK},
	} {
		if code, _, body := e.get(t, c.path, c.token); code != c.want {
			t.Errorf("GET %s as %s: %d %s, want %d", c.path, c.token[:12], code, body, c.want)
		}
	}
	rep = e.report(t, "/api/reports/volume"+q+"&employee=a2", repCompTok)
	sameRows(t, "compliance: volume of a2 by employee", rows(t, rep, "by_employee"), "a2 1 0")
}

func TestReportBadParamsRecordNothing(t *testing.T) {
	e := newReportEnv(t)
	for _, path := range []string{
		"/api/reports/nonsense",
		"/api/reports/volume?from=yesterday",
		"/api/reports/volume?to=2026-13-01",
		"/api/reports/volume?from=2026-11-03&to=2026-11-01",
		"/api/reports/volume?from=2020-01-01&to=2026-11-01",
		"/api/reports/volume?tz=east",
		"/api/reports/volume?tz=6000",
		"/api/reports/volume?format=xml",
		"/api/reports/responsiveness?within=-3",
		"/api/reports/responsiveness?within=100",
	} {
		code, _, body := e.get(t, path, repCompTok)
		if code != http.StatusBadRequest {
			t.Errorf("GET %s: %d %s, want 400", path, code, body)
			continue
		}
		var msg map[string]string
		if json.Unmarshal(body, &msg) != nil || msg["error"] == "" {
			t.Errorf("GET %s: body %s, want {\"error\": ...}", path, body)
		}
	}
	if got := e.audit.all(); len(got) != 0 {
		t.Errorf("bad requests wrote %d audit records: %+v", len(got), got)
	}
	// An unknown table is refused too (after the view is recorded).
	if code, _, body := e.get(t, "/api/reports/volume?format=csv&table=nope", repCompTok); code != http.StatusBadRequest {
		t.Errorf("unknown table: %d %s, want 400", code, body)
	}
}

func TestReportViewsAreAudited(t *testing.T) {
	e := newReportEnv(t)
	e.report(t, "/api/reports/delivery?from=2026-11-02&to=2026-11-02&tz=480", repTeamSupTok)
	got := e.audit.all()
	if len(got) != 1 {
		t.Fatalf("audit records = %+v, want one", got)
	}
	r := got[0]
	if r.Employee != "sup" || r.Role != RoleSupervisor || r.Action != AuditReportView || r.Target != "delivery" ||
		r.Detail != "from=2026-11-02&to=2026-11-02&tz=480" {
		t.Errorf("audit record = %+v", r)
	}

	// No record, no report.
	e.audit.fail(errors.New("archive down"))
	if code, _, body := e.get(t, "/api/reports/volume", repCompTok); code != http.StatusServiceUnavailable {
		t.Errorf("with the audit trail down: %d %s, want 503", code, body)
	}
}

func TestReportCSV(t *testing.T) {
	e := newReportEnv(t)
	code, hdr, body := e.get(t, "/api/reports/volume?from=2026-11-02&to=2026-11-02&format=csv&table=by_employee", repCompTok)
	if code != http.StatusOK {
		t.Fatalf("CSV: %d %s", code, body)
	}
	if ct := hdr.Get("Content-Type"); ct != "text/csv; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if cd := hdr.Get("Content-Disposition"); cd != `attachment; filename="report-volume-by_employee.csv"` {
		t.Errorf("Content-Disposition %q", cd)
	}
	recs, err := csv.NewReader(strings.NewReader(string(body))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(recs) != "[[employee in out] [a1 2 1] [a2 1 0]]" {
		t.Errorf("CSV = %q", recs)
	}
	// Every table, each headed by its name.
	_, _, body = e.get(t, "/api/reports/delivery?from=2026-11-02&to=2026-11-02&format=csv", repCompTok)
	if !strings.HasPrefix(string(body), "table,by_day\nday,sent,failed,unknown,refused,pending\n2026-11-02,0,0,0,0,1\n\ntable,failures\n") {
		t.Errorf("CSV of every table:\n%s", body)
	}
}
