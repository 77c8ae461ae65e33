// Package testenv finds the ClickHouse and Redis servers the integration
// tests run against. The test command (.ci/test.sh) starts private ones
// and exports their addresses; on a laptop without them the tests skip,
// but under CI (CI=true) a missing service fails the test.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"testing"
	"time"
)

// Environment variables set by .ci/services.sh.
const (
	EnvClickHouse        = "WR_TEST_CLICKHOUSE"         // host:port, native protocol
	EnvRedis             = "WR_TEST_REDIS"              // host:port
	EnvClickHouseConfig  = "WR_TEST_CLICKHOUSE_CONFIG"  // config file, to restart it
	EnvClickHousePIDFile = "WR_TEST_CLICKHOUSE_PIDFILE" // pid file of the running server
)

// InCI reports whether the tests run under CI, where skipping is a failure.
func InCI() bool { return os.Getenv("CI") == "true" }

// ClickHouseAddr returns the address of the test ClickHouse server.
func ClickHouseAddr(tb testing.TB) string {
	tb.Helper()
	return service(tb, EnvClickHouse, "ClickHouse")
}

// RedisAddr returns the address of the test Redis server.
func RedisAddr(tb testing.TB) string {
	tb.Helper()
	return service(tb, EnvRedis, "Redis")
}

func service(tb testing.TB, env, name string) string {
	tb.Helper()
	addr := os.Getenv(env)
	if addr == "" {
		if InCI() {
			tb.Fatalf("%s is required under CI but %s is not set; run the suite with `make test`", name, env)
		}
		tb.Skipf("%s not available (%s unset); `make test` starts one", name, env)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		if InCI() {
			tb.Fatalf("%s at %s unreachable: %v", name, addr, err)
		}
		tb.Skipf("%s at %s unreachable: %v", name, addr, err)
	}
	c.Close()
	return addr
}

// UniqueName returns a fresh identifier (letters, digits, underscore) with
// the given prefix, for per-test databases and key prefixes.
func UniqueName(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + "_" + hex.EncodeToString(b)
}
