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
// when the place was taken, in Unix milliseconds, a space, the message
// id), and one epoch key for all, created with a random value when
// missing: if Redis loses its data, the epoch changes with it.
// Both keys of a conversation share a hash tag, for Redis Cluster, and
// expire a day after the conversation's last place was taken: a place
// left behind by a crash is ignored after relay.Config.OrderWait
// anyway.
type RedisOrder struct {
	rdb    redis.UniversalClient
	prefix string
	epoch  string // the epoch key
	ttl    time.Duration
}

// NewRedisOrder returns an AcceptOrder keeping its lines in rdb under
// prefix (DefaultPrefix if empty).
func NewRedisOrder(rdb redis.UniversalClient, prefix string) *RedisOrder {
	return &RedisOrder{rdb: rdb, prefix: keyPrefix(prefix) + "line:", epoch: keyPrefix(prefix) + "line-epoch", ttl: 24 * time.Hour}
}

func (o *RedisOrder) keys(conv relay.ConversationID) (counter, line string) {
	base := o.prefix + "{" + string(conv) + "}"
	return base + ":n", base
}

func placeMember(id string, at time.Time) string {
	return strconv.FormatInt(at.UnixMilli(), 10) + " " + id
}

// Take implements relay.AcceptOrder.
func (o *RedisOrder) Take(ctx context.Context, conv relay.ConversationID, id string, at time.Time) (uint64, error) {
	counter, line := o.keys(conv)
	t, err := takeScript.Run(ctx, o.rdb, []string{counter, line}, placeMember(id, at), o.ttl.Milliseconds(), at.UnixMicro()).Int64()
	if err != nil {
		return 0, fmt.Errorf("state: taking a place in line for %s in redis: %w", id, err)
	}
	return uint64(t), nil
}

// Lines implements relay.AcceptOrder, in one pipelined round trip.
// Members that are not places (written by hand?) are skipped.
func (o *RedisOrder) Lines(ctx context.Context, places []relay.Place) (map[relay.ConversationID][]relay.Place, string, error) {
	byConv := map[relay.ConversationID][]redis.Z{}
	var convs []relay.ConversationID
	for _, p := range places {
		if _, ok := byConv[p.Conv]; !ok {
			convs = append(convs, p.Conv)
		}
		byConv[p.Conv] = append(byConv[p.Conv], redis.Z{Score: float64(p.Ticket), Member: placeMember(p.ID, p.At)})
	}
	pipe := o.rdb.Pipeline()
	pipe.SetNX(ctx, o.epoch, randomEpoch(), 0)
	epoch := pipe.Get(ctx, o.epoch)
	cmds := make([]*redis.ZSliceCmd, len(convs))
	for i, conv := range convs {
		_, line := o.keys(conv)
		pipe.ZAddNX(ctx, line, byConv[conv]...)
		pipe.PExpire(ctx, line, o.ttl)
		cmds[i] = pipe.ZRangeWithScores(ctx, line, 0, lineRead-1)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, "", fmt.Errorf("state: reading %d conversations' lines in redis: %w", len(convs), err)
	}
	out := make(map[relay.ConversationID][]relay.Place, len(convs))
	for i, conv := range convs {
		for _, z := range cmds[i].Val() {
			member, _ := z.Member.(string)
			ms, id, ok := strings.Cut(member, " ")
			at, err := strconv.ParseInt(ms, 10, 64)
			if !ok || err != nil {
				continue
			}
			out[conv] = append(out[conv], relay.Place{Conv: conv, ID: id, Ticket: uint64(z.Score), At: time.UnixMilli(at)})
		}
	}
	return out, epoch.Val(), nil
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
		pipe.ZRem(ctx, line, placeMember(p.ID, p.At))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("state: leaving %d places in line in redis: %w", len(places), err)
	}
	return nil
}
