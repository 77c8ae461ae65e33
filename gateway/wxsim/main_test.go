package wxsim

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/silenceper/wechat/v2/util"
)

// shared is the one simulator behind silenceper's process-wide URI
// modifier. Tests that use it isolate themselves with their own accounts.
var shared struct {
	sim *Sim
	srv *httptest.Server
}

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	shared.sim = New(Config{Seed: 7, TemplateJobDelay: 10 * time.Millisecond})
	shared.srv = httptest.NewServer(NewServer(shared.sim))
	shared.sim.SetPublicURL(shared.srv.URL)
	defer func() {
		shared.srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := shared.sim.Close(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "close shared sim:", err)
		}
	}()
	// silenceper's globals are process-wide: set them once, here.
	util.SetURIModifier(func(u string) string {
		for _, host := range []string{"https://api.weixin.qq.com", "https://mp.weixin.qq.com"} {
			if strings.HasPrefix(u, host) {
				return shared.srv.URL + strings.TrimPrefix(u, host)
			}
		}
		return u
	})
	util.DefaultHTTPClient = &http.Client{Timeout: 10 * time.Second}
	return m.Run()
}

// syncCache is a concurrency-safe cache.Cache for silenceper's token
// handles (its cache.NewMemory is racy in v2.1.10).
type syncCache struct {
	mu sync.Mutex
	m  map[string]cacheItem
}

type cacheItem struct {
	v   any
	exp time.Time
}

func newSyncCache() *syncCache { return &syncCache{m: map[string]cacheItem{}} }

func (c *syncCache) Get(key string) any {
	c.mu.Lock()
	defer c.mu.Unlock()
	it, ok := c.m[key]
	if !ok || time.Now().After(it.exp) {
		return nil
	}
	return it.v
}

func (c *syncCache) Set(key string, v any, ttl time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[key] = cacheItem{v: v, exp: time.Now().Add(ttl)}
	return nil
}

func (c *syncCache) IsExist(key string) bool { return c.Get(key) != nil }

func (c *syncCache) Delete(key string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, key)
	return nil
}
