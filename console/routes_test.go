package console

import (
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
)

// Who may use a route, in routeRules.
const (
	public   = "public"   // anyone, signed in or not
	everyone = "everyone" // every signed-in role
	owner    = "owner"    // the agent the conversation is assigned to (alice), no one else
	managers = "managers" // its agent, supervisors and admins
	seers    = "seers"    // supervisors, compliance officers and admins
	auditors = "auditors" // compliance officers and admins
	admins   = "admins"   // admins
	leads    = "leads"    // supervisors and admins
	agents   = "agents"   // agents who serve an account
)

// mayUse says which roles a rule lets through.
var mayUse = map[string][]Role{
	public:   {RoleAgent, RoleSupervisor, RoleCompliance, RoleAdmin},
	everyone: {RoleAgent, RoleSupervisor, RoleCompliance, RoleAdmin},
	owner:    {RoleAgent},
	managers: {RoleAgent, RoleSupervisor, RoleAdmin},
	seers:    {RoleSupervisor, RoleCompliance, RoleAdmin},
	auditors: {RoleCompliance, RoleAdmin},
	admins:   {RoleAdmin},
	leads:    {RoleSupervisor, RoleAdmin},
	agents:   {RoleAgent},
}

// routeRule is how the test calls one of Handler's patterns, and who
// may use it.
type routeRule struct {
	method, path, body string
	who                string
}

// routeRules has a row for every pattern Handler serves. The
// conversation is alice's and she is the agent; the supervisor has the
// all-teams grant. Bodies are valid where a handler decides access only
// after reading the body, and empty ({}) where nothing should change.
var routeRules = map[string]routeRule{
	"POST /api/login":  {"POST", "/api/login", `{}`, public},
	"GET /api/sign-in": {"GET", "/api/sign-in", "", public},
	"/api/sso/test/":   {"GET", "/api/sso/test/callback?who=alice", "", public},
	"POST /api/logout": {"POST", "/api/logout", "", public},

	"GET /api/me":                 {"GET", "/api/me", "", everyone},
	"POST /api/me/password":       {"POST", "/api/me/password", `{}`, everyone},
	"GET /api/me/qrcode":          {"GET", "/api/me/qrcode", "", agents},
	"GET /api/employees":          {"GET", "/api/employees", "", everyone},
	"GET /api/teams":              {"GET", "/api/teams", "", everyone},
	"GET /api/canned-replies":     {"GET", "/api/canned-replies", "", everyone},
	"GET /api/conversations":      {"GET", "/api/conversations", "", everyone},
	"GET /api/media/{message_id}": {"GET", "/api/media/in:acct:routes", "", everyone},
	"GET /api/ws":                 {"GET", "/api/ws", "", everyone}, // 400 without an upgrade, once let in

	"GET /api/conversations/{conv}/messages":  {"GET", "/api/conversations/acct:c-alice/messages", "", everyone},
	"POST /api/conversations/{conv}/read":     {"POST", "/api/conversations/acct:c-alice/read", `{"seq":1}`, everyone},
	"POST /api/conversations/{conv}/notes":    {"POST", "/api/conversations/acct:c-alice/notes", `{"key":"n1","text":"note"}`, everyone},
	"POST /api/conversations/{conv}/messages": {"POST", "/api/conversations/acct:c-alice/messages", `{"key":"k1","kind":"text","text":"hi"}`, owner},
	"GET /api/conversations/{conv}/window":    {"GET", "/api/conversations/acct:c-alice/window", "", everyone}, // a read
	"POST /api/conversations/{conv}/typing":   {"POST", "/api/conversations/acct:c-alice/typing", "", owner},
	"POST /api/conversations/{conv}/transfer": {"POST", "/api/conversations/acct:c-alice/transfer", `{"to":"bob","key":"t1"}`, managers},
	"POST /api/conversations/{conv}/resolve":  {"POST", "/api/conversations/acct:c-alice/resolve", `{"key":"r1"}`, managers},
	"POST /api/conversations/{conv}/reopen":   {"POST", "/api/conversations/acct:c-alice/reopen", `{"key":"o1"}`, managers},

	"GET /api/search":                {"GET", "/api/search?text=hi", "", seers},
	"POST /api/exports":              {"POST", "/api/exports", `{"from":"2026-01-02","to":"2026-01-01"}`, seers},
	"GET /api/exports/{id}":          {"GET", "/api/exports/no-such-job", "", seers},
	"GET /api/exports/{id}/download": {"GET", "/api/exports/no-such-job/download", "", seers},
	"GET /api/alerts":                {"GET", "/api/alerts", "", seers},
	"GET /api/audit":                 {"GET", "/api/audit", "", auditors},
	"POST /api/alerts/{id}/review":   {"POST", "/api/alerts/no-such-hit/review", `{}`, auditors},
	"GET /api/holds":                 {"GET", "/api/holds", "", auditors},
	"POST /api/holds":                {"POST", "/api/holds", `{}`, auditors},

	"GET /api/admin/directory":                {"GET", "/api/admin/directory", "", admins},
	"GET /api/admin/history":                  {"GET", "/api/admin/history?kind=employee&id=alice", "", admins},
	"POST /api/admin/employees":               {"POST", "/api/admin/employees", `{}`, admins},
	"PUT /api/admin/employees/{id}":           {"PUT", "/api/admin/employees/alice", `{}`, admins},
	"POST /api/admin/employees/{id}/password": {"POST", "/api/admin/employees/alice/password", `{}`, admins},
	"POST /api/admin/employees/{id}/token":    {"POST", "/api/admin/employees/alice/token", `{}`, admins},
	"POST /api/admin/employees/{id}/handover": {"POST", "/api/admin/employees/alice/handover", `{}`, admins},
	"POST /api/admin/teams":                   {"POST", "/api/admin/teams", `{}`, admins},
	"PUT /api/admin/teams/{id}":               {"PUT", "/api/admin/teams/no-such-team", `{}`, admins},
	"DELETE /api/admin/teams/{id}":            {"DELETE", "/api/admin/teams/no-such-team", "", admins},
	"PUT /api/admin/accounts/{id}":            {"PUT", "/api/admin/accounts/acct", `{}`, admins},
	"GET /api/admin/journal":                  {"GET", "/api/admin/journal", "", admins},

	"GET /api/reports":        {"GET", "/api/reports", "", seers},
	"GET /api/reports/{name}": {"GET", "/api/reports/volume", "", seers},

	"GET /api/clients/{account}/{openid}/profile":         {"GET", "/api/clients/acct/c-alice/profile", "", everyone},
	"PUT /api/clients/{account}/{openid}/profile":         {"PUT", "/api/clients/acct/c-alice/profile", `{}`, managers},
	"GET /api/clients/{account}/{openid}/profile/history": {"GET", "/api/clients/acct/c-alice/profile/history", "", everyone},
	"GET /api/tags/{account}":                             {"GET", "/api/tags/acct", "", everyone},
	"POST /api/tags/{account}":                            {"POST", "/api/tags/acct", `{}`, leads},
	"DELETE /api/tags/{account}/{tag}":                    {"DELETE", "/api/tags/acct/vip", "", leads},
}

