package main

import (
	"bytes"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wechat-relay/wechat-relay/configs"
	"github.com/wechat-relay/wechat-relay/relay"
)

// `wechat-relay seal-key` writes a private key the relay loads (0600,
// never over an existing file) and prints its public key and key id.
func TestSealKeyCommand(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "seal.key")
	var out, errOut bytes.Buffer
	if code := run([]string{"seal-key", "-out", path}, &out, &errOut, func(string) string { return "" }); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v; want mode 0600", st, err)
	}
	signer, err := relay.LoadSealSigner(path)
	if err != nil {
		t.Fatalf("the relay cannot load the key it wrote: %v", err)
	}
	pubs, err := relay.ParseSealPublicKeys(out.Bytes())
	if err != nil || len(pubs) != 1 || !pubs[0].Equal(signer.PublicKey()) {
		t.Fatalf("printed public key %v (%v) is not the key's\n%s", pubs, err, out.String())
	}
	if !strings.Contains(out.String(), "key id "+signer.KeyID()) {
		t.Errorf("the key id %s is not printed:\n%s", signer.KeyID(), out.String())
	}
	// What it signs verifies with what it printed.
	s := signer.Sign(relay.Seal{Hash: strings.Repeat("ab", 32)})
	if relay.CheckSealSignature(s, map[string]ed25519.PublicKey{relay.SealKeyID(pubs[0]): pubs[0]}) != relay.SignatureValid {
		t.Error("a signature does not verify with the printed public key")
	}

	before, _ := os.ReadFile(path)
	out.Reset()
	errOut.Reset()
	if code := run([]string{"seal-key", "-out", path}, &out, &errOut, func(string) string { return "" }); code != 1 || !strings.Contains(errOut.String(), "exists") {
		t.Fatalf("over an existing key: exit %d, %s", code, errOut.String())
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("seal-key overwrote an existing key")
	}
	for _, args := range [][]string{{"seal-key"}, {"seal-key", "-out", path, "extra"}, {"seal-key", "-bogus"}} {
		if code := run(args, &out, &errOut, func(string) string { return "" }); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	if code := run([]string{"seal-key", "-out", filepath.Join(dir, "no", "such", "dir")}, &out, &errOut, func(string) string { return "" }); code != 1 {
		t.Errorf("into a missing directory: exit %d, want 1", code)
	}
}

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
		if code := run([]string{"serve", "-config", y}, &out, &errOut, func(string) string { return "" }); code != 1 ||
			!strings.Contains(errOut.String(), "pipeline.seal_key_file") || !strings.Contains(errOut.String(), path) {
			t.Errorf("%s: serve exited %d:\n%s", name, code, errOut.String())
		}
	}
}
