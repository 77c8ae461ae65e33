package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"golang.org/x/crypto/bcrypt"

	"github.com/wechat-relay/wechat-relay/configs"
	"github.com/wechat-relay/wechat-relay/console"
	"github.com/wechat-relay/wechat-relay/deployments/commands"
	"github.com/wechat-relay/wechat-relay/deployments/commands/cmdtest"
	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// The compliance features end to end, on a relay built as `serve` builds
// it: the audit log (sign-in, views, search, export, transfer, reviews,
// holds) archived and verified, lexicon alerts to supervisors only,
// outbound blocking, the review queue, legal holds and the retention
// report — on ClickHouse and on the embedded archive.

const (
	cmpTok      = "cmp-e2e-token-00000001"
	bobTok      = "bob-e2e-token-00000001"
	admPassword = "adm-password-e2e"
	testUA      = "compliance-e2e/1.0"
)

func complianceConfig(t *testing.T, ch, rd, db, prefix, dataDir string) *configs.Config {
	t.Helper()
	cfg := e2eConfig(t, ch, rd, db, prefix, dataDir)
	hash, err := bcrypt.GenerateFromPassword([]byte(admPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Console.Employees = append(cfg.Console.Employees,
		configs.EmployeeConfig{ID: "bob", Role: console.RoleAgent, Token: bobTok},
		configs.EmployeeConfig{ID: "cmp", Role: console.RoleCompliance, Token: cmpTok},
		configs.EmployeeConfig{ID: "adm", Role: console.RoleAdmin, PasswordHash: string(hash)},
	)
	cfg.Lexicon = []relay.LexiconRule{
		{Name: "promise", Words: []string{"保证收益", "Guaranteed Return"}},
		{Name: "rate", Regex: []string{`\d+\s*%\s*(yield|回报)`}, Direction: "inbound"},
		{Name: "off-channel", Words: []string{"加我微信", "WhatsApp"}, Direction: "outbound", Block: true,
			Reason: "client contact must stay on the official account"},
	}
	cfg.Retention = map[string]string{"acme": "7y"}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestComplianceClickHouse(t *testing.T) {
	ch, rd := testenv.ClickHouseAddr(t), testenv.RedisAddr(t)
	db := testenv.UniqueName("e2e_compliance")
	dataDir := t.TempDir()
	cfg := complianceConfig(t, ch, rd, db, testenv.UniqueName("wr")+":", dataDir)
	t.Cleanup(func() { cmdtest.DropDatabase(t, ch, db) })
	runComplianceE2E(t, cfg, cmdtest.ArchiveConfig(t, dataDir, ch, db), func(t *testing.T, writer string, n uint64) {
		conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{ch}, Auth: clickhouse.Auth{Database: db}})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx := context.Background()
		// Altered in place, as a user with ALTER could; mutations are
		// asynchronous, so wait for it.
		if err := conn.Exec(ctx, fmt.Sprintf(`ALTER TABLE audit UPDATE target = 'forged' WHERE writer = '%s' AND number = %d`, writer, n)); err != nil {
			t.Fatal(err)
		}
		verifyWait(t, "the mutation applied", func() bool {
			var left uint64
			err := conn.QueryRow(ctx, `SELECT count() FROM system.mutations WHERE database = ? AND table = 'audit' AND is_done = 0`, db).Scan(&left)
			return err == nil && left == 0
		})
	})
}

func TestComplianceEmbedded(t *testing.T) {
	dataDir := t.TempDir()
	cfg := complianceConfig(t, "", "", "", "", dataDir)
	runComplianceE2E(t, cfg, cmdtest.ArchiveConfig(t, dataDir, "", ""), func(t *testing.T, writer string, n uint64) {
		tm := openSQLiteTamperer(t, cfg.ArchivePath())
		tm.exec(t, `UPDATE audit SET target = 'forged' WHERE writer = ? AND number = ?`, writer, n)
	})
}

// alerts reads the alert frames s receives within d.
func alerts(t *testing.T, s *socket, d time.Duration, want int) []relay.LexiconHit {
	t.Helper()
	var out []relay.LexiconHit
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) && (want < 0 || len(out) < want) {
		f, ok := readFrame(t, s, time.Until(deadline))
		if !ok {
			break
		}
		if f.Type == console.FrameAlert {
			out = append(out, *f.Alert)
		}
	}
	return out
}

