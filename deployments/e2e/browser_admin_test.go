package e2e

import (
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/wechat-relay/wechat-relay/configs"
	"github.com/wechat-relay/wechat-relay/console"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
	"github.com/wechat-relay/wechat-relay/storage/testenv/chromium"
)

// The Admin view of the web console in a real headless Chromium, against
// a relay on the real ClickHouse and Redis: an admin creates a team and
// an employee in it, who signs in at once with the password the admin
// gave; the admin disables her and her next request signs her out; a
// change made meanwhile (a stale version) is refused and said in words;
// an agent has no Admin view and the API refuses her; a supervisor
// filters the live view by team.

// adminBrowserPasswords are the test employees' console passwords.
var adminBrowserPasswords = map[string]string{
	"alice": "alice-admin-pw", "sup": "sup-admin-pw", "adm": "adm-admin-pw",
}

// carolPassword is the password the admin gives the new employee.
const carolPassword = "carol-set-by-admin"

func adminBrowserRelay(t *testing.T) *testRelay {
	t.Helper()
	ch, rd := testenv.ClickHouseAddr(t), testenv.RedisAddr(t)
	cfg := e2eConfig(t, ch, rd, testenv.UniqueName("e2e"), testenv.UniqueName("wr")+":", t.TempDir())
	cfg.Console.Employees = append(cfg.Console.Employees, configs.EmployeeConfig{ID: "adm", Role: console.RoleAdmin})
	setPasswords(t, cfg, map[string]string{"alice": "Alice Wang", "sup": "Sue Zhang", "adm": "Ada Ma"}, adminBrowserPasswords)
	return startRelay(t, cfg)
}

// apiJS is a script that sends a request of the API from the page, with
// the session's CSRF token, and answers its status.
func apiJS(method, path, body string) string {
	return `fetch("/api/me").then(r => r.json()).then(me => fetch(` + js(path) + `, {method: ` + js(method) +
		`, headers: {"Content-Type": "application/json", "X-CSRF-Token": me.csrf}, body: ` + body + `})).then(r => r.status)`
}

