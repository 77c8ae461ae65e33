package configs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// validConfigYAML is a complete configuration whose only variable part
// is the storage.redis section.
func validConfigYAML(redisSection string) string {
	return `listen: 127.0.0.1:8080
storage:
  redis:
` + redisSection + `
wechat:
  accounts:
    - {id: main, app_id: wx0123456789abcdef, mode: safe}
`
}

var validConfigEnv = map[string]string{
	"WR_ACCOUNT_MAIN_APP_SECRET":       "s3cret",
	"WR_ACCOUNT_MAIN_TOKEN":            "tok",
	"WR_ACCOUNT_MAIN_ENCODING_AES_KEY": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
}

func TestConfigRedisSentinelCheckConfig(t *testing.T) {
	dir := t.TempDir()
	check := func(section string, extraEnv map[string]string) (int, string) {
		path := filepath.Join(dir, "relay.yaml")
		if err := os.WriteFile(path, []byte(validConfigYAML(section)), 0o600); err != nil {
			t.Fatal(err)
		}
		env := map[string]string{}
		for k, v := range validConfigEnv {
			env[k] = v
		}
		for k, v := range extraEnv {
			env[k] = v
		}
		if _, err := Check(path, envMap(env)); err != nil {
			return 1, err.Error()
		}
		return 0, ""
	}
	sentinel := "    username: relayuser\n    sentinel:\n      master_name: wr-master\n      addrs: [10.0.0.1:26379, 10.0.0.2:26379]\n      username: relaysentinel\n"
	secrets := map[string]string{"WR_REDIS_PASSWORD": "pw", "WR_REDIS_SENTINEL_PASSWORD": "spw"}
	if code, out := check(sentinel, secrets); code != 0 {
		t.Fatalf("sentinel configuration refused (exit %d): %s", code, out)
	}

	tests := []struct {
		name    string
		section string
		env     map[string]string
		want    []string
	}{
		{"sentinel and addr", "    addr: 10.0.0.9:6379\n" + sentinel, secrets,
			[]string{"storage.redis.addr", "storage.redis.sentinel.master_name", "both set", "leave storage.redis.addr"}},
		{"sentinel and WR_REDIS_ADDR", sentinel, map[string]string{"WR_REDIS_PASSWORD": "pw", "WR_REDIS_SENTINEL_PASSWORD": "spw", "WR_REDIS_ADDR": "10.0.0.9:6379"},
			[]string{"both set", "WR_REDIS_ADDR"}},
		{"no sentinel addrs", "    sentinel:\n      master_name: wr-master\n", nil, []string{"storage.redis.sentinel.addrs"}},
		{"bad sentinel addr", "    sentinel:\n      master_name: wr-master\n      addrs: [sentinel-a]\n", nil, []string{`storage.redis.sentinel.addrs[0] "sentinel-a" is not host:port`}},
		{"sentinels without master_name", "    sentinel:\n      addrs: [10.0.0.1:26379]\n", nil, []string{"storage.redis.sentinel.master_name is empty"}},
		{"username without password", "    addr: 10.0.0.9:6379\n    username: relayuser\n", nil, []string{"storage.redis.username", "WR_REDIS_PASSWORD"}},
		{"sentinel username without password", sentinel, map[string]string{"WR_REDIS_PASSWORD": "pw"}, []string{"storage.redis.sentinel.username", "WR_REDIS_SENTINEL_PASSWORD"}},
		{"sentinel password in YAML", "    sentinel:\n      master_name: m\n      addrs: [10.0.0.1:26379]\n      password: x\n", nil, []string{"password"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out := check(tt.section, tt.env)
			if code == 0 {
				t.Fatalf("check-config accepted it:\n%s", out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("check-config output lacks %q:\n%s", w, out)
				}
			}
			for _, secret := range []string{"spw", `"pw"`} {
				if strings.Contains(out, secret) {
					t.Errorf("check-config output leaks a password:\n%s", out)
				}
			}
		})
	}
}
