package state

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wechat-relay/wechat-relay/relay"
)

var _ relay.Dedupe = (*RedisDedupe)(nil)

// Values of a dedupe key: heldPrefix+owner while an attempt holds it,
// doneValue once done. legacyDone is what releases before the two-state
// claim wrote for every claim; such keys are read as done, as they were.
const (
	heldPrefix = "held:"
	doneValue  = "done"
	legacyDone = "1"
)

// releaseScript deletes a key only if it is still held by the owner
// given: after the lease ended another attempt may hold it, and once
// done it stays done.
var releaseScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("DEL", KEYS[1])
end
return 0`)

// RedisDedupe is a relay.Dedupe shared by all relay instances: a claim is
// a key set with NX and the lease as its TTL, so exactly one instance
// wins a retried callback, and Redis itself ends the claim of an attempt
// that died. Finish overwrites it with "done" for the dedupe TTL.
type RedisDedupe struct {
	rdb    redis.UniversalClient
	prefix string
}

// NewRedisDedupe returns a Dedupe storing its keys in rdb under prefix
// (DefaultPrefix if empty).
func NewRedisDedupe(rdb redis.UniversalClient, prefix string) *RedisDedupe {
	return &RedisDedupe{rdb: rdb, prefix: keyPrefix(prefix) + "dedupe:"}
}

// Claim sets the key with SET NX PX lease; when it exists, its value
// says whether it is held or done. lease must be at least a millisecond,
// Redis' resolution.
func (d *RedisDedupe) Claim(ctx context.Context, key, owner string, lease time.Duration) (relay.ClaimState, error) {
	if err := checkTTL(lease); err != nil {
		return 0, fmt.Errorf("state: claim %q: %w", key, err)
	}
	k := d.prefix + key
	// The key can expire between the SET and the GET; then try again.
	for range 3 {
		ok, err := d.rdb.SetNX(ctx, k, heldPrefix+owner, lease).Result()
		if err != nil {
			return 0, fmt.Errorf("state: claim %q in redis: %w", key, err)
		}
		if ok {
			return relay.ClaimWon, nil
		}
		v, err := d.rdb.Get(ctx, k).Result()
		switch {
		case errors.Is(err, redis.Nil):
			continue
		case err != nil:
			return 0, fmt.Errorf("state: reading claim %q in redis: %w", key, err)
		case v == doneValue || v == legacyDone:
			return relay.ClaimDone, nil
		default:
			return relay.ClaimHeld, nil
		}
	}
	return relay.ClaimHeld, nil
}

// Finish sets the key to done for ttl, whoever held it.
func (d *RedisDedupe) Finish(ctx context.Context, key string, ttl time.Duration) error {
	if err := checkTTL(ttl); err != nil {
		return fmt.Errorf("state: finish %q: %w", key, err)
	}
	if err := d.rdb.Set(ctx, d.prefix+key, doneValue, ttl).Err(); err != nil {
		return fmt.Errorf("state: finish %q in redis: %w", key, err)
	}
	return nil
}

// Release deletes the key if owner still holds it.
func (d *RedisDedupe) Release(ctx context.Context, key, owner string) error {
	if err := releaseScript.Run(ctx, d.rdb, []string{d.prefix + key}, heldPrefix+owner).Err(); err != nil {
		return fmt.Errorf("state: release %q in redis: %w", key, err)
	}
	return nil
}

// checkTTL refuses TTLs Redis cannot represent: a zero TTL would mean
// "forever" to some commands and an error to others.
func checkTTL(ttl time.Duration) error {
	if ttl < time.Millisecond {
		return fmt.Errorf("ttl %v is below the 1ms minimum", ttl)
	}
	return nil
}
