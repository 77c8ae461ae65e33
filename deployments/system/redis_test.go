package system

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wechat-relay/wechat-relay/configs"
	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/storage/bus"
	"github.com/wechat-relay/wechat-relay/storage/state"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// aclUserArgs adds, on the command line of a test Redis, the ACL user
// the relay is meant to run as: only keys and channels under prefix.
func aclUserArgs(user, password, prefix string) []string {
	return []string{"--user", user, "on", ">" + password, "~" + prefix + "*", "&" + prefix + "*", "+@all"}
}

// redisConfig loads a configuration whose storage section is yaml (the
// rest: defaults), with env applied as the binary would.
func redisConfig(t *testing.T, yaml string, env map[string]string) *configs.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "relay.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := configs.Load(path, envMap(env))
	if err != nil {
		t.Fatal(err)
	}
	// Only storage.redis is given: the rest of the configuration is
	// allowed to be incomplete.
	if err := cfg.Validate(); err != nil && strings.Contains(err.Error(), "storage.redis") {
		t.Fatalf("storage.redis invalid: %v", err)
	}
	return cfg
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestRedisACLUser(t *testing.T) {
	const prefix = "wr:acl:"
	srv := testenv.StartRedisWith(t, aclUserArgs("relayuser", "pw", prefix)...)
	pwFile := filepath.Join(t.TempDir(), "redis-pw")
	os.WriteFile(pwFile, []byte("pw\n"), 0o600)
	yaml := fmt.Sprintf("storage:\n  redis:\n    addr: %q\n    prefix: %q\n", srv.Addr, prefix)
	cfg := redisConfig(t, yaml, map[string]string{"WR_REDIS_USERNAME": "relayuser", "WR_REDIS_PASSWORD_FILE": pwFile})
	if cfg.Storage.Redis.Username != "relayuser" || cfg.Storage.Redis.Password != "pw" {
		t.Fatalf("username/password from the environment: %q/%q", cfg.Storage.Redis.Username, cfg.Storage.Redis.Password)
	}
	rdb := redisClient(cfg)
	if rdb == nil {
		t.Fatal("no client for storage.redis.addr")
	}
	defer rdb.Close()
	ctx := ctxT(t, 20*time.Second)

	if who, err := rdb.Do(ctx, "ACL", "WHOAMI").Text(); err != nil || who != "relayuser" {
		t.Fatalf("ACL WHOAMI = %q, %v; want relayuser", who, err)
	}
	if err := rdb.Set(ctx, prefix+"k", "v", 0).Err(); err != nil {
		t.Fatalf("SET as relayuser: %v", err)
	}
	if v, err := rdb.Get(ctx, prefix+"k").Result(); err != nil || v != "v" {
		t.Fatalf("GET as relayuser = %q, %v", v, err)
	}
	// The ACL is in force: a key outside the prefix is refused.
	if err := rdb.Set(ctx, "other:k", "v", 0).Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Fatalf("SET outside the prefix: %v; want NOPERM", err)
	}
	// The relay's own Redis state and bus work with an ACL that grants
	// only keys and channels under storage.redis.prefix.
	d := state.NewRedisDedupe(rdb, prefix)
	if first, err := d.Claim(ctx, "m1", "a", time.Minute); err != nil || first != relay.ClaimWon {
		t.Fatalf("dedupe claim: %v, %v", first, err)
	}
	seq := state.NewRedisSequencer(rdb, prefix)
	if err := seq.Seed(ctx, relay.ConversationID("c1"), 0); err != nil {
		t.Fatalf("sequence seed: %v", err)
	}
	if got, err := seq.Number(ctx, "w", map[relay.ConversationID][]string{"c1": {"m1"}}, nil); err != nil || got.Nums["m1"] != 1 {
		t.Fatalf("sequence number = %+v, %v", got, err)
	}
	if err := seq.Release(ctx, map[relay.ConversationID][]string{"c1": {"m1"}}); err != nil {
		t.Fatalf("sequence release: %v", err)
	}
	order := state.NewRedisOrder(rdb, prefix)
	if _, err := order.Lines(ctx, []relay.Place{{Conv: "c1", ID: "m1", Writer: "w", Ticket: 1, At: time.Now()}}); err != nil {
		t.Fatalf("order lines: %v", err)
	}
	if _, err := order.Alive(ctx, "w", time.Now()); err != nil {
		t.Fatalf("order alive: %v", err)
	}
	subCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if _, err := bus.NewRedisBus(rdb, prefix, bus.Options{}).Subscribe(subCtx); err != nil {
		t.Fatalf("bus subscribe: %v", err)
	}

	// A wrong password is refused, with Redis' reason.
	bad := redisConfig(t, yaml, map[string]string{"WR_REDIS_USERNAME": "relayuser", "WR_REDIS_PASSWORD": "wrong"})
	brdb := redisClient(bad)
	defer brdb.Close()
	err := brdb.Ping(ctx).Err()
	if err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Fatalf("PING with a wrong password: %v; want WRONGPASS", err)
	}
	t.Logf("wrong password: %v", err)
}

