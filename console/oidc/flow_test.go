package oidc

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"

	"github.com/wechat-relay/wechat-relay/console/oidc/oidctest"
	"github.com/wechat-relay/wechat-relay/relay"
)

func TestSignIn(t *testing.T) {
	e := newRelayEnv(t, nil)
	b := e.browser(t)
	if reason := b.signIn(person("alice")); reason != "" {
		t.Fatalf("sign-in refused: %s\n%s", reason, e.log)
	}
	if id, role := b.me(); id != "alice" || role != "agent" {
		t.Fatalf("signed in as %q (%q), want alice", id, role)
	}
	// The flow went through the identity provider with PKCE, state and
	// nonce.
	var auth *url.URL
	for _, u := range b.visited {
		if u.Path == mockoidc.AuthorizationEndpoint {
			auth = u
		}
	}
	q := auth.Query()
	if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || len(q.Get("state")) < 40 || len(q.Get("nonce")) < 40 {
		t.Fatalf("authorization request %s lacks PKCE, state or nonce", auth)
	}
	signIns := e.audit(t, relay.AuditSignIn)
	if len(signIns) != 1 || signIns[0].Employee != "alice" ||
		!strings.Contains(signIns[0].Detail, "oidc; issuer="+e.idp.Issuer()+" subject=sub-alice preferred_username=alice") {
		t.Fatalf("sign-in audited as %+v", signIns)
	}
	// The flow is forgotten, and so is its cookie.
	if data, _ := e.flows.GetSession(context.Background(), flowKey(b.callback().Query().Get("state")), 0); data != nil {
		t.Fatal("the flow is still kept after its callback")
	}
	// Sign-out ends the relay's session and offers the identity
	// provider's.
	status, out := b.logout()
	if status != http.StatusOK || !strings.HasPrefix(out["end_session_url"], e.idp.Addr()+oidctest.EndSessionPath+"?") ||
		!strings.Contains(out["end_session_url"], "client_id="+e.idp.ClientID) {
		t.Fatalf("logout: %d %v", status, out)
	}
	if id, _ := b.me(); id != "" {
		t.Fatalf("still signed in as %s after logout", id)
	}
}

// The employee is found by the configured claim, here the email with
// the firm's domain removed.
func TestSignInByEmail(t *testing.T) {
	e := newRelayEnv(t, func(c *Config) { c.Claim, c.Domain = "email", "firm.example" })
	b := e.browser(t)
	u := person("someone-else")
	u.Email = "alice@firm.example"
	if reason := b.signIn(u); reason != "" {
		t.Fatalf("sign-in refused: %s\n%s", reason, e.log)
	}
	if id, _ := b.me(); id != "alice" {
		t.Fatalf("signed in as %q, want alice", id)
	}
	u = person("alice")
	u.Email = "alice@elsewhere.example"
	if reason := e.browser(t).signIn(u); reason != "claim" {
		t.Fatalf("another domain's address: %q, want claim", reason)
	}
	if reason := e.browser(t).signIn(unverified{person("alice")}); reason != "claim" {
		t.Fatalf("an unverified address: %q, want claim", reason)
	}
}

// refused checks that a sign-in was refused for reason, with a log line
// saying why, and that nobody is signed in.
func refused(t *testing.T, e *relayEnv, b *browser, got, reason, logged string) {
	t.Helper()
	if got != reason {
		t.Fatalf("refusal %q, want %q\n%s", got, reason, e.log)
	}
	if !strings.Contains(e.log.String(), logged) {
		t.Fatalf("no log line says %q:\n%s", logged, e.log)
	}
	if id, _ := b.me(); id != "" {
		t.Fatalf("signed in as %s", id)
	}
	if n := len(e.audit(t, relay.AuditSignIn)); n != 0 {
		t.Fatalf("%d sign-ins audited", n)
	}
}

