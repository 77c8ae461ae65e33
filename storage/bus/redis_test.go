package bus

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// clientOptions are the go-redis options the relay is expected to use:
// ctx deadlines bind, and every attempt is short.
func clientOptions(addr string) *redis.Options {
	return &redis.Options{
		Addr:                  addr,
		ContextTimeoutEnabled: true,
		DialTimeout:           time.Second,
		ReadTimeout:           time.Second,
		WriteTimeout:          time.Second,
	}
}

// newTestClient returns a client of the shared test Redis, closed when
// the test ends. The bus leaves no keys behind: channels are not keys.
func newTestClient(t testing.TB) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(clientOptions(testenv.RedisAddr(t)))
	t.Cleanup(func() { rdb.Close() })
	return rdb
}
