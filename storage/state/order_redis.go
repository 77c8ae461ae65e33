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
var takeScript = redis.NewScript(`
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
local t = tonumber(ARGV[3])
if t <= last then
	t = last + 1
end
redis.call('SET', KEYS[1], string.format('%d', t), 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], string.format('%d', t), ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return t
`)

// lineRead is how many places of one line Lines reads: the places that
// matter are the first ones, and a line is seldom longer than a few.
const lineRead = 256

// RedisOrder is a relay.AcceptOrder in Redis: per conversation its last
// ticket and a sorted set of the places in line (score: ticket; member:
// when the place was taken, in Unix milliseconds, the writer and the
// message id, separated by spaces); one hash of the writers alive (writer
// → until, Unix milliseconds); and one epoch key, created with a random
// value when missing: if Redis loses its data, the epoch changes with it.
// Both keys of a conversation share a hash tag, for Redis Cluster, and
// expire a day after the conversation's last place was taken: a place
// left behind by a crash is ignored after relay.Config.OrderWait
// anyway.
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

func (o *RedisOrder) keys(conv relay.ConversationID) (counter, line string) {
	base := o.prefix + "{" + string(conv) + "}"
	return base + ":n", base
}

func placeMember(p relay.Place) string {
	return strconv.FormatInt(p.At.UnixMilli(), 10) + " " + p.Writer + " " + p.ID
}

// parseMember reads a member back; ok is false for one that is not a
// place.
func parseMember(conv relay.ConversationID, member string, score float64) (relay.Place, bool) {
	parts := strings.SplitN(member, " ", 3)
	ms, err := strconv.ParseInt(parts[0], 10, 64)
	if len(parts) != 3 || err != nil || parts[2] == "" {
		return relay.Place{}, false
	}
	return relay.Place{Conv: conv, ID: parts[2], Writer: parts[1], Ticket: uint64(score), At: time.UnixMilli(ms)}, true
}

// Take implements relay.AcceptOrder.
func (o *RedisOrder) Take(ctx context.Context, p relay.Place) (uint64, error) {
	counter, line := o.keys(p.Conv)
	t, err := takeScript.Run(ctx, o.rdb, []string{counter, line}, placeMember(p), o.ttl.Milliseconds(), p.At.UnixMicro()).Int64()
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

// Lines implements relay.AcceptOrder, in one pipelined round trip.
// Members that are not places (written by hand, or by a relay before
// places named their writer) are skipped.
func (o *RedisOrder) Lines(ctx context.Context, places []relay.Place) (relay.Lines, error) {
	byConv := map[relay.ConversationID][]redis.Z{}
	var convs []relay.ConversationID
	for _, p := range places {
		if _, ok := byConv[p.Conv]; !ok {
			convs = append(convs, p.Conv)
		}
		byConv[p.Conv] = append(byConv[p.Conv], redis.Z{Score: float64(p.Ticket), Member: placeMember(p)})
	}
	pipe := o.rdb.Pipeline()
	pipe.SetNX(ctx, o.epoch, randomEpoch(), 0)
	epoch := pipe.Get(ctx, o.epoch)
	alive := pipe.HGetAll(ctx, o.alive)
	cmds := make([]*redis.ZSliceCmd, len(convs))
	for i, conv := range convs {
		_, line := o.keys(conv)
		pipe.ZAddNX(ctx, line, byConv[conv]...)
		pipe.PExpire(ctx, line, o.ttl)
		cmds[i] = pipe.ZRangeWithScores(ctx, line, 0, lineRead-1)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return relay.Lines{}, fmt.Errorf("state: reading %d conversations' lines in redis: %w", len(convs), err)
	}
	out := relay.Lines{Conv: make(map[relay.ConversationID][]relay.Place, len(convs)), Alive: map[string]time.Time{}, Epoch: epoch.Val()}
	for i, conv := range convs {
		for _, z := range cmds[i].Val() {
			member, _ := z.Member.(string)
			if p, ok := parseMember(conv, member, z.Score); ok {
				out.Conv[conv] = append(out.Conv[conv], p)
			}
		}
	}
	for writer, until := range alive.Val() {
		if ms, err := strconv.ParseInt(until, 10, 64); err == nil {
			out.Alive[writer] = time.UnixMilli(ms)
		}
	}
	return out, nil
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
		_, line := o.keys(p.Conv)
		pipe.ZRem(ctx, line, placeMember(p))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("state: leaving %d places in line in redis: %w", len(places), err)
	}
	return nil
}
