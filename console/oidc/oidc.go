// Package oidc signs employees in to the console through the firm's
// OpenID Connect identity provider (Entra ID, Okta, Keycloak, ADFS...):
// a console.IdentityProvider mounted at /api/sso/oidc/.
//
// The flow is the authorization-code flow with PKCE (S256). The browser
// starts at /api/sso/oidc/login: the relay makes a state, a nonce and a
// PKCE verifier, keeps them in the session store (Redis: every instance
// finds them) under the state's hash for Config.FlowTimeout, binds the
// state to the browser in a cookie, and redirects to the identity
// provider. Its answer comes back to /api/sso/oidc/callback, where the
// state must match the cookie and a kept flow (which is then forgotten:
// a callback works once), the code is exchanged with the verifier, and
// the ID token is verified by github.com/coreos/go-oidc (signature
// against the provider's published keys, fetched again when a token
// names a key not seen yet, so key rotation is followed; issuer;
// audience; expiry), then its nonce against the flow's. The employee is
// the value of Config.Claim, found in the directory by the console
// (console.SignInFunc), which refuses strangers and disabled employees
// whatever the token says; the groups claim, mapped by Config.Roles and
// Config.Teams, becomes grants the console writes into the directory,
// audited like an admin's change.
//
// Discovery (/.well-known/openid-configuration) is done once, at start
// (Discover) or on first use when the provider could not be reached
// then.
package oidc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/oauth2"

	"github.com/wechat-relay/wechat-relay/console"
	"github.com/wechat-relay/wechat-relay/relay"
)

// Name is the provider's path segment: /api/sso/oidc/.
const Name = "oidc"

// CallbackPath is where the identity provider sends the browser back;
// Config.RedirectURL must end with it.
const CallbackPath = "/api/sso/" + Name + "/callback"

// Config configures the identity provider. Zero values select the
// defaults in the comments. Issuer empty: no single sign-on.
type Config struct {
	// Issuer is the identity provider's issuer URL, whose
	// /.well-known/openid-configuration describes it.
	Issuer   string `yaml:"issuer"`
	ClientID string `yaml:"client_id"`
	// ClientSecret authenticates the relay at the token endpoint; empty
	// for a public client (PKCE alone). From WR_OIDC_CLIENT_SECRET or
	// WR_OIDC_CLIENT_SECRET_FILE only.
	ClientSecret string `yaml:"-"`
	// RedirectURL is the relay's callback as the browser reaches it,
	// registered at the identity provider:
	// https://<relay>/api/sso/oidc/callback.
	RedirectURL string `yaml:"redirect_url"`
	// Scopes asked for besides openid (profile, email).
	Scopes []string `yaml:"scopes"`
	// Claim is the ID-token claim whose value is the employee's id
	// (preferred_username).
	Claim string `yaml:"claim"`
	// Domain, when set, is the domain the claim's value must end with
	// ("@" Domain), which is removed: alice@firm.example is employee
	// alice.
	Domain string `yaml:"domain"`
	// GroupsClaim is the claim listing the employee's groups (groups).
	GroupsClaim string `yaml:"groups_claim"`
	// Roles map groups to roles: the first entry whose group the
	// employee is in gives their role. Empty: roles are the directory's
	// alone. Not empty: an employee in none of the groups is refused.
	Roles []RoleMapping `yaml:"roles"`
	// Teams map groups to teams: an employee is in each team named here
	// exactly when they are in one of its groups. Teams not named here
	// keep the memberships the directory gives.
	Teams []TeamMapping `yaml:"teams"`
	// PostLogoutRedirectURL is where the identity provider sends the
	// browser after its own sign-out (registered there too); empty: not
	// asked for.
	PostLogoutRedirectURL string `yaml:"post_logout_redirect_url"`
	// FlowTimeout bounds the time from the click on "Sign in with SSO"
	// to the identity provider's answer (10m).
	FlowTimeout time.Duration `yaml:"flow_timeout"`
}