func TestRedisSentinelFailover(t *testing.T) {
	const prefix = "wr:sen:"
	user := aclUserArgs("relayuser", "pw", prefix)
	master := testenv.StartRedisWith(t, user...)
	replica := testenv.StartRedisReplica(t, master, user...)
	// The sentinel has its own users: the relay signs in as
	// relaysentinel; the default user's password is one nobody uses.
	sentinel := testenv.StartSentinel(t, "m", master, "requirepass unused-"+testenv.UniqueName("x"), "user relaysentinel on >spw &* +@all")

	yaml := fmt.Sprintf(`storage:
  redis:
    prefix: %q
    username: relayuser
    sentinel:
      master_name: m
      addrs: [%q]
      username: relaysentinel
`, prefix, sentinel.Addr)
	cfg := redisConfig(t, yaml, map[string]string{"WR_REDIS_PASSWORD": "pw", "WR_REDIS_SENTINEL_PASSWORD": "spw"})
	rdb := redisClient(cfg)
	if rdb == nil {
		t.Fatal("no client for storage.redis.sentinel")
	}
	defer rdb.Close()
	ctx := ctxT(t, 90*time.Second)

	if err := rdb.Set(ctx, prefix+"before", "1", 0).Err(); err != nil {
		t.Fatalf("SET through the sentinel: %v", err)
	}
	if v, err := rdb.Get(ctx, prefix+"before").Result(); err != nil || v != "1" {
		t.Fatalf("GET through the sentinel = %q, %v", v, err)
	}
	assertMaster(t, ctx, rdb, master.Addr)
	if who, err := rdb.Do(ctx, "ACL", "WHOAMI").Text(); err != nil || who != "relayuser" {
		t.Fatalf("ACL WHOAMI = %q, %v; want relayuser", who, err)
	}

	// A wrong sentinel password: the client cannot learn the master.
	badSentinel := redisConfig(t, yaml, map[string]string{"WR_REDIS_PASSWORD": "pw", "WR_REDIS_SENTINEL_PASSWORD": "wrong"})
	brdb := redisClient(badSentinel)
	defer brdb.Close()
	if err := brdb.Ping(ctx).Err(); err == nil {
		t.Fatal("PING with a wrong sentinel password succeeded")
	} else {
		t.Logf("wrong sentinel password: %v", err)
	}

	// The write is on the replica before the failover, so the promoted
	// replica has it.
	if n, err := rdb.Wait(ctx, 1, 5*time.Second).Result(); err != nil || n < 1 {
		t.Fatalf("WAIT 1: %d, %v", n, err)
	}

	admin := redis.NewSentinelClient(&redis.Options{Addr: sentinel.Addr, Username: "relaysentinel", Password: "spw"})
	defer admin.Close()
	// The client listens for the sentinel's +switch-master announcement
	// (this needs channel permissions for the sentinel user: "&*"), so it
	// switches at once rather than when the old master refuses writes.
	testenv.Eventually(t, "the client subscribes to the sentinel", func() error {
		cmd := redis.NewStringCmd(ctx, "CLIENT", "LIST")
		if err := admin.Process(ctx, cmd); err != nil {
			return err
		}
		list := cmd.Val()
		for line := range strings.Lines(list) {
			if strings.Contains(line, " user=relaysentinel ") && !strings.Contains(line, " sub=0 ") {
				return nil
			}
		}
		return fmt.Errorf("no subscribed client of relaysentinel in CLIENT LIST:\n%s", list)
	})
	// The sentinel needs a moment to learn the replica from the master;
	// until then FAILOVER answers NOGOODSLAVE.
	testenv.Eventually(t, "SENTINEL FAILOVER m", func() error {
		return admin.Failover(ctx, "m").Err()
	})
	testenv.Eventually(t, "sentinel names the replica as master", func() error {
		addr, err := admin.GetMasterAddrByName(ctx, "m").Result()
		if err != nil {
			return err
		}
		if got := strings.Join(addr, ":"); got != replica.Addr {
			return fmt.Errorf("master is %s", got)
		}
		return nil
	})
	// The relay's client follows: writes reach the new master, which has
	// the write from before.
	// (The port first: a write that reached the old master just before
	// the client switched would be dropped when it rejoins as a replica.)
	testenv.Eventually(t, "the client talks to the new master", func() error {
		port, err := serverPort(ctx, rdb)
		if err != nil {
			return err
		}
		if !strings.HasSuffix(replica.Addr, ":"+port) {
			return fmt.Errorf("still on port %s", port)
		}
		return rdb.Set(ctx, prefix+"after", "2", 0).Err()
	})
	assertMaster(t, ctx, rdb, replica.Addr)
	for k, want := range map[string]string{"before": "1", "after": "2"} {
		if v, err := rdb.Get(ctx, prefix+k).Result(); err != nil || v != want {
			t.Errorf("GET %s after the failover = %q, %v; want %q", k, v, err, want)
		}
	}
}

