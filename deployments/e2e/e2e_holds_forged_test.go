package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/wechat-relay/wechat-relay/configs"
	"github.com/wechat-relay/wechat-relay/console"
	"github.com/wechat-relay/wechat-relay/deployments/commands/cmdtest"
	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// An insider who can write ClickHouse, but not the seal key, inserts a
// release of a legal hold and a review of an alert. The hold stays in
// force (flagged), the alert stays in the open queue (flagged), and
// verify names both rows.
func TestE2EForgedHoldReleaseAndReviewCountForNothing(t *testing.T) {
	ch := testenv.ClickHouseAddr(t)
	rd := testenv.RedisAddr(t)
	db := testenv.UniqueName("e2e")
	dataDir := t.TempDir()
	cfg := e2eConfig(t, ch, rd, db, testenv.UniqueName("wr")+":", dataDir)
	cfg.Console.Employees = append(cfg.Console.Employees, configs.EmployeeConfig{ID: "adm", Role: console.RoleAdmin, Token: admTok})
	var public string
	cfg.Pipeline.SealKeyFile, public = makeSealKey(t, t.TempDir(), "seal.key")
	r := startRelay(t, cfg)

	code, out := r.api(t, "POST", "/api/holds", admTok, map[string]any{"account": "acct", "client": "c-held", "reason": "litigation"})
	holdID, _ := out["id"].(string)
	hash, _ := out["hash"].(string)
	if code != http.StatusCreated || holdID == "" || hash == "" {
		t.Fatalf("place a hold: %d %v", code, out)
	}

	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{ch}, Auth: clickhouse.Auth{Database: db}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := context.Background()
	now := time.Now().UTC()
	exec := func(q string, args ...any) {
		t.Helper()
		batch, err := conn.PrepareBatch(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if err := batch.Append(args...); err != nil {
			t.Fatal(err)
		}
		if err := batch.Send(); err != nil {
			t.Fatal(err)
		}
	}
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

	cfgPath := cmdtest.ArchiveConfig(t, dataDir, ch, db)
	vcode, rep := runVerify(t, cfgPath, "-public-key", public)
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
	if vcode, text := runVerifyText(t, cfgPath, "-public-key", public); vcode != 1 ||
		!strings.Contains(text, "unsigned       hold      hold:"+holdID+" v2") || !strings.Contains(text, "unsigned       review    review:hit-e2e v1") {
		t.Fatalf("verify, text: exit %d\n%s", vcode, text)
	}
}
