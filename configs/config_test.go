package configs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func envMap(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestExampleConfigIsValidWithSecretsFromEnv(t *testing.T) {
	secretFile := filepath.Join(t.TempDir(), "aes")
	os.WriteFile(secretFile, []byte("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG\n"), 0o600)
	env := envMap(map[string]string{
		"WR_ACCOUNT_MAIN_APP_SECRET":            "s3cret",
		"WR_ACCOUNT_MAIN_TOKEN":                 "tok",
		"WR_ACCOUNT_MAIN_ENCODING_AES_KEY_FILE": secretFile,
		"WR_CONSOLE_TOKEN_ALICE":                "alice-token-0123456789",
		"WR_CONSOLE_TOKEN_SUE":                  "sue-token-0123456789ab",
		"WR_CONSOLE_TOKEN_LIN":                  "lin-token-0123456789ab",
		"WR_CONSOLE_PASSWORD_HASH_ROOT":         "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
		"WR_LISTEN":                             "127.0.0.1:9999",
	})
	if _, err := Check("relay.example.yaml", env); err != nil {
		t.Fatalf("check-config refuses it: %v", err)
	}
	cfg, err := Load("relay.example.yaml", env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:9999" {
		t.Errorf("WR_LISTEN not applied: %s", cfg.Listen)
	}
	if got := cfg.WeChat.Accounts[0].EncodingAESKey; got != "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG" {
		t.Errorf("secret from _FILE: %q", got)
	}
	if cfg.Pipeline.Linger != 20*time.Millisecond || cfg.Media.Window != 72*time.Hour {
		t.Errorf("durations: linger %v, window %v", cfg.Pipeline.Linger, cfg.Media.Window)
	}
}

func TestConfigRefusals(t *testing.T) {
	dir := t.TempDir()
	unknown := filepath.Join(dir, "unknown.yaml")
	os.WriteFile(unknown, []byte("listen: 127.0.0.1:1\nlisten_addr: x\n"), 0o644)
	slowClaim := filepath.Join(dir, "claim.yaml")
	os.WriteFile(slowClaim, []byte("pipeline:\n  claim_wait: 10s\n"), 0o644)
	secretInYAML := filepath.Join(dir, "secret.yaml")
	os.WriteFile(secretInYAML, []byte("wechat:\n  accounts:\n    - {id: a, app_id: wx1, token: abc}\n"), 0o644)
	tests := []struct {
		name string
		path string
		env  map[string]string
		want string
	}{
		{"unknown key", unknown, nil, "listen_addr"},
		{"claim wait past WeChat's limit", slowClaim, nil, "pipeline.claim_wait"},
		{"secret in YAML", secretInYAML, nil, "token"},
		{"missing file", filepath.Join(dir, "none.yaml"), nil, "reading config"},
		{"secret twice", "", map[string]string{"WR_CLICKHOUSE_PASSWORD": "a", "WR_CLICKHOUSE_PASSWORD_FILE": "/x"}, "use one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Check(tt.path, envMap(tt.env))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("check-config: %v; want failure mentioning %q", err, tt.want)
			}
		})
	}
}

func TestDemoDefaultsAreValid(t *testing.T) {
	if _, err := Check("", envMap(nil)); err != nil {
		t.Fatalf("embedded defaults invalid: %v", err)
	}
}
