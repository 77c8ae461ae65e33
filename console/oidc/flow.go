package oidc

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/wechat-relay/wechat-relay/console"
)

// The two steps of a sign-in: /login sends the browser to the identity
// provider, /callback takes its answer.

// stateCookie binds a sign-in in flight to the browser that began it: a
// callback URL opened in another browser (an attacker's code, say) has
// no matching cookie.
const stateCookie = "wr_sso_state"

// cookiePath limits the state cookie to the provider's routes.
const cookiePath = "/api/sso/" + Name + "/"

// flow is what is kept of a sign-in in flight, under flowKey(state).
type flow struct {
	Nonce    string `json:"nonce"`
	Verifier string `json:"verifier"` // PKCE code verifier
}

// flowKey is the store's name of the flow whose state is state: its
// hash, so that a copy of the store gives no state to replay, and
// unlike any session's key (64 hex digits).
func flowKey(state string) string {
	sum := sha256.Sum256([]byte(state))
	return "sso-" + Name + ":" + hex.EncodeToString(sum[:])
}

// maxState bounds a state a callback may carry (ours are 43 characters).
const maxState = 100

// Handler serves /api/sso/oidc/login and /api/sso/oidc/callback.
func (p *Provider) Handler(signIn console.SignInFunc) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+cookiePath+"login", p.serveLogin)
	mux.HandleFunc("GET "+CallbackPath, func(w http.ResponseWriter, r *http.Request) { p.serveCallback(w, r, signIn) })
	return mux
}

// serveLogin starts a sign-in: a new state, nonce and PKCE verifier,
// kept for FlowTimeout, and a redirect to the identity provider.
func (p *Provider) serveLogin(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	d, err := p.discovered(ctx)
	if err != nil {
		p.refuse(w, r, "unavailable", err)
		return
	}
	state, nonce := randomString(), randomString()
	f := flow{Nonce: nonce, Verifier: oauth2.GenerateVerifier()}
	data, _ := json.Marshal(f)
	if err := p.store.PutSession(ctx, flowKey(state), data, p.cfg.FlowTimeout); err != nil {
		p.refuse(w, r, "unavailable", fmt.Errorf("keeping the sign-in in flight: %w", err))
		return
	}
	p.setStateCookie(w, r, state)
	to := d.oauth.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(f.Verifier))
	http.Redirect(w, r, to, http.StatusFound)
}

