package configs

import (
	"github.com/wechat-relay/wechat-relay/console/oidc"
)

// SSOConfig is single sign-on: the firm's OpenID Connect identity
// provider (console/oidc), and whether passwords still sign in.
type SSOConfig struct {
	// PasswordSignIn lets employees sign in to the web console with a
	// password (nil: true). False: POST /api/login is refused and the
	// sign-in page offers single sign-on only; API tokens still work.
	PasswordSignIn *bool `yaml:"password_sign_in"`
	// OIDC is the identity provider; its issuer empty: none. The client
	// secret comes from WR_OIDC_CLIENT_SECRET (or _FILE).
	OIDC oidc.Config `yaml:"oidc"`
}

// PasswordSignIn reports whether employees may sign in with a password.
func (c *Config) PasswordSignIn() bool {
	return c.SSO.PasswordSignIn == nil || *c.SSO.PasswordSignIn
}

// validateSSO reports the problems of the single sign-on keys (the
// console's Validate says when nobody could sign in).
func (c *Config) validateSSO() []error {
	if err := c.SSO.OIDC.Validate("sso.oidc"); err != nil {
		return []error{err}
	}
	return nil
}
