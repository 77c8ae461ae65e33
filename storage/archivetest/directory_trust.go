package archivetest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/wechat-relay/wechat-relay/relay"
)

// TrustStore is what the directory's checks of its records need of an
// archive (relay.DirectoryTrust).
type TrustStore interface {
	relay.DirectoryStore
	relay.AuditStore
	relay.AlertStore
}

// RunDirectoryTrust runs the suite of the directory's checks of the
// records it loads (relay/directory_trust.go) over an archive: rows
// written into the archive behind the relay's back, as an insider who
// can write ClickHouse would, must not count. open is called once per
// subtest, from parallel subtests, and must return a new, empty store.
func RunDirectoryTrust(t *testing.T, open func(t *testing.T) TrustStore) {
	t.Helper()
	for _, c := range []struct {
		name string
		run  func(t *testing.T, s TrustStore)
	}{
		{"ForgedAdminRowRefused", testForgedAdminRow},
		{"BadSignatureRefused", testBadSignatureRow},
		{"UnknownKeyRefused", testUnknownKeyRow},
		{"BrokenChainRefused", testBrokenChainRow},
		{"NoAuditRecordRefused", testNoAuditRow},
		{"LegacyRowsPinned", testLegacyRowsPinned},
		{"OtherInstanceTrusted", testOtherInstanceTrusted},
		{"VerifyDirectory", testVerifyDirectory},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t, open(t))
		})
	}
}

// trustRig is one relay instance: its seal key, audit log and directory.
type trustRig struct {
	s      TrustStore
	signer *relay.SealSigner
	audit  *relay.AuditLog
	dir    *relay.Directory
	reg    *prometheus.Registry

	mu     sync.Mutex
	raised []relay.LexiconHit
}

func newSigner(t *testing.T) *relay.SealSigner {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return relay.NewSealSigner(priv)
}

