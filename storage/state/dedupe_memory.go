package state

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
)

var _ relay.Dedupe = (*MemoryDedupe)(nil)

// minSweep is the map size below which MemoryDedupe does not bother
// sweeping expired keys.
const minSweep = 1024

// MemoryDedupe is a relay.Dedupe for a single process. Expired keys are
// swept lazily: a claimed key is checked when it is seen again, and the
// whole map is swept whenever it has doubled since the last sweep, so
// memory stays proportional to the keys still alive without a goroutine.
type MemoryDedupe struct {
	mu        sync.Mutex
	expires   map[string]time.Time
	nextSweep int
}

// NewMemoryDedupe returns an empty in-process Dedupe.
func NewMemoryDedupe() *MemoryDedupe {
	return &MemoryDedupe{expires: make(map[string]time.Time), nextSweep: minSweep}
}

// Claim records key until ttl has passed and reports whether it was new
// (or had expired).
func (d *MemoryDedupe) Claim(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if err := checkTTL(ttl); err != nil {
		return false, fmt.Errorf("state: claim %q: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("state: claim %q: %w", key, err)
	}
	now := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	if exp, ok := d.expires[key]; ok && now.Before(exp) {
		return false, nil
	}
	d.expires[key] = now.Add(ttl)
	if len(d.expires) >= d.nextSweep {
		d.sweep(now)
	}
	return true, nil
}

// Release forgets key.
func (d *MemoryDedupe) Release(ctx context.Context, key string) error {
	d.mu.Lock()
	delete(d.expires, key)
	d.mu.Unlock()
	return nil
}

// sweep drops expired keys; d.mu must be held.
func (d *MemoryDedupe) sweep(now time.Time) {
	for k, exp := range d.expires {
		if !now.Before(exp) {
			delete(d.expires, k)
		}
	}
	d.nextSweep = max(2*len(d.expires), minSweep)
}