// Every route Handler serves, for every role and for no one signed in,
// answers as routeRules says: let in (anything but 401, 403 or a server
// error), 403, or 401. A route with no row, or a row with no route,
// fails the test: a new route has to say who may use it.
func TestEveryRouteForEveryRole(t *testing.T) {
	st := &fakeCompliance{}
	e := newConsoleEnv(t, Config{Employees: []Employee{
		{ID: "cmp", Role: RoleCompliance, Token: cmpTok},
		{ID: "adm", Role: RoleAdmin, Token: admTok},
	}}, func(d *Deps) {
		arch := memoryArchive(t)
		d.Search, d.Export, d.Reports = arch, arch, arch
		profiles, err := relay.NewProfiles(arch, relay.RecordTrust{Log: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		d.Profiles = profiles
		d.Journal = fakeJournal{relay.JournalStatus{Enabled: true}}
		d.Compliance = ComplianceDeps{Audit: st, Alerts: st, Holds: legalHolds(t, st)}
		d.IdentityProviders = []IdentityProvider{ssoProvider{}}
	})
	m := at("acct:c-alice", 1, "alice", relay.Inbound, time.Now())
	m.ID, m.Kind, m.MediaID, m.Text = "in:acct:routes", relay.KindImage, "MEDIA_ROUTES", ""
	e.history.add(m)
	e.media.put(relay.Media{MessageID: m.ID, MediaID: m.MediaID, ContentType: "image/png", Data: []byte("\x89PNG\r\n\x1a\n")})
	assigned := maps.Clone(e.assign.m)

	h, patterns := e.server.handler()
	for _, p := range patterns {
		if _, ok := routeRules[p]; !ok {
			t.Errorf("Handler serves %q, which routeRules has no row for: say who may use it", p)
		}
	}
	for p := range routeRules {
		if !slices.Contains(patterns, p) {
			t.Errorf("routeRules has a row for %q, which Handler does not serve", p)
		}
	}

	for _, who := range []struct {
		role  Role // "" for no one signed in
		token string
	}{{RoleAgent, aliceTok}, {RoleSupervisor, supTok}, {RoleCompliance, cmpTok}, {RoleAdmin, admTok}, {"", ""}} {
		for _, p := range slices.Sorted(maps.Keys(routeRules)) {
			rule := routeRules[p]
			var body *strings.Reader
			if rule.body != "" {
				body = strings.NewReader(rule.body)
			} else {
				body = strings.NewReader("")
			}
			req := httptest.NewRequest(rule.method, "http://console.test"+rule.path, body)
			if rule.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			if who.token != "" {
				req.Header.Set("Authorization", "Bearer "+who.token)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			// What one request changed must not decide the next one's answer.
			e.assign.mu.Lock()
			e.assign.m = maps.Clone(assigned)
			e.assign.mu.Unlock()

			name := string(who.role)
			if name == "" {
				name = "no one signed in"
			}
			switch allowed := slices.Contains(mayUse[rule.who], who.role); {
			case rec.Code >= 500:
				t.Errorf("%s: %s %s: %d %s", name, rule.method, rule.path, rec.Code, rec.Body)
			case who.role == "" && rule.who != public:
				if rec.Code != http.StatusUnauthorized {
					t.Errorf("%s: %s %s: %d, want 401", name, rule.method, rule.path, rec.Code)
				}
			case allowed || rule.who == public:
				if rec.Code == http.StatusUnauthorized || rec.Code == http.StatusForbidden {
					t.Errorf("%s: %s %s: %d %s, want it let in (%s)", name, rule.method, rule.path, rec.Code, rec.Body, rule.who)
				}
			case rec.Code != http.StatusForbidden:
				t.Errorf("%s: %s %s: %d, want 403 (%s only)", name, rule.method, rule.path, rec.Code, rule.who)
			}
		}
	}
}
