package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wechat-relay/wechat-relay/configs"
	"github.com/wechat-relay/wechat-relay/deployments/commands"
)

// pipeline.seal_key_file (or WR_SEAL_KEY_FILE) names the key; a bad one
// fails check-config and stops the relay from starting.
func TestConfigSealKeyFile(t *testing.T) {
	dir := t.TempDir()
	key, _ := makeSealKey(t, dir, "seal.key")
	bad := filepath.Join(dir, "bad.key")
	os.WriteFile(bad, []byte("not a key"), 0o600)

	yml := filepath.Join(dir, "relay.yaml")
	os.WriteFile(yml, []byte("pipeline:\n  seal_key_file: "+key+"\n"), 0o600)
	cfg, err := configs.Load(yml, func(string) string { return "" })
	if err != nil || cfg.Pipeline.SealKeyFile != key {
		t.Fatalf("pipeline.seal_key_file: %v, %+v", err, cfg)
	}
	cfg, err = configs.Load(yml, func(k string) string {
		if k == "WR_SEAL_KEY_FILE" {
			return bad
		}
		return ""
	})
	if err != nil || cfg.Pipeline.SealKeyFile != bad {
		t.Fatalf("WR_SEAL_KEY_FILE: %v, %q", err, cfg.Pipeline.SealKeyFile)
	}

	good := e2eConfig(t, "", "", "", "", t.TempDir())
	good.Pipeline.SealKeyFile = key
	if err := good.Validate(); err != nil {
		t.Fatalf("a valid key: %v", err)
	}
	for name, path := range map[string]string{"not a key": bad, "missing": filepath.Join(dir, "none.key")} {
		c := e2eConfig(t, "", "", "", "", t.TempDir())
		c.Pipeline.SealKeyFile = path
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "pipeline.seal_key_file") {
			t.Errorf("%s: Validate = %v", name, err)
		}
		// `serve` refuses to start, and says why.
		y := filepath.Join(t.TempDir(), "relay.yaml")
		os.WriteFile(y, []byte("data_dir: "+t.TempDir()+"\npipeline:\n  seal_key_file: "+path+"\n"), 0o600)
		var out, errOut bytes.Buffer
		if code := commands.Run([]string{"serve", "-config", y}, &out, &errOut, func(string) string { return "" }); code != 1 ||
			!strings.Contains(errOut.String(), "pipeline.seal_key_file") || !strings.Contains(errOut.String(), path) {
			t.Errorf("%s: serve exited %d:\n%s", name, code, errOut.String())
		}
	}
}
