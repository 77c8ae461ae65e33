package e2e

import (
	"io"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/emersion/go-smtp"

	"github.com/wechat-relay/wechat-relay/configs"
	"github.com/wechat-relay/wechat-relay/console"
	"github.com/wechat-relay/wechat-relay/relay/journal/journaltest"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
	"github.com/wechat-relay/wechat-relay/storage/testenv/chromium"
)

// The admin sees the journal in the Admin view: up to date, then behind
// with the server's refusal, in plain words.
func TestBrowserAdminJournal(t *testing.T) {
	chromium.Need(t)
	mailSrv := journaltest.Start(t)
	ch, rd := testenv.ClickHouseAddr(t), testenv.RedisAddr(t)
	cfg := e2eConfig(t, ch, rd, testenv.UniqueName("e2e"), testenv.UniqueName("wr")+":", t.TempDir())
	cfg.Console.Employees = append(cfg.Console.Employees, configs.EmployeeConfig{ID: "adm", Role: console.RoleAdmin})
	setPasswords(t, cfg, map[string]string{"alice": "Alice Wang", "sup": "Sue Zhang", "adm": "Ada Ma"}, adminBrowserPasswords)
	cfg.Journal = mailSrv.Config("wechat.example.com")
	r := startRelay(t, cfg)
	now := time.Now()
	if status, _ := r.post(t, safeCallback(t, "acme", textXML("oJournalUI", "91001", "first", now), now)); status != 200 {
		t.Fatalf("callback answered %d", status)
	}
	testenv.Until(t, "the first message journaled", func() bool { return len(mailSrv.Mails()) == 1 })

	browser := chromium.Start(t, 1440, 900)
	adm := openPage(t, browser, "adm", r.sys.URL()+"/")
	adm.signIn("adm", adminBrowserPasswords["adm"])
	adm.until("the Admin entry", `!document.getElementById("nav-admin").hidden`)
	adm.do("open Admin", chromedp.Click(chromedp.ID("nav-admin")))
	adm.until("the journal panel, up to date", `document.getElementById("admin-journal").dataset.enabled === "true" && document.getElementById("admin-journal").dataset.lag === "0" && document.getElementById("admin-journal-lag").textContent.includes("Up to date") && document.getElementById("admin-journal-state").textContent.includes("journal@archive.example.com")`)

	mailSrv.SetHook(func(int, io.Reader, *smtp.Conn) error { return journaltest.Answer(550, "mailbox unavailable") })
	if status, _ := r.post(t, safeCallback(t, "acme", textXML("oJournalUI", "91002", "second", now.Add(time.Second)), now.Add(time.Second))); status != 200 {
		t.Fatalf("callback answered %d", status)
	}
	adm.untilAsync("the refusal reported", `fetch("/api/admin/journal").then(r => r.json()).then(s => (s.last_error || "").includes("550"))`)
	adm.do("reload the Admin view", chromedp.Reload())
	adm.until("the journal panel, behind", `document.getElementById("admin-journal").dataset.lag === "1" && !document.getElementById("admin-journal-error").hidden && document.getElementById("admin-journal-error").textContent.includes("550")`)
}
