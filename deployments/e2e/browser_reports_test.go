package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/wechat-relay/wechat-relay/configs"
	"github.com/wechat-relay/wechat-relay/console"
	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/storage/archive"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
	"github.com/wechat-relay/wechat-relay/storage/testenv/chromium"
)

// The Reports view in a real headless Chromium, against a relay on the
// real ClickHouse and Redis whose archive holds a known desk: alice (team
// "desk") answered two clients after 2 and 10 minutes, one send failed
// with 45015; bob (no team) has a client waiting. The team supervisor
// sees alice's figures and not bob's, in charts and tables that match
// the archive, drills down from a bar to the messages behind it, and
// downloads a table as CSV; on a phone the view fits the screen; an
// agent has no Reports.

var reportsBrowserPasswords = map[string]string{
	"alice": "alice-reports-pw", "bob": "bob-reports-pw", "lead": "lead-reports-pw", "sup": "sup-reports-pw", "cmp": "cmp-reports-pw",
}

// seedDesk archives the desk's messages and delivery events, accepted
// during the last three hours.
func seedReportsDesk(t *testing.T, addr, db string, now time.Time) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, err := archive.Open(ctx, archive.Config{Addr: addr, Database: db}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	msg := func(client string, seq uint64, dir relay.Direction, emp string, at time.Duration) relay.Message {
		conv := relay.Conversation("acme", client)
		return relay.Message{
			ID: fmt.Sprintf("rep:%s:%d", client, seq), Account: "acme", Client: client, Conv: conv, Seq: seq,
			Direction: dir, Kind: relay.KindText, Text: fmt.Sprintf("报表 %s %d", client, seq),
			CreatedAt: now.Add(-at), AcceptedAt: now.Add(-at), Employee: emp,
		}
	}
	h, m := time.Hour, time.Minute
	msgs := []relay.Message{
		msg("o_rep1", 1, relay.Inbound, "alice", 3*h),
		msg("o_rep1", 2, relay.Inbound, "alice", 3*h-30*time.Second),
		msg("o_rep1", 3, relay.Outbound, "alice", 3*h-2*m), // 2 min
		msg("o_rep2", 1, relay.Inbound, "alice", 2*h),
		msg("o_rep2", 2, relay.Outbound, "alice", 2*h-10*m), // 10 min
		msg("o_rep3", 1, relay.Inbound, "bob", 1*h),         // waiting
	}
	if err := a.Insert(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	ev := func(m relay.Message, st relay.DeliveryState, code int) relay.DeliveryEvent {
		return relay.DeliveryEvent{ID: m.ID + "/" + string(st), MessageID: m.ID, Account: m.Account, Conv: m.Conv, State: st, ErrCode: code, At: m.AcceptedAt.Add(time.Second)}
	}
	if err := a.AppendEvents(ctx, []relay.DeliveryEvent{ev(msgs[2], relay.DeliverySent, 0), ev(msgs[4], relay.DeliveryFailed, relay.ErrCodeOutOfWindow)}); err != nil {
		t.Fatal(err)
	}
	// A lexicon hit on bob's waiting client, awaiting review for an hour.
	if err := a.AppendHits(ctx, []relay.LexiconHit{{ID: "hit-rep3", Account: "acme", Conv: msgs[5].Conv, MessageID: msgs[5].ID,
		Direction: relay.Inbound, Employee: "bob", Rule: "回扣", Matched: "x", Excerpt: "x", At: msgs[5].AcceptedAt}}); err != nil {
		t.Fatal(err)
	}
}

// tableText is the text of a report table's body, rows by "|", cells by
// " / ".
func tableText(id string) string {
	return `[...document.querySelectorAll('#rep-body table[data-table="` + id + `"] tbody tr')].map(r => [...r.cells].map(c => c.textContent).join(" / ")).join("|")`
}

func TestBrowserReports(t *testing.T) {
	chromium.Need(t)
	ch, rd := testenv.ClickHouseAddr(t), testenv.RedisAddr(t)
	db := testenv.UniqueName("e2e")
	cfg := e2eConfig(t, ch, rd, db, testenv.UniqueName("wr")+":", t.TempDir())
	cfg.Console.Teams = []console.Team{{ID: "desk", Name: "Front desk"}}
	cfg.Console.Employees[0].Teams = []string{"desk"}
	cfg.Console.Employees = append(cfg.Console.Employees,
		configs.EmployeeConfig{ID: "bob", Role: console.RoleAgent, Accounts: []string{"acme"}},
		configs.EmployeeConfig{ID: "lead", Role: console.RoleSupervisor, Teams: []string{"desk"}},
		configs.EmployeeConfig{ID: "cmp", Role: console.RoleCompliance})
	setPasswords(t, cfg, map[string]string{"alice": "Alice Wang", "bob": "Bob Li", "lead": "Lena Zhou", "sup": "Sue Zhang", "cmp": "Chen Ming"}, reportsBrowserPasswords)
	r := startRelay(t, cfg)
	seedReportsDesk(t, ch, db, time.Now())
	browser := chromium.Start(t, 1440, 900)

	// An agent has no Reports, and the API refuses her.
	alice := openPage(t, browser, "alice", r.sys.URL()+"/")
	alice.signIn("alice", reportsBrowserPasswords["alice"])
	if !eval[bool](alice, `document.getElementById("nav-reports").hidden`) {
		t.Error("the agent sees #nav-reports")
	}
	if got := eval[int](alice, `fetch("/api/reports/volume").then(r => r.status)`); got != 403 {
		t.Errorf("an agent's report: %d, want 403", got)
	}

	// The team supervisor opens Reports: volume, her team only.
	lead := openPage(t, browser, "lead", r.sys.URL()+"/")
	lead.signIn("lead", reportsBrowserPasswords["lead"])
	lead.until("the Reports button", `!document.getElementById("nav-reports").hidden`)
	if !eval[bool](lead, `document.getElementById("rep-tab-compliance").hidden`) {
		t.Error("a supervisor sees the compliance report's tab")
	}
	lead.do("open Reports", chromedp.Click(chromedp.ID("nav-reports")))
	lead.until("the volume report", `document.body.dataset.view === "tool" && !document.getElementById("report-view").hidden && document.querySelector('#rep-body table[data-table="by_employee"]') !== null`)
	if got, want := eval[string](lead, tableText("by_employee")), "Alice Wang / 3 / 2"; got != want {
		t.Errorf("volume by employee = %q, want %q", got, want)
	}
	if got, want := eval[string](lead, tableText("by_team")), "desk / 3 / 2"; got != want {
		t.Errorf("volume by team = %q, want %q", got, want)
	}
	days := eval[string](lead, `[...document.querySelectorAll('#rep-body table[data-table="by_day"] tbody tr')].map(r => r.cells[1].textContent + "+" + r.cells[2].textContent).filter(s => s !== "0+0").join(",")`)
	if days != "3+2" && days != "1+0,2+2" && days != "2+1,1+1" { // the seeded hours may straddle midnight here
		t.Errorf("volume by day (non-empty) = %q", days)
	}
	if n := eval[int](lead, `document.querySelectorAll('#rep-body svg.chart-svg').length`); n < 5 {
		t.Errorf("%d charts drawn, want one per chartable table", n)
	}
	keepScreenshot(t, "console-reports.png", lead.shot("console-reports.png"))

	// Responsiveness: alice's replies after 2 and 10 minutes; bob's
	// waiting client is not hers to see.
	lead.do("responsiveness", chromedp.Click(chromedp.ID("rep-tab-responsiveness")))
	lead.until("the responsiveness report", `document.querySelector('#rep-body table[data-table="waiting"]') !== null`)
	if got, want := eval[string](lead, tableText("by_employee")), "Alice Wang / 2 / 2 min 0 s / 10 min 0 s / 2 / 2 min 0 s / 10 min 0 s"; got != want {
		t.Errorf("responsiveness by employee = %q, want %q", got, want)
	}
	if got := eval[string](lead, tableText("waiting")); got != "Nothing in this range." {
		t.Errorf("the team supervisor's waiting list = %q, want nothing (bob's client is not her team's)", got)
	}

	// Delivery: one sent, one failed with 45015.
	lead.do("delivery", chromedp.Click(chromedp.ID("rep-tab-delivery")))
	lead.until("the delivery report", `document.querySelector('#rep-body table[data-table="failures"]') !== null`)
	if got := eval[string](lead, tableText("failures")); !strings.HasSuffix(got, " / Failed / 45015 / 1") {
		t.Errorf("failures = %q", got)
	}
	sums := eval[string](lead, `(() => { const s = [0,0,0,0,0]; for (const r of document.querySelectorAll('#rep-body table[data-table="by_day"] tbody tr')) for (let i = 0; i < 5; i++) s[i] += Number(r.cells[i+1].textContent); return s.join(","); })()`)
	if sums != "1,1,0,0,0" {
		t.Errorf("delivery by day, summed (sent, failed, unknown, refused, pending) = %s", sums)
	}

	// A table's CSV download.
	csv := eval[string](lead, `fetch(document.querySelector('#rep-body section[data-table="failures"] a[download]').href).then(r => r.status + " " + r.headers.get("Content-Type"))`)
	if !strings.HasPrefix(csv, "200 text/csv") {
		t.Errorf("CSV download: %q", csv)
	}
	body := eval[string](lead, `fetch(document.querySelector('#rep-body section[data-table="failures"] a[download]').href).then(r => r.text())`)
	if !strings.HasPrefix(body, "day,state,errcode,messages\n") || !strings.Contains(body, ",failed,45015,1\n") {
		t.Errorf("CSV of failures:\n%s", body)
	}

	// Drill-down: alice's bar opens her messages in the search view.
	lead.do("volume again", chromedp.Click(chromedp.ID("rep-tab-volume")))
	lead.until("the volume report again", `document.querySelector('#rep-body section[data-table="by_employee"] svg .bar-link') !== null`)
	lead.do("click alice's bar", chromedp.Click(chromedp.CSS(`#rep-body section[data-table="by_employee"] svg .bar-link`)))
	lead.until("her 5 messages in the search", `!document.getElementById("tool-search").hidden && document.getElementById("s-employee").value === "alice" && document.querySelectorAll("#s-results li").length === 5`)

	// In Chinese, on a phone: the view fits the screen.
	lead.do("back to Reports", chromedp.Evaluate[chromedp.Void](`location.hash = "#/reports/volume"`))
	lead.until("the volume report", `!document.getElementById("report-view").hidden && document.querySelector('#rep-body table[data-table="by_day"]') !== null`)
	lead.do("Chinese, phone", chromedp.Click(chromedp.ID("nav-lang")), chromedp.EmulateViewport(390, 844))
	lead.until("Chinese titles", `document.getElementById("report-title").textContent === "报表" && document.querySelector('#rep-body section[data-table="by_day"] h3').textContent === "每日消息量"`)
	lead.until("nothing wider than the phone", `document.getElementById("report-view").scrollWidth <= document.getElementById("report-view").clientWidth`)
	keepScreenshot(t, "console-reports-phone.png", lead.shot("console-reports-phone.png"))

	// The compliance officer's compliance report: the review queue now
	// (bob's hit, an hour old) and the legal holds in force (none).
	cmp := openPage(t, browser, "cmp", r.sys.URL()+"/")
	cmp.signIn("cmp", reportsBrowserPasswords["cmp"])
	cmp.until("the Reports button", `!document.getElementById("nav-reports").hidden`)
	cmp.do("the compliance report", chromedp.Evaluate[chromedp.Void](`location.hash = "#/reports/compliance"`))
	cmp.until("the review queue", `document.querySelector('#rep-body table[data-table="review_queue_by_rule"]') !== null`)
	if got := eval[string](cmp, tableText("review_queue_by_rule")); !strings.HasPrefix(got, "回扣 / 1 / ") || !strings.Contains(got, " h ") {
		t.Errorf("review queue by rule = %q, want 回扣's one hit, an hour old", got)
	}
	if got := eval[string](cmp, tableText("holds_in_force")); got != "0 / 0" {
		t.Errorf("holds in force = %q, want none", got)
	}
	cmp.do("Chinese", chromedp.Click(chromedp.ID("nav-lang")))
	cmp.until("Chinese queue title", `document.querySelector('#rep-body section[data-table="review_queue"] h3').textContent === "当前待审核队列"`)
	keepScreenshot(t, "console-reports-compliance.png", cmp.shot("console-reports-compliance.png"))
}
