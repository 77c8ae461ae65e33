package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// StartRedisWith starts a private Redis server without persistence, like
// StartRedis, with extra command-line arguments (e.g. "--user", "relay",
// "on", ">pw", "~wr:*", "+@all" to add an ACL user).
func StartRedisWith(tb testing.TB, extra ...string) *Server {
	tb.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		missing(tb, "redis-server")
	}
	dir := tb.TempDir()
	port := FreePort(tb)
	args := []string{"--bind", "127.0.0.1", "--port", fmt.Sprint(port), "--dir", dir, "--save", "", "--appendonly", "no"}
	s := &Server{
		Addr: fmt.Sprintf("127.0.0.1:%d", port), tb: tb, dir: dir, name: "redis-server",
		args: append(args, extra...),
	}
	s.Start()
	tb.Cleanup(s.Stop)
	return s
}

// StartRedisReplica starts a private Redis server replicating master
// (with the same extra arguments as StartRedisWith) and waits until its
// link to the master is up and the initial sync is done.
func StartRedisReplica(tb testing.TB, master *Server, extra ...string) *Server {
	tb.Helper()
	host, port, _ := strings.Cut(master.Addr, ":")
	s := StartRedisWith(tb, append([]string{"--replicaof", host, port}, extra...)...)
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr})
	defer rdb.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		info, err := rdb.Info(ctx, "replication").Result()
		cancel()
		if err == nil && strings.Contains(info, "master_link_status:up") && strings.Contains(info, "master_sync_in_progress:0") {
			return s
		}
		if time.Now().After(deadline) {
			tb.Fatalf("replica %s of %s not in sync within 30s: %v\n%s", s.Addr, master.Addr, err, info)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// StartSentinel starts a private Redis Sentinel (redis-server --sentinel)
// that monitors master under the name masterName with a quorum of 1 and
// short timeouts (down after 1s). conf are extra lines of its
// configuration file, e.g. "requirepass secret" or
// "user relay on >pw +@all". Stopped by its pid when the test ends.
func StartSentinel(tb testing.TB, masterName string, master *Server, conf ...string) *Server {
	tb.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		missing(tb, "redis-server")
	}
	dir := tb.TempDir()
	port := FreePort(tb)
	host, mport, _ := strings.Cut(master.Addr, ":")
	lines := []string{
		"bind 127.0.0.1",
		fmt.Sprintf("port %d", port),
		"dir " + dir,
		fmt.Sprintf("sentinel monitor %s %s %s 1", masterName, host, mport),
		fmt.Sprintf("sentinel down-after-milliseconds %s 1000", masterName),
		fmt.Sprintf("sentinel failover-timeout %s 10000", masterName),
		fmt.Sprintf("sentinel parallel-syncs %s 1", masterName),
	}
	lines = append(lines, conf...)
	// Sentinel rewrites its configuration file: it must be writable.
	path := filepath.Join(dir, "sentinel.conf")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	s := &Server{
		Addr: fmt.Sprintf("127.0.0.1:%d", port), tb: tb, dir: dir, name: "redis-server",
		args: []string{path, "--sentinel"},
	}
	s.Start()
	tb.Cleanup(s.Stop)
	return s
}
