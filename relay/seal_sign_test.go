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
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A key written by `openssl genpkey -algorithm ed25519`, its public key
// (`openssl pkey -pubout`), and what openssl says about both: the key id
// computed as docs/tamper-evidence.md says (openssl pkey -pubin -outform
// DER | tail -c 32 | sha256sum | cut -c1-16), and the signature of the
// test-vector seal that `openssl pkeyutl -sign -rawin` makes (Ed25519 is
// deterministic) and `openssl pkeyutl -verify` accepts.
const (
	opensslPrivate = `-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIHX1ZMk5qMdQwjRVtZBf6ByxdvstOgJWxgKhYoFRoliT
-----END PRIVATE KEY-----
`
	opensslPublic = `-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAhIvCjHs95q8AdUJaUKZ/k9Z74Qx4YVAklUagCpHzKGE=
-----END PUBLIC KEY-----
`
	otherPublic = `-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEA3K5ksTSUimeQnCICUYGhkWtHA8NtFCIEPyIQOizL5ok=
-----END PUBLIC KEY-----
`
	opensslKeyID = "cd8ecc8115bdf2a9"
	// The signature of the test vectors' seal (vectorSealHash, seal_test.go).
	vectorSealSig = "9oLq6HzYtZoOS+ePl/McEt09g0Fr+l8w2U6x2emkcrUZ1JD0OgvcoAvPsTJZsP1utMzg7WInIMRZkXDww4ohCw=="
)

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
	if good.ComputeHash() != a.seals[0].Hash || sealIntact(good) != "" {
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

// signedHarness is sealHarness with the pipeline signing under keyFile.
// It uses archive, or a new one for nil.
func signedHarness(t *testing.T, keyFile, writer string, log *slog.Logger, archive *memArchive) (*harness, error) {
	t.Helper()
	if archive == nil {
		archive = &memArchive{}
	}
	h := &harness{spool: newMemSpool(), archive: archive, dedupe: &memDedupe{}, seq: &memSeq{}, assign: &memAssign{}}
	h.bus = newMemBus(h.archive)
	p, err := NewPipeline(Config{Writer: writer, SealKeyFile: keyFile, Linger: time.Millisecond, RetryMin: time.Millisecond,
		RetryMax: 5 * time.Millisecond, DrainTimeout: 50 * time.Millisecond}, Deps{
		Spool: h.spool, Archive: h.archive, Bus: h.bus, Dedupe: h.dedupe, Sequencer: h.seq,
		Router: NewRouter(h.assign, map[string][]string{"acct": {"alice", "bob"}}), Logger: log,
	})
	h.p = p
	return h, err
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// The pipeline signs every seal it writes — batches, healed batches and
// delivery events — with the key file's key; without one it warns once;
// a bad key file stops it.
func TestPipelineSignsSeals(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	h, err := signedHarness(t, writeFile(t, "seal.key", opensslPrivate), "relay-s", log, nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), "WARN") {
		t.Errorf("a signing pipeline warned:\n%s", logs.String())
	}
	ctx := context.Background()
	for i := range 7 {
		m := text(fmt.Sprint("c", i%2), fmt.Sprint(500+i), fmt.Sprint("m", i))
		m.Seq = uint64(i + 1)
		if err := h.p.seals.archive(ctx, []Message{m}, h.p.inserted); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.p.SealedEvents(memEventLog{h.archive}).AppendEvents(ctx, []DeliveryEvent{testEvent(0)}); err != nil {
		t.Fatal(err)
	}
	// A batch archived without its seal is healed, signed, by the next
	// pipeline of the writer.
	h.archive.sealDown = true
	m := text("c0", "600", "crash")
	m.Seq = 99
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	err = h.p.seals.archive(short, []Message{m}, h.p.inserted)
	cancel()
	if err == nil {
		t.Fatal("sealer.archive succeeded with seals failing")
	}
	h.archive.sealDown = false
	h2, err := signedHarness(t, writeFile(t, "seal.key", opensslPrivate), "relay-s", log, h.archive)
	if err != nil {
		t.Fatal(err)
	}
	if err := h2.p.seals.msgs.heal(ctx); err != nil {
		t.Fatal(err)
	}

	pub, _ := ParseSealPublicKeys([]byte(opensslPublic))
	keys := keyring(pub...)
	recovered := 0
	for _, s := range h.archive.seals {
		if st := CheckSealSignature(s, keys); st != SignatureValid {
			t.Errorf("seal %s: signature %v (key %q)", s.ID, st, s.KeyID)
		}
		if s.Recovered {
			recovered++
		}
	}
	if len(h.archive.seals) != 9 || recovered != 1 {
		t.Fatalf("%d seals (%d recovered), want 9 (1)", len(h.archive.seals), recovered)
	}
	rep := verifyMem(t, h.archive, VerifyOptions{PublicKeys: pub})
	wantOK(t, rep)
	if sr := rep.Signatures; !sr.Checked || sr.Valid != 9 || sr.Signed != 9 || sr.Unsigned != 0 || sr.ByKey[opensslKeyID] != 9 {
		t.Fatalf("signatures %+v", sr)
	}

	// No key: unsigned, one warning that says what to do.
	logs.Reset()
	h3, err := signedHarness(t, "", "relay-u", log, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 || !strings.Contains(logs.String(), "seal_key_file") {
		t.Errorf("without a key: %d warnings:\n%s", n, logs.String())
	}
	if err := h3.p.seals.archive(ctx, []Message{text("c0", "700", "x")}, h3.p.inserted); err != nil {
		t.Fatal(err)
	}
	if s := h3.archive.seals[0]; s.KeyID != "" || s.Signature != "" {
		t.Errorf("a pipeline without a key signed: %+v", s)
	}

	// A key file that is missing, not a key, or not Ed25519.
	for name, path := range map[string]string{
		"missing":     filepath.Join(t.TempDir(), "nope.key"),
		"public key":  writeFile(t, "pub.pem", opensslPublic),
		"not PEM":     writeFile(t, "x.key", "secret"),
		"a directory": t.TempDir(),
	} {
		_, err := signedHarness(t, path, "relay-x", log, nil)
		if err == nil || !strings.Contains(err.Error(), "seal_key_file") {
			t.Errorf("key file %s: NewPipeline error %v", name, err)
		}
	}
}

// signedMixedArchive is a chain of the messages stream of writer relay-v
// whose seals 1..unsigned are unsigned (made at base + number seconds)
// and the later ones signed, plus a signed events chain.
func signedMixedArchive(t *testing.T, s *SealSigner, unsigned int) (*memArchive, time.Time) {
	t.Helper()
	a, _ := sealedArchive(t, 15) // 5 message seals, 2 event seals
	base := time.UnixMilli(1700000000000).UTC()
	prev := map[string]string{}
	for i := range a.seals {
		x := &a.seals[i]
		x.At = base.Add(time.Duration(x.Number) * time.Second)
		x.Prev = prev[x.Stream]
		x.Hash = x.ComputeHash()
		x.KeyID, x.Signature = "", ""
		if x.Stream == StreamEvents || x.Number > uint64(unsigned) {
			*x = s.Sign(*x)
		}
		prev[x.Stream] = x.Hash
	}
	return a, base
}

func TestVerifySignatures(t *testing.T) {
	s := opensslSigner(t)
	pub := []ed25519.PublicKey{s.PublicKey()}
	other, _ := ParseSealPublicKeys([]byte(otherPublic))

	// Fully signed: OK with the key, and with an extra key.
	a, _ := signedMixedArchive(t, s, 0)
	wantOK(t, verifyMem(t, a, VerifyOptions{}))
	rep := verifyMem(t, a, VerifyOptions{PublicKeys: append(other, pub...)})
	wantOK(t, rep)
	if sr := rep.Signatures; sr.Valid != 7 || len(sr.Keys) != 2 || sr.Bad+sr.UnknownKey+sr.UnsignedRefused != 0 {
		t.Fatalf("signatures %+v", sr)
	}
	for _, c := range rep.Chains {
		if c.Signed != c.Seals || c.Unsigned != 0 {
			t.Errorf("chain %+v: not all signed", c)
		}
	}

	// The wrong public key: every seal is signed by an unknown key.
	rep = verifyMem(t, a, VerifyOptions{PublicKeys: other})
	if rep.OK || rep.Counts[ProblemUnknownKey] != 7 || rep.Signatures.UnknownKey != 7 {
		t.Fatalf("the wrong key: %+v", rep.Counts)
	}
	wantProblem(t, rep, ProblemUnknownKey, BatchID("relay-v", StreamMessages, 5), "")

	// The last seal of the chain rewritten (a row dropped from it),
	// re-hashed, its old signature kept: nothing but the signature
	// shows it — no later seal links to it.
	last := &a.seals[4]
	if last.Number != 5 || last.Stream != StreamMessages {
		t.Fatalf("seal 4 is %s", last.ID)
	}
	dropped := last.Leaves[0]
	last.Leaves = last.Leaves[1:]
	last.Count = len(last.Leaves)
	last.Root = MerkleRoot(last.leafHashes())
	last.Hash = last.ComputeHash()
	for i := range a.rows {
		if a.rows[i].ID == dropped.ID {
			a.rows = append(a.rows[:i], a.rows[i+1:]...)
			break
		}
	}
	if rep := verifyMem(t, a, VerifyOptions{}); !rep.OK {
		t.Fatalf("without keys the rewritten tail should pass (that is the hole signing closes): %+v", rep.Problems)
	}
	rep = verifyMem(t, a, VerifyOptions{PublicKeys: pub})
	wantProblem(t, rep, ProblemBadSignature, last.ID, "")
	if p := only(rep, ProblemBadSignature)[0]; !strings.Contains(p.Detail, "seal 5 of writer relay-v, stream messages") {
		t.Errorf("detail %q does not name the seal", p.Detail)
	}
	// The same with the signature removed: unsigned after signed seals,
	// refused even with a cut-off that would cover its time.
	last.KeyID, last.Signature = "", ""
	rep = verifyMem(t, a, VerifyOptions{PublicKeys: pub, AllowUnsignedBefore: time.Now().Add(time.Hour)})
	wantProblem(t, rep, ProblemUnsigned, last.ID, "")
	if !strings.Contains(only(rep, ProblemUnsigned)[0].Detail, "a signed chain stays signed") {
		t.Errorf("detail: %+v", only(rep, ProblemUnsigned))
	}
}

func TestVerifyUnsignedBefore(t *testing.T) {
	s := opensslSigner(t)
	pub := []ed25519.PublicKey{s.PublicKey()}
	// Seals 1..3 unsigned (made at base+1s..base+3s), 4 and 5 signed.
	a, base := signedMixedArchive(t, s, 3)

	rep := verifyMem(t, a, VerifyOptions{})
	wantOK(t, rep)
	if sr := rep.Signatures; sr.Checked || sr.Signed != 4 || sr.Unsigned != 3 {
		t.Fatalf("without keys: %+v", sr)
	}

	rep = verifyMem(t, a, VerifyOptions{PublicKeys: pub})
	if rep.OK || rep.Counts[ProblemUnsigned] != 3 || rep.Signatures.UnsignedRefused != 3 {
		t.Fatalf("unsigned seals without a cut-off: %+v", rep.Counts)
	}
	for n := range uint64(3) {
		wantProblem(t, rep, ProblemUnsigned, BatchID("relay-v", StreamMessages, n+1), "")
	}

	// A cut-off after the unsigned seals: OK, and said so.
	cut := base.Add(3500 * time.Millisecond)
	rep = verifyMem(t, a, VerifyOptions{PublicKeys: pub, AllowUnsignedBefore: cut})
	wantOK(t, rep)
	if sr := rep.Signatures; sr.UnsignedAllowed != 3 || sr.Valid != 4 || sr.AllowUnsignedBefore == nil || !sr.AllowUnsignedBefore.Equal(cut) {
		t.Fatalf("with a cut-off: %+v", sr)
	}
	// One that covers only two of them.
	rep = verifyMem(t, a, VerifyOptions{PublicKeys: pub, AllowUnsignedBefore: base.Add(2500 * time.Millisecond)})
	if rep.OK || rep.Counts[ProblemUnsigned] != 1 {
		t.Fatalf("a cut-off before seal 3: %+v", rep.Problems)
	}
	wantProblem(t, rep, ProblemUnsigned, BatchID("relay-v", StreamMessages, 3), "")
}
