package console

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/csv"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/storage/embedded"
)

// newVerifiedReportEnv is newReportEnv (now: 2026-11-02 05:00 UTC) with
// a signing instance's review log and legal holds over the archive, and:
//
//   - hits h1 (a1, rule bribe, 03:00), h2 (a1, bribe, 04:00), h3 (a2,
//     gift, 04:30), h4 (a2, gift, 04:50); h4 reviewed, signed; h2
//     "reviewed" by a row forged in the archive (unsigned);
//   - holds: hold-a placed at 01:00; hold-b placed at 02:00 and
//     "released" by a forged row; hold-c placed and released, signed.
func newVerifiedReportEnv(t *testing.T) *reportEnv {
	t.Helper()
	base := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	return newReportEnvWith(t, func(arch *embedded.Archive) ComplianceDeps {
		ctx := context.Background()
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		signer := relay.NewSealSigner(priv)
		audit, err := relay.NewAuditLog(arch, "test", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		audit.SignWith(signer)
		trust := relay.RecordTrust{Signer: signer, Audit: arch}
		reviews, err := relay.NewReviewLog(arch, trust)
		if err != nil {
			t.Fatal(err)
		}
		holds, err := relay.NewLegalHolds(arch, trust)
		if err != nil {
			t.Fatal(err)
		}
		hit := func(id, emp, client, rule string, at time.Duration) relay.LexiconHit {
			return relay.LexiconHit{ID: id, Account: "acct", Conv: relay.Conversation("acct", client), MessageID: "m-" + id,
				Direction: relay.Inbound, Employee: emp, Rule: rule, Matched: rule, Excerpt: rule, At: base.Add(at)}
		}
		if err := arch.AppendHits(ctx, []relay.LexiconHit{
			hit("h1", "a1", "o_1", "bribe", 3*time.Hour), hit("h2", "a1", "o_1", "bribe", 4*time.Hour),
			hit("h3", "a2", "o_2", "gift", 4*time.Hour+30*time.Minute), hit("h4", "a2", "o_2", "gift", 4*time.Hour+50*time.Minute),
		}); err != nil {
			t.Fatal(err)
		}
		rev, err := reviews.SealReview(ctx, relay.AlertReview{ID: "rev-4", HitID: "h4", Decision: relay.DecisionReviewed,
			Reviewer: "comp", At: base.Add(4*time.Hour + 55*time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := audit.Append(ctx, relay.AuditEntry{Employee: "comp", Role: "compliance", Action: relay.AuditReview,
			Target: "h4", Detail: relay.ReviewAuditDetail("reviewed", rev)}); err != nil {
			t.Fatal(err)
		}
		if err := reviews.AppendReview(ctx, rev); err != nil {
			t.Fatal(err)
		}
		// A review written straight into the archive, signed by nobody.
		if err := arch.AppendReview(ctx, relay.AlertReview{ID: "rev-forged", HitID: "h2", Decision: relay.DecisionReviewed,
			Reviewer: "comp", At: base.Add(4*time.Hour + 10*time.Minute), RecordSeal: relay.RecordSeal{Version: 1}}); err != nil {
			t.Fatal(err)
		}
		holdAudit := func(h relay.Hold) error {
			_, err := audit.Append(ctx, relay.AuditEntry{Employee: "comp", Role: "compliance", Action: relay.AuditLegalHold,
				Conv: string(h.Conv), Target: h.ID, Detail: relay.HoldAuditDetail("hold: "+h.Reason, h)})
			return err
		}
		place := func(id, client string, at time.Duration) relay.Hold {
			h, err := holds.Place(ctx, relay.Hold{ID: id, Account: "acct", Client: client, Reason: "case " + id,
				PlacedBy: "comp", At: base.Add(at)}, holdAudit)
			if err != nil {
				t.Fatal(err)
			}
			return h
		}
		place("hold-a", "o_1", time.Hour)
		b := place("hold-b", "o_2", 2*time.Hour)
		place("hold-c", "o_3", 3*time.Hour)
		if _, err := holds.Release(ctx, "hold-c", "comp", "case closed", base.Add(4*time.Hour), holdAudit); err != nil {
			t.Fatal(err)
		}
		// A release written straight into the archive, signed by nobody.
		forged := b
		forged.Released, forged.PlacedBy, forged.At = true, "intruder", base.Add(3*time.Hour)
		forged.RecordSeal = relay.RecordSeal{Version: 2, PrevHash: b.Hash}
		if err := arch.AppendHold(ctx, forged); err != nil {
			t.Fatal(err)
		}
		return ComplianceDeps{Audit: arch, Alerts: reviews, Holds: holds}
	})
}

func TestComplianceReportQueueAndHoldsFromVerifiedRecords(t *testing.T) {
	e := newVerifiedReportEnv(t)
	const q = "/api/reports/compliance?from=2026-11-02&to=2026-11-02"
	rep := e.report(t, q, repCompTok)
	// Awaiting: h1 (2 h), h2 (1 h: its forged review does not count), h3
	// (30 min); h4's signed review took it out. Median: the 2nd of 3.
	sameRows(t, "review queue", rows(t, rep, "review_queue"), "3 2026-11-02T03:00:00Z 7200000 3600000")
	sameRows(t, "review queue by rule", rows(t, rep, "review_queue_by_rule"),
		"bribe 2 2026-11-02T03:00:00Z 7200000 3600000", "gift 1 2026-11-02T04:30:00Z 1800000 1800000")
	sameRows(t, "review queue by team", rows(t, rep, "review_queue_by_team"),
		"blue 1 2026-11-02T04:30:00Z 1800000 1800000", "red 2 2026-11-02T03:00:00Z 7200000 3600000")
	// hold-b's forged release lifts nothing (flagged); hold-c is released.
	sameRows(t, "holds in force", rows(t, rep, "holds_in_force"), "2 1")
	got := rows(t, rep, "legal_holds")
	if len(got) != 2 || !strings.HasPrefix(got[0], "hold-a acct o_1  2026-11-02T01:00:00Z comp case hold-a ") ||
		!strings.HasPrefix(got[1], "hold-b acct o_2  2026-11-02T02:00:00Z comp case hold-b version 2 refused") {
		t.Errorf("legal holds:\n%s", strings.Join(got, "\n"))
	}

	// The filters narrow the queue; another account has neither.
	rep = e.report(t, q+"&team=red", repCompTok)
	sameRows(t, "review queue of red", rows(t, rep, "review_queue"), "2 2026-11-02T03:00:00Z 7200000 3600000")
	rep = e.report(t, q+"&account=other", repCompTok)
	sameRows(t, "review queue of another account", rows(t, rep, "review_queue"), "0  0 0")
	sameRows(t, "holds of another account", rows(t, rep, "holds_in_force"), "0 0")

	// Supervisors are refused the compliance report, queue and holds with it.
	if code, _, body := e.get(t, q, repTeamSupTok); code != http.StatusForbidden {
		t.Errorf("team supervisor: %d %s, want 403", code, body)
	}

	code, _, body := e.get(t, q+"&format=csv&table=review_queue_by_rule", repCompTok)
	if code != http.StatusOK {
		t.Fatalf("CSV: %d %s", code, body)
	}
	recs, err := csv.NewReader(strings.NewReader(string(body))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if want := "[[rule awaiting oldest_since oldest_ms median_ms] [bribe 2 2026-11-02T03:00:00Z 7200000 3600000] [gift 1 2026-11-02T04:30:00Z 1800000 1800000]]"; fmt.Sprint(recs) != want {
		t.Errorf("CSV = %q", recs)
	}
}

// Without the checking services the compliance report has no queue and
// no holds, rather than figures an archive row could change.
func TestComplianceReportWithoutVerifiedServices(t *testing.T) {
	e := newReportEnv(t)
	rep := e.report(t, "/api/reports/compliance?from=2026-11-02&to=2026-11-02", repCompTok)
	for _, id := range []string{"review_queue", "holds_in_force", "legal_holds"} {
		if _, ok := rep.Table(id); ok {
			t.Errorf("table %s without a review log and legal holds", id)
		}
	}
}
