package main

import (
	"bytes"
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
		"WR_CONSOLE_PASSWORD_HASH_ROOT":         "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
		"WR_LISTEN":                             "127.0.0.1:9999",
	})
	var out, errOut bytes.Buffer
	if code := run([]string{"check-config", "-config", "configs/relay.example.yaml"}, &out, &errOut, env); code != 0 {
		t.Fatalf("check-config exited %d: %s", code, errOut.String())
	}
	cfg, err := loadConfig("configs/relay.example.yaml", env)
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

func TestCheckConfigListsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.yaml")
	os.WriteFile(path, []byte(`
listen: "no-port"
log: {level: loud}
wechat:
  accounts:
    - {id: "main", app_id: wx1, mode: secret}
console:
  employees:
    - {id: ann, role: boss, accounts: [nosuch]}
`), 0o644)
	var out, errOut bytes.Buffer
	code := run([]string{"check-config", "-config", path}, &out, &errOut, envMap(nil))
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	msg := errOut.String()
	for _, want := range []string{"listen", "log.level", "mode", "role", "token", "nosuch", "WR_CONSOLE_TOKEN_ANN"} {
		if !strings.Contains(msg, want) {
			t.Errorf("check-config output does not mention %q:\n%s", want, msg)
		}
	}
	for _, secret := range []string{"s3cret"} {
		if strings.Contains(msg, secret) {
			t.Errorf("output leaks a secret")
		}
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
		args []string
		env  map[string]string
		want string
	}{
		{"unknown key", []string{"-config", unknown}, nil, "listen_addr"},
		{"claim wait past WeChat's limit", []string{"-config", slowClaim}, nil, "pipeline.claim_wait"},
		{"secret in YAML", []string{"-config", secretInYAML}, nil, "token"},
		{"missing file", []string{"-config", filepath.Join(dir, "none.yaml")}, nil, "reading config"},
		{"secret twice", nil, map[string]string{"WR_CLICKHOUSE_PASSWORD": "a", "WR_CLICKHOUSE_PASSWORD_FILE": "/x"}, "use one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(append([]string{"check-config"}, tt.args...), &out, &errOut, envMap(tt.env))
			if code == 0 || !strings.Contains(errOut.String(), tt.want) {
				t.Fatalf("exit %d, output %q; want failure mentioning %q", code, errOut.String(), tt.want)
			}
		})
	}
}

func TestDemoDefaultsAreValid(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"check-config"}, &out, &errOut, envMap(nil)); code != 0 {
		t.Fatalf("embedded defaults invalid: %s", errOut.String())
	}
}

func TestCommands(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"version"}, &out, &errOut, envMap(nil)); code != 0 || !strings.Contains(out.String(), "wechat-relay") {
		t.Fatalf("version: %d %q", code, out.String())
	}
	if code := run([]string{"frobnicate"}, &out, &errOut, envMap(nil)); code != 2 || !strings.Contains(errOut.String(), "unknown command") {
		t.Fatalf("unknown command: %d %q", code, errOut.String())
	}
}
