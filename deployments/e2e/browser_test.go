package e2e

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/gorilla/websocket"

	"github.com/wechat-relay/wechat-relay/configs"
	"github.com/wechat-relay/wechat-relay/console"
	"github.com/wechat-relay/wechat-relay/gateway/wxsim"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
	"github.com/wechat-relay/wechat-relay/storage/testenv/chromium"
)

// The web console in a real headless Chromium, against a relay built as
// `serve` builds it on the real ClickHouse and Redis, with the simulator
// playing the clients on WeChat: an employee signs in, sees a client's
// message arrive live, replies (the reply reaches the client's phone),
// transfers the conversation to a colleague while a supervisor watches
// both live; the agent can no longer open it (through the API and the
// socket alike); a dropped connection catches up on what it missed.

// browserPasswords are the test employees' console passwords.
var browserPasswords = map[string]string{
	"alice": "alice-browser-pw", "bob": "bob-browser-pw", "sup": "sup-browser-pw", "carol": "carol-browser-pw",
}

// browserRelay is a relay for the browser tests: alice (agent, every new
// client of acme), bob (agent, by transfer only), carol (agent, to be
// locked out) and sup (supervisor), all with console passwords; the bot
// greets new clients as in production.
func browserRelay(t *testing.T) (*testRelay, wxsim.Account) {
	t.Helper()
	ch, rd := testenv.ClickHouseAddr(t), testenv.RedisAddr(t)
	cfg := e2eConfig(t, ch, rd, testenv.UniqueName("e2e"), testenv.UniqueName("wr")+":", t.TempDir())
	cfg.Console.Employees = append(cfg.Console.Employees,
		configs.EmployeeConfig{ID: "bob", Role: console.RoleAgent},
		configs.EmployeeConfig{ID: "carol", Role: console.RoleAgent})
	setPasswords(t, cfg, map[string]string{"alice": "Alice Wang", "bob": "Bob Li", "sup": "Sue Zhang", "carol": "Carol Chen"}, browserPasswords)
	// Two desks, so that the live view offers its team filter.
	cfg.Console.Teams = []console.Team{{ID: "wealth", Name: "财富管理"}, {ID: "brokerage", Name: "经纪业务"}}
	for i := range cfg.Console.Employees {
		switch e := &cfg.Console.Employees[i]; e.ID {
		case "alice", "bob":
			e.Teams = []string{"wealth"}
		case "carol":
			e.Teams = []string{"brokerage"}
		}
	}
	cfg.Console.CannedReplies = []console.CannedReply{
		{ID: "hello", Title: "问候 Greeting", Text: "您好，我是您的专属顾问，很高兴为您服务。"},
		{ID: "docs", Title: "Documents", Text: "Please send a photo of both sides of your ID card."},
	}
	cfg.Outbox.Template = "TPL_FOLLOW_UP"
	cfg.Bot.Disabled = false
	cfg.Bot.Open, cfg.Bot.Close = "00:00", "00:00" // always open: no out-of-hours answers
	acct := simAccount(t, cfg)
	r := startRelay(t, cfg)
	if err := testSim.SetCallbackURL(acct.AppID, r.sys.URL()+"/wechat/acme"); err != nil {
		t.Fatal(err)
	}
	return r, acct
}

// newClient is a simulated WeChat user who follows the account.
func newClient(t *testing.T, acct wxsim.Account) *wxsim.Client {
	t.Helper()
	c, err := testSim.NewClient(acct.AppID)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := c.Subscribe(context.Background()); err != nil {
		t.Fatalf("subscribe: %v (%+v)", err, res)
	}
	return c
}

func clientSays(t *testing.T, c *wxsim.Client, text string) {
	t.Helper()
	if res, err := c.SendText(context.Background(), text); err != nil {
		t.Fatalf("client message: %v (%+v)", err, res)
	}
}

