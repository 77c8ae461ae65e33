package state

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/silenceper/wechat/v2/cache"

	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

func TestTokenCacheRedis(t *testing.T) {
	t.Parallel()
	testTokenCache(t, func(t *testing.T) cache.ContextCache {
		rdb, prefix := testRedis(t)
		return NewRedisTokenCache(rdb, prefix, TokenCacheOptions{Logger: testenv.Logger(t)})
	})
}

func TestTokenCacheMemory(t *testing.T) {
	t.Parallel()
	testTokenCache(t, func(*testing.T) cache.ContextCache { return NewMemoryTokenCache() })
}

// testTokenCache is the contract silenceper relies on, run against every
// backend: values come back as strings, and they expire.
func testTokenCache(t *testing.T, newCache func(t *testing.T) cache.ContextCache) {
	t.Run("round trip as string", func(t *testing.T) {
		t.Parallel()
		c := newCache(t)
		if v := c.Get("k"); v != nil {
			t.Fatalf("Get of a missing key = %#v, want nil", v)
		}
		if c.IsExist("k") {
			t.Fatal("IsExist of a missing key = true")
		}
		for _, val := range []any{"token-1", []byte("token-2")} {
			if err := c.Set("k", val, time.Minute); err != nil {
				t.Fatal(err)
			}
			got, ok := c.Get("k").(string)
			if !ok {
				t.Fatalf("Get returned %T, want string", c.Get("k"))
			}
			if want := fmt.Sprintf("%s", val); got != want {
				t.Fatalf("Get = %q, want %q", got, want)
			}
			if !c.IsExist("k") {
				t.Fatal("IsExist = false after Set")
			}
		}
		if err := c.Set("k", 42, time.Minute); err == nil {
			t.Fatal("Set of an int: no error")
		}
		if err := c.Delete("k"); err != nil {
			t.Fatal(err)
		}
		if v := c.Get("k"); v != nil {
			t.Fatalf("Get after Delete = %#v, want nil", v)
		}
		if err := c.Delete("k"); err != nil {
			t.Fatalf("Delete of a missing key: %v", err)
		}
	})

	t.Run("context variants", func(t *testing.T) {
		t.Parallel()
		c := newCache(t)
		ctx := context.Background()
		if err := cache.SetContext(ctx, c, "k", "v", time.Minute); err != nil {
			t.Fatal(err)
		}
		if got := cache.GetContext(ctx, c, "k"); got != "v" {
			t.Fatalf("GetContext = %#v, want \"v\"", got)
		}
		if !cache.IsExistContext(ctx, c, "k") {
			t.Fatal("IsExistContext = false")
		}
		if err := cache.DeleteContext(ctx, c, "k"); err != nil {
			t.Fatal(err)
		}
		if cache.IsExistContext(ctx, c, "k") {
			t.Fatal("IsExistContext after delete = true")
		}
	})

	t.Run("expiry", func(t *testing.T) {
		t.Parallel()
		c := newCache(t)
		const ttl = 100 * time.Millisecond
		start := time.Now()
		if err := c.Set("k", "v", ttl); err != nil {
			t.Fatal(err)
		}
		// On a loaded machine the Get may come after the timeout.
		if c.Get("k") != "v" && time.Since(start) < ttl {
			t.Fatal("value gone before its timeout")
		}
		waitPast(ttl)
		if v := c.Get("k"); v != nil {
			t.Fatalf("Get after timeout = %#v, want nil", v)
		}
		if c.IsExist("k") {
			t.Fatal("IsExist after timeout = true")
		}
	})

	t.Run("non-positive timeout deletes", func(t *testing.T) {
		t.Parallel()
		c := newCache(t)
		if err := c.Set("k", "v", time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := c.Set("k", "w", 0); err != nil {
			t.Fatal(err)
		}
		if v := c.Get("k"); v != nil {
			t.Fatalf("Get after Set with timeout 0 = %#v, want nil", v)
		}
	})

	t.Run("concurrent use", func(t *testing.T) {
		t.Parallel()
		c := newCache(t)
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Go(func() {
				key := fmt.Sprintf("k%d", i%4)
				for range 10 {
					if err := c.Set(key, "v", time.Minute); err != nil {
						t.Error(err)
					}
					if v := c.Get(key); v != nil && v != "v" {
						t.Errorf("Get = %#v", v)
					}
					c.IsExist(key)
					if err := c.Delete(key); err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
	})
}