// An ID token signed by a key the identity provider does not publish
// (swapped in on the way from the token endpoint, under the provider's
// kid) is refused.
func TestForgedToken(t *testing.T) {
	e := newRelayEnv(t, nil)
	kid, _ := e.idp.Keypair.KeyID()
	e.idp.Resign.Store(oidctest.RSAKey(t, kid))
	b := e.browser(t)
	refused(t, e, b, b.signIn(person("alice")), "token", "failed to verify signature")
}

// Key rotation: a token signed by a key the provider publishes only
// from now on is accepted (the keys are fetched again).
func TestKeyRotationFollowed(t *testing.T) {
	e := newRelayEnv(t, nil)
	if reason := e.browser(t).signIn(person("alice")); reason != "" {
		t.Fatalf("first sign-in: %s", reason)
	}
	next := oidctest.RSAKey(t, "rotated-key")
	e.idp.ExtraKey.Store(next)
	e.idp.Resign.Store(next)
	b := e.browser(t)
	if reason := b.signIn(person("bob")); reason != "" {
		t.Fatalf("sign-in with the rotated key: %s\n%s", reason, e.log)
	}
	if id, _ := b.me(); id != "bob" {
		t.Fatalf("signed in as %q", id)
	}
}

func TestExpiredToken(t *testing.T) {
	e := newRelayEnv(t, nil)
	b := e.browser(t)
	old := func(c *mockoidc.IDTokenClaims) {
		c.IssuedAt = jwt.NewNumericDate(time.Now().Add(-2 * time.Hour))
		c.NotBefore = c.IssuedAt
		c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Hour))
	}
	refused(t, e, b, b.signIn(user{person("alice"), old}), "expired", "token is expired")
}

func TestWrongAudience(t *testing.T) {
	e := newRelayEnv(t, nil)
	b := e.browser(t)
	other := func(c *mockoidc.IDTokenClaims) { c.Audience = jwt.ClaimStrings{"another-application"} }
	refused(t, e, b, b.signIn(user{person("alice"), other}), "token", "expected audience")
	// Several audiences: the token must have been issued to us (azp).
	b = e.browser(t)
	both := func(c *mockoidc.IDTokenClaims) { c.Audience = append(c.Audience, "another-application") }
	refused(t, e, b, b.signIn(user{person("alice"), both}), "token", "not to this client")
}

func TestWrongNonce(t *testing.T) {
	e := newRelayEnv(t, nil)
	b := e.browser(t)
	other := func(c *mockoidc.IDTokenClaims) { c.Nonce = "a-nonce-of-another-sign-in" }
	refused(t, e, b, b.signIn(user{person("alice"), other}), "nonce", "nonce is not the one this sign-in sent")
}

func TestWrongState(t *testing.T) {
	e := newRelayEnv(t, nil)
	// The browser's callback, its state changed.
	b := e.browser(t)
	b.stopAt = func(u *url.URL) bool { return u.Path == CallbackPath }
	e.idp.QueueUser(person("alice"))
	cb, _ := b.open(SSOStart)
	b.stopAt = nil
	q := cb.Query()
	q.Set("state", "a"+q.Get("state")[1:])
	cb.RawQuery = q.Encode()
	end, _ := b.open(cb.String())
	refused(t, e, b, end.Query().Get("sso_error"), "state", "not the one this browser's sign-in sent")

	// A callback opened in a browser that did not begin the sign-in
	// (an attacker's code and state sent to a victim).
	b = e.browser(t)
	b.stopAt = func(u *url.URL) bool { return u.Path == CallbackPath }
	e.idp.QueueUser(person("alice"))
	cb, _ = b.open(SSOStart)
	victim := e.browser(t)
	end, _ = victim.open(cb.String())
	refused(t, e, victim, end.Query().Get("sso_error"), "state", "this browser began no sign-in")
}

