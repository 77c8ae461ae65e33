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
	keys      map[string]memoryClaim
	nextSweep int
}

// memoryClaim is one key: held by owner until expires, or done (owner
// "") until expires.
type memoryClaim struct {
	owner   string
	expires time.Time
}

// NewMemoryDedupe returns an empty in-process Dedupe.
func NewMemoryDedupe() *MemoryDedupe {
	return &MemoryDedupe{keys: make(map[string]memoryClaim), nextSweep: minSweep}
}

// Claim takes key for owner for lease unless it is held or done.
func (d *MemoryDedupe) Claim(ctx context.Context, key, owner string, lease time.Duration) (relay.ClaimState, error) {
	if err := checkTTL(lease); err != nil {
		return 0, fmt.Errorf("state: claim %q: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("state: claim %q: %w", key, err)
	}
	if owner == "" {
		return 0, fmt.Errorf("state: claim %q: no owner", key)
	}
	now := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	if c, ok := d.keys[key]; ok && now.Before(c.expires) {
		if c.owner == "" {
			return relay.ClaimDone, nil
		}
		return relay.ClaimHeld, nil
	}
	d.put(key, memoryClaim{owner: owner, expires: now.Add(lease)}, now)
	return relay.ClaimWon, nil
}

// Finish marks key done for ttl.
func (d *MemoryDedupe) Finish(ctx context.Context, key string, ttl time.Duration) error {
	if err := checkTTL(ttl); err != nil {
		return fmt.Errorf("state: finish %q: %w", key, err)
	}
	now := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.put(key, memoryClaim{expires: now.Add(ttl)}, now)
	return nil
}

// Release forgets key if owner still holds it.
func (d *MemoryDedupe) Release(ctx context.Context, key, owner string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c, ok := d.keys[key]; ok && c.owner != "" && c.owner == owner {
		delete(d.keys, key)
	}
	return nil
}

// put stores c under key; d.mu must be held.
func (d *MemoryDedupe) put(key string, c memoryClaim, now time.Time) {
	d.keys[key] = c
	if len(d.keys) >= d.nextSweep {
		d.sweep(now)
	}
}

// sweep drops expired keys; d.mu must be held.
func (d *MemoryDedupe) sweep(now time.Time) {
	for k, c := range d.keys {
		if !now.Before(c.expires) {
			delete(d.keys, k)
		}
	}
	d.nextSweep = max(2*len(d.keys), minSweep)
}
