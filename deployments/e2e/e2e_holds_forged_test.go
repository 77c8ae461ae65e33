package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// An insider who can write ClickHouse, but not the seal key, inserts a
// release of a legal hold and a review of an alert. The hold stays in
// force (flagged), the alert stays in the open queue (flagged), and
// verify names both rows.
func TestE2EForgedHoldReleaseAndReviewCountForNothing(t *testing.T) {
	r := startInsider(t, nil)

	code, out := r.api(t, "POST", "/api/holds", admTok, map[string]any{"account": "acct", "client": "c-held", "reason": "litigation"})
	holdID, _ := out["id"].(string)
	hash, _ := out["hash"].(string)
	if code != http.StatusCreated || holdID == "" || hash == "" {
		t.Fatalf("place a hold: %d %v", code, out)
	}

	now := time.Now().UTC()
	exec := func(q string, args ...any) { t.Helper(); r.insert(t, q, args...) }
	// The release, chained to the real placement, unsigned.
	exec(`INSERT INTO holds (id, account, client, conv, reason, placed_by, at, at_ms, day, version, released, prev_hash)`,
		holdID, "acct", "c-held", "", "case closed", "adm", now, uint64(now.UnixMilli()), now, uint64(2), uint8(1), hash)
	// An alert, and its review.
	exec(`INSERT INTO lexicon_hits (id, account, conv, message_id, direction, employee, rule, matched, excerpt, at, at_ms, day)`,
		"hit-e2e", "acct", "acct:c-held", "m-e2e", "in", "", "insider", "x", "x", now, uint64(now.UnixMilli()), now)
	exec(`INSERT INTO alert_reviews (id, hit_id, decision, comment, reviewer, at, at_ms, day, version)`,
		"rev-forged", "hit-e2e", "reviewed", "nothing here", "adm", now, uint64(now.UnixMilli()), now, uint64(1))

	code, out = r.api(t, "GET", "/api/holds", admTok, nil)
	holds, _ := out["holds"].([]any)
	if code != http.StatusOK || len(holds) != 1 {
		t.Fatalf("holds after a forged release: %d %v, want the hold in force", code, out)
	}
	if h, _ := holds[0].(map[string]any); h["id"] != holdID || !strings.Contains(h["refused"].(string), "unsigned") {
		t.Fatalf("hold after a forged release: %v, want it in force, refused unsigned", h)
	}
	// The refusal's alert is archived as the queue is read: it shows
	// from the next read on.
	found, raised := false, false
	testenv.Until(t, "hit-e2e open, flagged, and a review_refused alert", func() bool {
		code, out = r.api(t, "GET", "/api/alerts?status=open", admTok, nil)
		alerts, _ := out["alerts"].([]any)
		for _, a := range alerts {
			m, _ := a.(map[string]any)
			flag, _ := m["flag"].(string)
			found = found || (m["id"] == "hit-e2e" && strings.Contains(flag, "unsigned"))
			raised = raised || (m["rule"] == "review_refused" && m["matched"] == "review:hit-e2e v1")
		}
		return code == http.StatusOK && found && raised
	})

	vcode, rep := r.verify(t)
	if vcode != 1 || rep.Holds == nil || rep.Reviews == nil {
		t.Fatalf("verify: exit %d, holds %+v, reviews %+v", vcode, rep.Holds, rep.Reviews)
	}
	if len(rep.Holds.Problems) != 1 || rep.Holds.Problems[0].ID != "hold:"+holdID+" v2" ||
		rep.Holds.Problems[0].Kind != relay.ProblemUnsigned || rep.Holds.Audited != 1 {
		t.Errorf("verify, holds: %+v; want hold:%s v2 unsigned, and the placement audited", rep.Holds, holdID)
	}
	if len(rep.Reviews.Problems) != 1 || rep.Reviews.Problems[0].ID != "review:hit-e2e v1" || rep.Reviews.Problems[0].Kind != relay.ProblemUnsigned {
		t.Errorf("verify, reviews: %+v; want review:hit-e2e v1 unsigned", rep.Reviews)
	}
	if vcode, text := runVerifyText(t, r.archive, "-public-key", r.public); vcode != 1 ||
		!strings.Contains(text, "unsigned       hold      hold:"+holdID+" v2") || !strings.Contains(text, "unsigned       review    review:hit-e2e v1") {
		t.Fatalf("verify, text: exit %d\n%s", vcode, text)
	}
}
