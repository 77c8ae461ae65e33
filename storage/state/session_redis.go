package state

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wechat-relay/wechat-relay/relay"
)

// getSessionScript reads a session and extends its idle expiry in one
// step (GETEX would need Redis 6.2).
var getSessionScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v and tonumber(ARGV[1]) > 0 then
	redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return v
`)

// loginFailedScript counts a failure; the count expires window after the
// first. At the limit it sets the lock and forgets the count. It returns the
// lock's remaining milliseconds, 0 if not locked. Both keys share a hash
// tag, so it runs on Redis Cluster too.
var loginFailedScript = redis.NewScript(`
local locked = redis.call('PTTL', KEYS[2])
if locked > 0 then
	return locked
end
local n = redis.call('INCR', KEYS[1])
if n == 1 then
	redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
if n >= tonumber(ARGV[2]) then
	redis.call('SET', KEYS[2], '1', 'PX', ARGV[3])
	redis.call('DEL', KEYS[1])
	return tonumber(ARGV[3])
end
return 0
`)

// markReadScript raises a read mark, never lowers it.
var markReadScript = redis.NewScript(`
local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if tonumber(ARGV[2]) > cur then
	redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
return 0
`)

// RedisSessions keeps the console's sessions, sign-in throttle and read
// marks in Redis, shared by every relay instance (keys in
// session_memory.go's comment). Sessions and throttles expire by
// themselves; read marks do not expire.
type RedisSessions struct {
	rdb    redis.UniversalClient
	prefix string
}

// NewRedisSessions returns console state stored in rdb under prefix
// (DefaultPrefix if empty).
func NewRedisSessions(rdb redis.UniversalClient, prefix string) *RedisSessions {
	return &RedisSessions{rdb: rdb, prefix: keyPrefix(prefix)}
}

func (s *RedisSessions) sessionKey(id string) string { return s.prefix + "session:" + id }
func (s *RedisSessions) failKey(id string) string    { return s.prefix + "login:{" + id + "}:fail" }
func (s *RedisSessions) lockKey(id string) string    { return s.prefix + "login:{" + id + "}:lock" }
func (s *RedisSessions) readKey(emp string) string   { return s.prefix + "read:" + emp }

// PutSession stores data under id until it has been idle for idle.
func (s *RedisSessions) PutSession(ctx context.Context, id string, data []byte, idle time.Duration) error {
	if err := checkTTL(idle); err != nil {
		return fmt.Errorf("state: put session: %w", err)
	}
	if id == "" {
		return errors.New("state: put session: empty id")
	}
	if err := s.rdb.Set(ctx, s.sessionKey(id), data, idle).Err(); err != nil {
		return fmt.Errorf("state: put session in redis: %w", err)
	}
	return nil
}

// GetSession returns the session stored under id, nil if there is none,
// and keeps it for another idle (idle 0: as long as it was).
func (s *RedisSessions) GetSession(ctx context.Context, id string, idle time.Duration) ([]byte, error) {
	if err := checkTTL(max(idle, time.Millisecond)); err != nil {
		return nil, fmt.Errorf("state: get session: %w", err)
	}
	v, err := getSessionScript.Run(ctx, s.rdb, []string{s.sessionKey(id)}, idle.Milliseconds()).Text()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state: get session from redis: %w", err)
	}
	return []byte(v), nil
}

// DeleteSession forgets the session stored under id, if any.
func (s *RedisSessions) DeleteSession(ctx context.Context, id string) error {
	if err := s.rdb.Del(ctx, s.sessionKey(id)).Err(); err != nil {
		return fmt.Errorf("state: delete session in redis: %w", err)
	}
	return nil
}

// LoginLocked returns how long sign-ins as id stay locked, 0 if they are
// not.
func (s *RedisSessions) LoginLocked(ctx context.Context, id string) (time.Duration, error) {
	d, err := s.rdb.PTTL(ctx, s.lockKey(id)).Result()
	if err != nil {
		return 0, fmt.Errorf("state: login lock of %q in redis: %w", id, err)
	}
	// go-redis reports a missing key (-2) and one without expiry (-1) as
	// negative durations; the lock always has one.
	return max(d, 0), nil
}

// LoginFailed counts a failed sign-in as id, as MemorySessions.LoginFailed
// does, in one script.
func (s *RedisSessions) LoginFailed(ctx context.Context, id string, limit int, window, lockout time.Duration) (time.Duration, error) {
	if err := checkThrottle(limit, window, lockout); err != nil {
		return 0, err
	}
	ms, err := loginFailedScript.Run(ctx, s.rdb, []string{s.failKey(id), s.lockKey(id)},
		window.Milliseconds(), limit, lockout.Milliseconds()).Int64()
	if err != nil {
		return 0, fmt.Errorf("state: counting a failed sign-in of %q in redis: %w", id, err)
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// LoginSucceeded forgets the failed sign-ins as id.
func (s *RedisSessions) LoginSucceeded(ctx context.Context, id string) error {
	if err := s.rdb.Del(ctx, s.failKey(id)).Err(); err != nil {
		return fmt.Errorf("state: clearing failed sign-ins of %q in redis: %w", id, err)
	}
	return nil
}

// MarkRead records that employee has read conv up to seq; marks only
// move forward.
func (s *RedisSessions) MarkRead(ctx context.Context, employee string, conv relay.ConversationID, seq uint64) error {
	if err := checkMark(seq); err != nil {
		return err
	}
	if err := markReadScript.Run(ctx, s.rdb, []string{s.readKey(employee)}, string(conv), seq).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("state: read mark of %s in redis: %w", conv, err)
	}
	return nil
}

// ReadMarks returns employee's marks of convs; conversations never
// marked are absent.
func (s *RedisSessions) ReadMarks(ctx context.Context, employee string, convs []relay.ConversationID) (map[relay.ConversationID]uint64, error) {
	out := make(map[relay.ConversationID]uint64, len(convs))
	if len(convs) == 0 {
		return out, nil
	}
	fields := make([]string, len(convs))
	for i, c := range convs {
		fields[i] = string(c)
	}
	vals, err := s.rdb.HMGet(ctx, s.readKey(employee), fields...).Result()
	if err != nil {
		return nil, fmt.Errorf("state: read marks from redis: %w", err)
	}
	for i, v := range vals {
		str, ok := v.(string)
		if !ok {
			continue
		}
		seq, err := strconv.ParseUint(str, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("state: read mark of %s in redis is %q: %w", convs[i], str, err)
		}
		out[convs[i]] = seq
	}
	return out, nil
}