// RoleMapping gives members of Group the role Role.
type RoleMapping struct {
	Group string     `yaml:"group"`
	Role  relay.Role `yaml:"role"`
}

// TeamMapping puts members of Group in the team Team.
type TeamMapping struct {
	Group string `yaml:"group"`
	Team  string `yaml:"team"`
}

// Enabled reports whether single sign-on is configured.
func (c Config) Enabled() bool { return c.Issuer != "" }

func (c Config) withDefaults() Config {
	if c.Claim == "" {
		c.Claim = "preferred_username"
	}
	if c.GroupsClaim == "" {
		c.GroupsClaim = "groups"
	}
	if c.Scopes == nil {
		c.Scopes = []string{"profile", "email"}
	}
	if c.FlowTimeout <= 0 {
		c.FlowTimeout = 10 * time.Minute
	}
	return c
}

// Validate reports every problem of an enabled configuration at once;
// where names the configuration's section (e.g. "sso.oidc").
func (c Config) Validate(where string) error {
	if !c.Enabled() {
		return nil
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(where+"."+format, args...)) }
	if !secureURL(c.Issuer) {
		bad("issuer %q: an https URL is required (http only on this machine: localhost, 127.0.0.1)", c.Issuer)
	}
	if c.ClientID == "" {
		bad("client_id is required (the relay's application at the identity provider)")
	}
	if u, err := url.Parse(c.RedirectURL); err != nil || !secureURL(c.RedirectURL) || !strings.HasSuffix(u.Path, CallbackPath) {
		bad("redirect_url %q: the relay's callback URL as browsers reach it is required, https (http only on this machine), ending in %s", c.RedirectURL, CallbackPath)
	}
	if c.PostLogoutRedirectURL != "" {
		if u, err := url.Parse(c.PostLogoutRedirectURL); err != nil || u.Host == "" {
			bad("post_logout_redirect_url %q is not an absolute URL", c.PostLogoutRedirectURL)
		}
	}
	if strings.HasPrefix(c.Domain, "@") {
		bad("domain %q: without the @", c.Domain)
	}
	for i, m := range c.Roles {
		if m.Group == "" {
			bad("roles[%d]: group is required", i)
		}
		if !m.Role.Valid() {
			bad("roles[%d] (%s): role %q is not one of agent, supervisor, compliance, admin", i, m.Group, m.Role)
		}
	}
	for i, m := range c.Teams {
		if m.Group == "" {
			bad("teams[%d]: group is required", i)
		}
		if !relay.ValidDirectoryID(m.Team) {
			bad("teams[%d] (%s): team %q is not a team id", i, m.Group, m.Team)
		}
	}
	return errors.Join(errs...)
}

// secureURL reports whether u is an https URL, or an http one of this
// machine (tests, trials): codes and tokens never cross a network in
// the clear.
func secureURL(u string) bool {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" {
		return false
	}
	switch p.Scheme {
	case "https":
		return true
	case "http":
		h := p.Hostname()
		return h == "localhost" || h == "127.0.0.1" || h == "::1"
	}
	return false
}

// FlowStore keeps sign-ins in flight where every relay instance finds
// them: the console's session store (storage/state).
type FlowStore interface {
	PutSession(ctx context.Context, id string, data []byte, ttl time.Duration) error
	GetSession(ctx context.Context, id string, idle time.Duration) ([]byte, error)
	DeleteSession(ctx context.Context, id string) error
}

// Provider is the OpenID Connect identity provider of the console.
type Provider struct {
	cfg      Config
	store    FlowStore
	log      *slog.Logger
	client   *http.Client
	now      func() time.Time
	signIns  *prometheus.CounterVec
	mu       sync.Mutex
	disc     *discovered // nil until discovery succeeded
	lastFail time.Time   // of discovery
}

// discovered is what discovery told of the identity provider.
type discovered struct {
	verifier   *oidc.IDTokenVerifier
	oauth      oauth2.Config
	endSession string
}

