package console

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/storage/embedded"
)

const (
	profCmpTok = "profcmp-token-0123456789"
	teamSupTok = "teamsup-token-0123456789"
)

// profileEnv is a console whose profiles live in an embedded archive in
// memory; alice's team "east" is supervised by teamsup, bob is in no
// team; cmp is a compliance officer.
type profileEnv struct {
	*consoleEnv
	arch *embedded.Archive
}

func newProfileEnv(t *testing.T) *profileEnv {
	t.Helper()
	arch := memoryArchive(t)
	profiles, err := relay.NewProfiles(arch, relay.RecordTrust{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Teams: []Team{{ID: "east", Name: "East"}},
		Employees: []Employee{
			{ID: "pcmp", Name: "Compliance", Role: RoleCompliance, Token: profCmpTok},
			{ID: "teamsup", Name: "Team Sup", Role: RoleSupervisor, Teams: []string{"east"}, Token: teamSupTok},
		},
	}
	e := newConsoleEnv(t, cfg, func(d *Deps) { d.Profiles = profiles })
	// alice joins east (the base employees have no team).
	a, _ := e.dir.Snapshot().Employee("alice")
	a.Teams = []string{"east"}
	if _, err := e.dir.UpdateEmployee(context.Background(), "root", a, a.Version, func(*relay.DirectorySnapshot, relay.DirectoryRecord) error { return nil }); err != nil {
		t.Fatal(err)
	}
	return &profileEnv{consoleEnv: e, arch: arch}
}

func (e *profileEnv) versions(t *testing.T, conv relay.ConversationID) int {
	t.Helper()
	recs, err := e.arch.ProfileRecords(context.Background(), relay.ProfileQuery{Convs: []relay.ConversationID{conv}})
	if err != nil {
		t.Fatal(err)
	}
	return len(recs)
}

func (e *profileEnv) audited(action string) []AuditRecord {
	var out []AuditRecord
	for _, r := range e.audit.all() {
		if r.Action == action {
			out = append(out, r)
		}
	}
	return out
}

func (e *profileEnv) addTag(t *testing.T, tag string) {
	t.Helper()
	if code, body := e.adminDo(t, "POST", "/api/tags/acct", supTok, map[string]any{"tag": tag}); code != http.StatusOK {
		t.Fatalf("adding tag %q: %d %v", tag, code, body)
	}
}

const aliceProfile = "/api/clients/acct/c-alice/profile"

func TestProfileAPI(t *testing.T) {
	e := newProfileEnv(t)
	e.addTag(t, "vip")
	e.addTag(t, "高净值")
	code, body := e.adminDo(t, "GET", "/api/tags/acct", aliceTok, nil)
	if tags, _ := body["tags"].([]any); code != http.StatusOK || len(tags) != 2 || tags[1] != "高净值" {
		t.Fatalf("GET tags: %d %v", code, body)
	}

	code, body = e.adminDo(t, "GET", aliceProfile, aliceTok, nil)
	if code != http.StatusOK || body["version"] != float64(0) || body["openid"] != "c-alice" {
		t.Fatalf("GET a profile not yet written: %d %v", code, body)
	}
	code, body = e.adminDo(t, "PUT", aliceProfile, aliceTok, map[string]any{
		"name": "王伟", "remark": "老客户", "tags": []string{"vip"}, "note": "prefers mornings\ncall first", "version": 0})
	if code != http.StatusOK || body["version"] != float64(1) || body["by"] != "alice" || body["name"] != "王伟" {
		t.Fatalf("PUT version 1: %d %v", code, body)
	}
	// The supervisor who sees alice edits it too.
	code, body = e.adminDo(t, "PUT", aliceProfile, teamSupTok, map[string]any{
		"name": "王伟", "remark": "老客户", "tags": []string{"vip", "高净值"}, "note": "prefers mornings\ncall first", "version": 1})
	if code != http.StatusOK || body["version"] != float64(2) || body["by"] != "teamsup" {
		t.Fatalf("PUT version 2 by the team's supervisor: %d %v", code, body)
	}
	code, body = e.adminDo(t, "GET", aliceProfile, aliceTok, nil)
	if tags, _ := body["tags"].([]any); code != http.StatusOK || body["version"] != float64(2) || len(tags) != 2 {
		t.Fatalf("GET: %d %v", code, body)
	}
	code, body = e.adminDo(t, "GET", aliceProfile+"/history", aliceTok, nil)
	vs, _ := body["versions"].([]any)
	if code != http.StatusOK || len(vs) != 2 {
		t.Fatalf("history: %d %v", code, body)
	}
	newest, oldest := vs[0].(map[string]any), vs[1].(map[string]any)
	if newest["version"] != float64(2) || newest["change"] != "tags [vip] → [vip, 高净值]" ||
		oldest["version"] != float64(1) || !strings.Contains(oldest["change"].(string), `name "" → "王伟"`) {
		t.Errorf("history: %v", vs)
	}
	// Every change audited, naming the version it archived.
	recs := e.audited(relay.AuditClientProfile)
	if len(recs) != 2 || recs[0].Employee != "alice" || recs[0].Conv != "acct:c-alice" || recs[0].Target != "c-alice" ||
		!strings.Contains(recs[1].Detail, " [profile acct:c-alice v2 ") || recs[1].Employee != "teamsup" {
		t.Errorf("client_profile audit records: %+v", recs)
	}
	if n := len(e.audited(relay.AuditClientTags)); n != 2 {
		t.Errorf("client_tags audit records: %d, want 2", n)
	}
	// A supervisor's view is audited, an agent's of their own is not.
	if n := len(e.audited(AuditViewProfile)); n != 0 {
		t.Errorf("alice's views audited: %d", n)
	}
	if code, _ := e.adminDo(t, "GET", aliceProfile, profCmpTok, nil); code != http.StatusOK || len(e.audited(AuditViewProfile)) != 1 {
		t.Errorf("compliance's view: %d, %d view records; want 200 and 1", code, len(e.audited(AuditViewProfile)))
	}

	// A tag leaves the vocabulary.
	if code, body := e.adminDo(t, "DELETE", "/api/tags/acct/"+url.PathEscape("高净值"), supTok, nil); code != http.StatusOK || len(body["tags"].([]any)) != 1 {
		t.Errorf("DELETE tag: %d %v", code, body)
	}
}

func TestProfileBadInputChangesNothing(t *testing.T) {
	e := newProfileEnv(t)
	e.addTag(t, "vip")
	if code, body := e.adminDo(t, "PUT", aliceProfile, aliceTok, map[string]any{"name": "Wang", "version": 0}); code != http.StatusOK {
		t.Fatalf("PUT: %d %v", code, body)
	}
	for _, c := range []struct {
		name string
		body string
		want int
	}{
		{"malformed JSON", `{"name":`, http.StatusBadRequest},
		{"unknown field", `{"name":"x","version":1,"nickname":"y"}`, http.StatusBadRequest},
		{"no version", `{"name":"x"}`, http.StatusBadRequest},
		{"tag not in the vocabulary", `{"name":"x","tags":["gold"],"version":1}`, http.StatusBadRequest},
		{"tag twice", `{"tags":["vip","vip"],"version":1}`, http.StatusBadRequest},
		{"name too long", `{"name":"` + strings.Repeat("名", relay.MaxProfileName+1) + `","version":1}`, http.StatusBadRequest},
		{"remark too long", `{"remark":"` + strings.Repeat("r", relay.MaxProfileRemark+1) + `","version":1}`, http.StatusBadRequest},
		{"control character", `{"name":"a\u0007b","version":1}`, http.StatusBadRequest},
		{"stale version", `{"name":"x","version":0}`, http.StatusConflict},
		{"future version", `{"name":"x","version":7}`, http.StatusConflict},
	} {
		code, body := e.do(t, "PUT", aliceProfile, aliceTok, "application/json", []byte(c.body))
		if code != c.want {
			t.Errorf("%s: %d %v, want %d", c.name, code, body, c.want)
		}
	}
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/api/tags/acct", `{"tag":""}`},
		{"POST", "/api/tags/acct", `{"tag":"a,b"}`},
		{"POST", "/api/tags/acct", `{"tag":"` + strings.Repeat("t", relay.MaxTagLength+1) + `"}`},
		{"POST", "/api/tags/acct", `{"label":"x"}`},
	} {
		if code, body := e.do(t, c.method, c.path, supTok, "application/json", []byte(c.body)); code != http.StatusBadRequest {
			t.Errorf("%s %s %s: %d %v, want 400", c.method, c.path, c.body, code, body)
		}
	}
	if n := e.versions(t, "acct:c-alice"); n != 1 {
		t.Errorf("%d profile versions after bad requests, want 1", n)
	}
	if n := len(e.audited(relay.AuditClientProfile)); n != 1 {
		t.Errorf("%d client_profile audit records after bad requests, want 1", n)
	}
	ts, _ := e.arch.TagSetRecords(context.Background(), "acct")
	if len(ts) != 1 {
		t.Errorf("%d tag list versions after bad requests, want 1", len(ts))
	}

	// The audit trail down: refused, nothing archived.
	e.audit.fail(errors.New("audit down"))
	if code, _ := e.adminDo(t, "PUT", aliceProfile, aliceTok, map[string]any{"name": "Changed", "version": 1}); code != http.StatusServiceUnavailable {
		t.Errorf("PUT with the audit trail down: %d, want 503", code)
	}
	if code, _ := e.adminDo(t, "POST", "/api/tags/acct", supTok, map[string]any{"tag": "new"}); code != http.StatusServiceUnavailable {
		t.Errorf("POST tag with the audit trail down: %d, want 503", code)
	}
	if n := e.versions(t, "acct:c-alice"); n != 1 {
		t.Errorf("%d profile versions after a refused change, want 1", n)
	}
}

