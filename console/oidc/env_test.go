package oidc

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"

	"github.com/wechat-relay/wechat-relay/console"
	"github.com/wechat-relay/wechat-relay/console/oidc/oidctest"
	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/storage/bus"
	"github.com/wechat-relay/wechat-relay/storage/embedded"
	"github.com/wechat-relay/wechat-relay/storage/state"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// The tests run a real OpenID Connect provider (mockoidc: discovery,
// JWKS, authorization and token endpoints over HTTP, PKCE, one-time
// codes) and a console on the embedded archive, with a signed directory
// and a signed audit log, and sign in as a browser does: following
// redirects, with a cookie jar.

// user is who signs in at the identity provider; claims, when set,
// changes the ID token's standard claims before they are signed.
type user struct {
	*mockoidc.MockUser
	claims func(*mockoidc.IDTokenClaims)
}

func (u user) Claims(scope []string, c *mockoidc.IDTokenClaims) (jwt.Claims, error) {
	if u.claims != nil {
		u.claims(c)
	}
	return u.MockUser.Claims(scope, c)
}

// unverified is a user whose email the identity provider says is not
// verified (mockoidc leaves a false email_verified out).
type unverified struct{ *mockoidc.MockUser }

func (u unverified) Claims(scope []string, c *mockoidc.IDTokenClaims) (jwt.Claims, error) {
	claims, err := u.MockUser.Claims(scope, c)
	if err != nil {
		return nil, err
	}
	data, _ := json.Marshal(claims)
	var m jwt.MapClaims
	json.Unmarshal(data, &m)
	m["email_verified"] = false
	return m, nil
}

func person(username string, groups ...string) *mockoidc.MockUser {
	return &mockoidc.MockUser{Subject: "sub-" + username, PreferredUsername: username,
		Email: username + "@firm.example", EmailVerified: true, Groups: groups}
}

// relayEnv is a console with the OIDC provider, on a signed directory
// and audit log in the embedded archive.
type relayEnv struct {
	url     string
	idp     *oidctest.Provider
	arch    *embedded.Archive
	dir     *relay.Directory
	pub     ed25519.PublicKey
	seed    relay.DirectorySeed
	flows   *state.MemorySessions
	log     *testenv.SyncBuffer
	console *console.Server
}

func newRelayEnv(t *testing.T, edit func(*Config)) *relayEnv {
	t.Helper()
	ctx := context.Background()
	e := &relayEnv{idp: oidctest.Start(t), log: &testenv.SyncBuffer{}}
	arch, err := embedded.Open(ctx, filepath.Join(t.TempDir(), "archive.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { arch.Close() })
	e.arch = arch
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	e.pub = pub
	signer := relay.NewSealSigner(priv)
	audit, err := relay.NewAuditLog(arch, "test", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	audit.SignWith(signer)
	ccfg := console.Config{
		SingleSignOn: true,
		Teams:        []console.Team{{ID: "wealth", Name: "Wealth"}, {ID: "desk-b", Name: "Desk B"}},
		Employees: []console.Employee{
			{ID: "root", Role: relay.RoleAdmin},
			{ID: "alice", Name: "Alice", Role: relay.RoleAgent},
			{ID: "bob", Name: "Bob", Role: relay.RoleAgent, Teams: []string{"desk-b"}},
			{ID: "gone", Name: "Gone", Role: relay.RoleAgent},
		},
	}
	if err := ccfg.Validate(); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(e.log, nil))
	e.seed = ccfg.Seed(nil)
	e.dir = relay.NewDirectory(arch, e.seed, logger, nil)
	if err := e.dir.Trust(relay.DirectoryTrust{Signer: signer, Audit: arch, Alerts: arch}); err != nil {
		t.Fatal(err)
	}
	if err := e.dir.Load(ctx); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.url = "http://" + ln.Addr().String()
	cfg := Config{
		Issuer: e.idp.Issuer(), ClientID: e.idp.ClientID, ClientSecret: e.idp.ClientSecret,
		RedirectURL: e.url + CallbackPath, Scopes: []string{"profile", "email", "groups"},
	}
	if edit != nil {
		edit(&cfg)
	}
	if err := cfg.Validate("sso.oidc"); err != nil {
		t.Fatal(err)
	}
	e.flows = state.NewMemorySessions()
	prov := New(cfg, e.flows, Options{Logger: logger})
	e.console = console.NewServer(ccfg, console.Deps{
		Bus: bus.NewMemoryBus(bus.Options{}), History: arch, Assignments: state.NewMemoryAssignments(),
		Sessions: e.flows, Directory: e.dir, Logger: logger,
		Audit:             console.ArchiveAudit{Log: audit},
		IdentityProviders: []console.IdentityProvider{prov},
	})
	mux := http.NewServeMux()
	mux.Handle("/api/", e.console.Handler())
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("the console page")) })
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return e
}

