package state

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// testRedis returns a client of the shared test Redis and a key prefix of
// its own; the keys under the prefix are deleted when the test ends.
func testRedis(t testing.TB) (*redis.Client, string) {
	t.Helper()
	rdb := testenv.RedisClient(t) // closed after the keys are deleted
	prefix := testenv.UniqueName("wrtest") + ":"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		iter := rdb.Scan(ctx, 0, prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Logf("cleaning up keys under %s: %v", prefix, err)
		}
	})
	return rdb, prefix
}

// waitPast sleeps until d has passed, plus a margin for Redis' expiry
// clock.
func waitPast(d time.Duration) { time.Sleep(d + 30*time.Millisecond) }
