package commands

import (
	"bytes"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wechat-relay/wechat-relay/relay"
)

// `wechat-relay seal-key` writes a private key the relay loads (0600,
// never over an existing file) and prints its public key and key id.
func TestSealKeyCommand(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "seal.key")
	var out, errOut bytes.Buffer
	if code := Run([]string{"seal-key", "-out", path}, &out, &errOut, func(string) string { return "" }); code != 0 {
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
	if code := Run([]string{"seal-key", "-out", path}, &out, &errOut, func(string) string { return "" }); code != 1 || !strings.Contains(errOut.String(), "exists") {
		t.Fatalf("over an existing key: exit %d, %s", code, errOut.String())
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("seal-key overwrote an existing key")
	}
	for _, args := range [][]string{{"seal-key"}, {"seal-key", "-out", path, "extra"}, {"seal-key", "-bogus"}} {
		if code := Run(args, &out, &errOut, func(string) string { return "" }); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	if code := Run([]string{"seal-key", "-out", filepath.Join(dir, "no", "such", "dir")}, &out, &errOut, func(string) string { return "" }); code != 1 {
		t.Errorf("into a missing directory: exit %d, want 1", code)
	}
}
