package e2e

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/oauth2-proxy/mockoidc"

	"github.com/wechat-relay/wechat-relay/console/oidc"
	"github.com/wechat-relay/wechat-relay/console/oidc/oidctest"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
	"github.com/wechat-relay/wechat-relay/storage/testenv/chromium"
)

// Single sign-on in the browser: a relay built as serve builds it, with
// password sign-in switched off and a real OpenID Connect provider
// (mockoidc over HTTP: discovery, JWKS, authorization and token
// endpoints); the employee clicks "Sign in with SSO", is sent through
// the provider and lands in their inbox, with the client who wrote
// meanwhile; signing out offers the provider's end of the session.

func TestBrowserSingleSignOn(t *testing.T) {
	chromium.Need(t)
	idp := oidctest.Start(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	relayURL := "http://" + ln.Addr().String()
	cfg := e2eConfig(t, testenv.ClickHouseAddr(t), testenv.RedisAddr(t), testenv.UniqueName("e2e"), testenv.UniqueName("wr")+":", t.TempDir())
	off := false
	cfg.SSO.PasswordSignIn = &off
	cfg.SSO.OIDC = oidc.Config{
		Issuer: idp.Issuer(), ClientID: idp.ClientID, ClientSecret: idp.ClientSecret,
		RedirectURL: relayURL + oidc.CallbackPath, Scopes: []string{"profile", "email"},
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	acct := simAccount(t, cfg)
	r := startRelayOn(t, cfg, ln)
	if err := testSim.SetCallbackURL(acct.AppID, relayURL+"/wechat/acme"); err != nil {
		t.Fatal(err)
	}
	// A client writes before alice signs in: her inbox holds it.
	c := newClient(t, acct)
	clientSays(t, c, "您好，我想了解一下理财产品。")

	// Passwords are refused, and the page offers single sign-on only.
	if status, out := r.api(t, "POST", "/api/login", "", map[string]string{"id": "alice", "password": "whatever-it-is"}); status != http.StatusForbidden ||
		!strings.Contains(out["error"].(string), "password sign-in is switched off") {
		t.Fatalf("password sign-in: %d %v", status, out)
	}
	browser := chromium.Start(t, 1440, 900)
	p := openPage(t, browser, "alice", relayURL+"/")
	p.until("the sign-in page with its SSO button", `!document.getElementById("signin").hidden && !document.getElementById("signin-sso").hidden`)
	if eval[bool](p, `document.getElementById("signin-password-fields").hidden && document.getElementById("signin-submit").hidden`) != true {
		t.Fatal("the password form is shown though password sign-in is off")
	}
	idp.QueueUser(&mockoidc.MockUser{Subject: "entra-0042", PreferredUsername: "alice", Email: "alice@firm.example"})
	p.do("click Sign in with SSO", chromedp.Click(chromedp.ID("signin-sso-button")))
	p.untilNavigated("the inbox after single sign-on", `!document.getElementById("shell").hidden && document.body.dataset.live === "live"`)
	p.until("the client's conversation in the inbox", `document.querySelectorAll("#conv-list > *").length === 1`)
	if got := eval[string](p, `document.body.dataset.role + " " + location.pathname + location.search`); got != "agent /" {
		t.Fatalf("after single sign-on: %q", got)
	}
	keepScreenshot(t, "sso-inbox.png", p.shot("sso-inbox.png"))

	// Signing out ends the relay's session and offers the provider's.
	p.do("sign out", chromedp.Click(chromedp.ID("nav-signout")))
	p.until("the sign-in page, offering the provider's sign-out", `!document.getElementById("signin").hidden && !document.getElementById("signin-idp-signout").hidden`)
	if href := eval[string](p, `document.getElementById("signin-idp-signout-link").href`); !strings.HasPrefix(href, idp.Addr()+oidctest.EndSessionPath+"?client_id=") {
		t.Fatalf("the provider's sign-out link: %q", href)
	}
	if ok := eval[bool](p, `fetch("/api/me").then(r => r.status === 401)`); !ok {
		t.Fatal("still signed in after signing out")
	}

	// Someone the provider knows but the directory does not: back on the
	// sign-in page, told why.
	idp.QueueUser(&mockoidc.MockUser{Subject: "entra-0666", PreferredUsername: "mallory"})
	p.do("click Sign in with SSO as a stranger", chromedp.Click(chromedp.ID("signin-sso-button")))
	p.untilNavigated("the refusal", `!document.getElementById("signin-error").hidden && document.getElementById("signin-error").textContent.length > 0`)
	if got := eval[string](p, `location.search`); got != "" {
		t.Fatalf("the address keeps the refusal: %q", got)
	}
}

// untilNavigated waits for a JavaScript condition on a page that is
// navigating (through the identity provider and back): evaluations that
// fail while a page is replaced are tried again.
func (p *page) untilNavigated(what, cond string) {
	p.t.Helper()
	deadline := time.Now().Add(browserWait)
	for {
		ok, err := chromedp.Run(p.ctx, chromedp.Evaluate[bool]("!!("+cond+")"))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			p.shot("failed-" + p.name + ".png")
			p.t.Fatalf("%s: waiting for %s (last: %v)", p.name, what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
