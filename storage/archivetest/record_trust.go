package archivetest

import (
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
)

// RecordTrustStore is what the checks of signed holds and reviews need
// of an archive (relay.LegalHolds, relay.ReviewLog, relay.VerifyHolds,
// relay.VerifyReviews).
type RecordTrustStore interface {
	ComplianceStore
	relay.ReviewSource
}

// RunRecordTrust runs the suite of the checks of legal holds and alert
// reviews (relay/record_seal.go) over an archive: rows written behind
// the relay's back, as an insider who can write ClickHouse would, must
// neither lift a hold nor hide an alert, and verify must name them. open
// is called once per subtest and must return a new, empty store.
func RunRecordTrust(t *testing.T, open func(t *testing.T) RecordTrustStore) {
	t.Helper()
	for _, c := range []struct {
		name string
		run  func(t *testing.T, s RecordTrustStore)
	}{
		{"ForgedHoldReleaseRefused", testForgedHoldRelease},
		{"ForgedReviewRefused", testForgedReview},
		{"VerifyHoldsAndReviews", testVerifyHoldsAndReviews},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t, open(t))
		})
	}
}

// recordRig is one relay instance: its key, audit log, holds and
// reviews, and the alerts it raised.
type recordRig struct {
	s       RecordTrustStore
	signer  *relay.SealSigner
	audit   *relay.AuditLog
	holds   *relay.LegalHolds
	reviews *relay.ReviewLog

	mu     sync.Mutex
	raised []relay.LexiconHit
}

func newRecordRig(t *testing.T, s RecordTrustStore, writer string) *recordRig {
	t.Helper()
	r := &recordRig{s: s, signer: newSigner(t)}
	var err error
	if r.audit, err = relay.NewAuditLog(s, writer, nil, nil); err != nil {
		t.Fatal(err)
	}
	r.audit.SignWith(r.signer)
	trust := relay.RecordTrust{Signer: r.signer, Audit: s, Alerts: s,
		Alert: func(h relay.LexiconHit) { r.mu.Lock(); r.raised = append(r.raised, h); r.mu.Unlock() }}
	if r.holds, err = relay.NewLegalHolds(s, trust); err != nil {
		t.Fatal(err)
	}
	if r.reviews, err = relay.NewReviewLog(s, trust); err != nil {
		t.Fatal(err)
	}
	return r
}

// holdAudit is the console's legal_hold audit record of a version.
func (r *recordRig) holdAudit(t *testing.T, what string) func(relay.Hold) error {
	return func(h relay.Hold) error {
		_, err := r.audit.Append(testCtx(t), relay.AuditEntry{Employee: "cmp", Role: "compliance", Action: relay.AuditLegalHold,
			Conv: string(h.Conv), Target: h.ID, Detail: relay.HoldAuditDetail(what+": "+h.Reason, h)})
		return err
	}
}