var _ console.IdentityProvider = (*Provider)(nil)
var _ console.SessionEnder = (*Provider)(nil)

// Options are a Provider's parts besides its configuration; each may be
// zero.
type Options struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// HTTPClient reaches the identity provider (a client with a 15s
	// timeout).
	HTTPClient *http.Client
	Now        func() time.Time
}

// New returns the provider of cfg, which Validate accepted. It reaches
// the identity provider only when asked to (Discover, or a sign-in).
func New(cfg Config, store FlowStore, o Options) *Provider {
	p := &Provider{cfg: cfg.withDefaults(), store: store, log: o.Logger, client: o.HTTPClient, now: o.Now,
		signIns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wechat_relay_sso_signins_total",
			Help: "Sign-ins through the OpenID Connect identity provider, by result: ok, or why it was refused (state, nonce, token, expired, exchange, claim, no_role, unknown, disabled, grants, idp, unavailable).",
		}, []string{"result"}),
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.client == nil {
		p.client = &http.Client{Timeout: 15 * time.Second}
	}
	if p.now == nil {
		p.now = time.Now
	}
	if o.Registerer != nil {
		o.Registerer.MustRegister(p.signIns)
	}
	return p
}

// Name is the provider's path segment.
func (p *Provider) Name() string { return Name }

// Discover reads the identity provider's discovery document, once. A
// relay starts without it (the provider may be down); sign-ins try
// again.
func (p *Provider) Discover(ctx context.Context) error {
	_, err := p.discovered(ctx)
	return err
}

// discoveryRetry spaces discovery attempts after a failure, so that a
// provider that is down is not asked on every click.
const discoveryRetry = 5 * time.Second

func (p *Provider) discovered(ctx context.Context) (*discovered, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.disc != nil {
		return p.disc, nil
	}
	if !p.lastFail.IsZero() && p.now().Sub(p.lastFail) < discoveryRetry {
		return nil, fmt.Errorf("the identity provider %s could not be reached a moment ago", p.cfg.Issuer)
	}
	// The provider keeps this client for fetching its keys later.
	prov, err := oidc.NewProvider(oidc.ClientContext(ctx, p.client), p.cfg.Issuer)
	if err != nil {
		p.lastFail = p.now()
		return nil, fmt.Errorf("discovering the identity provider %s: %w", p.cfg.Issuer, err)
	}
	var extra struct {
		EndSession string `json:"end_session_endpoint"`
	}
	if err := prov.Claims(&extra); err != nil {
		p.lastFail = p.now()
		return nil, fmt.Errorf("reading the discovery document of %s: %w", p.cfg.Issuer, err)
	}
	p.disc = &discovered{
		verifier: prov.Verifier(&oidc.Config{ClientID: p.cfg.ClientID, Now: p.now}),
		oauth: oauth2.Config{
			ClientID: p.cfg.ClientID, ClientSecret: p.cfg.ClientSecret, Endpoint: prov.Endpoint(),
			RedirectURL: p.cfg.RedirectURL, Scopes: append([]string{oidc.ScopeOpenID}, p.cfg.Scopes...),
		},
		endSession: extra.EndSession,
	}
	p.log.Info("identity provider discovered", "issuer", p.cfg.Issuer, "end_session", extra.EndSession != "")
	return p.disc, nil
}

// EndSessionURL is where a browser ends its session at the identity
// provider (its end_session_endpoint), "" when it has none or has not
// been discovered.
func (p *Provider) EndSessionURL() string {
	p.mu.Lock()
	d := p.disc
	p.mu.Unlock()
	if d == nil || d.endSession == "" {
		return ""
	}
	u, err := url.Parse(d.endSession)
	if err != nil {
		return ""
	}
	q := u.Query()
	q.Set("client_id", p.cfg.ClientID)
	if p.cfg.PostLogoutRedirectURL != "" {
		q.Set("post_logout_redirect_uri", p.cfg.PostLogoutRedirectURL)
	}
	u.RawQuery = q.Encode()
	return u.String()
}