// assertMaster checks that rdb's connection is to a master listening on
// addr's port.
func assertMaster(t *testing.T, ctx context.Context, rdb *redis.Client, addr string) {
	t.Helper()
	role, err := rdb.Do(ctx, "ROLE").Slice()
	if err != nil || len(role) == 0 || role[0] != "master" {
		t.Fatalf("ROLE = %v, %v; want master", role, err)
	}
	port, err := serverPort(ctx, rdb)
	if err != nil || !strings.HasSuffix(addr, ":"+port) {
		t.Fatalf("client talks to port %q (%v), want %s", port, err, addr)
	}
}

// serverPort is the tcp_port of the server rdb's connection reaches.
func serverPort(ctx context.Context, rdb *redis.Client) (string, error) {
	info, err := rdb.Info(ctx, "server").Result()
	if err != nil {
		return "", err
	}
	for line := range strings.Lines(info) {
		if p, ok := strings.CutPrefix(strings.TrimSpace(line), "tcp_port:"); ok {
			return p, nil
		}
	}
	return "", fmt.Errorf("no tcp_port in INFO server")
}

func TestConfigRedisFromEnv(t *testing.T) {
	dir := t.TempDir()
	spw := filepath.Join(dir, "spw")
	os.WriteFile(spw, []byte("sentinel-secret\n"), 0o600)
	path := filepath.Join(dir, "relay.yaml")
	os.WriteFile(path, []byte("storage:\n  redis:\n    username: fromyaml\n    sentinel:\n      master_name: m\n      addrs: [127.0.0.1:26379]\n"), 0o600)
	cfg, err := configs.Load(path, envMap(map[string]string{
		"WR_REDIS_USERNAME":               "fromenv",
		"WR_REDIS_PASSWORD":               "pw",
		"WR_REDIS_SENTINEL_PASSWORD_FILE": spw,
	}))
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Storage.Redis
	if r.Username != "fromenv" || r.Password != "pw" || r.Sentinel.Password != "sentinel-secret" {
		t.Errorf("from the environment: username %q, password %q, sentinel password %q", r.Username, r.Password, r.Sentinel.Password)
	}
	if r.Sentinel.MasterName != "m" || len(r.Sentinel.Addrs) != 1 {
		t.Errorf("sentinel from YAML: %+v", r.Sentinel)
	}
	if _, err := configs.Load(path, envMap(map[string]string{"WR_REDIS_SENTINEL_PASSWORD": "a", "WR_REDIS_SENTINEL_PASSWORD_FILE": spw})); err == nil || !strings.Contains(err.Error(), "use one") {
		t.Errorf("both WR_REDIS_SENTINEL_PASSWORD and _FILE: %v", err)
	}

	// Neither an address nor sentinels: no client, in-memory state.
	var none configs.Config
	if redisClient(&none) != nil {
		t.Error("a Redis client without storage.redis.addr or sentinel")
	}
	// The failover client: go-redis marks it with the pseudo address
	// "FailoverClient", and it carries the options of the plain client.
	c := redisClient(cfg)
	defer c.Close()
	o := c.Options()
	if o.Addr != "FailoverClient" || o.Username != "fromenv" || o.Password != "pw" || !o.ContextTimeoutEnabled ||
		o.DialTimeout != 2*time.Second || o.ReadTimeout != 2*time.Second || o.WriteTimeout != 2*time.Second {
		t.Errorf("failover client options: addr %q, user %q, ctx timeouts %v, dial/read/write %v/%v/%v",
			o.Addr, o.Username, o.ContextTimeoutEnabled, o.DialTimeout, o.ReadTimeout, o.WriteTimeout)
	}
}

func envMap(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
