package state

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wechat-relay/wechat-relay/relay"
)

var _ relay.Sequencer = (*RedisSequencer)(nil)

// numberScript numbers ids in one conversation for a writer (ARGV[2]):
// an id it holds keeps its number; an id another writer holds is
// answered with that writer, unless the caller names that writer as
// dead for it (the id's second argument): then it is taken over; other
// ids take the next numbers. The answer is a pair per id: the number and
// the other writer holding it ("" when it is the caller's). It never
// creates the counter: a plain INCR would create a forgotten counter at
// 1 and hand out numbers the archive already holds; -1 lets the caller
// seed it from the archive.
var numberScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then
	return -1
end
local me = ARGV[2]
local now = tonumber(ARGV[3])
local out = {}
for i = 4, #ARGV, 2 do
	local id, dead = ARGV[i], ARGV[i + 1]
	local done = redis.call('ZSCORE', KEYS[3], id)
	if done and tonumber(done) > now then
		out[#out + 1] = 0
		out[#out + 1] = '` + relay.HeldArchived + `'
	else
		local v = redis.call('HGET', KEYS[2], id)
		local n, owner
		if v then
			n, owner = string.match(v, '^(%d+) (.*)$')
		end
		if not n then
			n = redis.call('INCR', KEYS[1])
			owner = me
			redis.call('HSET', KEYS[2], id, n .. ' ' .. me)
		elseif owner ~= me and owner == dead then
			owner = me
			redis.call('HSET', KEYS[2], id, n .. ' ' .. me)
		end
		out[#out + 1] = tonumber(n)
		if owner == me then
			out[#out + 1] = ''
		else
			out[#out + 1] = owner
		end
	end
end
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return out
`)

// RedisSequencer is a relay.Sequencer in Redis: per conversation an
// integer counter without expiry, and a hash of the ids numbered and not
// yet released (id → "<number> <writer>"), which expires a day after it
// was last written (only a writer that died between numbering and
// releasing leaves anything in it).
type RedisSequencer struct {
	rdb    redis.UniversalClient
	prefix string
	idsTTL time.Duration
}

// NewRedisSequencer returns a Sequencer storing its counters in rdb under
// prefix (DefaultPrefix if empty).
func NewRedisSequencer(rdb redis.UniversalClient, prefix string) *RedisSequencer {
	return &RedisSequencer{rdb: rdb, prefix: keyPrefix(prefix), idsTTL: 24 * time.Hour}
}

// keys are conv's counter and its hash of numbered ids. The hash's name
// carries the counter's name as its hash tag, so both are in one slot of
// a Redis Cluster (the script touches both).
func (s *RedisSequencer) keys(conv relay.ConversationID) (counter, ids, done string) {
	counter = s.prefix + "seq:" + string(conv)
	return counter, s.prefix + "seqids:{" + counter + "}", s.prefix + "seqdone:{" + counter + "}"
}

// Number implements relay.Sequencer: one script per conversation, all in
// one pipelined round trip.
func (s *RedisSequencer) Number(ctx context.Context, writer string, ids map[relay.ConversationID][]string, abandoned map[string]string) (relay.Numbering, error) {
	convs := make([]relay.ConversationID, 0, len(ids))
	for conv, list := range ids {
		if len(list) > 0 {
			convs = append(convs, conv)
		}
	}
	cmds := make([]*redis.Cmd, len(convs))
	// The pipeline's own error is that of its first failed command; each
	// command's result is read below.
	_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, conv := range convs {
			counter, hash, done := s.keys(conv)
			args := make([]any, 0, 2*len(ids[conv])+3)
			args = append(args, s.idsTTL.Milliseconds(), writer, time.Now().UnixMilli())
			for _, id := range ids[conv] {
				args = append(args, id, abandoned[id])
			}
			cmds[i] = numberScript.Eval(ctx, p, []string{counter, hash, done}, args...)
		}
		return nil
	})
	out := relay.Numbering{Nums: map[string]uint64{}, Held: map[string]string{}}
	for i, cmd := range cmds {
		conv := convs[i]
		v, err := cmd.Result()
		if err != nil {
			return relay.Numbering{}, fmt.Errorf("state: numbering %d messages of %s in redis: %w", len(ids[conv]), conv, err)
		}
		switch v := v.(type) {
		case int64: // -1: no counter
			out.Unseeded = append(out.Unseeded, conv)
		case []any:
			if len(v) != 2*len(ids[conv]) {
				return relay.Numbering{}, fmt.Errorf("state: numbering messages of %s in redis: %d values for %d ids", conv, len(v), len(ids[conv]))
			}
			for j, id := range ids[conv] {
				n, ok := v[2*j].(int64)
				owner, _ := v[2*j+1].(string)
				if !ok || n < 0 || n == 0 && owner != relay.HeldArchived {
					return relay.Numbering{}, fmt.Errorf("state: numbering messages of %s in redis: %v is not a number", conv, v[2*j])
				}
				if owner != "" {
					out.Held[id] = owner
				} else {
					out.Nums[id] = uint64(n)
				}
			}
		default:
			return relay.Numbering{}, fmt.Errorf("state: numbering messages of %s in redis: unexpected answer %T", conv, v)
		}
	}
	return out, nil
}

// Release implements relay.Sequencer, in one pipelined round trip: the
// ids leave the hash of held numbers and enter, for relay.ArchivedGrace,
// the sorted set of ids just archived (score: until when), from which
// what is past is removed on the way.
func (s *RedisSequencer) Release(ctx context.Context, ids map[relay.ConversationID][]string) error {
	now := time.Now()
	until := float64(now.Add(relay.ArchivedGrace).UnixMilli())
	pipe := s.rdb.Pipeline()
	for conv, list := range ids {
		if len(list) == 0 {
			continue
		}
		_, hash, done := s.keys(conv)
		pipe.HDel(ctx, hash, list...)
		zs := make([]redis.Z, len(list))
		for i, id := range list {
			zs[i] = redis.Z{Score: until, Member: id}
		}
		pipe.ZAdd(ctx, done, zs...)
		pipe.ZRemRangeByScore(ctx, done, "-inf", strconv.FormatInt(now.UnixMilli(), 10))
		pipe.PExpire(ctx, done, relay.ArchivedGrace)
	}
	if pipe.Len() == 0 {
		return nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("state: releasing numbered ids in redis: %w", err)
	}
	return nil
}

// Seed creates the counter at floor with SET NX; an existing counter is
// left alone, whatever its value, so Seed never moves one backwards.
func (s *RedisSequencer) Seed(ctx context.Context, conv relay.ConversationID, floor uint64) error {
	if floor > math.MaxInt64 {
		return fmt.Errorf("state: seed sequence of %s: floor %d exceeds Redis' integer range", conv, floor)
	}
	counter, _, _ := s.keys(conv)
	if err := s.rdb.SetNX(ctx, counter, int64(floor), 0).Err(); err != nil {
		return fmt.Errorf("state: seed sequence of %s in redis: %w", conv, err)
	}
	return nil
}
