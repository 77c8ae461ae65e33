package state

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
)

func TestDedupeRedis(t *testing.T) {
	t.Parallel()
	testDedupe(t, func(t *testing.T) relay.Dedupe {
		rdb, prefix := testRedis(t)
		return NewRedisDedupe(rdb, prefix)
	})
}

func TestDedupeMemory(t *testing.T) {
	t.Parallel()
	testDedupe(t, func(*testing.T) relay.Dedupe { return NewMemoryDedupe() })
}

// testDedupe is the contract of relay.Dedupe, run against every backend.
func testDedupe(t *testing.T, newDedupe func(t *testing.T) relay.Dedupe) {
	ctx := context.Background()

	t.Run("second claim loses", func(t *testing.T) {
		t.Parallel()
		d := newDedupe(t)
		for i, want := range []bool{true, false, false} {
			got, err := d.Claim(ctx, "in:acct:1", time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Fatalf("claim #%d = %v, want %v", i+1, got, want)
			}
		}
		if got, err := d.Claim(ctx, "in:acct:2", time.Minute); err != nil || !got {
			t.Fatalf("claim of another key = %v, %v; want true", got, err)
		}
	})

	t.Run("concurrent claims have one winner", func(t *testing.T) {
		t.Parallel()
		d := newDedupe(t)
		var wins atomic.Int32
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				ok, err := d.Claim(ctx, "race", time.Minute)
				if err != nil {
					t.Error(err)
				}
				if ok {
					wins.Add(1)
				}
			})
		}
		wg.Wait()
		if n := wins.Load(); n != 1 {
			t.Fatalf("%d claims won, want exactly 1", n)
		}
	})

	t.Run("claim expires", func(t *testing.T) {
		t.Parallel()
		d := newDedupe(t)
		const ttl = 100 * time.Millisecond
		start := time.Now()
		if ok, err := d.Claim(ctx, "short", ttl); err != nil || !ok {
			t.Fatalf("first claim = %v, %v", ok, err)
		}
		ok, err := d.Claim(ctx, "short", ttl)
		if err != nil {
			t.Fatal(err)
		}
		// On a loaded machine the second claim may come after expiry.
		if ok && time.Since(start) < ttl {
			t.Fatal("claim before expiry won")
		}
		waitPast(ttl)
		if ok, err := d.Claim(ctx, "short", ttl); err != nil || !ok {
			t.Fatalf("claim after expiry = %v, %v; want true", ok, err)
		}
	})

	t.Run("release", func(t *testing.T) {
		t.Parallel()
		d := newDedupe(t)
		if ok, err := d.Claim(ctx, "k", time.Minute); err != nil || !ok {
			t.Fatalf("first claim = %v, %v", ok, err)
		}
		if err := d.Release(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		if ok, err := d.Claim(ctx, "k", time.Minute); err != nil || !ok {
			t.Fatalf("claim after release = %v, %v; want true", ok, err)
		}
		if err := d.Release(ctx, "never-claimed"); err != nil {
			t.Fatalf("release of an unknown key: %v", err)
		}
	})

	t.Run("bad ttl", func(t *testing.T) {
		t.Parallel()
		d := newDedupe(t)
		for _, ttl := range []time.Duration{0, -time.Second, time.Microsecond} {
			if _, err := d.Claim(ctx, "k", ttl); err == nil {
				t.Errorf("Claim with ttl %v: no error", ttl)
			}
		}
	})
}

// TestMemoryDedupeSweeps checks that expired keys do not accumulate.
func TestMemoryDedupeSweeps(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := NewMemoryDedupe()
	for i := range 5000 {
		if _, err := d.Claim(ctx, strconv.Itoa(i), time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if i%1000 == 999 {
			time.Sleep(2 * time.Millisecond)
		}
	}
	d.mu.Lock()
	n := len(d.expires)
	d.mu.Unlock()
	if n > 3*minSweep {
		t.Fatalf("%d keys held, want at most %d", n, 3*minSweep)
	}
}
