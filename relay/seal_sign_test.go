package relay

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"testing"
	"time"
)

// A key written by `openssl genpkey -algorithm ed25519`
// (testdata/seal-openssl.key), its public key (`openssl pkey -pubout`,
// testdata/seal-openssl.pub), another public key (testdata/seal-other.pub),
// and what openssl says about them: the key id
// computed as docs/tamper-evidence.md says (openssl pkey -pubin -outform
// DER | tail -c 32 | sha256sum | cut -c1-16), and the signature of the
// test-vector seal that `openssl pkeyutl -sign -rawin` makes (Ed25519 is
// deterministic) and `openssl pkeyutl -verify` accepts.
const (
	opensslKeyID = "cd8ecc8115bdf2a9"
	// The signature of the test vectors' seal (vectorSealHash, seal_test.go).
	vectorSealSig = "9oLq6HzYtZoOS+ePl/McEt09g0Fr+l8w2U6x2emkcrUZ1JD0OgvcoAvPsTJZsP1utMzg7WInIMRZkXDww4ohCw=="
)

var (
	opensslPrivate = readTestdata("testdata/seal-openssl.key")
	opensslPublic  = readTestdata("testdata/seal-openssl.pub")
	otherPublic    = readTestdata("testdata/seal-other.pub")
)