// waitDeliveredKind waits until the client's phone shows a message of
// the WeChat type msgType.
func waitDeliveredKind(t *testing.T, c *wxsim.Client, msgType string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		got, _ := c.Delivered()
		for _, d := range got {
			if d.MsgType == msgType {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no %s message reached the phone", msgType)
}

// samplePNG is a small picture: a chart-like pattern.
func samplePNG(t *testing.T) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 240, 160))
	for x := range 240 {
		for y := range 160 {
			c := color.RGBA{246, 248, 252, 255}
			if bar := x / 40; y > 150-(bar+1)*22 && x%40 > 8 {
				c = color.RGBA{31, 111, 235, 255}
			}
			img.Set(x, y, c)
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// waitDelivered waits until the client's phone shows text.
func waitDelivered(t *testing.T, c *wxsim.Client, text string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		got, _ := c.Delivered()
		for _, d := range got {
			if d.Content == text {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	got, _ := c.Delivered()
	t.Fatalf("the phone never showed %q; it shows %+v", text, got)
}

func TestBrowserConsole(t *testing.T) {
	chromium.Need(t)
	start := time.Now()
	r, acct := browserRelay(t)
	browser := chromium.Start(t, 1440, 900)

	// Two clients follow the account (the bot greets them) and write
	// before anyone is signed in.
	c1, c2 := newClient(t, acct), newClient(t, acct)
	conv1, conv2 := "acme:"+c1.OpenID, "acme:"+c2.OpenID
	clientSays(t, c1, "您好，我想咨询一下基金定投的事情。")
	if _, err := c1.SendImage(context.Background(), nil); err != nil { // the simulator's sample photo
		t.Fatal(err)
	}
	clientSays(t, c2, "Hello, has my transfer to the Hong Kong account arrived?")
	// A third, talkative client: more history than one page.
	c3 := newClient(t, acct)
	conv3 := "acme:" + c3.OpenID
	for i := range 60 {
		clientSays(t, c3, fmt.Sprintf("Question %d of 60", i+1))
	}

	// A wrong password is refused; five lock the employee id, and the
	// page says for how long.
	carol := openPage(t, browser, "carol", r.sys.URL()+"/")
	carol.until("the sign-in form", `!document.getElementById("signin").hidden`)
	for i := range 5 {
		carol.do("a wrong password",
			chromedp.SetValue(chromedp.ID("signin-id"), "carol"),
			chromedp.SetValue(chromedp.ID("signin-password"), fmt.Sprintf("wrong-%d", i)),
			chromedp.Click(chromedp.ID("signin-submit")),
		)
		carol.until("the refusal", `!document.getElementById("signin-error").hidden && !document.getElementById("signin-submit").disabled || /\d+:\d\d/.test(document.getElementById("signin-error").textContent)`)
	}
	carol.do("the right password, too late",
		chromedp.SetValue(chromedp.ID("signin-password"), browserPasswords["carol"]),
		chromedp.Click(chromedp.ID("signin-submit")),
	)
	carol.until("the lockout with the time left", `/Try again in 1[45]:\d\d/.test(document.getElementById("signin-error").textContent) && document.getElementById("signin-submit").disabled`)

	// Alice signs in: both clients are in her inbox, with unread counts,
	// the last message and the window.
	aliceNet := newFlakyProxy(t, r.sys.URL()) // Alice's network, which will fail
	alice := openPage(t, browser, "alice", aliceNet.URL()+"/")
	alice.signIn("alice", browserPasswords["alice"])
	alice.until("both conversations listed, unread", convItem(conv1)+`?.dataset.unread > 0 && `+convItem(conv2)+`?.dataset.unread > 0`)
	alice.until("the window shown", convItem(conv1)+`.querySelector(".wchip-ok, .wchip-warn") !== null`)

	// Her personal QR code, made through WeChat's qrcode/create with the
	// scene emp:alice, to show or download.
	alice.do("open the QR code", chromedp.Click(chromedp.ID("nav-qr")))
	alice.until("the QR code", `(n => n.complete && n.naturalWidth > 0 && !n.hidden)(document.getElementById("qr-img")) && document.getElementById("qr-download").download === "qrcode-alice-acme.png" && document.getElementById("qr-status").textContent.includes("emp:alice")`)
	alice.do("close it", chromedp.KeyEvent(kb.Escape))
	alice.until("the dialog closed", `!document.getElementById("dlg-qr").open`)

	// The supervisor signs in elsewhere: the live view lists both, with
	// whom they are assigned to.
	sup := openPage(t, browser, "sup", r.sys.URL()+"/")
	sup.signIn("sup", browserPasswords["sup"])
	sup.until("the live view", `document.getElementById("list-title").textContent === "Live view" && !document.getElementById("sup-filters").hidden`)
	sup.until("both conversations, assigned to Alice", convItem(conv1)+`?.querySelector(".ci-emp")?.textContent === "Alice Wang" && `+convItem(conv2)+` !== null`)

	// Alice opens the first conversation: its history from the archive,
	// the bot's greeting among it, and the read mark clears the count.
	alice.do("open the conversation", chromedp.Click(chromedp.CSS(`#conv-list li[data-conv="`+conv1+`"] a`)))
	alice.until("the history", bubbleWith("您好，我想咨询一下基金定投的事情。"))
	alice.until("the bot's greeting, sent", `[...document.querySelectorAll('#msgs .msg-out')].some(n => n.querySelector(".bot"))`)
	alice.until("the client's photo, shown from the archive", `(n => n && n.complete && n.naturalWidth > 0)(document.querySelector('#msgs .msg-in[data-kind="image"] img'))`)
	alice.until("unread cleared", convItem(conv1)+`.dataset.unread === "0"`)
	alice.untilAsync("the read mark stored", `fetch("/api/conversations").then(r => r.json()).then(b => b.conversations.find(c => c.conv === `+js(conv1)+`).unread === 0)`)
	alice.until("the composer open for replies", `!document.getElementById("input").disabled && !document.getElementById("mode-reply").hidden && document.querySelector("#window-bar .wchip") !== null`)
	if got := eval[string](alice, `document.getElementById("receipts-note").textContent`); !strings.Contains(got, "no read receipts") {
		t.Errorf("the page does not say that WeChat gives no read receipts: %q", got)
	}

	// A new message from the client appears live, for Alice in the
	// conversation and for the supervisor in the list.
	const asked = "每个月投 2000 元可以吗？"
	clientSays(t, c1, asked)
	alice.until("the client's new message, live", bubbleWith(asked))
	sup.until("the supervisor's list updated live", convItem(conv1)+`.querySelector(".ci-preview").textContent === `+js(asked))

	// Alice answers: the message shows pending at once, then sent; it
	// reaches the client's phone.
	const answer = "可以的，每月 2000 元定投没有问题，我帮您设置好。"
	alice.typeAndSend(answer)
	alice.until("the reply, sent", `(n => n && n.dataset.state === "sent" && n.querySelector(".delivery-sent"))([...document.querySelectorAll("#msgs .msg-out")].find(n => n.querySelector(".text")?.textContent === `+js(answer)+`))`)
	alice.until("the composer emptied", `document.getElementById("input").value === ""`)
	waitDelivered(t, c1, answer)

	// A picture from the composer: uploaded to WeChat, archived, sent.
	pic := filepath.Join(t.TempDir(), "fund-plan.png")
	if err := os.WriteFile(pic, samplePNG(t), 0o644); err != nil {
		t.Fatal(err)
	}
	alice.do("attach a picture", chromedp.SetUploadFiles(chromedp.ID("file-input"), []string{pic}))
	alice.until("the attachment ready", `!document.getElementById("attach-preview").hidden && !document.getElementById("send").disabled`)
	alice.do("send it", chromedp.Click(chromedp.ID("send")))
	alice.until("the picture, sent", `(n => n && n.dataset.state === "sent" && n.querySelector("img"))(document.querySelector('#msgs .msg-out[data-kind="image"]'))`)
	waitDeliveredKind(t, c1, "image")
	alice.do("a private note",
		chromedp.Click(chromedp.ID("mode-note")),
		chromedp.SendKeys(chromedp.ID("input"), "客户风险测评 C3，适合稳健型产品。"),
		chromedp.KeyEvent(kb.Enter, chromedp.KeyModifiers(chromedp.ModifierCtrl)),
	)
	alice.until("the note, archived and shown to staff", `[...document.querySelectorAll("#msgs .note-card .text")].some(n => n.textContent === "客户风险测评 C3，适合稳健型产品。")`)
	alice.do("back to replying", chromedp.Click(chromedp.ID("mode-reply")))
	keepScreenshot(t, "console-inbox.png", alice.shot("console-inbox.png"))
	if got, _ := c1.Delivered(); strings.Contains(fmt.Sprint(got), "风险测评") {
		t.Fatalf("a private note reached the client's phone: %+v", got)
	}

	// The supervisor opens it read-only and sees the reply and the note.
	sup.do("open the conversation", chromedp.Click(chromedp.CSS(`#conv-list li[data-conv="`+conv1+`"] a`)))
	sup.until("the reply in the supervisor's view", bubbleWith(answer))
	sup.untilAsync("the supervisor's read mark stored", `fetch("/api/conversations").then(r => r.json()).then(b => b.conversations.find(c => c.conv === `+js(conv1)+`).unread === 0)`)
	sup.until("read-only for the supervisor", `document.getElementById("mode-reply").hidden && !document.getElementById("readonly-note").hidden && document.getElementById("composer-box").classList.contains("is-note")`)

	// Alice transfers the conversation to Bob with a note. The supervisor
	// sees the transfer live; the conversation leaves Alice's inbox.
	alice.do("transfer to Bob",
		chromedp.Click(chromedp.ID("act-transfer")),
		chromedp.WaitVisible(chromedp.ID("dlg-transfer")),
		chromedp.SetValue(chromedp.ID("transfer-to"), "bob"),
		chromedp.SendKeys(chromedp.ID("transfer-note"), "客户想了解港股通，请 Bob 跟进。"),
		chromedp.Click(chromedp.ID("transfer-submit")),
	)
	alice.until("the conversation gone from Alice's inbox", convItem(conv1)+` === null && document.body.dataset.view === "list"`)
	sup.until("the transfer in the supervisor's view, live", `[...document.querySelectorAll("#msgs .activity-transfer")].some(n => n.textContent.includes("Bob Li") && n.textContent.includes("港股通"))`)
	sup.until("the list shows Bob, and nothing unread for the supervisor who watches it", convItem(conv1)+`.querySelector(".ci-emp").textContent === "Bob Li" && `+convItem(conv1)+`.dataset.unread === "0"`)
	keepScreenshot(t, "console-supervisor.png", sup.shot("console-supervisor.png"))
	sup.do("only Bob's conversations", chromedp.SetValue(chromedp.ID("filter-employee"), "bob"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("filter-employee").dispatchEvent(new Event("change"))`))
	sup.until("the filter applied", convItem(conv1)+` !== null && `+convItem(conv2)+` === null`)
	sup.do("everyone's again", chromedp.SetValue(chromedp.ID("filter-employee"), ""),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("filter-employee").dispatchEvent(new Event("change"))`))
	sup.until("both listed", convItem(conv1)+` !== null && `+convItem(conv2)+` !== null`)

	// A long history: the newest page first, older pages as the
	// supervisor scrolls up, down to the start.
	sup.do("open the long conversation", chromedp.Evaluate[chromedp.Void](`location.hash = "#/c/`+conv3+`"`))
	sup.until("the newest page", bubbleWith("Question 60 of 60")+` && !document.getElementById("load-earlier").hidden && !`+bubbleWith("Question 1 of 60"))
	sup.do("scroll up", chromedp.Evaluate[chromedp.Void](`document.getElementById("thread").scrollTop = 0`))
	sup.until("the whole history", bubbleWith("Question 1 of 60")+` && !document.getElementById("thread-start").hidden && document.querySelectorAll('#msgs .msg-in .text').length === 60`)
	sup.do("back to the first conversation", chromedp.Evaluate[chromedp.Void](`location.hash = "#/c/`+conv1+`"`))
	sup.until("it is open", bubbleWith(answer))

	// Alice can no longer open it: the page says so, and the API and
	// the socket refuse her (tried directly below).
	alice.do("open the transferred conversation by its link", chromedp.Evaluate[chromedp.Void](`location.hash = "#/c/`+conv1+`"`))
	alice.until("the refusal", `!document.getElementById("thread-error").hidden && document.getElementById("thread-error").textContent.includes("not assigned to you")`)
	checkForbidden(t, r, conv1)

	// Reconnection: the network between Alice's browser and the relay
	// fails; the client writes meanwhile; when the network is back, the
	// page reconnects, resumes from its last seq and shows the message,
	// once.
	alice.do("open the second conversation", chromedp.Evaluate[chromedp.Void](`location.hash = "#/c/`+conv2+`"`))
	alice.until("its history", bubbleWith("Hello, has my transfer to the Hong Kong account arrived?"))
	aliceNet.setDown(true)
	alice.until("the connection down", `document.body.dataset.live === "offline" && !document.getElementById("live-banner").hidden`)
	const meanwhile = "Are you there? I sent this while your connection was down."
	clientSays(t, c2, meanwhile)
	sup.until("the supervisor (still connected) sees it", convItem(conv2)+`.querySelector(".ci-preview").textContent === `+js(meanwhile))
	if eval[bool](alice, bubbleWith(meanwhile)) {
		t.Fatal("the message reached a page whose connection was down")
	}
	aliceNet.setDown(false)
	alice.until("reconnected", `document.body.dataset.live === "live"`)
	alice.until("the missed message, caught up", bubbleWith(meanwhile))
	if n := eval[int](alice, `[...document.querySelectorAll("#msgs .msg .text")].filter(n => n.textContent === `+js(meanwhile)+`).length`); n != 1 {
		t.Errorf("the caught-up message is shown %d times", n)
	}
	alice.untilAsync("the caught-up message read", `fetch("/api/conversations").then(r => r.json()).then(b => b.conversations.find(c => c.conv === `+js(conv2)+`).unread === 0)`)

	// The composer's helpers: "/" opens the canned replies, Enter takes
	// one; the emoji picker inserts at the caret.
	alice.do("a canned reply", chromedp.Click(chromedp.ID("input")), chromedp.SendKeys(chromedp.ID("input"), "/doc"))
	alice.until("the canned replies, filtered", `!document.getElementById("canned-pop").hidden && document.querySelectorAll("#canned-list .canned").length === 1`)
	alice.do("take it", chromedp.KeyEvent(kb.Enter))
	// (CDP's synthetic Enter also types a line break, which a real
	// keyboard's prevented Enter does not.)
	alice.until("the canned text in the composer", `document.getElementById("input").value.trim() === "Please send a photo of both sides of your ID card."`)
	alice.do("an emoji", chromedp.Click(chromedp.ID("btn-emoji")), chromedp.Click(chromedp.CSS("#emoji-pop .emoji")))
	alice.until("the emoji in the composer", `document.getElementById("input").value.endsWith("😀") && document.getElementById("emoji-pop").hidden`)
	alice.do("clear the composer", chromedp.SetValue(chromedp.ID("input"), " "))

	// WeChat's quota: five replies per client message. Once they are
	// used, the composer is closed with the reason, and the template
	// message is offered.
	// (Each send waits for the previous one to show as sent, so the page
	// is seen following every status frame.)
	for i := range 5 {
		body := map[string]any{"key": fmt.Sprintf("quota-%d", i), "kind": "text", "text": fmt.Sprintf("Update %d of 5", i+1)}
		if status, b := r.api(t, "POST", "/api/conversations/"+conv2+"/messages", aliceTok, body); status != http.StatusAccepted {
			t.Fatalf("send %d: %d %v", i, status, b)
		}
		alice.until("the reply, sent", fmt.Sprintf(`[...document.querySelectorAll('#msgs .msg-out[data-state="sent"] .text')].filter(n => n.textContent.startsWith("Update ")).length === %d`, i+1))
	}
	alice.until("the composer closed, with the reason and the template", `!document.getElementById("composer-closed").hidden && document.getElementById("input").disabled && document.getElementById("send").disabled && document.getElementById("closed-template").textContent.includes("TPL_FOLLOW_UP") && document.getElementById("closed-reason").textContent.includes("no more messages until the client writes")`)

	// Shortcuts: ? shows the help; Alt+↓ and Alt+↑ move through the
	// supervisor's list; the language switches to Chinese and back.
	alice.do("help", chromedp.Click(chromedp.ID("msgs")), chromedp.KeyEvent("?"))
	alice.until("the shortcuts", `document.getElementById("dlg-help").open`)
	alice.do("close the help", chromedp.KeyEvent(kb.Escape))
	alice.until("the help closed", `!document.getElementById("dlg-help").open`)
	// (the list is newest first: the second conversation, busier since,
	// is above the first)
	sup.do("previous conversation", chromedp.Click(chromedp.ID("msgs")), chromedp.KeyEvent(kb.ArrowUp, chromedp.KeyModifiers(chromedp.ModifierAlt)))
	sup.until("the other conversation open", `decodeURIComponent(location.hash) === "#/c/" + `+js(conv2)+` && `+bubbleWith(meanwhile))
	sup.do("next conversation", chromedp.KeyEvent(kb.ArrowDown, chromedp.KeyModifiers(chromedp.ModifierAlt)))
	sup.until("the first one again", `decodeURIComponent(location.hash) === "#/c/" + `+js(conv1))
	alice.do("switch to Chinese", chromedp.Click(chromedp.ID("nav-lang")))
	alice.until("the Chinese UI", `document.documentElement.lang === "zh-CN" && document.getElementById("list-title").textContent === "收件箱" && document.getElementById("send").textContent === "发送"`)
	alice.shot("console-zh.png")
	alice.do("back to English", chromedp.Click(chromedp.ID("nav-lang")))
	alice.until("the English UI", `document.documentElement.lang === "en"`)

	// On a phone screen, one pane at a time: the list, then the
	// conversation with a way back.
	alice.do("a phone screen", chromedp.EmulateViewport(390, 844), chromedp.Evaluate[chromedp.Void](`location.hash = "#/"`))
	alice.until("only the list", `getComputedStyle(document.getElementById("list-pane")).display !== "none" && getComputedStyle(document.getElementById("conv-pane")).display === "none"`)
	alice.do("open a conversation", chromedp.Click(chromedp.CSS(`#conv-list li[data-conv="`+conv2+`"] a`)))
	alice.until("only the conversation", `getComputedStyle(document.getElementById("list-pane")).display === "none" && getComputedStyle(document.getElementById("conv-back")).display !== "none" && `+bubbleWith(meanwhile))
	alice.shot("console-phone.png")
	alice.do("back", chromedp.Click(chromedp.ID("conv-back")))
	alice.until("the list again", `getComputedStyle(document.getElementById("list-pane")).display !== "none" && document.body.dataset.view === "list"`)
	alice.do("a laptop screen again", chromedp.EmulateViewport(1440, 900))

	// Resolve and reopen: archived as internal messages, shown to staff.
	alice.do("open it again", chromedp.Click(chromedp.CSS(`#conv-list li[data-conv="`+conv2+`"] a`)))
	alice.do("resolve", chromedp.WaitVisible(chromedp.ID("act-resolve")), chromedp.Click(chromedp.ID("act-resolve")))
	alice.until("resolved", `document.getElementById("conv-status").textContent === "Resolved" && !document.getElementById("act-reopen").hidden && [...document.querySelectorAll("#msgs .activity-resolve")].some(n => n.textContent.includes("Resolved by Alice Wang"))`)
	sup.until("the supervisor sees it resolved", convItem(conv2)+`?.dataset.status === "resolved" || `+convItem(conv2)+` === null`)
	alice.do("reopen", chromedp.Click(chromedp.ID("act-reopen")))
	alice.until("open again", `document.getElementById("conv-status").textContent === "Open" && !document.getElementById("act-resolve").hidden && [...document.querySelectorAll("#msgs .activity")].some(n => n.textContent.includes("Reopened by Alice Wang"))`)

	// Signing out ends the session: the page shows the sign-in form and
	// the API no longer answers to it.
	alice.do("sign out", chromedp.Click(chromedp.ID("nav-signout")))
	alice.until("the sign-in form", `!document.getElementById("signin").hidden && document.getElementById("shell").hidden`)
	if status := eval[int](alice, `fetch("/api/me").then(r => r.status)`); status != http.StatusUnauthorized {
		t.Errorf("after signing out /api/me answers %d, want 401", status)
	}
	t.Logf("browser test took %s", time.Since(start).Round(time.Millisecond))
}

// checkForbidden tries conv as alice, to whom it is no longer assigned:
// the history API answers 403, and the socket refuses to resume it. Both
// with a session signed in like the browser's, and with her API token.
func checkForbidden(t *testing.T, r *testRelay, conv string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar}
	resp, err := hc.Post(r.sys.URL()+"/api/login", "application/json",
		strings.NewReader(`{"id":"alice","password":`+js(browserPasswords["alice"])+`}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("signing in as alice: %d", resp.StatusCode)
	}
	resp, err = hc.Get(r.sys.URL() + "/api/conversations/" + conv + "/messages")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("history of a conversation transferred away, with alice's session: %d, want 403", resp.StatusCode)
	}
	if status, body := r.api(t, "GET", "/api/conversations/"+conv+"/messages", aliceTok, nil); status != http.StatusForbidden {
		t.Errorf("history with alice's token: %d %v, want 403", status, body)
	}

	// The socket, with the session cookie and the browser's Origin.
	u := "ws" + strings.TrimPrefix(r.sys.URL(), "http") + "/api/ws"
	hdr := http.Header{"Origin": {r.sys.URL()}}
	for _, c := range jar.Cookies(mustURL(t, r.sys.URL())) {
		hdr.Add("Cookie", c.String())
	}
	ws, resp, err := websocket.DefaultDialer.Dial(u, hdr)
	if err != nil {
		t.Fatalf("dialing the socket with alice's session: %v (%v)", err, resp)
	}
	defer ws.Close()
	if err := ws.WriteJSON(console.Frame{Type: console.FrameResume, Conv: conv}); err != nil {
		t.Fatal(err)
	}
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		var f console.Frame
		if err := ws.ReadJSON(&f); err != nil {
			t.Fatalf("no answer to resuming a conversation not hers: %v", err)
		}
		if f.Type == console.FrameMessage && f.Conv == conv {
			t.Fatalf("the socket sent alice a message of a conversation not hers: %+v", f)
		}
		if f.Type == console.FrameError && f.Conv == conv {
			if !strings.Contains(f.Error, "not assigned") {
				t.Errorf("resume refused with %q", f.Error)
			}
			break
		}
	}
	// And with her API token.
	s := r.dial(t, aliceTok)
	s.send(t, console.Frame{Type: console.FrameResume, Conv: conv})
	f := waitFrame(t, s, "resume refusal", func(f console.Frame) bool {
		if f.Type == console.FrameMessage && f.Conv == conv {
			t.Fatalf("the socket sent alice a message of a conversation not hers: %+v", f)
		}
		return f.Type == console.FrameError && f.Conv == conv
	})
	if !strings.Contains(f.Error, "not assigned") {
		t.Errorf("resume refused with %q", f.Error)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
