package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/configs"
	"github.com/wechat-relay/wechat-relay/console"
	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

const admTok = "e2e-admin-token-0123456789"

// Two relay instances share ClickHouse and Redis: an admin's change made
// on one is archived, audited, and reaches the other's sign-in, routing
// and live view within the refresh interval.
func TestE2EDirectoryAcrossInstances(t *testing.T) {
	ch := testenv.ClickHouseAddr(t)
	rd := testenv.RedisAddr(t)
	db := testenv.UniqueName("e2e")
	prefix := testenv.UniqueName("wr") + ":"
	newCfg := func() *configs.Config {
		cfg := e2eConfig(t, ch, rd, db, prefix, t.TempDir())
		cfg.Console.Employees = append(cfg.Console.Employees, configs.EmployeeConfig{ID: "adm", Role: console.RoleAdmin, Token: admTok})
		cfg.Console.DirectoryRefresh = 100 * time.Millisecond
		return cfg
	}
	a := startRelay(t, newCfg())
	b := startRelay(t, newCfg())

	// On A: a team, and carol in it, serving acme; alice no longer does.
	if code, out := a.api(t, "POST", "/api/admin/teams", admTok, map[string]any{"id": "desk", "name": "前台"}); code != http.StatusCreated {
		t.Fatalf("create team on A: %d %v", code, out)
	}
	if code, out := a.api(t, "POST", "/api/admin/employees", admTok, map[string]any{
		"id": "carol", "name": "Carol", "role": "agent", "accounts": []string{"acme"}, "teams": []string{"desk"},
	}); code != http.StatusCreated {
		t.Fatalf("create carol on A: %d %v", code, out)
	}
	if code, out := a.api(t, "PUT", "/api/admin/employees/alice", admTok, map[string]any{
		"name": "", "role": "agent", "accounts": []string{}, "version": 0,
	}); code != http.StatusOK {
		t.Fatalf("take acme from alice on A: %d %v", code, out)
	}
	// Her token last: once B accepts it, B has read every change above.
	code, out := a.api(t, "POST", "/api/admin/employees/carol/token", admTok, map[string]any{"version": 1})
	carolTok, _ := out["token"].(string)
	if code != http.StatusOK || carolTok == "" {
		t.Fatalf("carol's token on A: %d %v", code, out)
	}

	// B lets carol in once it has reloaded.
	testenv.Until(t, "B to accept carol's token", func() bool {
		code, _ := b.api(t, "GET", "/api/me", carolTok, nil)
		return code == http.StatusOK
	})
	carol := b.dial(t, carolTok)

	// A new client writing through B goes to carol, the only agent of acme now.
	now := time.Now()
	if status, body := b.post(t, safeCallback(t, "acme", textXML("oDirectory1", "50001", "开户咨询", now), now)); status != 200 || body != "success" {
		t.Fatalf("callback answered %d %q", status, body)
	}
	f := waitFrame(t, carol, "the new client's message", func(f console.Frame) bool {
		return f.Type == console.FrameMessage && f.Message != nil && f.Message.Text == "开户咨询"
	})
	if f.Message.Employee != "carol" {
		t.Fatalf("the new client went to %q, want carol", f.Message.Employee)
	}

	// Every change is in the archived audit log, readable from B.
	code, out = b.api(t, "GET", "/api/audit?action="+relay.AuditAdminAction, admTok, nil)
	var targets []string
	recs, _ := out["records"].([]any)
	for _, r := range recs {
		targets = append(targets, r.(map[string]any)["target"].(string))
	}
	got := strings.Join(targets, " ")
	for _, want := range []string{"team:desk", "employee:carol", "employee:alice"} {
		if code != http.StatusOK || !strings.Contains(got, want) {
			t.Fatalf("audit records of admin changes: %d %v, want %s among them", code, got, want)
		}
	}

	// Disabled on B: A refuses her token after its next reload, and her
	// socket on B is closed at once.
	if code, out := b.api(t, "PUT", "/api/admin/employees/carol", admTok, map[string]any{
		"name": "Carol", "role": "agent", "accounts": []string{"acme"}, "teams": []string{"desk"}, "disabled": true, "version": 2,
	}); code != http.StatusOK {
		t.Fatalf("disable carol on B: %d %v", code, out)
	}
	testenv.Until(t, "A to refuse disabled carol", func() bool {
		code, _ := a.api(t, "GET", "/api/me", carolTok, nil)
		return code == http.StatusUnauthorized
	})
	deadline := time.After(10 * time.Second)
	for open := true; open; {
		select {
		case _, open = <-carol.frames:
		case <-deadline:
			t.Fatal("disabled carol's socket stayed open")
		}
	}
	if n := countRows(t, ch, db, "SELECT count() FROM directory WHERE id = 'carol'"); n != 3 {
		t.Fatalf("%d archived versions of carol, want 3 (created, token, disabled)", n)
	}
}
