package commands

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func envMap(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

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
	code := Run([]string{"check-config", "-config", path}, &out, &errOut, envMap(nil))
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

func TestCommands(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := Run([]string{"version"}, &out, &errOut, envMap(nil)); code != 0 || !strings.Contains(out.String(), "wechat-relay") {
		t.Fatalf("version: %d %q", code, out.String())
	}
	if code := Run([]string{"frobnicate"}, &out, &errOut, envMap(nil)); code != 2 || !strings.Contains(errOut.String(), "unknown command") {
		t.Fatalf("unknown command: %d %q", code, errOut.String())
	}
}
