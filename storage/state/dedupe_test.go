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
	claim := func(t *testing.T, d relay.Dedupe, key, owner string, lease time.Duration) relay.ClaimState {
		t.Helper()
		st, err := d.Claim(ctx, key, owner, lease)
		if err != nil {
			t.Fatalf("claim %q by %q: %v", key, owner, err)
		}
		return st
	}

	t.Run("held until finished, then done", func(t *testing.T) {
		t.Parallel()
		d := newDedupe(t)
		if st := claim(t, d, "in:acct:1", "a", time.Minute); st != relay.ClaimWon {
			t.Fatalf("first claim = %v, want won", st)
		}
		for _, owner := range []string{"b", "a"} {
			if st := claim(t, d, "in:acct:1", owner, time.Minute); st != relay.ClaimHeld {
				t.Fatalf("claim by %q while a holds it = %v, want held", owner, st)
			}
		}
		if st := claim(t, d, "in:acct:2", "b", time.Minute); st != relay.ClaimWon {
			t.Fatalf("claim of another key = %v, want won", st)
		}
		if err := d.Finish(ctx, "in:acct:1", time.Minute); err != nil {
			t.Fatal(err)
		}
		if st := claim(t, d, "in:acct:1", "b", time.Minute); st != relay.ClaimDone {
			t.Fatalf("claim after finish = %v, want done", st)
		}
		// A done key is not freed by its former holder.
		if err := d.Release(ctx, "in:acct:1", "a"); err != nil {
			t.Fatal(err)
		}
		if st := claim(t, d, "in:acct:1", "b", time.Minute); st != relay.ClaimDone {
			t.Fatalf("claim after a release of a done key = %v, want done", st)
		}
	})

	t.Run("concurrent claims have one winner", func(t *testing.T) {
		t.Parallel()
		d := newDedupe(t)
		var wins atomic.Int32
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Go(func() {
				st, err := d.Claim(ctx, "race", strconv.Itoa(i), time.Minute)
				if err != nil {
					t.Error(err)
				}
				if st == relay.ClaimWon {
					wins.Add(1)
				}
			})
		}
		wg.Wait()
		if n := wins.Load(); n != 1 {
			t.Fatalf("%d claims won, want exactly 1", n)
		}
	})

	t.Run("a lease ends by itself", func(t *testing.T) {
		t.Parallel()
		d := newDedupe(t)
		const lease = 100 * time.Millisecond
		start := time.Now()
		if st := claim(t, d, "short", "a", lease); st != relay.ClaimWon {
			t.Fatalf("first claim = %v", st)
		}
		st := claim(t, d, "short", "b", lease)
		// On a loaded machine the second claim may come after expiry.
		if st == relay.ClaimWon && time.Since(start) < lease {
			t.Fatal("claim before the lease ended won")
		}
		waitPast(lease)
		if st := claim(t, d, "short", "c", time.Minute); st != relay.ClaimWon {
			t.Fatalf("claim after the lease = %v, want won", st)
		}
		// a's late release does not free c's claim.
		if err := d.Release(ctx, "short", "a"); err != nil {
			t.Fatal(err)
		}
		if st := claim(t, d, "short", "d", time.Minute); st != relay.ClaimHeld {
			t.Fatalf("claim after a stale release = %v, want held (by c)", st)
		}
	})

	t.Run("release by the holder frees the key", func(t *testing.T) {
		t.Parallel()
		d := newDedupe(t)
		claim(t, d, "k", "a", time.Minute)
		if err := d.Release(ctx, "k", "a"); err != nil {
			t.Fatal(err)
		}
		if st := claim(t, d, "k", "b", time.Minute); st != relay.ClaimWon {
			t.Fatalf("claim after release = %v, want won", st)
		}
		if err := d.Release(ctx, "never-claimed", "a"); err != nil {
			t.Fatalf("release of an unknown key: %v", err)
		}
	})

	t.Run("finish without a claim", func(t *testing.T) {
		t.Parallel()
		d := newDedupe(t)
		if err := d.Finish(ctx, "k", time.Minute); err != nil {
			t.Fatal(err)
		}
		if st := claim(t, d, "k", "a", time.Minute); st != relay.ClaimDone {
			t.Fatalf("claim after finish = %v, want done", st)
		}
	})

	t.Run("bad ttl", func(t *testing.T) {
		t.Parallel()
		d := newDedupe(t)
		for _, ttl := range []time.Duration{0, -time.Second, time.Microsecond} {
			if _, err := d.Claim(ctx, "k", "a", ttl); err == nil {
				t.Errorf("Claim with lease %v: no error", ttl)
			}
			if err := d.Finish(ctx, "k", ttl); err == nil {
				t.Errorf("Finish with ttl %v: no error", ttl)
			}
		}
	})
}

// A key a release before the two-state claim left ("1") reads as done,
// as it meant then.
func TestRedisDedupeReadsLegacyKeysAsDone(t *testing.T) {
	t.Parallel()
	rdb, prefix := testRedis(t)
	d := NewRedisDedupe(rdb, prefix)
	if err := rdb.Set(context.Background(), keyPrefix(prefix)+"dedupe:old", "1", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if st, err := d.Claim(context.Background(), "old", "a", time.Minute); err != nil || st != relay.ClaimDone {
		t.Fatalf("claim of a legacy key = %v, %v; want done", st, err)
	}
}

// TestMemoryDedupeSweeps checks that expired keys do not accumulate.
func TestMemoryDedupeSweeps(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := NewMemoryDedupe()
	for i := range 5000 {
		if _, err := d.Claim(ctx, strconv.Itoa(i), "a", time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if i%1000 == 999 {
			time.Sleep(2 * time.Millisecond)
		}
	}
	d.mu.Lock()
	n := len(d.keys)
	d.mu.Unlock()
	if n > 3*minSweep {
		t.Fatalf("%d keys held, want at most %d", n, 3*minSweep)
	}
}
