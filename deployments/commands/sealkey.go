package commands

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/wechat-relay/wechat-relay/relay"
)

// sealKeyCommand runs `wechat-relay seal-key -out FILE`: it makes an
// Ed25519 key pair for signing seals (relay/seal_sign.go), writes the
// private key to FILE (PEM, PKCS #8, mode 0600; an existing file is never
// overwritten), and prints the public key (PEM, PKIX) and its key id.
// The private key goes where pipeline.seal_key_file (or WR_SEAL_KEY_FILE)
// points, outside the archive; the public key goes to whoever runs
// `wechat-relay verify -public-key`.
//
// Exit codes: 0 done, 1 the key could not be written, 2 bad flags.
func sealKeyCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("seal-key", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "file to write the private key to (PEM, mode 0600; must not exist)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: wechat-relay seal-key -out FILE")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *out == "" || fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	pub, err := writeSealKey(*out)
	if err != nil {
		fmt.Fprintf(stderr, "wechat-relay seal-key: %v\n", err)
		return 1
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		fmt.Fprintf(stderr, "wechat-relay seal-key: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "private key written to %s: point pipeline.seal_key_file (or WR_SEAL_KEY_FILE) at it; keep it out of the archive's reach\n", *out)
	fmt.Fprintf(stdout, "# seal key id %s: check seals with wechat-relay verify -public-key FILE\n", relay.SealKeyID(pub))
	if err := pem.Encode(stdout, &pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}); err != nil {
		fmt.Fprintf(stderr, "wechat-relay seal-key: %v\n", err)
		return 1
	}
	return 0
}

// writeSealKey makes a key pair and writes the private key to path,
// which must not exist, readable by its owner only.
func writeSealKey(path string) (ed25519.PublicKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("%s exists: not overwriting a key (seals signed with it could no longer be told from forgeries if it were lost)", path)
	}
	if err != nil {
		return nil, err
	}
	werr := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		os.Remove(path)
		return nil, fmt.Errorf("writing %s: %w", path, werr)
	}
	return pub, nil
}