// browser is a browser: cookies, and redirects followed, each URL
// visited remembered.
type browser struct {
	t       *testing.T
	e       *relayEnv
	c       *http.Client
	visited []*url.URL
	// stopAt, when set, stops following redirects at the URL it accepts
	// (not visited).
	stopAt func(*url.URL) bool
}

func (e *relayEnv) browser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	b := &browser{t: t, e: e}
	b.c = &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if b.stopAt != nil && b.stopAt(req.URL) {
			return http.ErrUseLastResponse
		}
		b.visited = append(b.visited, req.URL)
		return nil
	}}
	return b
}

// open visits u (a path of the relay, or a URL) and returns where the
// redirects ended (the URL stopAt stopped at), and the status there.
func (b *browser) open(u string) (*url.URL, int) {
	b.t.Helper()
	if strings.HasPrefix(u, "/") {
		u = b.e.url + u
	}
	resp, err := b.c.Get(u)
	if err != nil {
		b.t.Fatalf("GET %s: %v", u, err)
	}
	resp.Body.Close()
	if loc, err := resp.Location(); err == nil && b.stopAt != nil && b.stopAt(loc) {
		return loc, resp.StatusCode
	}
	return resp.Request.URL, resp.StatusCode
}

// signIn clicks "Sign in with SSO" as who is signed in at the identity
// provider; it returns the reason of a refusal, "" when it landed in the
// console.
func (b *browser) signIn(who mockoidc.User) string {
	b.t.Helper()
	b.e.idp.QueueUser(who)
	end, status := b.open(SSOStart)
	if status != http.StatusOK || end.Path != "/" || !strings.HasPrefix(end.String(), b.e.url) {
		b.t.Fatalf("sign-in ended at %s (%d)", end, status)
	}
	return end.Query().Get("sso_error")
}

// SSOStart is where the sign-in page's button leads.
var SSOStart = console.SSOStartPath(Name)

// me returns the signed-in employee's id and role, "" when not signed in.
func (b *browser) me() (id, role string) {
	b.t.Helper()
	resp, err := b.c.Get(b.e.url + "/api/me")
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", ""
	}
	var me struct{ ID, Role, CSRF string }
	json.NewDecoder(resp.Body).Decode(&me)
	return me.ID, me.Role
}

// callback is the URL of the callback visited last.
func (b *browser) callback() *url.URL {
	for i := len(b.visited) - 1; i >= 0; i-- {
		if b.visited[i].Path == CallbackPath {
			return b.visited[i]
		}
	}
	b.t.Fatal("no callback visited")
	return nil
}

// audit returns the archived audit records of action.
func (e *relayEnv) audit(t *testing.T, action string) []relay.AuditEntry {
	t.Helper()
	var out []relay.AuditEntry
	err := e.arch.ScanAudit(context.Background(), func(a relay.AuditEntry) error {
		if a.Action == action {
			out = append(out, a)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