func auditRecords(t *testing.T, r *testRelay, query string) []relay.AuditEntry {
	t.Helper()
	req, _ := http.NewRequest("GET", r.sys.URL()+"/api/audit?"+query, nil)
	req.Header.Set("Authorization", "Bearer "+cmpTok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /api/audit?%s: %d %s", query, resp.StatusCode, b)
	}
	var body struct {
		Records []relay.AuditEntry `json:"records"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return body.Records
}

func hasAudit(recs []relay.AuditEntry, emp, action string, conv relay.ConversationID) *relay.AuditEntry {
	for i, e := range recs {
		if e.Employee == emp && e.Action == action && (conv == "" || e.Conv == string(conv)) {
			return &recs[i]
		}
	}
	return nil
}

func runComplianceE2E(t *testing.T, cfg *configs.Config, cfgPath string, tamper func(t *testing.T, writer string, n uint64)) {
	acct := simAccount(t, cfg)
	r := startRelay(t, cfg)
	if r.sys.LexiconWatcher() == nil {
		t.Fatal("no lexicon watcher built from the configuration")
	}
	ctx := context.Background()

	sup, cmp, alice := r.dial(t, supTok), r.dial(t, cmpTok), r.dial(t, aliceTok)

	// Sign-in and sign-out, failed and successful, from a browser.
	login := func(pw string) (int, []*http.Cookie) {
		b, _ := json.Marshal(map[string]string{"id": "adm", "password": pw})
		req, _ := http.NewRequest("POST", r.sys.URL()+"/api/login", bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", testUA)
		req.Header.Set("X-Forwarded-For", "203.0.113.7")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Cookies()
	}
	if code, _ := login("wrong-password"); code != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d", code)
	}
	code, cookies := login(admPassword)
	if code != http.StatusOK {
		t.Fatalf("sign-in: %d", code)
	}

	// The client writes words of two rules.
	if err := testSim.SetCallbackURL(acct.AppID, r.sys.URL()+"/wechat/acme"); err != nil {
		t.Fatal(err)
	}
	client, err := testSim.NewClient(acct.AppID)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := client.Subscribe(ctx); err != nil {
		t.Fatalf("subscribe: %v (%+v)", err, res)
	}
	conv := relay.ConversationID("acme:" + client.OpenID)
	if res, err := client.SendText(ctx, "你们保证收益吗？听说有 8% 回报"); err != nil {
		t.Fatalf("client message: %v (%+v)", err, res)
	}
	for _, s := range []*socket{sup, cmp} {
		got := alerts(t, s, 10*time.Second, 2)
		rules := []string{}
		for _, h := range got {
			rules = append(rules, h.Rule)
			if h.Conv != conv || h.Direction != relay.Inbound {
				t.Errorf("alert %+v: wrong conversation or direction", h)
			}
		}
		slices.Sort(rules)
		if !slices.Equal(rules, []string{"promise", "rate"}) {
			t.Fatalf("supervisor alerts = %v, want promise and rate", rules)
		}
	}

	// Outbound: a hit that does not block, and one that does.
	if status, body := r.api(t, "POST", "/api/conversations/"+string(conv)+"/messages", aliceTok,
		map[string]any{"key": "ok-1", "kind": "text", "text": "We never promise a guaranteed return."}); status != http.StatusAccepted {
		t.Fatalf("send: %d %v", status, body)
	}
	if got := alerts(t, sup, 10*time.Second, 1); len(got) != 1 || got[0].Rule != "promise" || got[0].Direction != relay.Outbound || got[0].Employee != "alice" {
		t.Fatalf("outbound alert = %+v", got)
	}
	status, body := r.api(t, "POST", "/api/conversations/"+string(conv)+"/messages", aliceTok,
		map[string]any{"key": "blocked-1", "kind": "text", "text": "方便的话请加我微信 abc123"})
	if status != http.StatusConflict || !strings.Contains(fmt.Sprint(body["error"]), "off-channel") ||
		!strings.Contains(fmt.Sprint(body["error"]), "official account") {
		t.Fatalf("blocked send: %d %v, want 409 naming the rule and why", status, body)
	}
	if got := alerts(t, cmp, 10*time.Second, 2); len(got) != 2 || got[1].Rule != "off-channel" || got[1].MessageID != "" ||
		got[1].Employee != "alice" || strings.Contains(got[1].Excerpt, "abc123") {
		t.Fatalf("alerts of the allowed and the blocked send = %+v", got)
	}
	// Compliance reads but never sends.
	if status, _ := r.api(t, "POST", "/api/conversations/"+string(conv)+"/messages", cmpTok,
		map[string]any{"key": "cmp-1", "kind": "text", "text": "hello"}); status != http.StatusForbidden {
		t.Fatalf("compliance send: %d, want 403", status)
	}

	// Views, search, export, transfer.
	if status, _ := r.api(t, "GET", "/api/conversations/"+string(conv)+"/messages", supTok, nil); status != http.StatusOK {
		t.Fatalf("supervisor view: %d", status)
	}
	if status, _ := r.api(t, "GET", "/api/conversations/"+string(conv)+"/messages", cmpTok, nil); status != http.StatusOK {
		t.Fatalf("compliance view: %d", status)
	}
	if status, body := r.api(t, "GET", "/api/search?text=保证收益", cmpTok, nil); status != http.StatusOK {
		t.Fatalf("search: %d %v", status, body)
	}
	if status, body := r.api(t, "POST", "/api/exports", cmpTok, map[string]any{"conv": string(conv)}); status/100 != 2 {
		t.Fatalf("export: %d %v", status, body)
	}
	if status, body := r.api(t, "POST", "/api/conversations/"+string(conv)+"/transfer", supTok,
		map[string]any{"to": "bob", "note": "holiday"}); status/100 != 2 {
		t.Fatalf("transfer: %d %v", status, body)
	}

	// Sign-out from the browser session.
	{
		req, _ := http.NewRequest("GET", r.sys.URL()+"/api/me", nil)
		for _, c := range cookies {
			req.AddCookie(c)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var me map[string]any
		json.NewDecoder(resp.Body).Decode(&me)
		resp.Body.Close()
		req, _ = http.NewRequest("POST", r.sys.URL()+"/api/logout", nil)
		for _, c := range cookies {
			req.AddCookie(c)
		}
		req.Header.Set("X-CSRF-Token", fmt.Sprint(me["csrf"]))
		req.Header.Set("User-Agent", testUA)
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("sign-out: %d", resp.StatusCode)
		}
	}

	// The audit log, as compliance reads it.
	for _, tok := range []string{aliceTok, supTok} {
		if status, _ := r.api(t, "GET", "/api/audit", tok, nil); status != http.StatusForbidden {
			t.Fatalf("GET /api/audit as a non-compliance role: %d, want 403", status)
		}
	}
	recs := auditRecords(t, r, "")
	for _, w := range []struct {
		emp, action string
		conv        relay.ConversationID
	}{
		{"(unknown)", relay.AuditSignInFailed, ""}, // adm is known, but a wrong password is logged under the id
		{"adm", relay.AuditSignIn, ""},
		{"adm", relay.AuditSignOut, ""},
		{"sup", console.AuditOpenConversation, conv},
		{"cmp", console.AuditOpenConversation, conv},
		{"cmp", console.AuditArchiveSearch, ""},
		{"cmp", console.AuditArchiveExport, conv},
		{"sup", relay.AuditTransfer, conv},
		{"alice", relay.AuditSendBlocked, conv},
	} {
		e := hasAudit(recs, w.emp, w.action, w.conv)
		if e == nil && w.action == relay.AuditSignInFailed {
			e = hasAudit(recs, "adm", w.action, "")
		}
		if e == nil {
			t.Errorf("no audit record of %s %s %s in %d records", w.emp, w.action, w.conv, len(recs))
			continue
		}
		if w.action == relay.AuditSendBlocked {
			// Written by the outbox, which does not know the request's
			// origin (docs/compliance.md).
			if e.Target != "off-channel" || !strings.Contains(e.Detail, "加我微信") || strings.Contains(e.Detail, "abc123") {
				t.Errorf("blocked-send record %+v: want the rule and the match, not the text", e)
			}
			continue
		}
		if e.At.IsZero() || e.Remote == "" || e.Hash == "" {
			t.Errorf("audit record %+v lacks when, where or hash", e)
		}
		if w.action != relay.AuditSignInFailed && w.action != relay.AuditSignIn && e.UserAgent != testUA && w.emp != "adm" {
			t.Errorf("audit record %+v: user agent %q, want %q", e, e.UserAgent, testUA)
		}
	}
	if e := hasAudit(recs, "adm", relay.AuditSignIn, ""); e != nil && (!strings.Contains(e.Remote, "203.0.113.7") || e.UserAgent != testUA) {
		t.Errorf("sign-in record %+v: want the forwarded address and the user agent", e)
	}
	if got := auditRecords(t, r, "who=sup&action="+relay.AuditTransfer); len(got) != 1 || got[0].Target != "bob" || got[0].Detail != "holiday" {
		t.Errorf("audit filtered by who and action = %+v", got)
	}
	if got := auditRecords(t, r, "from=2000-01-01&to=2000-01-02"); len(got) != 0 {
		t.Errorf("audit outside the time range = %+v", got)
	}

	// The review queue.
	if status, _ := r.api(t, "GET", "/api/alerts", aliceTok, nil); status != http.StatusForbidden {
		t.Fatalf("alerts as an agent: %d, want 403", status)
	}
	status, body = r.api(t, "GET", "/api/alerts?status=open", cmpTok, nil)
	open, _ := body["alerts"].([]any)
	if status != http.StatusOK || len(open) != 4 {
		t.Fatalf("open alerts: %d, %d alerts (%v), want 4 (2 inbound, the allowed and the blocked send)", status, len(open), body)
	}
	hitID := fmt.Sprint(open[0].(map[string]any)["id"])
	if status, _ := r.api(t, "POST", "/api/alerts/"+hitID+"/review", supTok, map[string]any{"decision": "reviewed"}); status != http.StatusForbidden {
		t.Fatalf("review by a supervisor: %d, want 403", status)
	}
	if status, _ := r.api(t, "POST", "/api/alerts/"+hitID+"/review", cmpTok, map[string]any{"decision": "deleted"}); status != http.StatusBadRequest {
		t.Fatalf("review with a bad decision: %d, want 400", status)
	}
	if status, body := r.api(t, "POST", "/api/alerts/"+hitID+"/review", cmpTok,
		map[string]any{"decision": "escalated", "comment": "收益承诺，需上报"}); status != http.StatusCreated || body["reviewer"] != "cmp" {
		t.Fatalf("review: %d %v", status, body)
	}
	status, body = r.api(t, "GET", "/api/alerts?status=escalated", supTok, nil)
	esc, _ := body["alerts"].([]any)
	if status != http.StatusOK || len(esc) != 1 || esc[0].(map[string]any)["review"].(map[string]any)["comment"] != "收益承诺，需上报" {
		t.Fatalf("escalated alerts: %d %v", status, body)
	}
	if e := hasAudit(auditRecords(t, r, "action="+relay.AuditReview), "cmp", relay.AuditReview, conv); e == nil || e.Target != hitID {
		t.Errorf("review not audited: %+v", e)
	}

	// A legal hold on the client.
	if status, _ := r.api(t, "POST", "/api/holds", supTok, map[string]any{"account": "acme", "client": client.OpenID, "reason": "x"}); status != http.StatusForbidden {
		t.Fatalf("hold by a supervisor: %d, want 403", status)
	}
	if status, body := r.api(t, "POST", "/api/holds", cmpTok,
		map[string]any{"account": "acme", "client": client.OpenID, "reason": "litigation 2026-17"}); status != http.StatusCreated {
		t.Fatalf("hold: %d %v", status, body)
	}
	if hasAudit(auditRecords(t, r, "action="+relay.AuditLegalHold), "cmp", relay.AuditLegalHold, "") == nil {
		t.Error("legal hold not audited")
	}

	// The blocked message was neither archived nor sent.
	msgs, err := r.sys.Archive().Since(ctx, conv, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if m.ID == relay.OutboundID(conv, "blocked-1") || strings.Contains(m.Text, "加我微信") {
			t.Fatalf("the blocked message was archived: %+v", m)
		}
	}
	verifyWait(t, "the allowed reply delivered", func() bool { d, _ := client.Delivered(); return len(d) >= 1 })
	time.Sleep(200 * time.Millisecond)
	if d, _ := client.Delivered(); len(d) != 1 {
		t.Fatalf("the client received %d messages, want only the allowed reply: %+v", len(d), d)
	}
	// Agents never see alerts.
	if got := alerts(t, alice, 300*time.Millisecond, -1); len(got) != 0 {
		t.Fatalf("an agent received alert frames: %+v", got)
	}
	writer := recs[0].Writer
	r.stop()

	// verify covers the audit log.
	if code, rep := runVerify(t, cfgPath); code != 0 {
		t.Fatalf("verify of an untouched archive: exit %d, %+v", code, rep)
	}
	code, text := runVerifyText(t, cfgPath, "-audit-seal", recs[0].Hash)
	if code != 0 || !strings.Contains(text, "audit records intact") || !strings.Contains(text, "witnessed audit hash "+recs[0].Hash+": found") {
		t.Fatalf("verify text: exit %d\n%s", code, text)
	}
	if code, _ := runVerifyText(t, cfgPath, "-audit-seal", strings.Repeat("ab", 32)); code != 1 {
		t.Fatalf("verify with an unknown witnessed audit hash: exit %d, want 1", code)
	}

	// The retention report: nothing expired yet, the held client counted.
	var out, errOut bytes.Buffer
	if code := commands.Run([]string{"retention-report", "-config", retentionConfig(t, cfgPath), "-json"}, &out, &errOut, func(string) string { return "" }); code != 0 {
		t.Fatalf("retention-report: exit %d: %s", code, errOut.String())
	}
	var rep relay.RetentionReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("retention-report output: %v\n%s", err, out.String())
	}
	if len(rep.Holds) != 1 || len(rep.Rows) == 0 || rep.Rows[0].Held == 0 || rep.Rows[0].Droppable || rep.Rows[0].Retention != "7y" {
		t.Fatalf("retention report = %+v", rep)
	}

	// Tampering with an audit record is caught.
	tamper(t, writer, 2)
	code, vrep := runVerify(t, cfgPath)
	if code != 1 {
		t.Fatalf("verify after tampering with the audit log: exit %d, want 1 (%+v)", code, vrep)
	}
	code, text = runVerifyText(t, cfgPath)
	if code != 1 || !strings.Contains(text, fmt.Sprintf("%s/audit/%020d", writer, 2)) {
		t.Fatalf("verify text does not name the altered audit record: exit %d\n%s", code, text)
	}
}

// retentionConfig adds the retention and the account to verify's
// configuration.
func retentionConfig(t *testing.T, cfgPath string) string {
	t.Helper()
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	y := string(b) + "wechat:\n  accounts:\n    - id: acme\n      app_id: wx0000000000000001\nretention:\n  acme: 7y\n"
	path := filepath.Join(t.TempDir(), "retention.yaml")
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
