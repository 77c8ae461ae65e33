package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/wechat-relay/wechat-relay/configs"
	"github.com/wechat-relay/wechat-relay/console"
	"github.com/wechat-relay/wechat-relay/gateway/wxsim"
	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
	"github.com/wechat-relay/wechat-relay/storage/testenv/chromium"
)

// The compliance views of the web console in a real headless Chromium,
// against a relay on the real ClickHouse and Redis with a lexicon rule:
// a supervisor searches the archive in Chinese, opens a result at its
// message and exports the results (the download is a zip); a client's
// message that matches the rule raises a live alert for the supervisor
// and the compliance officer, who reviews it; the compliance officer
// reads the audit log and places a legal hold; an agent sees none of
// these views.

// complianceBrowserPasswords are the test employees' console passwords.
var complianceBrowserPasswords = map[string]string{
	"alice": "alice-compliance-pw", "sup": "sup-compliance-pw", "cmp": "cmp-compliance-pw",
}

// complianceLexiconRule is the rule the simulated client trips.
const complianceLexiconRule = "promised-returns"

// complianceBrowserRelay is a relay with alice (agent), sup
// (supervisor) and cmp (compliance), all with console passwords, a
// lexicon rule on inbound Chinese and English words, and its lexicon
// watcher running.
func complianceBrowserRelay(t *testing.T) (*testRelay, wxsim.Account) {
	t.Helper()
	ch, rd := testenv.ClickHouseAddr(t), testenv.RedisAddr(t)
	cfg := e2eConfig(t, ch, rd, testenv.UniqueName("e2e"), testenv.UniqueName("wr")+":", t.TempDir())
	cfg.Console.Employees = append(cfg.Console.Employees, configs.EmployeeConfig{ID: "cmp", Role: console.RoleCompliance})
	setPasswords(t, cfg, map[string]string{"alice": "Alice Wang", "sup": "Sue Zhang", "cmp": "Chen Min"}, complianceBrowserPasswords)
	cfg.Lexicon = []relay.LexiconRule{{
		Name: complianceLexiconRule, Words: []string{"保证收益", "guaranteed return"}, Direction: "inbound",
		Reason: "promises of returns must be reviewed",
	}}
	acct := simAccount(t, cfg)
	r := startRelay(t, cfg)
	if r.sys.LexiconWatcher() == nil {
		t.Fatal("no lexicon watcher built from the configuration")
	}
	if err := testSim.SetCallbackURL(acct.AppID, r.sys.URL()+"/wechat/acme"); err != nil {
		t.Fatal(err)
	}
	return r, acct
}

