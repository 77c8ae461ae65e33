package state

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/silenceper/wechat/v2/cache"
)

var _ cache.ContextCache = (*MemoryTokenCache)(nil)

// MemoryTokenCache implements silenceper/wechat's cache.Cache and
// cache.ContextCache for a single process. It replaces cache.NewMemory,
// whose Get reads its map without the lock and crashes under concurrent
// use in v2.1.10. Values come back as strings, like RedisTokenCache's.
// It holds a handful of tokens, so expired entries are only dropped when
// they are read.
type MemoryTokenCache struct {
	mu sync.Mutex
	m  map[string]tokenEntry
}

type tokenEntry struct {
	val     string
	expires time.Time
}

// NewMemoryTokenCache returns an empty token cache.
func NewMemoryTokenCache() *MemoryTokenCache {
	return &MemoryTokenCache{m: make(map[string]tokenEntry)}
}

// Get returns the cached string, or nil if absent or expired.
func (c *MemoryTokenCache) Get(key string) any {
	if v, ok := c.lookup(key); ok {
		return v
	}
	return nil
}

// GetContext is Get; the context is not needed in memory.
func (c *MemoryTokenCache) GetContext(_ context.Context, key string) any { return c.Get(key) }

// Set stores val (a string or []byte) for timeout; a timeout that is not
// positive deletes the key, as RedisTokenCache does.
func (c *MemoryTokenCache) Set(key string, val any, timeout time.Duration) error {
	s, err := tokenValue(val)
	if err != nil {
		return fmt.Errorf("state: set token cache key %q: %w", key, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if timeout <= 0 {
		delete(c.m, key)
		return nil
	}
	c.m[key] = tokenEntry{val: s, expires: time.Now().Add(timeout)}
	return nil
}

// SetContext is Set.
func (c *MemoryTokenCache) SetContext(_ context.Context, key string, val any, timeout time.Duration) error {
	return c.Set(key, val, timeout)
}

// IsExist reports whether key is cached and not expired.
func (c *MemoryTokenCache) IsExist(key string) bool {
	_, ok := c.lookup(key)
	return ok
}

// IsExistContext is IsExist.
func (c *MemoryTokenCache) IsExistContext(_ context.Context, key string) bool {
	return c.IsExist(key)
}

// Delete removes key.
func (c *MemoryTokenCache) Delete(key string) error {
	c.mu.Lock()
	delete(c.m, key)
	c.mu.Unlock()
	return nil
}

// DeleteContext is Delete.
func (c *MemoryTokenCache) DeleteContext(_ context.Context, key string) error {
	return c.Delete(key)
}

// lookup returns the live value of key, dropping it if it has expired.
func (c *MemoryTokenCache) lookup(key string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok {
		return "", false
	}
	if !time.Now().Before(e.expires) {
		delete(c.m, key)
		return "", false
	}
	return e.val, true
}
