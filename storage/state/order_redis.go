package state

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wechat-relay/wechat-relay/relay"
)

var _ relay.AcceptOrder = (*RedisOrder)(nil)

// takeScript gives a place its ticket and puts it in line in one step,
// so that tickets in a line are taken in the order they were handed
// out. A ticket is the acceptance time in microseconds, or one more
// than the conversation's last ticket if that is higher (relay.AcceptOrder).
// A message already in line (a retry, accepted again) keeps its place,
// its ticket and its owner: the place is the first copy's, and an
// attempt whose append fails forgets only a place it owns.
var takeScript = redis.NewScript(`
local cur = redis.call('ZSCORE', KEYS[2], ARGV[1])
if cur then
	return tonumber(cur)
end
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
local t = tonumber(ARGV[3])
if t <= last then
	t = last + 1
end
redis.call('SET', KEYS[1], string.format('%d', t), 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], string.format('%d', t), ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('PEXPIRE', KEYS[3], ARGV[2])
return t
`)

// putBackScript puts a conversation's places back in line where they
// are missing, and makes the calling process their owner (a restarted
// process takes over the places of the spool it replays: one place per
// message, never a stale copy left in front of the line).
// KEYS: line, owners. ARGV: ttl ms, then per place its ticket, id and
// owner ("<ms> <process>").
var putBackScript = redis.NewScript(`
for i = 2, #ARGV, 3 do
	local id = ARGV[i+1]
	if not redis.call('ZSCORE', KEYS[1], id) then
		redis.call('ZADD', KEYS[1], ARGV[i], id)
	end
	if redis.call('HGET', KEYS[2], id) ~= ARGV[i+2] then
		redis.call('HSET', KEYS[2], id, ARGV[i+2])
	end
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return 0
`)

// linesScript returns the places of a conversation's line up to a
// ticket, lowest first, but those of the messages given, at most
// foreignRead of them: a flat list of id, ticket and owner per place. A
// writer needs no more: the first of them that still counts holds its
// later messages back.
// KEYS: line, owners. ARGV: the highest ticket, then the ids given.
var linesScript = redis.NewScript(`
local mine = {}
for i = 2, #ARGV do
	mine[ARGV[i]] = true
end
local out = {}
local offset = 0
while true do
	local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', offset, 256)
	for i = 1, #ids, 2 do
		if not mine[ids[i]] then
			out[#out+1] = ids[i]
			out[#out+1] = ids[i+1]
			out[#out+1] = redis.call('HGET', KEYS[2], ids[i]) or ''
			if #out == 3 * ` + strconv.Itoa(foreignRead) + ` then
				return out
			end
		end
	end
	if #ids < 512 then
		return out
	end
	offset = offset + 256
end
`)

// forgetScript takes places out of a conversation's line if their
// owner is still the one given. KEYS: line, owners. ARGV: id, owner, ...
var forgetScript = redis.NewScript(`
for i = 1, #ARGV, 2 do
	if redis.call('HGET', KEYS[2], ARGV[i]) == ARGV[i+1] then
		redis.call('ZREM', KEYS[1], ARGV[i])
		redis.call('HDEL', KEYS[2], ARGV[i])
	end
end
return 0
`)

// foreignRead is how many places of other messages Lines returns per
// line at most; a line with more says where it was cut.
const foreignRead = 64

// RedisOrder is a relay.AcceptOrder in Redis: per conversation its last
// ticket, a sorted set of the places in line (score: ticket; member: the
// message id) and a hash of their owners (message id → when the place
// was taken, in Unix milliseconds, a space, and the process); one hash of
// the writers alive (writer → until, Unix milliseconds); and one epoch
// key, created with a random value when missing: if Redis loses its
// data, the epoch changes with it. The keys of a conversation share a
// hash tag, for Redis Cluster, and expire a day after the conversation's
// last place was taken: a place left behind by a crash is ignored after
// relay.Config.OrderWait anyway.
type RedisOrder struct {
	rdb    redis.UniversalClient
	prefix string
	epoch  string // the epoch key
	alive  string // the hash of writers alive
	ttl    time.Duration
}

// NewRedisOrder returns an AcceptOrder keeping its lines in rdb under
// prefix (DefaultPrefix if empty).
func NewRedisOrder(rdb redis.UniversalClient, prefix string) *RedisOrder {
	return &RedisOrder{rdb: rdb, prefix: keyPrefix(prefix) + "line:", epoch: keyPrefix(prefix) + "line-epoch",
		alive: keyPrefix(prefix) + "line-alive", ttl: 24 * time.Hour}
}

func (o *RedisOrder) keys(conv relay.ConversationID) (counter, line, owners string) {
	base := o.prefix + "{" + string(conv) + "}"
	return base + ":n", base, base + ":who"
}

func placeOwner(p relay.Place) string {
	return strconv.FormatInt(p.At.UnixMilli(), 10) + " " + p.Writer
}

// parsePlace reads a place back; ok is false for one without an owner
// (written by hand, or by a relay before places had owners).
func parsePlace(conv relay.ConversationID, id, ticket, owner string) (relay.Place, bool) {
	msStr, writer, found := strings.Cut(owner, " ")
	ms, err := strconv.ParseInt(msStr, 10, 64)
	score, err2 := strconv.ParseFloat(ticket, 64)
	if !found || err != nil || err2 != nil || id == "" || writer == "" {
		return relay.Place{}, false
	}
	return relay.Place{Conv: conv, ID: id, Writer: writer, Ticket: uint64(score), At: time.UnixMilli(ms)}, true
}