// review records decision on hit as the console does: sealed, audited,
// archived.
func (r *recordRig) review(t *testing.T, hit, decision string) relay.AlertReview {
	t.Helper()
	ctx := testCtx(t)
	rev, err := r.reviews.SealReview(ctx, relay.AlertReview{ID: "rev-" + decision + "-" + hit, HitID: hit, Decision: decision,
		Comment: "checked", Reviewer: "cmp", At: time.Now().UTC().Truncate(time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.audit.Append(ctx, relay.AuditEntry{Employee: "cmp", Role: "compliance", Action: relay.AuditReview, Target: hit,
		Detail: relay.ReviewAuditDetail(decision+": checked", rev)})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.reviews.AppendReview(ctx, rev); err != nil {
		t.Fatal(err)
	}
	return rev
}

// wantRaised fails unless an alert of rule naming record was archived
// and raised.
func (r *recordRig) wantRaised(t *testing.T, rule, record string) {
	t.Helper()
	hits, err := r.s.Alerts(testCtx(t), relay.AlertQuery{})
	if err != nil {
		t.Fatal(err)
	}
	archived := false
	for _, h := range hits {
		archived = archived || (h.Rule == rule && h.Matched == record)
	}
	r.mu.Lock()
	raised := false
	for _, h := range r.raised {
		raised = raised || (h.Rule == rule && h.Matched == record)
	}
	r.mu.Unlock()
	if !archived || !raised {
		t.Errorf("alert %s of %s: archived %v, raised %v", rule, record, archived, raised)
	}
}

// heldIn is the messages under a hold in account acc, month, of rep.
func heldIn(rep *relay.RetentionReport, month string) (held int, droppable bool) {
	for _, row := range rep.Rows {
		if row.Account == "acc" && row.Month == month {
			return row.Held, row.Droppable
		}
	}
	return -1, false
}

func testForgedHoldRelease(t *testing.T, s RecordTrustStore) {
	ctx := testCtx(t)
	r := newRecordRig(t, s, "relay-a")
	when := time.Date(2018, 2, 10, 12, 0, 0, 0, time.UTC)
	var msgs []relay.Message
	for seq := uint64(1); seq <= 3; seq++ {
		m := message(conv("held"), seq)
		m.ID, m.AcceptedAt, m.CreatedAt = fmt.Sprintf("held-%d", seq), when, when
		msgs = append(msgs, m)
	}
	if err := s.Insert(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	policies := map[string]relay.Retention{"acc": {N: 7, Unit: 'y'}}
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	placed, err := r.holds.Place(ctx, relay.Hold{ID: "hold-1", Account: "acc", Conv: conv("held"), Reason: "litigation",
		PlacedBy: "cmp", At: time.Now()}, r.holdAudit(t, "placed"))
	if err != nil || placed.Version != 1 || placed.Signature == "" {
		t.Fatalf("Place = %+v, %v", placed, err)
	}

	// The insider's release: unsigned, chained to the placement; and one
	// signed with a key of their own.
	forged := placed
	forged.Version, forged.PrevHash, forged.Released, forged.PlacedBy, forged.Reason = 2, placed.Hash, true, "mallory", "done"
	forged.At = time.Now().UTC().Truncate(time.Millisecond)
	forged.Hash, forged.KeyID, forged.Signature = forged.ComputeHash(), "", ""
	if err := s.AppendHold(ctx, forged); err != nil {
		t.Fatal(err)
	}
	other := forged
	other.Reason = "done, signed"
	other.Hash = other.ComputeHash()
	other.KeyID, other.Signature = r.signer.KeyID(), base64.StdEncoding.EncodeToString(make([]byte, ed25519.SignatureSize))
	if err := s.AppendHold(ctx, other); err != nil {
		t.Fatal(err)
	}
	rep, err := relay.BuildRetentionReport(ctx, r.holds, policies, now)
	if err != nil {
		t.Fatal(err)
	}
	if held, droppable := heldIn(rep, "201802"); held != 3 || droppable {
		t.Errorf("after a forged release: %d held, droppable %v; want 3 held, not droppable", held, droppable)
	}
	if len(rep.Holds) != 1 || rep.Holds[0].ID != "hold-1" || !strings.Contains(rep.Holds[0].Refused, "unsigned") {
		t.Errorf("holds in force after a forged release: %+v", rep.Holds)
	}
	r.wantRaised(t, "hold_refused", "hold:hold-1 v2")

	// An instance that only trusts the key refuses it too.
	fresh, err := relay.NewLegalHolds(s, relay.RecordTrust{PublicKeys: []ed25519.PublicKey{r.signer.PublicKey()}, Audit: s})
	if err != nil {
		t.Fatal(err)
	}
	if in, err := fresh.InForce(ctx); err != nil || len(in) != 1 {
		t.Errorf("a second instance: holds in force %+v, %v", in, err)
	}

	// A release through the API lifts it: the month may be dropped.
	rel, err := r.holds.Release(ctx, "hold-1", "cmp", "case closed", time.Now(), r.holdAudit(t, "released"))
	if err != nil || rel.Version != 2 || rel.PrevHash != placed.Hash || !rel.Released {
		t.Fatalf("Release = %+v, %v", rel, err)
	}
	rep, err = relay.BuildRetentionReport(ctx, r.holds, policies, now)
	if err != nil {
		t.Fatal(err)
	}
	if held, droppable := heldIn(rep, "201802"); held != 0 || !droppable || len(rep.Holds) != 0 {
		t.Errorf("after a genuine release: %d held, droppable %v, holds %+v; want 0, droppable, none", held, droppable, rep.Holds)
	}
}

func testForgedReview(t *testing.T, s RecordTrustStore) {
	ctx := testCtx(t)
	r := newRecordRig(t, s, "relay-a")
	at := time.Now().UTC().Truncate(time.Millisecond)
	hits := []relay.LexiconHit{
		{ID: "hit-forged", Account: "acc", Conv: conv("c1"), MessageID: "m1", Direction: relay.Inbound, Rule: "insider", Matched: "x", Excerpt: "x", At: at},
		{ID: "hit-real", Account: "acc", Conv: conv("c2"), MessageID: "m2", Direction: relay.Inbound, Rule: "insider", Matched: "y", Excerpt: "y", At: at},
	}
	if err := s.AppendHits(ctx, hits); err != nil {
		t.Fatal(err)
	}
	// The insider marks a hit reviewed, directly in the archive.
	forged := relay.AlertReview{ID: "rev-forged", HitID: "hit-forged", Decision: relay.DecisionReviewed, Comment: "nothing here",
		Reviewer: "cmp", At: at, RecordSeal: relay.RecordSeal{Version: 1}}
	forged.Hash = forged.ComputeHash()
	if err := s.AppendReview(ctx, forged); err != nil {
		t.Fatal(err)
	}
	r.review(t, "hit-real", relay.DecisionReviewed)

	open, err := r.reviews.Alerts(ctx, relay.AlertQuery{Status: "open"})
	if err != nil {
		t.Fatal(err)
	}
	if len(open) != 1 || open[0].ID != "hit-forged" || open[0].Review != nil || !strings.Contains(open[0].Flag, "unsigned") {
		t.Fatalf("open queue with a forged review = %+v; want hit-forged alone, flagged unsigned", open)
	}
	r.wantRaised(t, "review_refused", "review:hit-forged v1")
	hit, ok, err := r.reviews.Hit(ctx, "hit-real")
	if err != nil || !ok || hit.Review == nil || hit.Review.Decision != relay.DecisionReviewed || hit.Flag != "" {
		t.Errorf("the genuinely reviewed hit = %+v, %v, %v", hit, ok, err)
	}
	// Reviewed again, genuinely, it leaves the queue; the chain follows
	// the review that counts, not the forged one.
	rev := r.review(t, "hit-forged", relay.DecisionEscalated)
	if rev.Version != 1 || rev.PrevHash != "" {
		t.Errorf("a genuine review after a forged one: version %d, prev %q", rev.Version, rev.PrevHash)
	}
	escalated, err := r.reviews.Alerts(ctx, relay.AlertQuery{Status: relay.DecisionEscalated})
	if err != nil || len(escalated) != 1 || escalated[0].ID != "hit-forged" {
		t.Errorf("escalated = %+v, %v", escalated, err)
	}
}

func testVerifyHoldsAndReviews(t *testing.T, s RecordTrustStore) {
	ctx := testCtx(t)
	r := newRecordRig(t, s, "relay-a")
	if _, err := r.holds.Place(ctx, relay.Hold{ID: "hold-1", Account: "acc", Client: "c1", Reason: "litigation", PlacedBy: "cmp",
		At: time.Now()}, r.holdAudit(t, "placed")); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendHits(ctx, []relay.LexiconHit{{ID: "hit-1", Account: "acc", Conv: conv("c1"), MessageID: "m1",
		Direction: relay.Inbound, Rule: "insider", Matched: "x", Excerpt: "x", At: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	r.review(t, "hit-1", relay.DecisionReviewed)
	opt := relay.DirectoryVerifyOptions{PublicKeys: []ed25519.PublicKey{r.signer.PublicKey()}}
	holds, err := relay.VerifyHolds(ctx, s, opt)
	if err != nil || !holds.OK || holds.Records != 1 || holds.Audited != 1 {
		t.Fatalf("VerifyHolds of intact holds = %+v, %v", holds, err)
	}
	reviews, err := relay.VerifyReviews(ctx, s, opt)
	if err != nil || !reviews.OK || reviews.Records != 1 || reviews.Audited != 1 {
		t.Fatalf("VerifyReviews of intact reviews = %+v, %v", reviews, err)
	}

	// A forged release, and a released version audited but not in the
	// archive (deleted); a forged review.
	in, err := r.holds.InForce(ctx)
	if err != nil || len(in) != 1 {
		t.Fatal(in, err)
	}
	forged := in[0]
	forged.Version, forged.PrevHash, forged.Released, forged.At = 2, in[0].Hash, true, time.Now().UTC().Truncate(time.Millisecond)
	forged.Hash, forged.KeyID, forged.Signature = forged.ComputeHash(), "", ""
	if err := s.AppendHold(ctx, forged); err != nil {
		t.Fatal(err)
	}
	lost := forged
	lost.ID, lost.Version, lost.PrevHash = "hold-2", 1, ""
	lost.Released = false
	lost.Hash = lost.ComputeHash()
	if err := r.holdAudit(t, "placed")(lost); err != nil {
		t.Fatal(err)
	}
	fr := relay.AlertReview{ID: "rev-forged", HitID: "hit-1", Decision: relay.DecisionReviewed, Reviewer: "cmp",
		At: time.Now().UTC().Truncate(time.Millisecond), RecordSeal: relay.RecordSeal{Version: 2}}
	fr.Hash = fr.ComputeHash()
	if err := s.AppendReview(ctx, fr); err != nil {
		t.Fatal(err)
	}
	holds, err = relay.VerifyHolds(ctx, s, opt)
	if err != nil || holds.OK {
		t.Fatalf("VerifyHolds with a forged release = %+v, %v", holds, err)
	}
	got := map[string]relay.ProblemKind{}
	for _, p := range holds.Problems {
		got[p.ID] = p.Kind
	}
	if got["hold:hold-1 v2"] != relay.ProblemUnsigned || len(holds.Problems) != 2 {
		t.Errorf("hold problems = %+v; want hold:hold-1 v2 unsigned and hold-2's audit record missing its row", holds.Problems)
	}
	missing := false
	for _, p := range holds.Problems {
		missing = missing || (p.Kind == relay.ProblemMissing && strings.Contains(p.Detail, "hold:hold-2 version 1"))
	}
	if !missing {
		t.Errorf("hold problems = %+v; want hold-2 missing", holds.Problems)
	}
	reviews, err = relay.VerifyReviews(ctx, s, opt)
	if err != nil || reviews.OK || len(reviews.Problems) != 1 || reviews.Problems[0].ID != "review:hit-1 v2" || reviews.Problems[0].Kind != relay.ProblemUnsigned {
		t.Errorf("VerifyReviews with a forged review = %+v, %v", reviews, err)
	}
}