func TestProfileAccess(t *testing.T) {
	e := newProfileEnv(t)
	e.addTag(t, "vip")
	const bobProfile = "/api/clients/acct/c-bob/profile"
	put := map[string]any{"name": "x", "version": 0}
	for _, c := range []struct {
		name, method, path, token string
		body                      any
		want                      int
	}{
		{"alice, bob's client", "PUT", bobProfile, aliceTok, put, http.StatusForbidden},
		{"alice reads bob's client", "GET", bobProfile, aliceTok, nil, http.StatusForbidden},
		{"alice, bob's client's history", "GET", bobProfile + "/history", aliceTok, nil, http.StatusForbidden},
		{"alice, a client nobody holds", "PUT", "/api/clients/acct/c-nobody/profile", aliceTok, put, http.StatusForbidden},
		{"the team's supervisor, bob's client", "PUT", bobProfile, teamSupTok, put, http.StatusForbidden},
		{"compliance writes", "PUT", aliceProfile, profCmpTok, put, http.StatusForbidden},
		{"an unknown account", "PUT", "/api/clients/nope/c-alice/profile", supTok, put, http.StatusNotFound},
		{"an agent adds a tag", "POST", "/api/tags/acct", aliceTok, map[string]any{"tag": "gold"}, http.StatusForbidden},
		{"compliance adds a tag", "POST", "/api/tags/acct", profCmpTok, map[string]any{"tag": "gold"}, http.StatusForbidden},
		{"an agent removes a tag", "DELETE", "/api/tags/acct/vip", aliceTok, nil, http.StatusForbidden},
		{"a tag of an unknown account", "POST", "/api/tags/nope", supTok, map[string]any{"tag": "gold"}, http.StatusNotFound},
		{"removing an unknown tag", "DELETE", "/api/tags/acct/gold", supTok, nil, http.StatusNotFound},
		{"no token", "GET", aliceProfile, "", nil, http.StatusUnauthorized},
	} {
		if code, body := e.adminDo(t, c.method, c.path, c.token, c.body); code != c.want {
			t.Errorf("%s: %d %v, want %d", c.name, code, body, c.want)
		}
	}
	if n := e.versions(t, "acct:c-bob") + e.versions(t, "acct:c-alice") + e.versions(t, "acct:c-nobody"); n != 0 {
		t.Errorf("%d profile versions after refused requests, want 0", n)
	}
	if ts, _ := e.arch.TagSetRecords(context.Background(), "acct"); len(ts) != 1 {
		t.Errorf("%d tag list versions after refused requests, want 1", len(ts))
	}
	// bob and the all-teams supervisor may.
	if code, body := e.adminDo(t, "PUT", bobProfile, bobTok, put); code != http.StatusOK {
		t.Errorf("bob, his client: %d %v", code, body)
	}
	if code, body := e.adminDo(t, "PUT", "/api/clients/acct/c-nobody/profile", supTok, put); code != http.StatusOK {
		t.Errorf("the all-teams supervisor, a client nobody holds: %d %v", code, body)
	}
}

