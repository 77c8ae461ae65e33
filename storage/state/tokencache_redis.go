package state

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/silenceper/wechat/v2/cache"
)

var _ cache.ContextCache = (*RedisTokenCache)(nil)

// DefaultTokenCacheTimeout bounds each Redis call of a RedisTokenCache
// when TokenCacheOptions.Timeout is zero.
const DefaultTokenCacheTimeout = 2 * time.Second

// TokenCacheOptions configures a RedisTokenCache. The zero value is
// usable.
type TokenCacheOptions struct {
	// Timeout bounds every Redis call, since the cache.Cache methods carry
	// no context. Zero means DefaultTokenCacheTimeout.
	Timeout time.Duration
	// Logger receives Redis errors that the interface cannot return (on
	// Get and IsExist). Nil means slog.Default().
	Logger *slog.Logger
}

// RedisTokenCache implements silenceper/wechat's cache.Cache and
// cache.ContextCache over go-redis v9, so every relay instance shares one
// access token per account. silenceper's own Redis cache is built on
// go-redis v8.
//
// Get returns values as strings, as silenceper's token handles expect.
// A Redis error on Get or IsExist is logged and reported as a miss: the
// token handle then fetches a fresh token, which with stable_token does
// not invalidate the one other instances hold.
type RedisTokenCache struct {
	rdb     redis.UniversalClient
	prefix  string
	timeout time.Duration
	log     *slog.Logger
}

// NewRedisTokenCache returns a token cache storing its keys in rdb under
// prefix (DefaultPrefix if empty).
func NewRedisTokenCache(rdb redis.UniversalClient, prefix string, opts TokenCacheOptions) *RedisTokenCache {
	c := &RedisTokenCache{rdb: rdb, prefix: keyPrefix(prefix) + "token:", timeout: opts.Timeout, log: opts.Logger}
	if c.timeout <= 0 {
		c.timeout = DefaultTokenCacheTimeout
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	return c
}

// Get returns the cached string, or nil if absent or on error.
func (c *RedisTokenCache) Get(key string) any {
	return c.GetContext(context.Background(), key)
}

// GetContext is Get bounded by ctx as well as by the configured timeout.
func (c *RedisTokenCache) GetContext(ctx context.Context, key string) any {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	v, err := c.rdb.Get(ctx, c.prefix+key).Result()
	if errors.Is(err, redis.Nil) {
		return nil
	}
	if err != nil {
		// Never log the value: it is a credential.
		c.log.WarnContext(ctx, "token cache: redis get failed, treating as a miss", "key", key, "err", err)
		return nil
	}
	return v
}

// Set stores val (a string or []byte) for timeout. A timeout that is not
// positive means the value is already stale: the key is deleted instead,
// so nothing is cached without an expiry.
func (c *RedisTokenCache) Set(key string, val any, timeout time.Duration) error {
	return c.SetContext(context.Background(), key, val, timeout)
}

// SetContext is Set bounded by ctx as well as by the configured timeout.
func (c *RedisTokenCache) SetContext(ctx context.Context, key string, val any, timeout time.Duration) error {
	s, err := tokenValue(val)
	if err != nil {
		return fmt.Errorf("state: set token cache key %q: %w", key, err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if timeout <= 0 {
		err = c.rdb.Del(ctx, c.prefix+key).Err()
	} else {
		err = c.rdb.Set(ctx, c.prefix+key, s, max(timeout, time.Millisecond)).Err()
	}
	if err != nil {
		return fmt.Errorf("state: set token cache key %q in redis: %w", key, err)
	}
	return nil
}

// IsExist reports whether key is cached; false on error.
func (c *RedisTokenCache) IsExist(key string) bool {
	return c.IsExistContext(context.Background(), key)
}

// IsExistContext is IsExist bounded by ctx as well as by the configured
// timeout.
func (c *RedisTokenCache) IsExistContext(ctx context.Context, key string) bool {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	n, err := c.rdb.Exists(ctx, c.prefix+key).Result()
	if err != nil {
		c.log.WarnContext(ctx, "token cache: redis exists failed, treating as a miss", "key", key, "err", err)
		return false
	}
	return n > 0
}

// Delete removes key.
func (c *RedisTokenCache) Delete(key string) error {
	return c.DeleteContext(context.Background(), key)
}

// DeleteContext is Delete bounded by ctx as well as by the configured
// timeout.
func (c *RedisTokenCache) DeleteContext(ctx context.Context, key string) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if err := c.rdb.Del(ctx, c.prefix+key).Err(); err != nil {
		return fmt.Errorf("state: delete token cache key %q in redis: %w", key, err)
	}
	return nil
}
