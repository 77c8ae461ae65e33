package relay

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"slices"
	"strings"
	"testing"
	"time"
)

// The test-vector audit record of docs/tamper-evidence.md: its hash
// computed by the Python of that page (independently of this code), and
// its signature by openssl's key (opensslPrivate) as `openssl pkeyutl
// -sign -rawin` made it over "wechat-relay/audit-signature/v1\0"+hash,
// and `openssl pkeyutl -verify` accepts.
const (
	vectorAuditHash = "003192ff4a140202254f3cb4e0f575203744723b0d6db1565534abf06f8bf9b3"
	vectorAuditSig  = "6K22Z8tTfk6rgNO8GUWPMxB5k3Z1Vr8hDppXjVF/T3VCqG5a2mVBiXWXYqLouhN05s7DyrPnrYrT7GFoXw0NDA=="
)

func vectorAudit() AuditEntry {
	return AuditEntry{
		ID: "relay-1/audit/00000000000000000001", Writer: "relay-1", Number: 1,
		At: time.UnixMilli(1700000004000), Employee: "sup", Role: "supervisor", Action: "open_conversation",
		Conv: "acme:o_client", Remote: "10.0.0.1:5000", UserAgent: "Firefox/1",
	}
}

func TestAuditSignatureVector(t *testing.T) {
	t.Parallel()
	e := vectorAudit()
	if e.Hash = e.ComputeHash(); e.Hash != vectorAuditHash {
		t.Fatalf("audit hash = %s, want %s", e.Hash, vectorAuditHash)
	}
	if got, want := string(AuditSignatureMessage(e.Hash)), "wechat-relay/audit-signature/v1\x00"+vectorAuditHash; got != want {
		t.Fatalf("AuditSignatureMessage = %q, want %q", got, want)
	}
	s := opensslSigner(t)
	signed := s.SignAudit(e)
	if signed.KeyID != opensslKeyID || signed.Signature != vectorAuditSig {
		t.Fatalf("SignAudit = key %s signature %s; want %s %s", signed.KeyID, signed.Signature, opensslKeyID, vectorAuditSig)
	}
	if signed.Hash != e.Hash || signed.ComputeHash() != e.Hash {
		t.Fatal("signing changed the record's hash")
	}
	keys := keyring(s.PublicKey())
	if st := CheckAuditSignature(signed, keys); st != SignatureValid {
		t.Fatalf("CheckAuditSignature(vector) = %v", st)
	}
	// Domain separation: an audit record's signature is no seal's, nor
	// the other way round, over the very same hash.
	asSeal := Seal{Hash: signed.Hash, KeyID: signed.KeyID, Signature: signed.Signature}
	if st := CheckSealSignature(asSeal, keys); st != SignatureBad {
		t.Errorf("an audit signature passed as a seal's: %v", st)
	}
	sealSigned := s.Sign(Seal{Hash: e.Hash})
	asAudit := e
	asAudit.KeyID, asAudit.Signature = sealSigned.KeyID, sealSigned.Signature
	if st := CheckAuditSignature(asAudit, keys); st != SignatureBad {
		t.Errorf("a seal signature passed as an audit record's: %v", st)
	}
	if (*SealSigner)(nil).SignAudit(e) != e {
		t.Error("a nil signer changed the record")
	}
}

