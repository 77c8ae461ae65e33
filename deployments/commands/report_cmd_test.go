package commands

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/deployments/commands/cmdtest"
	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/relay/report"
	"github.com/wechat-relay/wechat-relay/storage/archive"
	"github.com/wechat-relay/wechat-relay/storage/embedded"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// `wechat-relay report` against both archives, over cliFixture's three
// messages in on 2026-11-03 (UTC), all alice's.

func TestReportCommandEmbedded(t *testing.T) {
	dataDir := t.TempDir()
	a, err := embedded.Open(context.Background(), filepath.Join(dataDir, "archive.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	cliFixture(t, a)
	reportComplianceFixture(t, a, a)
	a.Close()
	reportCases(t, cmdtest.ArchiveConfig(t, dataDir, "", ""))
}

func TestReportCommandClickHouse(t *testing.T) {
	if testing.Short() {
		t.Skip("needs ClickHouse")
	}
	addr := testenv.ClickHouseAddr(t)
	db := testenv.UniqueName("t_cli_report")
	t.Cleanup(func() { cmdtest.DropDatabase(t, addr, db) })
	a, err := archive.Open(context.Background(), archive.Config{Addr: addr, Database: db}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cliFixture(t, a)
	reportComplianceFixture(t, a, a)
	a.Close()
	reportCases(t, cmdtest.ArchiveConfig(t, t.TempDir(), addr, db))
}

// reportComplianceFixture adds a lexicon hit awaiting review (alice's, on
// 2026-11-03 10:00 UTC) and a legal hold stored before holds were signed
// (version 0: in force as legacy).
func reportComplianceFixture(t *testing.T, alerts relay.AlertStore, holds relay.RetentionStore) {
	t.Helper()
	ctx := context.Background()
	at := time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC)
	if err := alerts.AppendHits(ctx, []relay.LexiconHit{{ID: "hit-cli", Account: "acme", Conv: "acme:o_1", MessageID: "in:acme:o_1:1",
		Direction: relay.Inbound, Employee: "alice", Rule: "bribe", Matched: "x", Excerpt: "x", At: at}}); err != nil {
		t.Fatal(err)
	}
	if err := holds.AppendHold(ctx, relay.Hold{ID: "hold-cli", Account: "acme", Client: "o_1", Reason: "case", PlacedBy: "cmp", At: at}); err != nil {
		t.Fatal(err)
	}
}

func reportCases(t *testing.T, cfg string) {
	code, out, errOut := runCLI("report", "volume", "-config", cfg, "--from", "2026-11-03", "--to", "2026-11-03", "-tz", "0", "-table", "by_employee")
	if code != reportDone || out != "employee,in,out\nalice,3,0\n" {
		t.Fatalf("report volume -table by_employee: exit %d\n%s%s", code, out, errOut)
	}
	// The name after the flags; JSON.
	code, out, errOut = runCLI("report", "-config", cfg, "-from", "2026-11-03", "-to", "2026-11-03", "-tz", "480", "-format", "json", "volume")
	var rep report.Report
	if code != reportDone || json.Unmarshal([]byte(out), &rep) != nil {
		t.Fatalf("report -format json volume: exit %d\n%s%s", code, out, errOut)
	}
	if byDay, _ := rep.Table("by_day"); len(byDay.Rows) != 1 || byDay.Rows[0][0] != "2026-11-03" || byDay.Rows[0][1] != 3.0 {
		t.Errorf("by_day = %v", byDay.Rows)
	}
	// Every table of the CSV, each headed by its name.
	code, out, _ = runCLI("report", "delivery", "-config", cfg, "-from", "2026-11-03", "-to", "2026-11-03")
	if code != reportDone || !strings.HasPrefix(out, "table,by_day\n") || !strings.Contains(out, "\ntable,failures\n") {
		t.Errorf("report delivery: exit %d\n%s", code, out)
	}
	// The compliance report has the review queue and the holds now, read
	// through the services that check them.
	code, out, errOut = runCLI("report", "compliance", "-config", cfg, "-from", "2026-11-03", "-to", "2026-11-03")
	if code != reportDone || !strings.Contains(out, "\ntable,review_queue\nawaiting,oldest_since,oldest_ms,median_ms\n1,2026-11-03T10:00:00Z,") ||
		!strings.Contains(out, "\ntable,holds_in_force\nholds,flagged\n1,0\n") || !strings.Contains(out, "\nhold-cli,acme,o_1,,2026-11-03T10:00:00Z,cmp,case,\n") {
		t.Errorf("report compliance: exit %d\n%s%s", code, out, errOut)
	}
	for _, c := range []struct {
		args []string
		want int
	}{
		{[]string{"report", "-config", cfg}, reportUsage},
		{[]string{"report", "nonsense", "-config", cfg}, reportUsage},
		{[]string{"report", "volume", "-config", cfg, "-from", "yesterday"}, reportUsage},
		{[]string{"report", "volume", "-config", cfg, "-format", "xml"}, reportUsage},
		{[]string{"report", "volume", "-config", cfg, "-table", "nope"}, reportUsage},
		{[]string{"report", "volume", "-config", cfg, "-from", "2026-11-04", "-to", "2026-11-01"}, reportUsage},
		{[]string{"report", "volume", "-config", cmdtest.ArchiveConfig(t, t.TempDir(), "", "")}, reportFailed},
	} {
		if code, out, errOut := runCLI(c.args...); code != c.want {
			t.Errorf("%v: exit %d, want %d\n%s%s", c.args, code, c.want, out, errOut)
		}
	}
}
