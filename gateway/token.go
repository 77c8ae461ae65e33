package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/silenceper/wechat/v2/cache"
	"github.com/silenceper/wechat/v2/credential"
)

// TokenCacheKeyPrefix prefixes the access-token keys in the shared
// cache. It is silenceper's prefix for Official Accounts, so any other
// user of silenceper on the same cache shares the same token.
const TokenCacheKeyPrefix = credential.CacheKeyOfficialAccountPrefix

// tokenSource hands out the access token of one account. Tokens come
// from the stable_token endpoint through silenceper, which caches them in
// the shared cache.Cache: every relay instance on the same cache uses the
// same token, and stable_token does not invalidate a token still in use
// elsewhere.
type tokenSource struct {
	account string
	handle  *credential.StableAccessToken
	cache   cache.Cache
	key     string // silenceper's cache key of this account's stable token
	log     *slog.Logger

	// mu serialises forced refreshes of this account, so a burst of
	// calls that all met an expired token refreshes it once.
	mu sync.Mutex
}

func newTokenSource(a Account, c cache.Cache, log *slog.Logger) (*tokenSource, error) {
	h, ok := credential.NewStableAccessToken(a.AppID, a.AppSecret, TokenCacheKeyPrefix, c).(*credential.StableAccessToken)
	if !ok {
		return nil, fmt.Errorf("gateway: account %q: unexpected access token handle type", a.ID)
	}
	return &tokenSource{
		account: a.ID,
		handle:  h,
		cache:   c,
		// Must match credential.StableAccessToken.GetAccessTokenContext.
		key: fmt.Sprintf("%s_stable_access_token_%s", TokenCacheKeyPrefix, a.AppID),
		log: log,
	}, nil
}

// token returns the cached access token, fetching one if there is none.
func (t *tokenSource) token(ctx context.Context) (string, error) {
	tok, err := t.handle.GetAccessTokenContext(ctx)
	if err != nil {
		return "", fmt.Errorf("gateway: account %q: get access token: %w", t.account, redactErr(err))
	}
	return tok, nil
}

// refresh replaces a token WeChat rejected (40001, 40014, 42001). If the
// cache already holds a different token — another call or instance
// refreshed it meanwhile — that one is used; otherwise a new token is
// forced from stable_token and stored in the cache.
func (t *tokenSource) refresh(ctx context.Context, rejected string) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if cur, ok := t.cache.Get(t.key).(string); ok && cur != "" && cur != rejected {
		return cur, nil
	}
	t.log.Info("access token rejected by WeChat, forcing a refresh", "account", t.account)
	res, err := t.handle.GetAccessTokenDirectly(ctx, true)
	if err != nil {
		return "", fmt.Errorf("gateway: account %q: refresh access token: %w", t.account, redactErr(err))
	}
	if res.AccessToken == "" {
		return "", fmt.Errorf("gateway: account %q: refresh access token: empty token in answer", t.account)
	}
	// Same margin as silenceper: drop the token 5 minutes early.
	ttl := time.Duration(res.ExpiresIn-300) * time.Second
	if ttl <= 0 {
		ttl = time.Minute
	}
	if err := t.cache.Set(t.key, res.AccessToken, ttl); err != nil {
		// The token is good; the next call will simply fetch it again.
		t.log.Warn("cannot cache refreshed access token", "account", t.account, "err", redact(err.Error()))
	}
	return res.AccessToken, nil
}