// signedAuditChain writes n records of writer w into st, every one
// signed by s (nil: unsigned), a second apart from at.
func signedAuditChain(t *testing.T, st *memAudit, w string, s *SealSigner, at *time.Time, n int) []AuditEntry {
	t.Helper()
	l, err := NewAuditLog(st, w, nil, func() time.Time { *at = at.Add(time.Second); return *at })
	if err != nil {
		t.Fatal(err)
	}
	l.SignWith(s)
	var out []AuditEntry
	for i := range n {
		e, err := l.Append(context.Background(), AuditEntry{Employee: "sup", Role: "supervisor", Action: "open_conversation",
			Conv: "a:c", Target: string(rune('a' + i)), KeyID: "ignored", Signature: "ignored"})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func auditProblem(rep *AuditReport, kind ProblemKind, id string) bool {
	return slices.ContainsFunc(rep.Problems, func(p AuditProblem) bool { return p.Kind == kind && p.ID == id })
}

func TestAuditLogSigns(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := opensslSigner(t)
	st := &memAudit{}
	at := time.Unix(1700000000, 0)
	recs := signedAuditChain(t, st, "w1", s, &at, 3)
	keys := keyring(s.PublicKey())
	for _, e := range recs {
		if e.KeyID != opensslKeyID || CheckAuditSignature(e, keys) != SignatureValid {
			t.Fatalf("record %s not validly signed: %+v", e.ID, e)
		}
	}
	if stored, _, _ := st.LatestAudit(ctx, "w1"); stored != recs[2] {
		t.Fatalf("stored %+v, returned %+v", stored, recs[2])
	}
	// Without a signer, the caller's KeyID and Signature are not kept.
	plain := signedAuditChain(t, st, "w2", nil, &at, 1)[0]
	if plain.KeyID != "" || plain.Signature != "" {
		t.Fatalf("an unsigned log stored a signature: %+v", plain)
	}

	rep, err := VerifyAudit(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	sr := rep.Signatures
	if !rep.OK || sr.Checked || sr.Signed != 3 || sr.Unsigned != 1 || sr.ByKey[opensslKeyID] != 3 ||
		rep.Chains[0].Signed != 3 || rep.Chains[1].Unsigned != 1 {
		t.Fatalf("without keys: %+v", rep)
	}
	rep, err = VerifyAuditWith(ctx, st, AuditVerifyOptions{PublicKeys: []ed25519.PublicKey{s.PublicKey()}})
	if err != nil {
		t.Fatal(err)
	}
	if sr := rep.Signatures; rep.OK || !sr.Checked || sr.Valid != 3 || sr.UnsignedRefused != 1 || len(rep.Problems) != 1 ||
		!auditProblem(rep, ProblemUnsigned, plain.ID) {
		t.Fatalf("with the key: %+v", rep)
	}
	st.recs = slices.DeleteFunc(st.recs, func(e AuditEntry) bool { return e.Writer == "w2" })
	rep, _ = VerifyAuditWith(ctx, st, AuditVerifyOptions{PublicKeys: []ed25519.PublicKey{s.PublicKey()}})
	if !rep.OK || rep.Signatures.Valid != 3 || rep.Records != 3 {
		t.Fatalf("a signed log with its key: %+v", rep)
	}
}

// Someone who can write the archive but lacks the key rewrites records
// and recomputes every hash after them: the chain holds, so only the
// signatures tell.
func TestVerifyAuditSignatures(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := opensslSigner(t)
	pub := []ed25519.PublicKey{s.PublicKey()}
	_, attacker, _ := ed25519.GenerateKey(rand.Reader)
	build := func() *memAudit {
		st := &memAudit{}
		at := time.Unix(1700000000, 0)
		signedAuditChain(t, st, "w1", s, &at, 4)
		return st
	}
	id := func(n int) string { return "w1/audit/0000000000000000000" + string(rune('0'+n)) }
	// rehash recomputes the hash of record i and the prev and hash of
	// every later one, keeping whatever signatures they carry.
	rehash := func(m *memAudit, from int) {
		for i := from; i < len(m.recs); i++ {
			if i > 0 {
				m.recs[i].Prev = m.recs[i-1].Hash
			}
			m.recs[i].Hash = m.recs[i].ComputeHash()
		}
	}
	for _, c := range []struct {
		name   string
		tamper func(m *memAudit)
		cut    time.Time
		want   map[ProblemKind][]string
	}{
		{"rewritten and rehashed from record 2 on", func(m *memAudit) {
			m.recs[1].Detail = "forged"
			rehash(m, 1)
		}, time.Time{}, map[ProblemKind][]string{ProblemBadSignature: {id(2), id(3), id(4)}}},
		{"last record rewritten", func(m *memAudit) {
			m.recs[3].Target = "forged"
			rehash(m, 3)
		}, time.Time{}, map[ProblemKind][]string{ProblemBadSignature: {id(4)}}},
		{"re-signed with another key", func(m *memAudit) {
			m.recs[3].Target = "forged"
			rehash(m, 3)
			m.recs[3] = NewSealSigner(attacker).SignAudit(m.recs[3])
		}, time.Time{}, map[ProblemKind][]string{ProblemUnknownKey: {id(4)}}},
		{"signatures stripped, the cut-off in the future", func(m *memAudit) {
			m.recs[2].Target = "forged"
			rehash(m, 2)
			for i := 2; i < 4; i++ {
				m.recs[i].KeyID, m.recs[i].Signature = "", ""
			}
		}, time.Unix(1800000000, 0), map[ProblemKind][]string{ProblemUnsigned: {id(3), id(4)}}},
		{"malformed signature", func(m *memAudit) { m.recs[0].Signature = "not base64!" },
			time.Time{}, map[ProblemKind][]string{ProblemBadSignature: {id(1)}}},
		{"a second copy, re-signed by another key", func(m *memAudit) {
			m.recs = append(m.recs, NewSealSigner(attacker).SignAudit(m.recs[1]))
		}, time.Time{}, map[ProblemKind][]string{ProblemInserted: {id(2)}}},
	} {
		st := build()
		c.tamper(st)
		// Without the key the hashes and links hold (but for a copy).
		plain, err := VerifyAudit(ctx, st)
		if err != nil {
			t.Fatal(err)
		}
		if _, copied := c.want[ProblemInserted]; plain.OK == copied {
			t.Errorf("%s: without keys OK = %v: %+v", c.name, plain.OK, plain.Problems)
		}
		rep, err := VerifyAuditWith(ctx, st, AuditVerifyOptions{PublicKeys: pub, AllowUnsignedBefore: c.cut})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for kind, ids := range c.want {
			for _, x := range ids {
				if !auditProblem(rep, kind, x) {
					t.Errorf("%s: no %s for %s: %+v", c.name, kind, x, rep.Problems)
				}
			}
			n += len(ids)
		}
		if rep.OK || len(rep.Problems) != n {
			t.Errorf("%s: want %d problems, got %+v", c.name, n, rep.Problems)
		}
	}
	// An identical retried copy is no problem, with the key either.
	st := build()
	st.recs = append(st.recs, st.recs[2])
	if rep, _ := VerifyAuditWith(ctx, st, AuditVerifyOptions{PublicKeys: pub}); !rep.OK || rep.Signatures.Valid != 4 {
		t.Errorf("identical signed copy: %+v", rep)
	}
}

// Records written before signing was turned on are accepted before the
// cut-off, never after a signed record of their chain.
func TestVerifyAuditUnsignedBefore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := opensslSigner(t)
	pub := []ed25519.PublicKey{s.PublicKey()}
	st := &memAudit{}
	at := time.Unix(1700000000, 0)
	old := signedAuditChain(t, st, "w1", nil, &at, 2) // at +1s, +2s
	cut := at.Add(500 * time.Millisecond)
	signedAuditChain(t, st, "w1", s, &at, 2) // +3s, +4s

	rep, _ := VerifyAuditWith(ctx, st, AuditVerifyOptions{PublicKeys: pub})
	if rep.OK || rep.Signatures.UnsignedRefused != 2 || !auditProblem(rep, ProblemUnsigned, old[0].ID) ||
		!strings.Contains(rep.Problems[0].Detail, "-allow-unsigned-before") {
		t.Fatalf("no cut-off: %+v", rep)
	}
	rep, _ = VerifyAuditWith(ctx, st, AuditVerifyOptions{PublicKeys: pub, AllowUnsignedBefore: cut})
	if sr := rep.Signatures; !rep.OK || sr.UnsignedAllowed != 2 || sr.Valid != 2 || sr.AllowUnsignedBefore == nil {
		t.Fatalf("cut-off after the unsigned records: %+v", rep)
	}
	rep, _ = VerifyAuditWith(ctx, st, AuditVerifyOptions{PublicKeys: pub, AllowUnsignedBefore: old[1].At})
	if rep.OK || rep.Signatures.UnsignedAllowed != 1 || !auditProblem(rep, ProblemUnsigned, old[1].ID) ||
		!strings.Contains(rep.Problems[0].Detail, "not before") {
		t.Fatalf("cut-off between the unsigned records: %+v", rep)
	}
	// The key dropped later: an unsigned record after signed ones is
	// refused, whatever the cut-off.
	late := signedAuditChain(t, st, "w1", nil, &at, 1)[0]
	rep, _ = VerifyAuditWith(ctx, st, AuditVerifyOptions{PublicKeys: pub, AllowUnsignedBefore: at.Add(time.Hour)})
	if rep.OK || len(rep.Problems) != 1 || !auditProblem(rep, ProblemUnsigned, late.ID) ||
		!strings.Contains(rep.Problems[0].Detail, "a signed chain stays signed") {
		t.Fatalf("unsigned after signed: %+v", rep)
	}
	// Without keys nothing of this is a problem.
	if rep, _ := VerifyAudit(ctx, st); !rep.OK || rep.Signatures.Unsigned != 3 || rep.Signatures.Signed != 2 {
		t.Fatalf("without keys: %+v", rep)
	}
}
