package verify_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/relay/verify"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// Keys from relay's test data (relay/seal_sign_test.go says what they
// are): a key written by openssl, its public key, another public key, and
// the first one's key id as openssl computes it.
var (
	opensslPrivate = readTestdata("../testdata/seal-openssl.key")
	opensslPublic  = readTestdata("../testdata/seal-openssl.pub")
	otherPublic    = readTestdata("../testdata/seal-other.pub")
)

const opensslKeyID = "cd8ecc8115bdf2a9"

// readTestdata returns a file of the test data, which must be there.
func readTestdata(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func opensslSigner(t *testing.T) *relay.SealSigner {
	t.Helper()
	k, err := relay.ParseSealPrivateKey([]byte(opensslPrivate))
	if err != nil {
		t.Fatalf("ParseSealPrivateKey(openssl's key): %v", err)
	}
	return relay.NewSealSigner(k)
}

func keyring(keys ...ed25519.PublicKey) map[string]ed25519.PublicKey {
	m := map[string]ed25519.PublicKey{}
	for _, k := range keys {
		m[relay.SealKeyID(k)] = k
	}
	return m
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// signedMixedArchive is a chain of the messages stream of writer relay-v
// whose seals 1..unsigned are unsigned (made at base + number seconds)
// and the later ones signed, plus a signed events chain.
func signedMixedArchive(t *testing.T, s *relay.SealSigner, unsigned int) (*testArchive, time.Time) {
	t.Helper()
	a := sealedArchive(t, nil, 15) // 5 message seals, 2 event seals
	base := time.UnixMilli(1700000000000).UTC()
	prev := map[string]string{}
	for _, x := range a.seals(t, "relay-v") { // each chain in order
		x.At = base.Add(time.Duration(x.Number) * time.Second)
		x.Prev = prev[x.Stream]
		x.Hash = x.ComputeHash()
		x.KeyID, x.Signature = "", ""
		if x.Stream == relay.StreamEvents || x.Number > uint64(unsigned) {
			x = s.Sign(x)
		}
		a.replaceSeal(t, x)
		prev[x.Stream] = x.Hash
	}
	return a, base
}

func TestVerifySignatures(t *testing.T) {
	s := opensslSigner(t)
	pub := []ed25519.PublicKey{s.PublicKey()}
	other, _ := relay.ParseSealPublicKeys([]byte(otherPublic))

	// Fully signed: OK with the key, and with an extra key.
	a, _ := signedMixedArchive(t, s, 0)
	wantOK(t, verifyMem(t, a, verify.Options{}))
	rep := verifyMem(t, a, verify.Options{PublicKeys: append(other, pub...)})
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
	rep = verifyMem(t, a, verify.Options{PublicKeys: other})
	if rep.OK || rep.Counts[relay.ProblemUnknownKey] != 7 || rep.Signatures.UnknownKey != 7 {
		t.Fatalf("the wrong key: %+v", rep.Counts)
	}
	wantProblem(t, rep, relay.ProblemUnknownKey, relay.BatchID("relay-v", relay.StreamMessages, 5), "")

	// The last seal of the chain rewritten (a row dropped from it),
	// re-hashed, its old signature kept: nothing but the signature
	// shows it — no later seal links to it.
	last := a.chain(t, "relay-v", relay.StreamMessages)[4]
	if last.Number != 5 || last.Stream != relay.StreamMessages {
		t.Fatalf("seal 4 is %s", last.ID)
	}
	dropped := last.Leaves[0]
	last.Leaves = last.Leaves[1:]
	last.Count = len(last.Leaves)
	last.Root = relay.MerkleRoot(leafHashes(last))
	last.Hash = last.ComputeHash()
	a.replaceSeal(t, last)
	a.erase(t, dropped.ID)
	if rep := verifyMem(t, a, verify.Options{}); !rep.OK {
		t.Fatalf("without keys the rewritten tail should pass (that is the hole signing closes): %+v", rep.Problems)
	}
	rep = verifyMem(t, a, verify.Options{PublicKeys: pub})
	wantProblem(t, rep, relay.ProblemBadSignature, last.ID, "")
	if p := only(rep, relay.ProblemBadSignature)[0]; !strings.Contains(p.Detail, "seal 5 of writer relay-v, stream messages") {
		t.Errorf("detail %q does not name the seal", p.Detail)
	}
	// The same with the signature removed: unsigned after signed seals,
	// refused even with a cut-off that would cover its time.
	last.KeyID, last.Signature = "", ""
	a.replaceSeal(t, last)
	rep = verifyMem(t, a, verify.Options{PublicKeys: pub, AllowUnsignedBefore: time.Now().Add(time.Hour)})
	wantProblem(t, rep, relay.ProblemUnsigned, last.ID, "")
	if !strings.Contains(only(rep, relay.ProblemUnsigned)[0].Detail, "a signed chain stays signed") {
		t.Errorf("detail: %+v", only(rep, relay.ProblemUnsigned))
	}
}

func TestVerifyUnsignedBefore(t *testing.T) {
	s := opensslSigner(t)
	pub := []ed25519.PublicKey{s.PublicKey()}
	// Seals 1..3 unsigned (made at base+1s..base+3s), 4 and 5 signed.
	a, base := signedMixedArchive(t, s, 3)

	rep := verifyMem(t, a, verify.Options{})
	wantOK(t, rep)
	if sr := rep.Signatures; sr.Checked || sr.Signed != 4 || sr.Unsigned != 3 {
		t.Fatalf("without keys: %+v", sr)
	}

	rep = verifyMem(t, a, verify.Options{PublicKeys: pub})
	if rep.OK || rep.Counts[relay.ProblemUnsigned] != 3 || rep.Signatures.UnsignedRefused != 3 {
		t.Fatalf("unsigned seals without a cut-off: %+v", rep.Counts)
	}
	for n := range uint64(3) {
		wantProblem(t, rep, relay.ProblemUnsigned, relay.BatchID("relay-v", relay.StreamMessages, n+1), "")
	}

	// A cut-off after the unsigned seals: OK, and said so.
	cut := base.Add(3500 * time.Millisecond)
	rep = verifyMem(t, a, verify.Options{PublicKeys: pub, AllowUnsignedBefore: cut})
	wantOK(t, rep)
	if sr := rep.Signatures; sr.UnsignedAllowed != 3 || sr.Valid != 4 || sr.AllowUnsignedBefore == nil || !sr.AllowUnsignedBefore.Equal(cut) {
		t.Fatalf("with a cut-off: %+v", sr)
	}
	// One that covers only two of them.
	rep = verifyMem(t, a, verify.Options{PublicKeys: pub, AllowUnsignedBefore: base.Add(2500 * time.Millisecond)})
	if rep.OK || rep.Counts[relay.ProblemUnsigned] != 1 {
		t.Fatalf("a cut-off before seal 3: %+v", rep.Problems)
	}
	wantProblem(t, rep, relay.ProblemUnsigned, relay.BatchID("relay-v", relay.StreamMessages, 3), "")
}

// signedHarness is a pipeline harness of writer signing under keyFile,
// archiving one message per batch. It uses archive, or a new one for
// nil.
func signedHarness(t *testing.T, keyFile, writer string, log *slog.Logger, archive *testArchive) (*harness, error) {
	t.Helper()
	return newHarness(t, archive, relay.Config{Writer: writer, SealKeyFile: keyFile, BatchSize: 1}, log)
}

// The pipeline signs every seal it writes — batches, healed batches and
// delivery events — with the key file's key; without one it warns once;
// a bad key file stops it.
func TestPipelineSignsSeals(t *testing.T) {
	var logs testenv.SyncBuffer
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
		if err := h.spool.Append(ctx, text(fmt.Sprint("c", i%2), fmt.Sprint(500+i), fmt.Sprint("m", i))); err != nil {
			t.Fatal(err)
		}
	}
	h.start(t) // seven batches of one
	testenv.Until(t, "the spool to drain", func() bool { return h.spool.Len() == 0 })
	if err := h.p.SealedEvents(h.archive).AppendEvents(ctx, []relay.DeliveryEvent{testEvent(0)}); err != nil {
		t.Fatal(err)
	}
	// A batch archived without its seal is healed, signed, by the next
	// pipeline of the writer.
	h.archive.sealDown.Store(true)
	crash := text("c0", "600", "crash")
	if err := h.spool.Append(ctx, crash); err != nil {
		t.Fatal(err)
	}
	testenv.Until(t, "the batch to be archived", func() bool { return h.archive.count(t, crash.ID) > 0 })
	h.stop()
	if n := len(h.archive.seals(t, "relay-s")); n != 8 {
		t.Fatalf("%d seals stored with seals failing, want 8", n)
	}
	h.archive.sealDown.Store(false)
	h2, err := signedHarness(t, writeFile(t, "seal.key", opensslPrivate), "relay-s", log, h.archive)
	if err != nil {
		t.Fatal(err)
	}
	h2.start(t)
	testenv.Until(t, "the batch to be healed", func() bool { return len(h.archive.seals(t, "relay-s")) == 9 })
	h2.stop()

	pub, _ := relay.ParseSealPublicKeys([]byte(opensslPublic))
	keys := keyring(pub...)
	recovered := 0
	seals := h.archive.seals(t, "relay-s")
	for _, s := range seals {
		if st := relay.CheckSealSignature(s, keys); st != relay.SignatureValid {
			t.Errorf("seal %s: signature %v (key %q)", s.ID, st, s.KeyID)
		}
		if s.Recovered {
			recovered++
		}
	}
	if len(seals) != 9 || recovered != 1 {
		t.Fatalf("%d seals (%d recovered), want 9 (1)", len(seals), recovered)
	}
	rep := verifyMem(t, h.archive, verify.Options{PublicKeys: pub})
	wantOK(t, rep)
	if sr := rep.Signatures; !sr.Checked || sr.Valid != 9 || sr.Signed != 9 || sr.Unsigned != 0 || sr.ByKey[opensslKeyID] != 9 {
		t.Fatalf("signatures %+v", sr)
	}

	// No key: unsigned, one warning that says what to do.
	var logs3 testenv.SyncBuffer
	h3, err := signedHarness(t, "", "relay-u", slog.New(slog.NewTextHandler(&logs3, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs3.String(), "level=WARN"); n != 1 || !strings.Contains(logs3.String(), "seal_key_file") {
		t.Errorf("without a key: %d warnings:\n%s", n, logs3.String())
	}
	h3.archiveSpooled(t, text("c0", "700", "x"))
	if s := h3.archive.seals(t, "relay-u")[0]; s.KeyID != "" || s.Signature != "" {
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
