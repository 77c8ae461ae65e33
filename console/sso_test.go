package console

import (
	"net/http"
	"strings"
	"testing"

	"github.com/wechat-relay/wechat-relay/relay"
)

// ssoProvider signs in whoever /api/sso/test/callback?who= names, with
// the grants ?role= and ?team= (team=desk-a or team=-desk-a) say, as an
// OIDC callback would after checking the ID token. It answers 204, or
// 403 with the refusal.
type ssoProvider struct{ end string }

func (ssoProvider) Name() string { return "test" }

func (p ssoProvider) EndSessionURL() string { return p.end }

func (ssoProvider) Handler(signIn SignInFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/sso/test/callback" {
			http.NotFound(w, r)
			return
		}
		q := r.URL.Query()
		id := Identity{Employee: q.Get("who"), Detail: "test subject " + q.Get("who")}
		if q.Has("role") || q.Has("team") {
			g := Grants{Role: Role(q.Get("role")), Teams: map[string]bool{}, Groups: []string{"g1"}}
			for _, t := range q["team"] {
				name, off := strings.CutPrefix(t, "-")
				g.Teams[name] = !off
			}
			id.Grants = &g
		}
		if err := signIn(w, r, id); err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

func ssoEnv(t *testing.T, cfg Config) *consoleEnv {
	cfg.Teams = append(cfg.Teams, Team{ID: "desk-a", Name: "Desk A"})
	return newConsoleEnv(t, cfg, func(d *Deps) {
		d.IdentityProviders = []IdentityProvider{ssoProvider{end: "https://idp.example/logout?client_id=x"}}
	})
}

func TestIdentityProviderSeam(t *testing.T) {
	e := ssoEnv(t, Config{})
	b := e.browser(t)
	if status, out := b.get("/api/sso/test/callback?who=bob"); status != http.StatusNoContent {
		t.Fatalf("SSO sign-in: %d %v", status, out)
	}
	status, me := b.get("/api/me")
	if status != http.StatusOK || me["id"] != "bob" || me["csrf"] == "" {
		t.Fatalf("/api/me after SSO: %d %v", status, me)
	}
	recs := e.audit.all()
	if last := recs[len(recs)-1]; last.Action != AuditSignIn || last.Employee != "bob" || last.Detail != "test; test subject bob" {
		t.Fatalf("sign-in audited as %+v", last)
	}
	// Sign-out ends the session and offers the provider's end of it.
	b.csrf = me["csrf"].(string)
	status, out := b.post("/api/logout", nil)
	if status != http.StatusOK || out["end_session_url"] != "https://idp.example/logout?client_id=x" {
		t.Fatalf("logout of an SSO session: %d %v", status, out)
	}
	if status, _ := b.get("/api/me"); status != http.StatusUnauthorized {
		t.Fatalf("/api/me after logout: %d", status)
	}
	// A password session's sign-out offers nothing.
	pb := e.signedIn(t, "alice", alicePassword)
	if status, out, _ := pb.request("POST", "/api/logout", nil, map[string]string{CSRFHeader: pb.csrf}); status != http.StatusNoContent || out != nil {
		t.Fatalf("logout of a password session: %d %v", status, out)
	}
}

// The directory decides, whatever the identity provider says: a
// stranger and a disabled employee are refused, audited, and get no
// session.
func TestSSORefusesStrangersAndDisabled(t *testing.T) {
	e := ssoEnv(t, Config{Employees: []Employee{{ID: "gone", Role: RoleAgent, Token: "gone-token-0123456789ab"}}})
	if _, err := e.dir.UpdateEmployee(t.Context(), "root", relay.Employee{ID: "gone", Role: RoleAgent, Disabled: true}, 0, nil); err != nil {
		t.Fatal(err)
	}
	for who, want := range map[string]string{"mallory": ErrSignInUnknown.Error(), "gone": ErrSignInDisabled.Error()} {
		b := e.browser(t)
		status, _, _ := b.request("GET", "/api/sso/test/callback?who="+who+"&role=admin", nil, nil)
		if status != http.StatusForbidden {
			t.Fatalf("SSO for %s: %d", who, status)
		}
		if b.sessionCookie() != nil {
			t.Fatalf("SSO for %s set a session cookie", who)
		}
		recs := e.audit.all()
		if last := recs[len(recs)-1]; last.Action != AuditSignInFailed || last.Employee != who || !strings.Contains(last.Detail, "test: ") {
			t.Fatalf("refusal of %s audited as %+v (want %q)", who, last, want)
		}
	}
	if emp, _ := e.dir.Snapshot().Employee("gone"); emp.Role != RoleAgent || !emp.Disabled {
		t.Fatalf("a refused sign-in changed the directory: %+v", emp)
	}
}