// readTestdata returns a file of the test data, which must be there.
func readTestdata(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func opensslSigner(t *testing.T) *SealSigner {
	t.Helper()
	k, err := ParseSealPrivateKey([]byte(opensslPrivate))
	if err != nil {
		t.Fatalf("ParseSealPrivateKey(openssl's key): %v", err)
	}
	return NewSealSigner(k)
}

func keyring(keys ...ed25519.PublicKey) map[string]ed25519.PublicKey {
	m := map[string]ed25519.PublicKey{}
	for _, k := range keys {
		m[SealKeyID(k)] = k
	}
	return m
}

func TestSealSignatureVector(t *testing.T) {
	s := opensslSigner(t)
	if s.KeyID() != opensslKeyID {
		t.Errorf("KeyID = %s, want %s", s.KeyID(), opensslKeyID)
	}
	pubs, err := ParseSealPublicKeys([]byte(opensslPublic))
	if err != nil || len(pubs) != 1 || !pubs[0].Equal(s.PublicKey()) {
		t.Fatalf("ParseSealPublicKeys(openssl's public key) = %v, %v; want the signer's", pubs, err)
	}
	// The key id is SHA-256 of the 32 raw bytes, independently.
	sum := sha256.Sum256(pubs[0])
	if id := hex.EncodeToString(sum[:8]); id != opensslKeyID {
		t.Errorf("independent key id %s", id)
	}
	// The signed message, written out.
	want := append([]byte("wechat-relay/seal-signature/v1\x00"), vectorSealHash...)
	if got := SealSignatureMessage(vectorSealHash); !bytes.Equal(got, want) {
		t.Errorf("SealSignatureMessage = %q, want %q", got, want)
	}
	x := s.Sign(Seal{Hash: vectorSealHash})
	if x.KeyID != opensslKeyID || x.Signature != vectorSealSig {
		t.Errorf("Sign = key %s signature %s; want %s %s", x.KeyID, x.Signature, opensslKeyID, vectorSealSig)
	}
	sig, _ := base64.StdEncoding.DecodeString(vectorSealSig)
	if !ed25519.Verify(pubs[0], want, sig) {
		t.Error("the vector's signature does not verify with crypto/ed25519 directly")
	}
	if st := CheckSealSignature(x, keyring(pubs...)); st != SignatureValid {
		t.Errorf("CheckSealSignature = %v, want valid", st)
	}
}

func TestCheckSealSignature(t *testing.T) {
	s := opensslSigner(t)
	other, err := ParseSealPublicKeys([]byte(otherPublic))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := sealedArchive(t, 4)
	good := s.Sign(a.seals[0])
	keys := keyring(s.PublicKey())
	if st := CheckSealSignature(good, keys); st != SignatureValid {
		t.Fatalf("a signed seal: %v", st)
	}
	if st := CheckSealSignature(a.seals[0], keys); st != SignatureUnsigned {
		t.Errorf("an unsigned seal: %v", st)
	}
	if st := CheckSealSignature(good, keyring(other...)); st != SignatureUnknownKey {
		t.Errorf("a seal checked against another key: %v", st)
	}
	// Rewritten and re-hashed by someone without the key, signature kept.
	rewritten := good
	rewritten.Leaves = rewritten.Leaves[:1]
	rewritten.Count = 1
	rewritten.Root = MerkleRoot(rewritten.leafHashes())
	rewritten.Hash = rewritten.ComputeHash()
	if st := CheckSealSignature(rewritten, keys); st != SignatureBad {
		t.Errorf("a rewritten seal with its old signature: %v", st)
	}
	for name, sig := range map[string]string{
		"not base64": "%%%", "too short": base64.StdEncoding.EncodeToString([]byte("short")), "empty": "",
		"another seal's": s.Sign(a.seals[1]).Signature,
	} {
		bad := good
		bad.Signature = sig
		if st := CheckSealSignature(bad, keys); st != SignatureBad {
			t.Errorf("signature %s: %v, want bad", name, st)
		}
	}
	// The signature is not part of the hash: a signed seal hashes as the
	// unsigned one, and (nil signer) signing is optional.
	if good.ComputeHash() != a.seals[0].Hash || good.Flaw() != "" {
		t.Error("signing changed the seal's hash")
	}
	var none *SealSigner
	if x := none.Sign(a.seals[0]); x.KeyID != "" || x.Signature != "" {
		t.Errorf("a nil signer signed: %+v", x)
	}
}

func TestParseSealKeys(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecPriv, _ := x509.MarshalPKCS8PrivateKey(ec)
	ecPub, _ := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	ecPrivPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecPriv}))
	ecPubPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: ecPub}))
	for name, in := range map[string]string{
		"empty": "", "not PEM": "hello", "a public key only": opensslPublic, "an ECDSA key": ecPrivPEM,
		"garbage in the block": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
	} {
		if _, err := ParseSealPrivateKey([]byte(in)); err == nil {
			t.Errorf("ParseSealPrivateKey(%s) accepted it", name)
		}
	}
	// Several keys in one file, with notes between them.
	both := "# relay-0, 2024\n" + opensslPublic + "\n# relay-1\n" + otherPublic
	keys, err := ParseSealPublicKeys([]byte(both))
	if err != nil || len(keys) != 2 || SealKeyID(keys[0]) != opensslKeyID || SealKeyID(keys[1]) == opensslKeyID {
		t.Fatalf("ParseSealPublicKeys(two keys) = %v, %v", keys, err)
	}
	for name, in := range map[string]string{
		"empty": "", "a private key": opensslPrivate, "an ECDSA key": ecPubPEM,
	} {
		if _, err := ParseSealPublicKeys([]byte(in)); err == nil {
			t.Errorf("ParseSealPublicKeys(%s) accepted it", name)
		}
	}
}

// sealedArchive returns a memory archive holding what a writer leaves:
// n messages in conversations c0..c2, sealed in batches of 3, and two
// sealed delivery events.
func sealedArchive(t *testing.T, n int) (*memArchive, *Pipeline) {
	t.Helper()
	h := sealHarness(t, nil, "relay-v")
	ctx := context.Background()
	var batch []Message
	for i := range n {
		m := text(fmt.Sprint("c", i%3), fmt.Sprint(1000+i), fmt.Sprint("m", i))
		m.Seq = uint64(i/3 + 1)
		m.AcceptedAt = time.UnixMilli(1700000000000 + int64(i))
		batch = append(batch, m)
		if len(batch) == 3 || i == n-1 {
			if err := h.p.seals.archive(ctx, batch, h.p.inserted); err != nil {
				t.Fatal(err)
			}
			batch = nil
		}
	}
	log := h.p.SealedEvents(memEventLog{h.archive})
	for i := range 2 {
		if err := log.AppendEvents(ctx, []DeliveryEvent{testEvent(i)}); err != nil {
			t.Fatal(err)
		}
	}
	return h.archive, h.p
}
