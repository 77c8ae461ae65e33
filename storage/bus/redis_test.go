package bus

import (
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// newTestClient returns a client of the shared test Redis, closed when
// the test ends. The bus leaves no keys behind: channels are not keys.
func newTestClient(t testing.TB) *redis.Client {
	t.Helper()
	return testenv.RedisClient(t)
}