// What the groups grant is written into the directory as an admin's
// change is: a new version, by sso:<provider>, after its sso_grant audit
// record naming the version; the same grants again change nothing.
func TestSSOGrantsChangeTheDirectory(t *testing.T) {
	e := ssoEnv(t, Config{})
	b := e.browser(t)
	if status, _ := b.get("/api/sso/test/callback?who=bob&role=supervisor&team=desk-a&team=nosuch"); status != http.StatusNoContent {
		t.Fatalf("SSO with grants: %d", status)
	}
	bob, _ := e.dir.Snapshot().Employee("bob")
	if bob.Role != RoleSupervisor || len(bob.Teams) != 1 || bob.Teams[0] != "desk-a" || bob.UpdatedBy != "sso:test" || bob.Version != 1 {
		t.Fatalf("bob after the grants: %+v", bob)
	}
	var grant *AuditRecord
	for _, r := range e.audit.all() {
		if r.Action == relay.AuditSSOGrant {
			grant = &r
		}
	}
	if grant == nil || grant.Employee != "bob" || grant.Target != "employee:bob" ||
		!strings.Contains(grant.Detail, "role agent→supervisor") || !strings.Contains(grant.Detail, "groups [g1]") {
		t.Fatalf("grant audited as %+v", grant)
	}
	hist, _ := e.dir.History(t.Context(), relay.DirEmployee, "bob")
	if len(hist) != 1 || !strings.HasSuffix(grant.Detail, relay.DirectoryAuditDetail("", hist[0])) {
		t.Fatalf("the audit record does not name the archived version: %q, %+v", grant.Detail, hist)
	}
	if status, me := b.get("/api/me"); status != http.StatusOK || me["role"] != "supervisor" {
		t.Fatalf("/api/me: %d %v", status, me)
	}
	// Signing in again with the same groups archives nothing new; losing
	// the group leaves the team.
	e.browser(t).get("/api/sso/test/callback?who=bob&role=supervisor&team=desk-a")
	if hist, _ := e.dir.History(t.Context(), relay.DirEmployee, "bob"); len(hist) != 1 {
		t.Fatalf("same grants again: %d versions", len(hist))
	}
	e.browser(t).get("/api/sso/test/callback?who=bob&role=supervisor&team=-desk-a")
	if bob, _ := e.dir.Snapshot().Employee("bob"); len(bob.Teams) != 0 || bob.Version != 2 {
		t.Fatalf("bob after leaving desk-a: %+v", bob)
	}
	// A grant the directory refuses refuses the sign-in.
	if status, _ := e.browser(t).get("/api/sso/test/callback?who=bob&role=overlord"); status != http.StatusForbidden {
		t.Fatalf("an invalid role granted: %d", status)
	}
}

func TestPasswordSignInOff(t *testing.T) {
	e := ssoEnv(t, Config{PasswordSignInOff: true, SingleSignOn: true})
	status, out, _ := e.browser(t).login("alice", alicePassword)
	if status != http.StatusForbidden || !strings.Contains(out["error"].(string), "password sign-in is switched off") {
		t.Fatalf("password sign-in when off: %d %v", status, out)
	}
	status, opts := e.browser(t).get("/api/sign-in")
	providers, _ := opts["providers"].([]any)
	if status != http.StatusOK || opts["password"] != false || len(providers) != 1 ||
		providers[0].(map[string]any)["url"] != "/api/sso/test/login" {
		t.Fatalf("sign-in options: %d %v", status, opts)
	}
	// API tokens still work.
	if status, _ := e.do(t, "GET", "/api/me", aliceTok, "", nil); status != http.StatusOK {
		t.Fatalf("token when password sign-in is off: %d", status)
	}
	if status, opts := ssoEnv(t, Config{}).browser(t).get("/api/sign-in"); status != http.StatusOK || opts["password"] != true {
		t.Fatalf("sign-in options by default: %d %v", status, opts)
	}
	if err := (Config{PasswordSignInOff: true}).Validate(); err == nil || !strings.Contains(err.Error(), "nobody could sign in") {
		t.Fatalf("password off without a provider: %v", err)
	}
	if err := (Config{SingleSignOn: true, Employees: []Employee{{ID: "x", Role: RoleAgent}}}).Validate(); err != nil {
		t.Fatalf("an employee without credentials under SSO: %v", err)
	}
}