func TestBrowserAdmin(t *testing.T) {
	chromium.Need(t)
	start := time.Now()
	r := adminBrowserRelay(t)
	browser := chromium.Start(t, 1440, 900)
	// A client of alice's, the only agent of acme yet.
	now := time.Now()
	if status, body := r.post(t, safeCallback(t, "acme", textXML("oHandover", "90001", "我的顾问还在吗？", now), now)); status != 200 || body != "success" {
		t.Fatalf("callback answered %d %q", status, body)
	}

	// The admin opens the Admin view: every employee of the
	// configuration, marked so.
	adm := openPage(t, browser, "adm", r.sys.URL()+"/")
	adm.signIn("adm", adminBrowserPasswords["adm"])
	adm.until("the Admin entry", `!document.getElementById("nav-admin").hidden`)
	adm.do("open Admin", chromedp.Click(chromedp.ID("nav-admin")))
	adm.until("the Admin view with the employees", `location.hash === "#/admin" && document.body.dataset.view === "tool" && !document.getElementById("admin-view").hidden && document.getElementById("admin-view").dataset.writable === "true" && document.querySelector('#admin-emp-rows tr[data-emp="alice"]')?.dataset.seeded === "true"`)
	if !eval[bool](adm, `document.querySelector(".admin-audited").textContent === "Every change is recorded in the audit log."`) {
		t.Error("the Admin view does not say that changes are audited")
	}

	// A team.
	adm.do("the Teams tab", chromedp.Click(chromedp.ID("admin-tab-teams")))
	adm.do("create team desk-a",
		chromedp.SendKeys(chromedp.ID("admin-team-id"), "desk-a"),
		chromedp.SendKeys(chromedp.ID("admin-team-name"), "Desk A 前台"),
		chromedp.Click(chromedp.ID("admin-team-create")),
	)
	teamRow := `document.querySelector('#admin-team-rows tr[data-team="desk-a"]')`
	adm.until("the team listed, no members", teamRow+`?.dataset.members === "0" && `+teamRow+`.textContent.includes("Desk A 前台")`)
	// A second team with the same id is refused, in words.
	adm.do("the same team again",
		chromedp.SendKeys(chromedp.ID("admin-team-id"), "desk-a"),
		chromedp.Click(chromedp.ID("admin-team-create")),
	)
	adm.until("the refusal", `!document.getElementById("admin-team-error").hidden && document.getElementById("admin-team-error").textContent.length > 0`)
	adm.do("clear the form", chromedp.Evaluate[chromedp.Void](`document.getElementById("admin-team-form").reset()`))

	// An employee: carol, agent of acme in desk-a, with a password.
	adm.do("the Employees tab", chromedp.Click(chromedp.ID("admin-tab-employees")))
	adm.do("the new-employee form", chromedp.Click(chromedp.ID("admin-emp-new")))
	adm.until("the form", `!document.getElementById("admin-emp-form").hidden && document.querySelector('#admin-new-teams input[value="desk-a"]') && document.querySelector('#admin-new-accounts input[value="acme"]')`)
	// A short password is refused before it is sent.
	adm.do("a short password",
		chromedp.SendKeys(chromedp.ID("admin-new-id"), "carol"),
		chromedp.SendKeys(chromedp.ID("admin-new-name"), "Carol Chen"),
		chromedp.SetValue(chromedp.ID("admin-new-role"), "agent"),
		chromedp.Click(chromedp.CSS(`#admin-new-teams input[value="desk-a"]`)),
		chromedp.Click(chromedp.CSS(`#admin-new-accounts input[value="acme"]`)),
		chromedp.SendKeys(chromedp.ID("admin-new-password"), "short"),
		chromedp.Click(chromedp.ID("admin-emp-create")),
	)
	adm.until("the short password refused", `!document.getElementById("admin-emp-form-error").hidden && document.getElementById("admin-emp-form-error").textContent.includes("10 characters")`)
	adm.do("a good password",
		chromedp.SetValue(chromedp.ID("admin-new-password"), carolPassword),
		chromedp.Click(chromedp.ID("admin-emp-create")),
	)
	carolRow := `document.querySelector('#admin-emp-rows tr[data-emp="carol"]')`
	adm.until("carol listed: agent, desk-a, acme, enabled, not from the configuration",
		carolRow+` && `+carolRow+`.id === "admin-emp-row-carol" && `+carolRow+`.dataset.disabled === "false" && `+carolRow+`.dataset.seeded === "false" && `+
			carolRow+`.textContent.includes("Carol Chen") && `+carolRow+`.textContent.includes("Desk A 前台") && `+carolRow+`.textContent.includes("agent") && `+
			carolRow+`.textContent.includes("Enabled") && `+carolRow+`.textContent.includes("Ada Ma") && document.getElementById("admin-emp-form").hidden`)
	adm.do("the Teams tab", chromedp.Click(chromedp.ID("admin-tab-teams")))
	adm.until("the team has one member", teamRow+`?.dataset.members === "1" && `+teamRow+`.textContent.includes("Carol Chen")`)
	adm.do("the Employees tab", chromedp.Click(chromedp.ID("admin-tab-employees")))
	adm.untilAsync("the change audited", `fetch("/api/audit?action=admin").then(r => r.json()).then(b => (b.records || []).some(x => x.employee === "adm" && JSON.stringify(x).includes("carol")))`)

	// Carol signs in with that password, in another browser, and sees
	// her (empty) inbox.
	carol := openPage(t, browser, "carol", r.sys.URL()+"/")
	carol.signIn("carol", carolPassword)
	carol.until("her empty inbox", `document.getElementById("list-title").textContent === "Inbox" && !document.getElementById("list-empty").hidden && document.querySelectorAll("#conv-list li").length === 0 && document.getElementById("nav-admin").hidden`)

	// She replaces the password the admin gave her with her own.
	const carolOwn = "carol-chose-this-one"
	login := func(p *page, password string) int {
		return eval[int](p, `fetch("/api/login", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({id: "carol", password: `+js(password)+`})}).then(r => r.status)`)
	}
	carol.do("open her account", chromedp.Click(chromedp.ID("nav-account")))
	carol.until("the account dialog", `document.getElementById("dlg-account").open && document.getElementById("account-who").textContent.includes("Carol Chen")`)
	carol.do("a mistyped confirmation", chromedp.SendKeys(chromedp.ID("pw-current"), carolPassword),
		chromedp.SendKeys(chromedp.ID("pw-new"), carolOwn), chromedp.SendKeys(chromedp.ID("pw-confirm"), carolOwn+"!"),
		chromedp.Click(chromedp.ID("pw-submit")))
	carol.until("the mismatch said", `!document.getElementById("pw-error").hidden && document.getElementById("pw-error").textContent.includes("differ")`)
	carol.do("the confirmation retyped", chromedp.SetValue(chromedp.ID("pw-confirm"), carolOwn), chromedp.Click(chromedp.ID("pw-submit")))
	carol.until("the password changed", `!document.getElementById("dlg-account").open`)
	// The page went on in the session the change started: its next change
	// passes the CSRF check and is judged on its merits.
	carol.do("open her account again", chromedp.Click(chromedp.ID("nav-account")))
	carol.do("a wrong current password", chromedp.SendKeys(chromedp.ID("pw-current"), "not-my-password"),
		chromedp.SendKeys(chromedp.ID("pw-new"), carolOwn+"2"), chromedp.SendKeys(chromedp.ID("pw-confirm"), carolOwn+"2"),
		chromedp.Click(chromedp.ID("pw-submit")))
	carol.until("judged on its merits", `!document.getElementById("pw-error").hidden && document.getElementById("pw-error").textContent.includes("current password is wrong")`)
	carol.do("close", chromedp.Click(chromedp.ID("pw-cancel")))
	if got := login(carol, carolPassword); got != 401 {
		t.Errorf("the admin's password after she changed it: %d, want 401", got)
	}
	if got := login(carol, carolOwn); got != 200 {
		t.Errorf("her own password: %d, want 200", got)
	}
	carol.do("reload", chromedp.Reload())
	carol.until("her inbox again", `document.getElementById("list-title").textContent === "Inbox"`)
	// The admin's page still shows the version before her change: it
	// fetches the directory again.
	adm.do("reload the Admin view", chromedp.Reload())
	adm.until("carol's row again", carolRow+`?.dataset.version === "2"`)

	// Alice hands her client over to carol (as if she left): carol sees
	// the conversation arrive.
	adm.do("edit alice", chromedp.Click(chromedp.CSS(`#admin-emp-rows tr[data-emp="alice"] button[data-action="edit"]`)))
	adm.until("carol offered", `document.getElementById("admin-dlg").open && [...document.getElementById("admin-handover-to").options].some(o => o.value === "carol")`)
	adm.do("hand over to carol", chromedp.SetValue(chromedp.ID("admin-handover-to"), "carol"), chromedp.Click(chromedp.ID("admin-handover")))
	adm.until("one conversation handed over", `document.getElementById("admin-handover-result").dataset.moved === "1" && document.getElementById("admin-handover-result").textContent.includes("Carol Chen")`)
	adm.shot("admin-handover.png")
	adm.do("close alice's dialog", chromedp.Click(chromedp.ID("admin-cancel")))
	carol.until("alice's client in carol's inbox", `document.querySelectorAll("#conv-list li").length === 1 && document.getElementById("conv-list").textContent.includes("acme")`)

	// The same employee changed through the API meanwhile: the dialog's
	// version is stale, and saving it says so and shows the latest.
	adm.do("edit carol", chromedp.Click(chromedp.CSS(`#admin-emp-rows tr[data-emp="carol"] button[data-action="edit"]`)))
	adm.until("the dialog", `document.getElementById("admin-dlg").open && document.getElementById("admin-dlg").dataset.emp === "carol" && document.getElementById("admin-edit-name").value === "Carol Chen" && document.getElementById("admin-edit-enabled").checked && document.querySelector('#admin-edit-teams input[value="desk-a"]').checked`)
	stale := eval[int](adm, `Number(document.getElementById("admin-dlg").dataset.version)`)
	if got := eval[int](adm, apiJS("PUT", "/api/admin/employees/carol",
		`JSON.stringify({name: "Carol Chen 陈", role: "agent", accounts: ["acme"], teams: ["desk-a"], disabled: false, version: `+strconv.Itoa(stale)+`})`)); got != 200 {
		t.Fatalf("changing carol through the API: %d", got)
	}
	adm.do("save the stale dialog",
		chromedp.SetValue(chromedp.ID("admin-edit-name"), "Carol C."),
		chromedp.Click(chromedp.ID("admin-save")),
	)
	adm.until("the conflict said, the latest shown", `document.getElementById("admin-dlg").open && !document.getElementById("admin-error").hidden && document.getElementById("admin-error").dataset.status === "409" && document.getElementById("admin-error").textContent.includes("changed this meanwhile") && document.getElementById("admin-edit-name").value === "Carol Chen 陈" && Number(document.getElementById("admin-dlg").dataset.version) > `+strconv.Itoa(stale))
	if got := eval[int](adm, apiJS("PUT", "/api/admin/employees/carol",
		`JSON.stringify({name: "x", role: "agent", accounts: [], teams: [], disabled: false, version: `+strconv.Itoa(stale)+`})`)); got != 409 {
		t.Errorf("a change with a stale version: %d, want 409", got)
	}
	adm.shot("admin-conflict.png")

	// The history of carol: every version, newest first.
	adm.do("her history", chromedp.Click(chromedp.ID("admin-history-show")))
	adm.until("three versions (created, her password, the API's change)", `document.getElementById("admin-history-dlg").open && document.querySelectorAll("#admin-history li[data-version]").length === 3 && document.querySelector("#admin-history li").dataset.version === "3" && document.querySelector("#admin-history li").textContent.includes("Carol Chen 陈")`)
	adm.do("close the history", chromedp.Click(chromedp.CSS(`#admin-history-dlg button[value="close"]`)))

	// The admin disables carol; her next request signs her out.
	adm.do("disable carol", chromedp.Click(chromedp.ID("admin-edit-enabled")), chromedp.Click(chromedp.ID("admin-save")))
	adm.until("carol disabled", `!document.getElementById("admin-dlg").open && `+carolRow+`?.dataset.disabled === "true" && `+carolRow+`.textContent.includes("Disabled")`)
	carol.do("her next request", chromedp.Click(chromedp.CSS(`#status-tabs .tab[data-status="all"]`)))
	carol.until("signed out", `!document.getElementById("signin").hidden && document.getElementById("shell").hidden`)
	if got := login(carol, carolOwn); got != 401 && got != 403 {
		t.Errorf("a disabled employee's sign-in with her password: %d", got)
	}

	// A new API token, shown once.
	adm.do("edit carol again", chromedp.Click(chromedp.CSS(`#admin-emp-rows tr[data-emp="carol"] button[data-action="edit"]`)))
	adm.until("the dialog, disabled", `document.getElementById("admin-dlg").open && !document.getElementById("admin-edit-enabled").checked`)
	adm.do("a new token", chromedp.Click(chromedp.ID("admin-token-new")))
	adm.until("the token, with a copy button and the warning", `!document.getElementById("admin-token-box").hidden && document.getElementById("admin-token-value").textContent.length >= 16 && !document.getElementById("admin-token-copy").hidden && document.getElementById("admin-token-box").textContent.includes("will not be shown again")`)
	adm.do("close the dialog", chromedp.Click(chromedp.ID("admin-cancel")))
	adm.until("the token gone from the page", `!document.getElementById("admin-dlg").open && document.getElementById("admin-token-value").textContent === "" && `+carolRow+`?.textContent.includes("API token")`)

	// A team with a member cannot be deleted: the relay's words say why.
	adm.do("the Teams tab", chromedp.Click(chromedp.ID("admin-tab-teams")))
	adm.do("delete desk-a", chromedp.Click(chromedp.CSS(`#admin-team-rows tr[data-team="desk-a"] button[data-action="delete"]`)))
	adm.do("confirm", chromedp.Click(chromedp.CSS(`#admin-team-rows tr[data-team="desk-a"] button[data-action="delete"]`)))
	adm.until("the refusal", `!document.getElementById("admin-team-error").hidden && document.getElementById("admin-team-error").textContent.startsWith("desk-a: ") && `+teamRow+` !== null`)

	// The accounts: acme, served by alice (carol is disabled).
	adm.do("the Accounts tab", chromedp.Click(chromedp.ID("admin-tab-accounts")))
	accRow := `document.querySelector('#admin-acc-rows tr[data-account="acme"]')`
	adm.until("acme served by alice only", accRow+`?.textContent.includes("Alice Wang") && !`+accRow+`.textContent.includes("Carol")`)
	adm.do("rename acme",
		chromedp.SetValue(chromedp.CSS(`#admin-acc-rows tr[data-account="acme"] input.admin-acc-name`), "Acme 财富"),
		chromedp.Click(chromedp.CSS(`#admin-acc-rows tr[data-account="acme"] button[data-action="save"]`)),
	)
	adm.until("renamed", accRow+`?.querySelector("input.admin-acc-name").value === "Acme 财富" && `+accRow+`.textContent.includes("Ada Ma")`)

	adm.do("the Employees tab", chromedp.Click(chromedp.ID("admin-tab-employees")))
	adm.until("the toasts gone", `document.querySelectorAll(".toast").length === 0`)
	keepScreenshot(t, "admin.png", adm.shot("admin.png"))

	// On a phone screen the view fits.
	adm.do("a phone screen", chromedp.EmulateViewport(390, 844))
	adm.until("the view fills the screen", `getComputedStyle(document.getElementById("tool-pane")).display !== "none" && getComputedStyle(document.getElementById("list-pane")).display === "none" && document.getElementById("tool-pane").getBoundingClientRect().width >= 380 && document.getElementById("admin-emp-new").getBoundingClientRect().right <= 390`)
	adm.shot("admin-phone.png")
	adm.do("a laptop screen again", chromedp.EmulateViewport(1440, 900))

	// In Chinese.
	adm.do("switch to Chinese", chromedp.Click(chromedp.ID("nav-lang")))
	adm.until("the Chinese view", `document.getElementById("admin-title").textContent === "系统管理" && `+carolRow+`?.textContent.includes("已停用")`)
	adm.do("back to English", chromedp.Click(chromedp.ID("nav-lang")))

	// An agent has no Admin view, not even by its address, and the API
	// refuses her.
	alice := openPage(t, browser, "alice", r.sys.URL()+"/")
	alice.signIn("alice", adminBrowserPasswords["alice"])
	if !eval[bool](alice, `document.getElementById("nav-admin").hidden`) {
		t.Error("the agent sees the Admin entry")
	}
	alice.do("the Admin view by its address", chromedp.Evaluate[chromedp.Void](`location.hash = "#/admin"`))
	alice.until("still her inbox", `document.body.dataset.view === "list" && document.getElementById("admin-view").hidden && document.getElementById("tool-pane").hidden`)
	if got := eval[int](alice, `fetch("/api/admin/directory").then(r => r.status)`); got != 403 {
		t.Errorf("an agent's GET /api/admin/directory: %d, want 403", got)
	}
	if !eval[bool](alice, `document.getElementById("sup-filters").hidden`) {
		t.Error("the agent sees the supervisor's filters")
	}

	// A supervisor filters the live view by team.
	sup := openPage(t, browser, "sup", r.sys.URL()+"/")
	sup.signIn("sup", adminBrowserPasswords["sup"])
	sup.until("the team filter", `!document.getElementById("filter-team").hidden && document.querySelector('#filter-team option[value="desk-a"]')?.textContent === "Desk A 前台" && document.getElementById("nav-admin").hidden`)
	if got := eval[int](sup, `fetch("/api/admin/directory").then(r => r.status)`); got != 403 {
		t.Errorf("a supervisor's GET /api/admin/directory: %d, want 403", got)
	}
	sup.do("only desk-a", chromedp.SetValue(chromedp.ID("filter-team"), "desk-a"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("filter-team").dispatchEvent(new Event("change"))`))
	sup.until("desk-a's one conversation: the client handed over to carol", `document.querySelectorAll("#conv-list li").length === 1 && document.getElementById("conv-list").textContent.includes("Carol Chen")`)
	if got := eval[int](sup, `fetch("/api/conversations?team=desk-a").then(r => r.status)`); got != 200 {
		t.Errorf("GET /api/conversations?team=desk-a: %d", got)
	}
	if got := eval[int](sup, `fetch("/api/conversations?team=nope").then(r => r.status)`); got != 400 {
		t.Errorf("GET /api/conversations?team=nope: %d, want 400", got)
	}
	t.Logf("admin browser test took %s", time.Since(start).Round(time.Millisecond))
}
