package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisOptions are the go-redis options the relay is expected to use:
// ctx deadlines bind, and every attempt is short.
func RedisOptions(addr string) *redis.Options {
	return &redis.Options{
		Addr:                  addr,
		ContextTimeoutEnabled: true,
		DialTimeout:           time.Second,
		ReadTimeout:           time.Second,
		WriteTimeout:          time.Second,
	}
}

// RedisClient returns a client, with RedisOptions, of the shared test
// Redis; it is closed when the test ends.
func RedisClient(tb testing.TB) *redis.Client {
	tb.Helper()
	rdb := redis.NewClient(RedisOptions(RedisAddr(tb)))
	tb.Cleanup(func() { rdb.Close() })
	return rdb
}

// For the tests of what the Redis-backed calls do while Redis is down
// (storage/bus, storage/state): a private Redis the test kills or pauses,
// and a check that every call then fails within its ctx deadline.

// DownDeadline is the ctx deadline given to each call while Redis is
// unavailable; DownSlack is how late past it an error may come back.
const (
	DownDeadline = 300 * time.Millisecond
	DownSlack    = time.Second
)

// RedisToTakeDown starts a private Redis server for the test (which may
// kill, pause and restart it) and returns it with a client that leaves
// go-redis' socket timeouts at their 5 s defaults, so that a call failing
// within DownDeadline+DownSlack shows that the ctx deadline, not a socket
// timeout, bounded it.
func RedisToTakeDown(tb testing.TB) (*Server, *redis.Client) {
	tb.Helper()
	srv := StartRedis(tb)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true})
	tb.Cleanup(func() { rdb.Close() })
	return srv, rdb
}

// FailPromptly makes the Redis-backed call named name with a ctx of
// DownDeadline while Redis is down (how: "killed", "hung") and fails the
// test if it returns no error or takes longer than DownDeadline+DownSlack.
func FailPromptly(tb testing.TB, how, name string, call func(ctx context.Context) error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), DownDeadline)
	start := time.Now()
	err := call(ctx)
	took := time.Since(start)
	cancel()
	tb.Logf("%s with Redis %s: %v after %v", name, how, err, took.Round(time.Millisecond))
	if err == nil {
		tb.Errorf("%s with Redis %s: no error", name, how)
	}
	if took > DownDeadline+DownSlack {
		tb.Errorf("%s with Redis %s took %v, want at most %v", name, how, took, DownDeadline+DownSlack)
	}
}