func TestInboxShowsAndFiltersProfiles(t *testing.T) {
	e := newProfileEnv(t)
	e.addTag(t, "vip")
	for _, m := range []relay.Message{msg("acct:c-alice", 1, "alice"), msg("acct:c-alice2", 1, "alice"), msg("acct:c-bob", 1, "bob")} {
		m.Account, m.Client = m.Conv.Split()
		m.AcceptedAt = time.Now()
		e.history.add(m)
	}
	e.assign.Set(context.Background(), "acct:c-alice2", "alice")
	if code, body := e.adminDo(t, "PUT", aliceProfile, aliceTok, map[string]any{"name": "王伟", "remark": "老客户", "tags": []string{"vip"}, "version": 0}); code != http.StatusOK {
		t.Fatalf("PUT: %d %v", code, body)
	}
	if code, body := e.adminDo(t, "PUT", "/api/clients/acct/c-bob/profile", bobTok, map[string]any{"name": "Li Na", "version": 0}); code != http.StatusOK {
		t.Fatalf("PUT: %d %v", code, body)
	}
	inbox := func(token, query string) map[string]map[string]any {
		t.Helper()
		code, body := e.adminDo(t, "GET", "/api/conversations?status=all"+query, token, nil)
		if code != http.StatusOK {
			t.Fatalf("inbox %s: %d %v", query, code, body)
		}
		out := map[string]map[string]any{}
		for _, c := range body["conversations"].([]any) {
			wc := c.(map[string]any)
			p, _ := wc["profile"].(map[string]any)
			out[wc["conv"].(string)] = p
		}
		return out
	}
	all := inbox(supTok, "")
	if len(all) != 3 || all["acct:c-alice"]["name"] != "王伟" || all["acct:c-alice"]["remark"] != "老客户" ||
		all["acct:c-alice"]["tags"].([]any)[0] != "vip" || all["acct:c-bob"]["name"] != "Li Na" || all["acct:c-alice2"] != nil {
		t.Errorf("supervisor's inbox: %v", all)
	}
	for _, c := range []struct {
		token, query string
		want         []string
	}{
		{supTok, "&tag=vip", []string{"acct:c-alice"}},
		{supTok, "&q=" + url.QueryEscape("王"), []string{"acct:c-alice"}},
		{supTok, "&q=li", []string{"acct:c-bob"}},
		{supTok, "&q=nobody", nil},
		{supTok, "&q=li&tag=vip", nil},
		{aliceTok, "&q=li", nil}, // bob's client: not alice's
		{aliceTok, "&tag=vip", []string{"acct:c-alice"}},
	} {
		got := inbox(c.token, c.query)
		if len(got) != len(c.want) {
			t.Errorf("inbox %s: %v, want %v", c.query, got, c.want)
			continue
		}
		for _, conv := range c.want {
			if _, ok := got[conv]; !ok {
				t.Errorf("inbox %s: %v, want %v", c.query, got, c.want)
			}
		}
	}
}