// A code is good for one sign-in: the callback replayed is refused
// (its state is spent), and so is the code under a fresh state.
func TestReplayedCode(t *testing.T) {
	e := newRelayEnv(t, nil)
	b := e.browser(t)
	if reason := b.signIn(person("alice")); reason != "" {
		t.Fatalf("sign-in: %s", reason)
	}
	cb := b.callback()
	b.logout()

	// The same callback again, in the same browser, with the state
	// cookie put back as it was.
	jarURL, _ := url.Parse(e.url + cookiePath)
	b.c.Jar.SetCookies(jarURL, []*http.Cookie{{Name: stateCookie, Value: cb.Query().Get("state"), Path: cookiePath}})
	end, _ := b.open(cb.String())
	if end.Query().Get("sso_error") != "state" || !strings.Contains(e.log.String(), "used already") {
		t.Fatalf("replayed callback: %s\n%s", end, e.log)
	}
	// The code under a fresh sign-in's state: the identity provider
	// refuses it (spent, and not this flow's PKCE verifier).
	b.stopAt = func(u *url.URL) bool { return u.Path == CallbackPath }
	e.idp.QueueUser(person("alice"))
	fresh, _ := b.open(SSOStart)
	b.stopAt = nil
	q := fresh.Query()
	q.Set("code", cb.Query().Get("code"))
	fresh.RawQuery = q.Encode()
	end, _ = b.open(fresh.String())
	if end.Query().Get("sso_error") != "exchange" || !strings.Contains(e.log.String(), "invalid_grant") {
		t.Fatalf("replayed code: %s\n%s", end, e.log)
	}
	if id, _ := b.me(); id != "" {
		t.Fatalf("signed in as %s with a replayed code", id)
	}
	if n := len(e.audit(t, relay.AuditSignIn)); n != 1 {
		t.Fatalf("%d sign-ins audited, want the first only", n)
	}
}

// The directory decides: a disabled employee cannot sign in whatever
// the identity provider says, nor can someone it does not know; both
// are audited as failed sign-ins.
func TestDirectoryDecides(t *testing.T) {
	e := newRelayEnv(t, func(c *Config) {
		c.Roles = []RoleMapping{{Group: "relay-admins", Role: relay.RoleAdmin}}
	})
	if _, err := e.dir.UpdateEmployee(context.Background(), "root", relay.Employee{ID: "gone", Role: relay.RoleAgent, Disabled: true}, 0,
		func(*relay.DirectorySnapshot, relay.DirectoryRecord) error { return nil }); err != nil {
		t.Fatal(err)
	}
	b := e.browser(t)
	refused(t, e, b, b.signIn(person("gone", "relay-admins")), "disabled", "disabled in the directory")
	b = e.browser(t)
	refused(t, e, b, b.signIn(person("mallory", "relay-admins")), "unknown", "unknown employee")
	failed := e.audit(t, relay.AuditSignInFailed)
	if len(failed) != 2 || failed[0].Employee != "gone" || failed[1].Employee != "mallory" || !strings.Contains(failed[1].Detail, "subject=sub-mallory") {
		t.Fatalf("failed sign-ins audited as %+v", failed)
	}
	if gone, _ := e.dir.Snapshot().Employee("gone"); gone.Role != relay.RoleAgent || !gone.Disabled {
		t.Fatalf("a refused sign-in changed the directory: %+v", gone)
	}
}

