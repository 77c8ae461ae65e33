package state

import (
	"context"
	"fmt"
	"math"

	"github.com/redis/go-redis/v9"

	"github.com/wechat-relay/wechat-relay/relay"
)

var (
	_ relay.Sequencer     = (*RedisSequencer)(nil)
	_ relay.BulkSequencer = (*RedisSequencer)(nil)
)

// nextScript increments a counter only if it exists. A plain INCRBY
// would create a forgotten counter at n and hand out numbers the archive
// already holds; returning -1 lets the caller reseed from the archive.
var nextScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then
	return -1
end
return redis.call('INCRBY', KEYS[1], ARGV[1])
`)

// RedisSequencer is a relay.Sequencer whose counters live in Redis, one
// integer key per conversation, without expiry.
type RedisSequencer struct {
	rdb    redis.UniversalClient
	prefix string
}

// NewRedisSequencer returns a Sequencer storing its counters in rdb under
// prefix (DefaultPrefix if empty).
func NewRedisSequencer(rdb redis.UniversalClient, prefix string) *RedisSequencer {
	return &RedisSequencer{rdb: rdb, prefix: keyPrefix(prefix) + "seq:"}
}

// Next reserves n numbers and returns the last. It returns
// relay.ErrUnseeded, unwrapped, when the counter does not exist.
func (s *RedisSequencer) Next(ctx context.Context, conv relay.ConversationID, n int) (uint64, error) {
	if n < 1 {
		return 0, fmt.Errorf("state: next sequence of %s: n = %d, want at least 1", conv, n)
	}
	v, err := nextScript.Run(ctx, s.rdb, []string{s.prefix + string(conv)}, n).Int64()
	if err != nil {
		return 0, fmt.Errorf("state: next sequence of %s in redis: %w", conv, err)
	}
	if v < 0 {
		return 0, relay.ErrUnseeded
	}
	return uint64(v), nil
}

// NextMany reserves counts[conv] numbers for every conv in one
// pipelined round trip of the same script as Next (relay.BulkSequencer).
func (s *RedisSequencer) NextMany(ctx context.Context, counts map[relay.ConversationID]int) (map[relay.ConversationID]uint64, []relay.ConversationID, error) {
	convs := make([]relay.ConversationID, 0, len(counts))
	for conv, n := range counts {
		if n < 1 {
			return nil, nil, fmt.Errorf("state: next sequence of %s: n = %d, want at least 1", conv, n)
		}
		convs = append(convs, conv)
	}
	cmds := make([]*redis.Cmd, len(convs))
	// The pipeline's own error is that of its first failed command; each
	// command's result is read below, so that what was reserved is used.
	_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, conv := range convs {
			cmds[i] = nextScript.Eval(ctx, p, []string{s.prefix + string(conv)}, counts[conv])
		}
		return nil
	})
	last := make(map[relay.ConversationID]uint64, len(convs))
	var unseeded []relay.ConversationID
	var firstErr error
	for i, cmd := range cmds {
		v, err := cmd.Int64()
		switch {
		case err != nil:
			if firstErr == nil {
				firstErr = fmt.Errorf("state: next sequence of %s in redis: %w", convs[i], err)
			}
		case v < 0:
			unseeded = append(unseeded, convs[i])
		default:
			last[convs[i]] = uint64(v)
		}
	}
	return last, unseeded, firstErr
}

// Seed creates the counter at floor with SET NX; an existing counter is
// left alone, whatever its value, so Seed never moves one backwards.
func (s *RedisSequencer) Seed(ctx context.Context, conv relay.ConversationID, floor uint64) error {
	if floor > math.MaxInt64 {
		return fmt.Errorf("state: seed sequence of %s: floor %d exceeds Redis' integer range", conv, floor)
	}
	if err := s.rdb.SetNX(ctx, s.prefix+string(conv), int64(floor), 0).Err(); err != nil {
		return fmt.Errorf("state: seed sequence of %s in redis: %w", conv, err)
	}
	return nil
}
