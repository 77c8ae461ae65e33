package system

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wechat-relay/wechat-relay/configs"
	"github.com/wechat-relay/wechat-relay/console"
	"github.com/wechat-relay/wechat-relay/console/oidc"
)

// identityProviders are the console's ways of signing in besides a
// password: the OpenID Connect provider when sso.oidc.issuer is set. Its
// discovery is tried once here, briefly: a provider that does not
// answer does not keep the relay from starting (sign-ins try again).
func identityProviders(ctx context.Context, cfg *configs.Config, flows oidc.FlowStore, reg prometheus.Registerer, log *slog.Logger) []console.IdentityProvider {
	if !cfg.SSO.OIDC.Enabled() {
		return nil
	}
	log = log.With("component", "oidc")
	p := oidc.New(cfg.SSO.OIDC, flows, oidc.Options{Logger: log, Registerer: reg})
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := p.Discover(dctx); err != nil {
		log.Warn("identity provider not discovered at start; single sign-on tries again at the next sign-in", "err", err)
	}
	return []console.IdentityProvider{p}
}