// newTrustRig starts an instance named writer over s that signs with its
// own new key and trusts keys besides, loaded.
func newTrustRig(t *testing.T, s TrustStore, writer string, keys ...ed25519.PublicKey) *trustRig {
	t.Helper()
	r := &trustRig{s: s, signer: newSigner(t), reg: prometheus.NewRegistry()}
	var err error
	if r.audit, err = relay.NewAuditLog(s, writer, nil, nil); err != nil {
		t.Fatal(err)
	}
	r.audit.SignWith(r.signer)
	r.dir = relay.NewDirectory(s, directorySeed(), nil, nil)
	r.dir.Instrument(r.reg)
	err = r.dir.Trust(relay.DirectoryTrust{Signer: r.signer, PublicKeys: keys, Audit: s, Alerts: s,
		Alert: func(h relay.LexiconHit) { r.mu.Lock(); r.raised = append(r.raised, h); r.mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	r.load(t)
	return r
}

func (r *trustRig) load(t *testing.T) {
	t.Helper()
	if err := r.dir.Load(testCtx(t)); err != nil {
		t.Fatalf("Load: %v", err)
	}
}

// audited is the console's audit hook of a change: an admin audit record
// naming the version (relay.DirectoryAuditDetail).
func (r *trustRig) audited(ctx context.Context) relay.AuditChange {
	return func(_ *relay.DirectorySnapshot, rec relay.DirectoryRecord) error {
		_, err := r.audit.Append(ctx, relay.AuditEntry{Employee: "root", Role: "admin", Action: relay.AuditAdminAction,
			Target: relay.DirectoryAuditTarget(rec.Kind, rec.ID), Detail: relay.DirectoryAuditDetail("test change", rec)})
		return err
	}
}

// createEmployee makes e through the Directory API, audited.
func (r *trustRig) createEmployee(t *testing.T, e relay.Employee) relay.Employee {
	t.Helper()
	got, err := r.dir.CreateEmployee(testCtx(t), "root", e, r.audited(testCtx(t)))
	if err != nil {
		t.Fatalf("CreateEmployee(%s): %v", e.ID, err)
	}
	return got
}

// forgedAdmin is the row an insider inserts: employee id, role admin,
// the hash of a token of their choosing, version 1.
func forgedAdmin(id string) relay.DirectoryRecord {
	sum := sha256.Sum256([]byte("wr_chosen_token"))
	data, _ := json.Marshal(relay.Employee{ID: id, Name: "Mallory", Role: relay.RoleAdmin, TokenHash: hex.EncodeToString(sum[:])})
	return relay.DirectoryRecord{Kind: relay.DirEmployee, ID: id, Version: 1, At: time.Now().UTC().Truncate(time.Millisecond),
		By: "root", Data: string(data)}
}

// sealed is r with its Hash set and signed by s.
func sealed(s *relay.SealSigner, r relay.DirectoryRecord) relay.DirectoryRecord {
	r.Hash = r.ComputeHash()
	return s.SignDirectory(r)
}

// wantRefused fails unless the employee id is out of the directory, and
// the refusal was counted with reason, archived as an alert and raised.
func (r *trustRig) wantRefused(t *testing.T, id, reason string) {
	t.Helper()
	if e, ok := r.dir.Snapshot().Employee(id); ok {
		t.Errorf("employee %s is in the directory: %+v", id, e)
	}
	if n := counterValue(t, r.reg, "wechat_relay_directory_refused_records_total", "reason", reason); n < 1 {
		t.Errorf("wechat_relay_directory_refused_records_total{reason=%q} = %v, want at least 1", reason, n)
	}
	hits, err := r.s.Alerts(testCtx(t), relay.AlertQuery{})
	if err != nil {
		t.Fatalf("Alerts: %v", err)
	}
	found := false
	for _, h := range hits {
		found = found || (h.Rule == "directory_refused" && strings.HasPrefix(h.Matched, relay.DirEmployee+":"+id+" ") && strings.Contains(h.Excerpt, reason))
	}
	if !found {
		t.Errorf("no directory_refused alert archived for %s (%s): %+v", id, reason, hits)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	raised := false
	for _, h := range r.raised {
		raised = raised || strings.HasPrefix(h.Matched, relay.DirEmployee+":"+id+" ")
	}
	if !raised {
		t.Errorf("no alert raised for %s", id)
	}
}

// counterValue is the value of the series of name with label=value.
func counterValue(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func testForgedAdminRow(t *testing.T, s TrustStore) {
	r := newTrustRig(t, s, "relay-a")
	bob := r.createEmployee(t, relay.Employee{ID: "bob", Name: "Bob", Role: relay.RoleAgent, Accounts: []string{"acc"}})
	// The insider's row: unsigned, as anyone without the key writes it.
	appendDirectory(t, s, forgedAdmin("mallory"))
	r.load(t)
	r.wantRefused(t, "mallory", "unsigned")
	if got, ok := r.dir.Snapshot().Employee("bob"); !ok || got.Version != bob.Version {
		t.Errorf("bob, made through the API: %+v (found %v), want version %d", got, ok, bob.Version)
	}
	// A second instance, starting now, refuses it too.
	other := relay.NewDirectory(s, directorySeed(), nil, nil)
	if err := other.Trust(relay.DirectoryTrust{Signer: newSigner(t), PublicKeys: []ed25519.PublicKey{r.signer.PublicKey()}, Audit: s}); err != nil {
		t.Fatal(err)
	}
	if err := other.Load(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if _, ok := other.Snapshot().Employee("mallory"); ok {
		t.Error("a second instance lets mallory in")
	}
	if _, ok := other.Snapshot().Employee("bob"); !ok {
		t.Error("a second instance trusting the first's key does not see bob")
	}
}

func testBadSignatureRow(t *testing.T, s TrustStore) {
	r := newTrustRig(t, s, "relay-a")
	r.createEmployee(t, relay.Employee{ID: "bob", Name: "Bob", Role: relay.RoleAgent})
	// Signed by the right key id, but not by the key.
	f := forgedAdmin("mallory")
	f.Hash = f.ComputeHash()
	f.KeyID = r.signer.KeyID()
	f.Signature = base64.StdEncoding.EncodeToString(make([]byte, ed25519.SignatureSize))
	appendDirectory(t, s, f)
	// And a legitimate record altered after signing: its hash still
	// matches, its signature does not.
	g := sealed(r.signer, forgedAdmin("trudy"))
	g.Data = strings.Replace(g.Data, "Mallory", "Trudy", 1)
	g.Hash = g.ComputeHash()
	appendDirectory(t, s, g)
	r.load(t)
	r.wantRefused(t, "mallory", "bad_signature")
	r.wantRefused(t, "trudy", "bad_signature")
}

func testUnknownKeyRow(t *testing.T, s TrustStore) {
	r := newTrustRig(t, s, "relay-a")
	r.createEmployee(t, relay.Employee{ID: "bob", Name: "Bob", Role: relay.RoleAgent})
	appendDirectory(t, s, sealed(newSigner(t), forgedAdmin("mallory")))
	r.load(t)
	r.wantRefused(t, "mallory", "unknown_key")
}

func testBrokenChainRow(t *testing.T, s TrustStore) {
	r := newTrustRig(t, s, "relay-a")
	bob := r.createEmployee(t, relay.Employee{ID: "bob", Name: "Bob", Role: relay.RoleAgent})
	// Version 2 of bob, validly signed and audited, but chained to
	// something else than version 1: refused, bob stays at version 1.
	sum := sha256.Sum256([]byte("wr_chosen_token"))
	data, _ := json.Marshal(relay.Employee{ID: "bob", Name: "Bob", Role: relay.RoleAdmin, TokenHash: hex.EncodeToString(sum[:])})
	v2 := sealed(r.signer, relay.DirectoryRecord{Kind: relay.DirEmployee, ID: "bob", Version: 2, At: time.Now().UTC().Truncate(time.Millisecond),
		By: "root", Data: string(data), PrevHash: strings.Repeat("0", 64)})
	if err := r.audited(testCtx(t))(nil, v2); err != nil {
		t.Fatal(err)
	}
	appendDirectory(t, s, v2)
	r.load(t)
	if got, _ := r.dir.Snapshot().Employee("bob"); got.Version != bob.Version || got.Role != relay.RoleAgent {
		t.Errorf("bob after a version off its chain: version %d, role %s; want version %d, agent", got.Version, got.Role, bob.Version)
	}
	if n := counterValue(t, r.reg, "wechat_relay_directory_refused_records_total", "reason", "chain_broken"); n != 1 {
		t.Errorf("chain_broken refusals = %v, want 1", n)
	}
}

func testNoAuditRow(t *testing.T, s TrustStore) {
	r := newTrustRig(t, s, "relay-a")
	r.createEmployee(t, relay.Employee{ID: "bob", Name: "Bob", Role: relay.RoleAgent})
	// Signed (a leaked key, or a lost audit write), dated well before
	// now, with no audit record naming it.
	old := forgedAdmin("mallory")
	old.At = time.Now().Add(-time.Hour).UTC().Truncate(time.Millisecond)
	appendDirectory(t, s, sealed(r.signer, old))
	// A recent one waits for its audit record, left out meanwhile, and
	// counts once the record arrives.
	late := sealed(r.signer, relay.DirectoryRecord{Kind: relay.DirEmployee, ID: "carol", Version: 1,
		At: time.Now().UTC().Truncate(time.Millisecond), By: "root", Data: `{"id":"carol","name":"Carol","role":"agent"}`})
	appendDirectory(t, s, late)
	r.load(t)
	r.wantRefused(t, "mallory", "no_audit")
	if _, ok := r.dir.Snapshot().Employee("carol"); ok {
		t.Error("carol counts before her audit record is archived")
	}
	if err := r.audited(testCtx(t))(nil, late); err != nil {
		t.Fatal(err)
	}
	r.load(t)
	if _, ok := r.dir.Snapshot().Employee("carol"); !ok {
		t.Error("carol does not count once her audit record is archived")
	}
}

func testLegacyRowsPinned(t *testing.T, s TrustStore) {
	// Rows written before signing: unsigned, by an older relay.
	legacy := relay.DirectoryRecord{Kind: relay.DirEmployee, ID: "dave", Version: 1, At: time.Now().Add(-48 * time.Hour).UTC().Truncate(time.Millisecond),
		By: "root", Data: `{"id":"dave","name":"Dave","role":"supervisor"}`}
	appendDirectory(t, s, legacy)
	r := newTrustRig(t, s, "relay-a")
	if _, ok := r.dir.Snapshot().Employee("dave"); !ok {
		t.Fatal("a legacy row is refused at the cut-over")
	}
	// A row inserted after the cut-over, dated before it, is no legacy.
	back := forgedAdmin("mallory")
	back.At = legacy.At.Add(-time.Hour)
	appendDirectory(t, s, back)
	r.load(t)
	r.wantRefused(t, "mallory", "unsigned")
	if _, ok := r.dir.Snapshot().Employee("dave"); !ok {
		t.Error("the legacy row is refused after the cut-over")
	}
	// A change to the legacy entry chains to it, and counts.
	got, err := r.dir.UpdateEmployee(testCtx(t), "root", relay.Employee{ID: "dave", Name: "Dave", Role: relay.RoleAgent}, 1, r.audited(testCtx(t)))
	if err != nil || got.Version != 2 || got.Role != relay.RoleAgent {
		t.Fatalf("UpdateEmployee(dave) = %+v, %v", got, err)
	}
	r.load(t)
	if got, _ := r.dir.Snapshot().Employee("dave"); got.Version != 2 {
		t.Errorf("dave after a signed change: version %d, want 2", got.Version)
	}
}

func testOtherInstanceTrusted(t *testing.T, s TrustStore) {
	a := newTrustRig(t, s, "relay-a")
	b := newTrustRig(t, s, "relay-b", a.signer.PublicKey())
	a.createEmployee(t, relay.Employee{ID: "bob", Name: "Bob", Role: relay.RoleAgent})
	b.load(t)
	if _, ok := b.dir.Snapshot().Employee("bob"); !ok {
		t.Error("an instance trusting relay-a's key does not see relay-a's change")
	}
	// relay-a does not trust relay-b's key: b's changes are refused there.
	b.createEmployee(t, relay.Employee{ID: "erin", Name: "Erin", Role: relay.RoleAgent})
	a.load(t)
	a.wantRefused(t, "erin", "unknown_key")
	if _, ok := b.dir.Snapshot().Employee("erin"); !ok {
		t.Error("relay-b does not see its own change")
	}
}

func testVerifyDirectory(t *testing.T, s TrustStore) {
	r := newTrustRig(t, s, "relay-a")
	r.createEmployee(t, relay.Employee{ID: "bob", Name: "Bob", Role: relay.RoleAgent})
	keys := relay.DirectoryVerifyOptions{PublicKeys: []ed25519.PublicKey{r.signer.PublicKey()}}
	rep, err := relay.VerifyDirectory(testCtx(t), s, keys)
	if err != nil || !rep.OK || rep.Records != 1 || rep.Audited != 1 || rep.Pins != 1 {
		t.Fatalf("VerifyDirectory of an intact directory = %+v, %v", rep, err)
	}
	// The forged row; and an audited change whose version is not in the
	// archive (deleted, or never written).
	appendDirectory(t, s, forgedAdmin("mallory"))
	lost := sealed(r.signer, relay.DirectoryRecord{Kind: relay.DirEmployee, ID: "bob", Version: 2, At: time.Now().UTC().Truncate(time.Millisecond),
		By: "root", Data: `{"id":"bob","name":"Bob","role":"agent","disabled":true}`})
	if err := r.audited(testCtx(t))(nil, lost); err != nil {
		t.Fatal(err)
	}
	rep, err = relay.VerifyDirectory(testCtx(t), s, keys)
	if err != nil || rep.OK {
		t.Fatalf("VerifyDirectory with a forged row = %+v, %v", rep, err)
	}
	kinds := map[relay.ProblemKind]string{}
	for _, p := range rep.Problems {
		kinds[p.Kind] = p.ID
	}
	if kinds[relay.ProblemUnsigned] != "employee:mallory v1" || !strings.HasPrefix(kinds[relay.ProblemMissing], "relay-a/audit/") || len(rep.Problems) != 2 {
		t.Errorf("problems: %+v, want mallory unsigned and bob's version 2 missing", rep.Problems)
	}
	// Without keys signatures are only counted, and the forged row, its
	// hash column empty, passes for a legacy record: only keys tell it
	// apart (docs/security.md).
	if rep, err := relay.VerifyDirectory(testCtx(t), s, relay.DirectoryVerifyOptions{}); err != nil || rep.Signatures.Checked {
		t.Fatalf("VerifyDirectory without keys = %+v, %v", rep, err)
	}
}
