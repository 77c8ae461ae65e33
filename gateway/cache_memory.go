package gateway

import (
	"sync"
	"time"

	"github.com/silenceper/wechat/v2/cache"
)

// MemoryCache is a concurrency-safe, in-process cache.Cache for access
// tokens. silenceper's cache.NewMemory reads its map without the lock and
// crashes under concurrent use in v2.1.10. Use MemoryCache for a single
// instance (the embedded default mode, tests); several instances must
// share a Redis-backed cache, or each would force-refresh the token the
// others use.
type MemoryCache struct {
	mu    sync.RWMutex
	items map[string]memoryItem
	now   func() time.Time
}

type memoryItem struct {
	val     any
	expires time.Time // zero: never
}

var _ cache.Cache = (*MemoryCache)(nil)

// NewMemoryCache returns an empty MemoryCache.
func NewMemoryCache() *MemoryCache {
	return &MemoryCache{items: make(map[string]memoryItem), now: time.Now}
}

// Get returns the value under key, or nil if absent or expired.
func (c *MemoryCache) Get(key string) any {
	c.mu.RLock()
	it, ok := c.items[key]
	c.mu.RUnlock()
	if !ok {
		return nil
	}
	if c.expired(it) {
		c.mu.Lock()
		// Delete only what was seen: a concurrent Set may have replaced it.
		if cur, ok := c.items[key]; ok && c.expired(cur) {
			delete(c.items, key)
		}
		c.mu.Unlock()
		return nil
	}
	return it.val
}

// Set stores val under key for timeout; a timeout of zero or less means
// no expiry, as with Redis.
func (c *MemoryCache) Set(key string, val any, timeout time.Duration) error {
	it := memoryItem{val: val}
	if timeout > 0 {
		it.expires = c.now().Add(timeout)
	}
	c.mu.Lock()
	c.items[key] = it
	c.mu.Unlock()
	return nil
}

// IsExist reports whether key holds an unexpired value.
func (c *MemoryCache) IsExist(key string) bool {
	return c.Get(key) != nil
}

// Delete removes key.
func (c *MemoryCache) Delete(key string) error {
	c.mu.Lock()
	delete(c.items, key)
	c.mu.Unlock()
	return nil
}

func (c *MemoryCache) expired(it memoryItem) bool {
	return !it.expires.IsZero() && !c.now().Before(it.expires)
}