// Take implements relay.AcceptOrder.
func (o *RedisOrder) Take(ctx context.Context, p relay.Place) (uint64, error) {
	counter, line, owners := o.keys(p.Conv)
	t, err := takeScript.Run(ctx, o.rdb, []string{counter, line, owners}, p.ID, o.ttl.Milliseconds(), p.At.UnixMicro(), placeOwner(p)).Int64()
	if err != nil {
		return 0, fmt.Errorf("state: taking a place in line for %s in redis: %w", p.ID, err)
	}
	return uint64(t), nil
}

// Alive implements relay.AcceptOrder, in one pipelined round trip.
func (o *RedisOrder) Alive(ctx context.Context, writer string, until time.Time) (string, error) {
	pipe := o.rdb.Pipeline()
	pipe.HSet(ctx, o.alive, writer, until.UnixMilli())
	pipe.SetNX(ctx, o.epoch, randomEpoch(), 0)
	epoch := pipe.Get(ctx, o.epoch)
	if _, err := pipe.Exec(ctx); err != nil {
		return "", fmt.Errorf("state: saying %s is alive in redis: %w", writer, err)
	}
	return epoch.Val(), nil
}

// Lines implements relay.AcceptOrder, in one pipelined round trip: one
// script per conversation, which returns only the places of messages
// not given (a writer skips its own), at most foreignRead of them.
// Places without an owner are skipped.
func (o *RedisOrder) Lines(ctx context.Context, places []relay.Place) (relay.Lines, error) {
	args := map[relay.ConversationID][]any{}
	var convs []relay.ConversationID
	for _, p := range places {
		a, ok := args[p.Conv]
		if !ok {
			convs = append(convs, p.Conv)
			a = []any{uint64(0)}
		}
		a[0] = max(a[0].(uint64), p.Ticket)
		args[p.Conv] = append(a, p.ID)
	}
	pipe := o.rdb.Pipeline()
	pipe.SetNX(ctx, o.epoch, randomEpoch(), 0)
	epoch := pipe.Get(ctx, o.epoch)
	alive := pipe.HGetAll(ctx, o.alive)
	cmds := make([]*redis.Cmd, len(convs))
	for i, conv := range convs {
		_, line, owners := o.keys(conv)
		cmds[i] = linesScript.Eval(ctx, pipe, []string{line, owners}, args[conv]...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return relay.Lines{}, fmt.Errorf("state: reading %d conversations' lines in redis: %w", len(convs), err)
	}
	out := relay.Lines{Conv: make(map[relay.ConversationID][]relay.Place, len(convs)), Alive: map[string]time.Time{}, Epoch: epoch.Val()}
	for i, conv := range convs {
		flat, err := cmds[i].StringSlice()
		if err != nil {
			return relay.Lines{}, fmt.Errorf("state: reading the line of %s in redis: %w", conv, err)
		}
		for j := 0; j+2 < len(flat); j += 3 {
			if p, ok := parsePlace(conv, flat[j], flat[j+1], flat[j+2]); ok {
				out.Conv[conv] = append(out.Conv[conv], p)
			}
		}
		if len(flat) == 3*foreignRead {
			if out.Cut == nil {
				out.Cut = map[relay.ConversationID]uint64{}
			}
			score, _ := strconv.ParseFloat(flat[len(flat)-2], 64)
			out.Cut[conv] = uint64(score)
		}
	}
	for writer, until := range alive.Val() {
		if ms, err := strconv.ParseInt(until, 10, 64); err == nil {
			out.Alive[writer] = time.UnixMilli(ms)
		}
	}
	return out, nil
}

// PutBack implements relay.AcceptOrder, in one pipelined round trip: one
// script per conversation.
func (o *RedisOrder) PutBack(ctx context.Context, places []relay.Place) error {
	args := map[relay.ConversationID][]any{}
	for _, p := range places {
		if _, ok := args[p.Conv]; !ok {
			args[p.Conv] = []any{o.ttl.Milliseconds()}
		}
		args[p.Conv] = append(args[p.Conv], p.Ticket, p.ID, placeOwner(p))
	}
	pipe := o.rdb.Pipeline()
	for conv, a := range args {
		_, line, owners := o.keys(conv)
		putBackScript.Eval(ctx, pipe, []string{line, owners}, a...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("state: putting %d places back in line in redis: %w", len(places), err)
	}
	return nil
}

func randomEpoch() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Leave implements relay.AcceptOrder, in one pipelined round trip.
func (o *RedisOrder) Leave(ctx context.Context, places []relay.Place) error {
	pipe := o.rdb.Pipeline()
	for _, p := range places {
		_, line, owners := o.keys(p.Conv)
		pipe.ZRem(ctx, line, p.ID)
		pipe.HDel(ctx, owners, p.ID)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("state: leaving %d places in line in redis: %w", len(places), err)
	}
	return nil
}

// Forget implements relay.AcceptOrder, in one pipelined round trip: one
// script per conversation.
func (o *RedisOrder) Forget(ctx context.Context, places []relay.Place) error {
	args := map[relay.ConversationID][]any{}
	for _, p := range places {
		args[p.Conv] = append(args[p.Conv], p.ID, placeOwner(p))
	}
	pipe := o.rdb.Pipeline()
	for conv, a := range args {
		_, line, owners := o.keys(conv)
		forgetScript.Eval(ctx, pipe, []string{line, owners}, a...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("state: forgetting %d places in line in redis: %w", len(places), err)
	}
	return nil
}
