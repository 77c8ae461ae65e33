package configs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wechat-relay/wechat-relay/console/oidc"
)

func exampleEnv(t *testing.T, extra map[string]string) func(string) string {
	env := map[string]string{
		"WR_ACCOUNT_MAIN_APP_SECRET":       "s3cret",
		"WR_ACCOUNT_MAIN_TOKEN":            "tok",
		"WR_ACCOUNT_MAIN_ENCODING_AES_KEY": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
		"WR_CONSOLE_TOKEN_ALICE":           "alice-token-0123456789",
		"WR_CONSOLE_TOKEN_SUE":             "sue-token-0123456789ab",
		"WR_CONSOLE_TOKEN_LIN":             "lin-token-0123456789ab",
		"WR_CONSOLE_PASSWORD_HASH_ROOT":    "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
	}
	for k, v := range extra {
		env[k] = v
	}
	return envMap(env)
}

func TestSSOConfig(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "oidc-secret")
	os.WriteFile(secret, []byte("client-secret\n"), 0o600)
	cfg, err := Load("relay.example.yaml", exampleEnv(t, map[string]string{"WR_OIDC_CLIENT_SECRET_FILE": secret}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SSO.OIDC.Enabled() || !cfg.PasswordSignIn() || cfg.SSO.OIDC.ClientSecret != "client-secret" {
		t.Fatalf("the example's defaults: %+v", cfg.SSO)
	}
	// Password sign-in off needs an identity provider.
	off := false
	cfg.SSO.PasswordSignIn = &off
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "nobody could sign in") {
		t.Fatalf("password sign-in off without SSO: %v", err)
	}
	cfg.SSO.OIDC = oidc.Config{
		Issuer: "https://login.example.com/tenant/v2.0", ClientID: "relay",
		RedirectURL: "https://relay.example.com/api/sso/oidc/callback",
		Roles:       []oidc.RoleMapping{{Group: "relay-admins", Role: "admin"}},
		Teams:       []oidc.TeamMapping{{Group: "wealth-desk", Team: "wealth"}},
	}
	// Employees then need no credentials in the configuration.
	cfg.Console.Employees = append(cfg.Console.Employees, EmployeeConfig{ID: "sso-only", Role: "agent"})
	if err := cfg.Validate(); err != nil {
		t.Fatalf("a valid SSO configuration refused: %v", err)
	}
	if cc := cfg.ConsoleConfig(); !cc.PasswordSignInOff || !cc.SingleSignOn {
		t.Fatalf("console config: off %v, sso %v", cc.PasswordSignInOff, cc.SingleSignOn)
	}
	for _, c := range []struct {
		edit func(*oidc.Config)
		want string
	}{
		{func(c *oidc.Config) { c.Issuer = "http://login.example.com" }, "sso.oidc.issuer"},
		{func(c *oidc.Config) { c.ClientID = "" }, "sso.oidc.client_id is required"},
		{func(c *oidc.Config) { c.RedirectURL = "https://relay.example.com/callback" }, "sso.oidc.redirect_url"},
		{func(c *oidc.Config) { c.Roles[0].Role = "boss" }, `sso.oidc.roles[0] (relay-admins): role "boss"`},
		{func(c *oidc.Config) { c.Teams[0].Team = "no such team" }, "sso.oidc.teams[0]"},
		{func(c *oidc.Config) { c.Domain = "@firm.example" }, "sso.oidc.domain"},
	} {
		bad := *cfg
		bad.SSO.OIDC.Roles = append([]oidc.RoleMapping(nil), cfg.SSO.OIDC.Roles...)
		bad.SSO.OIDC.Teams = append([]oidc.TeamMapping(nil), cfg.SSO.OIDC.Teams...)
		c.edit(&bad.SSO.OIDC)
		if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("want an error naming %q, got %v", c.want, err)
		}
	}
}