// serveCallback finishes a sign-in: the identity provider's answer is
// checked, the employee found and signed in, and the browser sent to
// the console (or back to the sign-in page, saying why not).
func (p *Provider) serveCallback(w http.ResponseWriter, r *http.Request, signIn console.SignInFunc) {
	ctx := r.Context()
	q := r.URL.Query()
	f, err := p.takeFlow(ctx, r, q.Get("state"))
	p.setStateCookie(w, r, "") // one callback per sign-in, whatever happens
	if err != nil {
		reason := "state"
		if errors.Is(err, errStore) {
			reason = "unavailable"
		}
		p.refuse(w, r, reason, err)
		return
	}
	if e := q.Get("error"); e != "" {
		p.refuse(w, r, "idp", fmt.Errorf("the identity provider answered %s: %s", e, q.Get("error_description")))
		return
	}
	d, err := p.discovered(ctx)
	if err != nil {
		p.refuse(w, r, "unavailable", err)
		return
	}
	tok, err := d.oauth.Exchange(oidc.ClientContext(ctx, p.client), q.Get("code"), oauth2.VerifierOption(f.Verifier))
	if err != nil {
		p.refuse(w, r, "exchange", fmt.Errorf("exchanging the code: %w", err))
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		p.refuse(w, r, "token", errors.New("the token endpoint answered no id_token"))
		return
	}
	idt, err := d.verifier.Verify(ctx, raw)
	if err != nil {
		reason := "token"
		if _, ok := errors.AsType[*oidc.TokenExpiredError](err); ok {
			reason = "expired"
		}
		p.refuse(w, r, reason, fmt.Errorf("verifying the ID token: %w", err))
		return
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		p.refuse(w, r, "token", fmt.Errorf("reading the ID token's claims: %w", err))
		return
	}
	// More than one audience: the token must have been issued to us.
	if azp, _ := claims["azp"].(string); len(idt.Audience) > 1 && azp != p.cfg.ClientID {
		p.refuse(w, r, "token", fmt.Errorf("the ID token has audiences %q and was issued to %q, not to this client", idt.Audience, azp))
		return
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(f.Nonce)) != 1 {
		p.refuse(w, r, "nonce", errors.New("the ID token's nonce is not the one this sign-in sent"))
		return
	}
	id, reason, err := p.identity(idt.Issuer, idt.Subject, claims)
	if err != nil {
		p.refuse(w, r, reason, err)
		return
	}
	if err := signIn(w, r, id); err != nil {
		p.refuse(w, r, signInReason(err), err)
		return
	}
	p.signIns.WithLabelValues("ok").Inc()
	p.log.Info("single sign-on", "employee", id.Employee, "subject", idt.Subject, "remote", r.RemoteAddr)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// errStore: the session store could not be asked.
var errStore = errors.New("the session store is unavailable")

// takeFlow returns the flow the callback's state names, and forgets it:
// the state must be the one this browser's cookie holds, and still kept.
func (p *Provider) takeFlow(ctx context.Context, r *http.Request, state string) (flow, error) {
	var f flow
	c, err := r.Cookie(stateCookie)
	switch {
	case state == "" || len(state) > maxState:
		return f, errors.New("the callback carries no state, or one too long")
	case err != nil || c.Value == "":
		return f, errors.New("this browser began no sign-in (no state cookie): a callback opened in another browser, or cookies blocked")
	case subtle.ConstantTimeCompare([]byte(c.Value), []byte(state)) != 1:
		return f, errors.New("the callback's state is not the one this browser's sign-in sent")
	}
	key := flowKey(state)
	data, err := p.store.GetSession(ctx, key, 0)
	if err != nil {
		return f, fmt.Errorf("%w: reading the sign-in in flight: %w", errStore, err)
	}
	if data == nil {
		return f, fmt.Errorf("no sign-in in flight has this state: used already, or older than %s", p.cfg.FlowTimeout)
	}
	// Forgotten before use: a callback that cannot be forgotten is not
	// taken, or it could be taken twice.
	if err := p.store.DeleteSession(ctx, key); err != nil {
		return f, fmt.Errorf("%w: forgetting the sign-in in flight: %w", errStore, err)
	}
	if err := json.Unmarshal(data, &f); err != nil || f.Nonce == "" || f.Verifier == "" {
		return f, errors.New("the sign-in in flight is unreadable")
	}
	return f, nil
}

// signInReason names the console's refusal.
func signInReason(err error) string {
	switch {
	case errors.Is(err, console.ErrSignInUnknown):
		return "unknown"
	case errors.Is(err, console.ErrSignInDisabled):
		return "disabled"
	case errors.Is(err, console.ErrSignInGrants):
		return "grants"
	}
	return "unavailable"
}

// refuse logs a refused sign-in, counts it, and sends the browser back
// to the sign-in page with the reason (?sso_error=), which the page
// explains.
func (p *Provider) refuse(w http.ResponseWriter, r *http.Request, reason string, err error) {
	p.signIns.WithLabelValues(reason).Inc()
	p.log.Warn("single sign-on refused", "reason", reason, "err", err, "remote", r.RemoteAddr, "forwarded_for", r.Header.Get("X-Forwarded-For"))
	http.Redirect(w, r, "/?sso_error="+url.QueryEscape(reason), http.StatusSeeOther)
}

func (p *Provider) setStateCookie(w http.ResponseWriter, r *http.Request, state string) {
	c := &http.Cookie{
		Name: stateCookie, Value: state, Path: cookiePath, HttpOnly: true,
		// Lax: the identity provider's redirect back is a cross-site
		// navigation, which must carry it.
		SameSite: http.SameSiteLaxMode,
		Secure:   r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https" || strings.HasPrefix(p.cfg.RedirectURL, "https:"),
		MaxAge:   int(p.cfg.FlowTimeout.Seconds()),
	}
	if state == "" {
		c.MaxAge = -1
	}
	http.SetCookie(w, c)
}

// randomString is 32 random bytes, base64url: a state or a nonce.
func randomString() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}
