package state

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wechat-relay/wechat-relay/relay"
)

var _ relay.Dedupe = (*RedisDedupe)(nil)

// RedisDedupe is a relay.Dedupe shared by all relay instances: a claim is
// a key set with NX and a TTL, so exactly one instance wins a retried
// callback and Redis forgets it by itself.
type RedisDedupe struct {
	rdb    redis.UniversalClient
	prefix string
}

// NewRedisDedupe returns a Dedupe storing its keys in rdb under prefix
// (DefaultPrefix if empty).
func NewRedisDedupe(rdb redis.UniversalClient, prefix string) *RedisDedupe {
	return &RedisDedupe{rdb: rdb, prefix: keyPrefix(prefix) + "dedupe:"}
}

// Claim sets the key with SET NX PX ttl and reports whether it was new.
// ttl must be at least a millisecond, Redis' resolution.
func (d *RedisDedupe) Claim(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if err := checkTTL(ttl); err != nil {
		return false, fmt.Errorf("state: claim %q: %w", key, err)
	}
	ok, err := d.rdb.SetNX(ctx, d.prefix+key, 1, ttl).Result()
	if err != nil {
		return false, fmt.Errorf("state: claim %q in redis: %w", key, err)
	}
	return ok, nil
}

// Release deletes the key, so the next Claim of it succeeds.
func (d *RedisDedupe) Release(ctx context.Context, key string) error {
	if err := d.rdb.Del(ctx, d.prefix+key).Err(); err != nil {
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
