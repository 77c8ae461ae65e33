package gateway

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestMemoryCache(t *testing.T) {
	t.Parallel()
	c := NewMemoryCache()
	now := time.Unix(1000, 0)
	var mu sync.Mutex
	c.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

	if c.Get("k") != nil || c.IsExist("k") {
		t.Fatal("empty cache has k")
	}
	_ = c.Set("k", "v", time.Minute)
	_ = c.Set("forever", "f", 0)
	if c.Get("k") != "v" || !c.IsExist("k") {
		t.Fatal("k not stored")
	}
	advance(59 * time.Second)
	if c.Get("k") != "v" {
		t.Fatal("k expired early")
	}
	advance(time.Second)
	if c.Get("k") != nil || c.IsExist("k") {
		t.Fatal("k did not expire")
	}
	if c.Get("forever") != "f" {
		t.Fatal("no-expiry entry expired")
	}
	_ = c.Delete("forever")
	if c.Get("forever") != nil {
		t.Fatal("Delete did not delete")
	}
}

// TestMemoryCacheConcurrent is the case silenceper's cache.NewMemory
// fails: concurrent readers and writers, run under -race.
func TestMemoryCacheConcurrent(t *testing.T) {
	t.Parallel()
	c := NewMemoryCache()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				k := fmt.Sprintf("k%d", i%16)
				switch (g + i) % 4 {
				case 0:
					_ = c.Set(k, "v", time.Duration(i%3)*time.Nanosecond)
				case 1:
					_ = c.Get(k)
				case 2:
					_ = c.IsExist(k)
				case 3:
					_ = c.Delete(k)
				}
			}
		}()
	}
	wg.Wait()
}