// The groups claim maps to role and teams; the change is archived as a
// new, signed version of the employee, audited (sso_grant) before it
// counts, and `verify` finds every version matched by its audit record.
func TestGroupMapping(t *testing.T) {
	e := newRelayEnv(t, func(c *Config) {
		c.Roles = []RoleMapping{{Group: "relay-supervisors", Role: relay.RoleSupervisor}, {Group: "relay-agents", Role: relay.RoleAgent}}
		c.Teams = []TeamMapping{{Group: "wealth-desk", Team: "wealth"}}
	})
	b := e.browser(t)
	if reason := b.signIn(person("bob", "relay-agents", "relay-supervisors", "wealth-desk", "canteen")); reason != "" {
		t.Fatalf("sign-in refused: %s\n%s", reason, e.log)
	}
	if id, role := b.me(); id != "bob" || role != "supervisor" {
		t.Fatalf("signed in as %s (%s), want bob as supervisor", id, role)
	}
	bob, _ := e.dir.Snapshot().Employee("bob")
	if bob.Role != relay.RoleSupervisor || strings.Join(bob.Teams, ",") != "desk-b,wealth" || bob.UpdatedBy != "sso:oidc" {
		t.Fatalf("bob in the directory: %+v", bob)
	}
	grants := e.audit(t, relay.AuditSSOGrant)
	if len(grants) != 1 || grants[0].Employee != "bob" || grants[0].Target != "employee:bob" ||
		!strings.Contains(grants[0].Detail, "oidc groups [relay-agents relay-supervisors wealth-desk canteen]: role agent→supervisor; teams [desk-b]→[desk-b wealth]") {
		t.Fatalf("the change audited as %+v", grants)
	}
	hist, err := e.dir.History(context.Background(), relay.DirEmployee, "bob")
	if err != nil || len(hist) != 1 || !hist[0].Signed() || relay.CheckDirectorySignature(hist[0], map[string]ed25519.PublicKey{hist[0].KeyID: e.pub}) != relay.SignatureValid {
		t.Fatalf("bob's archived versions: %+v %v", hist, err)
	}
	rep, err := relay.VerifyDirectory(context.Background(), e.arch, relay.DirectoryVerifyOptions{PublicKeys: []ed25519.PublicKey{e.pub}})
	if err != nil || !rep.OK || rep.Audited != 1 {
		t.Fatalf("verify: %+v %v", rep, err)
	}
	// A fresh instance loading the archive accepts the version (its
	// audit record is found).
	fresh := relay.NewDirectory(e.arch, e.seed, nil, nil)
	fresh.Trust(relay.DirectoryTrust{PublicKeys: []ed25519.PublicKey{e.pub}, Audit: e.arch, Alerts: e.arch})
	if err := fresh.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if bob, _ := fresh.Snapshot().Employee("bob"); bob.Role != relay.RoleSupervisor {
		t.Fatalf("another instance sees bob as %s", bob.Role)
	}

	// The same groups again change nothing; leaving the wealth group
	// leaves the team (desk-b is not the mapping's and stays).
	e.browser(t).signIn(person("bob", "relay-supervisors", "wealth-desk"))
	if n := len(e.audit(t, relay.AuditSSOGrant)); n != 1 {
		t.Fatalf("%d grant records after the same groups again", n)
	}
	e.browser(t).signIn(person("bob", "relay-supervisors"))
	if bob, _ := e.dir.Snapshot().Employee("bob"); strings.Join(bob.Teams, ",") != "desk-b" || bob.Version != 2 {
		t.Fatalf("bob after leaving wealth-desk: %+v", bob)
	}
	// In no group that gives a role: refused, and nothing changes.
	b = e.browser(t)
	if reason := b.signIn(person("alice", "canteen")); reason != "no_role" {
		t.Fatalf("no role group: %q", reason)
	}
	if alice, _ := e.dir.Snapshot().Employee("alice"); alice.Version != 0 {
		t.Fatalf("alice changed: %+v", alice)
	}
}

// logout signs out as the page does.
func (b *browser) logout() (int, map[string]string) {
	b.t.Helper()
	resp, err := b.c.Get(b.e.url + "/api/me")
	if err != nil {
		b.t.Fatal(err)
	}
	var me struct{ CSRF string }
	jsonDecode(resp, &me)
	req, _ := http.NewRequest("POST", b.e.url+"/api/logout", nil)
	req.Header.Set("X-CSRF-Token", me.CSRF)
	resp, err = b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	out := map[string]string{}
	jsonDecode(resp, &out)
	return resp.StatusCode, out
}

func jsonDecode(resp *http.Response, v any) {
	defer resp.Body.Close()
	json.NewDecoder(resp.Body).Decode(v)
}