func TestBrowserCompliance(t *testing.T) {
	chromium.Need(t)
	start := time.Now()
	r, acct := complianceBrowserRelay(t)
	browser := chromium.Start(t, 1440, 900)

	const asked = "我想了解一下基金定投，每个月投多少比较合适？"
	c1, c2 := newClient(t, acct), newClient(t, acct)
	conv1, conv2 := "acme:"+c1.OpenID, "acme:"+c2.OpenID
	clientSays(t, c1, asked)
	clientSays(t, c1, "另外，港股通怎么开通？")
	clientSays(t, c2, "Hello, what are your opening hours?")

	// An agent sees none of the compliance views, even by their address,
	// and the API refuses her.
	alice := openPage(t, browser, "alice", r.sys.URL()+"/")
	alice.signIn("alice", complianceBrowserPasswords["alice"])
	alice.until("her inbox", convItem(conv1)+` !== null`)
	for _, id := range []string{"nav-search", "nav-alerts", "nav-audit"} {
		if !eval[bool](alice, `document.getElementById("`+id+`").hidden`) {
			t.Errorf("the agent sees #%s", id)
		}
	}
	alice.do("the search view by its address", chromedp.Evaluate[chromedp.Void](`location.hash = "#/search"`))
	alice.until("still her inbox", `document.body.dataset.view === "list" && document.getElementById("tool-pane").hidden`)
	if got := eval[int](alice, `fetch("/api/search?text=x").then(r => r.status)`); got != 403 {
		t.Errorf("an agent's search: %d, want 403", got)
	}

	// The supervisor searches the archive in Chinese and finds the
	// message; she has no audit log.
	sup := openPage(t, browser, "sup", r.sys.URL()+"/")
	sup.signIn("sup", complianceBrowserPasswords["sup"])
	sup.until("search and alerts, no audit log", `!document.getElementById("nav-search").hidden && !document.getElementById("nav-alerts").hidden && document.getElementById("nav-audit").hidden`)
	sup.untilAsync("the message archived and searchable", `fetch("/api/search?text="+encodeURIComponent("基金定投")).then(r => r.json()).then(b => b.total > 0)`)
	sup.do("open the search", chromedp.Click(chromedp.ID("nav-search")))
	sup.until("the search view", `document.body.dataset.view === "tool" && !document.getElementById("tool-search").hidden && document.activeElement === document.getElementById("s-text")`)
	sup.do("search Chinese text",
		chromedp.SendKeys(chromedp.ID("s-text"), "基金定投"),
		chromedp.Click(chromedp.ID("s-submit")),
	)
	result := `document.querySelector('#s-results li[data-conv=` + js(conv1) + `]')`
	sup.until("the message found, the words marked", result+`?.querySelector("mark")?.textContent === "基金定投" && `+result+`.querySelector(".result-text").textContent === `+js(asked))
	if n := eval[int](sup, `document.querySelectorAll("#s-results li").length`); n != 1 {
		t.Errorf("the search shows %d results, want 1", n)
	}
	sup.until("the count", `document.getElementById("s-summary").textContent.includes("of 1 ")`)
	keepScreenshot(t, "console-search.png", sup.shot("console-search.png"))

	// Filters narrow it: no internal message says this.
	sup.do("only internal messages", chromedp.SetValue(chromedp.ID("s-direction"), "internal"), chromedp.Click(chromedp.ID("s-submit")))
	sup.until("nothing found", `document.querySelectorAll("#s-results li").length === 0 && document.getElementById("s-summary").textContent === "No archived message matches."`)
	sup.do("any direction again", chromedp.SetValue(chromedp.ID("s-direction"), ""), chromedp.Click(chromedp.ID("s-submit")))
	sup.until("found again", result+` !== null`)

	// An export of the results: progress, then a download link that
	// gives a zip.
	sup.do("export the results", chromedp.Click(chromedp.ID("s-export")))
	sup.until("the export done", `document.getElementById("dlg-export").open && document.getElementById("dlg-export").dataset.state === "done" && !document.getElementById("x-download").hidden`)
	if got := eval[string](sup, `document.getElementById("x-status").textContent`); !strings.HasPrefix(got, "Done: 1 messages in 1 conversations") {
		t.Errorf("the export says %q", got)
	}
	checkZipLink(t, sup)
	sup.do("close the export", chromedp.Click(chromedp.ID("x-close")))

	// A result opens its conversation read-only, at that message.
	sup.do("open the result", chromedp.Click(chromedp.CSS(`#s-results li[data-conv="`+conv1+`"] a`)))
	sup.until("the conversation at the message", `document.body.dataset.view === "conv" && document.querySelector("#msgs li.is-focus .text")?.textContent === `+js(asked))
	sup.until("read-only", `document.getElementById("mode-reply").hidden && !document.getElementById("readonly-note").hidden`)
	// An export of the conversation, from its header.
	sup.do("export the conversation", chromedp.Click(chromedp.ID("act-export")))
	sup.until("the conversation's export done", `document.getElementById("dlg-export").dataset.state === "done" && /^Done: \d+ messages in 1 conversations/.test(document.getElementById("x-status").textContent)`)
	checkZipLink(t, sup)
	sup.do("close the export", chromedp.Click(chromedp.ID("x-close")))
	sup.until("no legal-hold card for a supervisor", `document.getElementById("d-hold-card").hidden`)

	// An export without any filter is refused, and the page says why.
	sup.do("back to the search", chromedp.Click(chromedp.ID("nav-search")))
	sup.until("the search view again", `document.body.dataset.view === "tool" && !document.getElementById("tool-search").hidden`)
	sup.do("search everything", chromedp.Evaluate[chromedp.Void](`document.getElementById("s-text").value = ""`), chromedp.Click(chromedp.ID("s-submit")))
	sup.until("every message", `document.querySelectorAll("#s-results li").length >= 3`)
	sup.do("export everything", chromedp.Click(chromedp.ID("s-export")))
	sup.until("the refusal, in words", `document.getElementById("dlg-export").dataset.state === "failed" && !document.getElementById("x-error").hidden && document.getElementById("x-error").textContent.includes("needs a filter") && document.getElementById("x-download").hidden`)
	sup.do("close the export", chromedp.Click(chromedp.ID("x-close")))

	// On a phone screen the search is one pane, with the rail below.
	sup.do("a phone screen", chromedp.EmulateViewport(390, 844))
	sup.until("the search fills the screen", `getComputedStyle(document.getElementById("tool-pane")).display !== "none" && getComputedStyle(document.getElementById("list-pane")).display === "none" && document.getElementById("tool-pane").getBoundingClientRect().width >= 380`)
	sup.shot("console-search-phone.png")
	sup.do("a laptop screen again", chromedp.EmulateViewport(1440, 900))

	// The compliance officer signs in; a client writes words of the
	// lexicon: a live alert, badge and toast, for her and the supervisor.
	cmp := openPage(t, browser, "cmp", r.sys.URL()+"/")
	cmp.signIn("cmp", complianceBrowserPasswords["cmp"])
	cmp.until("every compliance view", `!document.getElementById("nav-search").hidden && !document.getElementById("nav-alerts").hidden && !document.getElementById("nav-audit").hidden`)
	cmp.until("no alert yet", `document.getElementById("alerts-badge").hidden`)
	const risky = "你们能保证收益吗？年化 8% 可以吗？"
	clientSays(t, c2, risky)
	for _, p := range []*page{cmp, sup} {
		p.until("the live alert: toast and badge", `[...document.querySelectorAll(".toast-alert")].some(n => n.textContent.includes("保证收益") && n.textContent.includes(`+js(complianceLexiconRule)+`)) && document.getElementById("alerts-badge").textContent === "1"`)
	}

	// The supervisor reads the alert, but reviewing is for compliance.
	sup.do("open the alerts", chromedp.Click(chromedp.ID("nav-alerts")))
	alertItem := `document.querySelector('#al-list li.alert-item')`
	sup.until("the alert listed, without review actions", alertItem+`?.dataset.state === "open" && `+alertItem+`.querySelector("mark")?.textContent === "保证收益" && `+alertItem+`.querySelector(".review-form") === null`)

	cmp.do("open the alerts", chromedp.Click(chromedp.ID("nav-alerts")))
	cmp.until("the alert listed, open", alertItem+`?.dataset.state === "open" && `+alertItem+`.querySelector(".alert-excerpt").textContent.includes("保证收益")`)
	cmp.do("escalate it with a comment",
		chromedp.SendKeys(chromedp.CSS(`#al-list li.alert-item .review-comment`), "客户询问保证收益，已提醒顾问合规话术。"),
		chromedp.Click(chromedp.CSS(`#al-list li.alert-item button[data-decision="escalated"]`)),
	)
	cmp.shot("console-alerts.png")
	cmp.until("escalated, the badge cleared", alertItem+`?.dataset.state === "escalated" && `+alertItem+`.querySelector(".alert-review").textContent.includes("Chen Min") && document.getElementById("alerts-badge").hidden`)
	cmp.untilAsync("the review archived", `fetch("/api/alerts?status=escalated").then(r => r.json()).then(b => b.alerts.some(a => a.conv === `+js(conv2)+` && a.review && a.review.reviewer === "cmp" && a.review.comment.includes("合规话术")))`)
	cmp.do("the open alerts", chromedp.SetValue(chromedp.ID("al-status"), "open"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("al-status").dispatchEvent(new Event("change"))`))
	cmp.until("none open", `document.querySelectorAll("#al-list li").length === 0 && !document.getElementById("al-empty").hidden`)

	// The audit log shows the supervisor's search and export, and the
	// review.
	cmp.do("open the audit log", chromedp.Click(chromedp.ID("nav-audit")))
	cmp.until("the audit log", `!document.getElementById("tool-audit").hidden && document.querySelectorAll("#a-rows tr").length > 0`)
	cmp.do("only searches by the supervisor",
		chromedp.SetValue(chromedp.ID("a-who"), "sup"),
		chromedp.SetValue(chromedp.ID("a-action"), "archive_search"),
		chromedp.Click(chromedp.ID("a-submit")),
	)
	cmp.until("the supervisor's searches", `(rows => rows.length > 0 && rows.every(r => r.dataset.action === "archive_search") && rows.some(r => r.textContent.includes("基金定投")))([...document.querySelectorAll("#a-rows tr")])`)
	cmp.shot("console-audit.png")
	cmp.do("every action by the supervisor", chromedp.SetValue(chromedp.ID("a-action"), ""), chromedp.Click(chromedp.ID("a-submit")))
	cmp.until("her export and its download", `document.querySelector('#a-rows tr[data-action="archive_export"]') && document.querySelector('#a-rows tr[data-action="archive_export_download"]') && document.querySelector('#a-rows tr[data-action="open_conversation"]')`)

	// A legal hold on the conversation, from its details pane.
	cmp.do("open the conversation", chromedp.Evaluate[chromedp.Void](`location.hash = "#/c/`+conv1+`"`))
	cmp.until("the legal-hold form", `!document.getElementById("d-hold-card").hidden && !document.getElementById("hold-form").hidden`)
	cmp.until("read only: no transfer, resolve, reply or note", `document.getElementById("act-transfer").hidden && document.getElementById("act-resolve").hidden && document.getElementById("composer-box").hidden && document.getElementById("d-note").hidden && !document.getElementById("act-export").hidden`)
	cmp.do("place a hold",
		chromedp.SendKeys(chromedp.ID("hold-reason"), "监管问询 2026-17"),
		chromedp.Click(chromedp.ID("hold-submit")),
	)
	cmp.until("the hold shown", `document.querySelector("#d-hold .hold-on")?.textContent.includes("监管问询 2026-17") && document.getElementById("hold-form").hidden`)
	cmp.shot("console-hold.png")
	cmp.do("the conversation's audit trail", chromedp.Click(chromedp.ID("d-audit")))
	cmp.until("its records only, the hold among them", `document.getElementById("a-conv").value === `+js(conv1)+` && (rows => rows.length > 0 && rows.every(r => r.textContent.includes(`+js(conv1)+`)) && rows.some(r => r.dataset.action === "legal_hold") && rows.some(r => r.dataset.action === "open_conversation"))([...document.querySelectorAll("#a-rows tr")])`)
	cmp.untilAsync("the hold archived", `fetch("/api/holds").then(r => r.json()).then(b => b.holds.some(h => h.conv === `+js(conv1)+` && h.placed_by === "cmp"))`)

	// In Chinese too.
	cmp.do("switch to Chinese", chromedp.Click(chromedp.ID("nav-lang")))
	cmp.do("the search", chromedp.Click(chromedp.ID("nav-search")))
	cmp.until("the Chinese search view", `document.getElementById("search-title").textContent === "存档检索" && document.getElementById("s-submit").textContent === "检索"`)
	cmp.do("search in the Chinese UI", chromedp.SendKeys(chromedp.ID("s-text"), "港股通"), chromedp.Click(chromedp.ID("s-submit")))
	cmp.until("the result, in Chinese", `document.getElementById("s-summary").textContent === "第 1–1 条，共 1 条消息" && document.querySelector("#s-results li .chip-dir-in")?.textContent === "客户发来"`)
	cmp.do("back to English", chromedp.Click(chromedp.ID("nav-lang")))
	cmp.until("the results drawn again in English", `document.querySelector("#s-results li .chip-dir-in")?.textContent === "From the client" && document.getElementById("s-summary").textContent === "1–1 of 1 messages"`)
	t.Logf("compliance browser test took %s", time.Since(start).Round(time.Millisecond))
}

// checkZipLink fetches the export dialog's download link in the page
// and checks that it answers a zip.
func checkZipLink(t *testing.T, p *page) {
	t.Helper()
	got := eval[string](p, `(async () => {
		const a = document.getElementById("x-download");
		if (!a.getAttribute("href").startsWith("/api/exports/")) return "link " + a.getAttribute("href");
		const r = await fetch(a.href);
		const b = new Uint8Array(await r.arrayBuffer());
		return r.status + " " + r.headers.get("Content-Type") + " " + String.fromCharCode(b[0], b[1], b[2], b[3]) + " " + b.length;
	})()`)
	if !strings.HasPrefix(got, "200 application/zip PK\x03\x04 ") {
		t.Errorf("the export's download link answers %q, want a zip", got)
	}
}