func TestSearchResultsCarryProfiles(t *testing.T) {
	arch := memoryArchive(t)
	profiles, err := relay.NewProfiles(arch, relay.RecordTrust{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	m := relay.Message{ID: "m-1", Conv: "acct:c-alice", Account: "acct", Client: "c-alice", Seq: 1, Direction: relay.Inbound,
		Kind: relay.KindText, Text: "退款", AcceptedAt: time.Now().UTC(), Employee: "alice"}
	if err := arch.Insert(context.Background(), []relay.Message{m}); err != nil {
		t.Fatal(err)
	}
	e := newConsoleEnv(t, Config{}, func(d *Deps) { d.Search, d.Profiles = arch, profiles })
	if code, body := e.adminDo(t, "PUT", aliceProfile, aliceTok, map[string]any{"name": "王伟", "version": 0}); code != http.StatusOK {
		t.Fatalf("PUT: %d %v", code, body)
	}
	code, body := e.adminDo(t, "GET", "/api/search?text="+url.QueryEscape("退款"), supTok, nil)
	ps, _ := body["profiles"].(map[string]any)
	p, _ := ps["acct:c-alice"].(map[string]any)
	if code != http.StatusOK || p["name"] != "王伟" {
		t.Errorf("search: %d %v; want the client's profile by conversation", code, body)
	}
}
