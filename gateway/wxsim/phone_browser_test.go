package wxsim

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/wechat-relay/wechat-relay/storage/testenv/chromium"
)

var updateScreenshot = flag.Bool("update-screenshot", false,
	"TestPhoneInBrowser: also write its screenshot to docs/screenshots/phone.png (for the README)")

var keepScreenshots = flag.String("screenshots", "",
	"TestPhoneInBrowser: also keep every screenshot in this directory")

// TestPhoneInBrowser plays a newcomer's first minute in a real headless
// Chromium: a relay (a tiny fake answering "success" and replying through
// custom/send, as the employee would) behind an account with an employee's
// QR code; the person creates a client, scans the code, types a message,
// presses Enter, sees it delivered and sees the employee's reply arrive.
func TestPhoneInBrowser(t *testing.T) {
	chromium.Need(t)
	e := newEnv(t, Config{Clock: SystemClock{}})
	acct, err := e.sim.AddAccount(Account{Name: "Acme Wealth", Templates: []string{"TPL_APPOINTMENT"}})
	if err != nil {
		t.Fatal(err)
	}
	// The relay gives each employee a parametric QR code: scene emp:<id>.
	var qr QRRequest
	qr.ActionName = QRLimitStrScene
	qr.ActionInfo.Scene.SceneStr = "emp:42"
	if _, err := e.sim.CreateQR(acct.AppID, qr); err != nil {
		t.Fatal(err)
	}
	tok := e.token(acct)

	// The fake relay answers at once and, like the employee at the
	// console, replies through custom/send a moment later.
	var wg sync.WaitGroup
	reply := func(openid, content string) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(150 * time.Millisecond)
			body, _ := json.Marshal(text(openid, content))
			resp, err := http.Post(e.srv.URL+"/cgi-bin/message/custom/send?access_token="+tok, "application/json", bytes.NewReader(body))
			if err != nil {
				t.Errorf("custom/send: %v", err)
				return
			}
			defer resp.Body.Close()
			var r APIError
			if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || r.Code != 0 {
				t.Errorf("custom/send: %v %+v", err, r)
			}
		}()
	}
	const welcome = "Welcome to Acme Wealth! Li Wei, your relationship manager, will answer you here."
	const refused = "Is anyone there?"
	const answer = "Hello, this is Li Wei. Of course: I have prepared your portfolio review for Thursday 10:00. Does that suit you?"
	newRelay(t, e.sim, acct, func(n int, rec received) (int, []byte, time.Duration) {
		from := string(rec.msg.FromUserName)
		switch {
		case rec.msg.MsgType == "event" && rec.msg.Event == "subscribe":
			reply(from, welcome)
		case rec.msg.MsgType == "text" && rec.msg.Content == refused:
			return http.StatusInternalServerError, []byte("relay is down for maintenance"), 0
		case rec.msg.MsgType == "text":
			reply(from, answer)
		}
		return http.StatusOK, []byte("success"), 0
	})
	t.Cleanup(wg.Wait) // runs before the relay and the simulator close

	// The browser is closed when the test ends, before the relay and the
	// simulator (cleanups run last registered, first).
	ctx, cancelTimeout := context.WithTimeout(chromium.Start(t, 1200, 900), 40*time.Second)
	defer cancelTimeout()

	// Collect what the page writes to the console: exceptions and CSP
	// violations fail the test.
	var consoleMu sync.Mutex
	var console []string
	consoleCtx, stopConsole := context.WithCancel(ctx)
	consoleDone := make(chan struct{})
	messages := chromedp.Console(consoleCtx)
	go func() {
		defer close(consoleDone)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				consoleMu.Lock()
				console = append(console, m.String())
				consoleMu.Unlock()
			}
		}
	}()
	defer func() { stopConsole(); <-consoleDone }()

	shot := func(name string) []byte {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Errorf("screenshot: %v", err)
			return nil
		}
		p := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", p)
		if *keepScreenshots != "" {
			if err := os.WriteFile(filepath.Join(*keepScreenshots, name), png, 0o644); err != nil {
				t.Error(err)
			}
		}
		return png
	}
	step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			shot("failed.png")
			t.Fatalf("%s: %v", what, err)
		}
	}
	// until waits for a JavaScript condition.
	until := func(what, cond string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](cond, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(15*time.Second))); err != nil {
			shot("failed.png")
			t.Fatalf("waiting for %s: %v", what, err)
		}
	}
	start := time.Now()

	step("open the page (/ redirects to /phone/)",
		chromedp.EmulateViewport(1200, 860),
		chromedp.Navigate(e.srv.URL+"/"),
	)
	until("the English UI", `document.documentElement.lang === "en" && document.getElementById("clients-title").textContent === "Simulated clients"`)
	step("create a client",
		chromedp.WaitVisible(chromedp.ID("new-client")),
		chromedp.Click(chromedp.ID("new-client")),
		chromedp.WaitVisible(chromedp.ID("follow-card")),
	)
	until("the title bar with the account's name", `document.getElementById("chat-title").textContent === "Acme Wealth"`)

	step("scan the employee's QR code",
		chromedp.Click(chromedp.ID("follow-scan")),
		chromedp.WaitVisible(chromedp.CSS("#qr-list button")),
	)
	until("the employee's code listed", `document.querySelector("#qr-list .qr-name").textContent === "Employee 42"`)
	shot("scan.png")
	step("press Scan", chromedp.Click(chromedp.CSS("#qr-list button")))
	until("the subscribe notice, delivered",
		`(n => n && n.dataset.status === "success" && n.textContent.includes("employee 42"))(document.querySelector('li.notice[data-event="subscribe"]'))`)
	until("the welcome message", `[...document.querySelectorAll(".msg.theirs .bubble")].some(b => b.textContent.includes("Welcome to Acme Wealth"))`)

	const said = "Hello, I would like to review my portfolio."
	step("type a message and press Enter",
		chromedp.WaitEnabled(chromedp.ID("text")),
		chromedp.Click(chromedp.ID("text")),
		chromedp.SendKeys(chromedp.ID("text"), said),
		chromedp.KeyEvent(kb.Enter),
	)
	until("the own bubble, delivered", fmt.Sprintf(
		`(n => n && n.querySelector(".bubble").textContent === %q && n.dataset.status === "success" && n.querySelector(".status").textContent === "Delivered")([...document.querySelectorAll(".msg.mine")].pop())`, said))
	until("the employee's reply", fmt.Sprintf(
		`[...document.querySelectorAll(".msg.theirs .bubble")].some(b => b.textContent === %q)`, answer))
	until("the input cleared and focused", `document.getElementById("text").value === "" && document.activeElement.id === "text"`)

	// Let the last image-free layout settle, then keep the picture.
	png := shot("phone.png")
	if *updateScreenshot && png != nil {
		dst := filepath.Join("..", "..", "docs", "screenshots", "phone.png")
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot copied to %s", dst)
	}

	// More of what the page draws: the client's sample photo and location
	// from the "+" panel; the account's picture, article, voice, video,
	// menu and template messages; a message the relay refuses.
	step("send a sample photo from the + panel",
		chromedp.Click(chromedp.ID("plus")),
		chromedp.WaitVisible(chromedp.ID("act-sample")),
	)
	shot("plus.png")
	step("press Sample photo", chromedp.Click(chromedp.ID("act-sample")))
	until("the photo, delivered", `(n => n && n.dataset.status === "success" && n.querySelector("img").naturalWidth > 0)(document.querySelector('.msg.mine[data-msgtype="image"]'))`)
	step("send a location",
		chromedp.Click(chromedp.ID("plus")),
		chromedp.WaitVisible(chromedp.ID("act-location")),
		chromedp.Click(chromedp.ID("act-location")),
		chromedp.WaitVisible(chromedp.ID("dlg-location")),
		chromedp.Click(chromedp.CSS(`#form-location button[value="ok"]`)),
	)
	until("the location card, delivered", `document.querySelector('.msg.mine[data-msgtype="location"]')?.dataset.status === "success"`)

	cs, _ := e.sim.Clients(acct.AppID)
	if len(cs) != 1 {
		t.Fatalf("clients: %+v", cs)
	}
	openid := cs[0].OpenID
	api := func(path string, body any) {
		t.Helper()
		r := e.post(path, tok, body)
		if r.code() != 0 {
			t.Fatalf("%s: %v", path, r)
		}
	}
	upload := func(typ string, data []byte) string {
		t.Helper()
		m, err := e.sim.UploadMedia(acct.AppID, typ, data)
		if err != nil {
			t.Fatal(err)
		}
		return m.MediaID
	}
	send := func(msgtype string, body any) map[string]any {
		return map[string]any{"touser": openid, "msgtype": msgtype, msgtype: body}
	}
	api("/cgi-bin/message/custom/send", send("image", map[string]any{"media_id": upload(MediaImage, GeneratePNG(99))}))
	api("/cgi-bin/message/custom/send", send("news", map[string]any{"articles": []map[string]any{{
		"title": "Your portfolio review", "description": "Allocation, performance and what we suggest for the next quarter.",
		"url": "https://example.com/review"}}}))
	api("/cgi-bin/message/custom/send", send("voice", map[string]any{"media_id": upload(MediaVoice, GenerateAMR(3))}))
	api("/cgi-bin/message/custom/send", send("video", map[string]any{"media_id": upload(MediaVideo, GenerateMP4(5)), "title": "Market minute"}))
	api("/cgi-bin/message/custom/send", send("msgmenu", map[string]any{"head_content": "Which time suits you?",
		"list": []map[string]any{{"id": "1", "content": "Thursday 10:00"}, {"id": "2", "content": "Friday 15:00"}}, "tail_content": "Tap one to answer."}))
	api("/cgi-bin/message/template/send", map[string]any{"touser": openid, "template_id": "TPL_APPOINTMENT", "url": "https://example.com/appointments/7",
		"data": map[string]any{"first": map[string]any{"value": "Your appointment is confirmed."},
			"time": map[string]any{"value": "Thursday 10:00"}, "advisor": map[string]any{"value": "Li Wei"},
			"remark": map[string]any{"value": "Reply here to change it."}}})
	until("the account's messages drawn", `[
		'.msg.theirs[data-msgtype="image"] img', '.msg.theirs[data-msgtype="news"] .card-title',
		'.msg.theirs[data-msgtype="voice"] .voice', '.msg.theirs[data-msgtype="video"] .video',
		'.msg.theirs[data-msgtype="msgmenu"] .menu-items button', '.msg.theirs[data-msgtype="template"] .tpl-rows'
	].every(s => document.querySelector(s))`)

	step("send a message the relay refuses",
		chromedp.SendKeys(chromedp.ID("text"), refused),
		chromedp.KeyEvent(kb.Enter),
	)
	until("the refusal under the bubble", `(n => n && n.dataset.status === "error" && n.querySelector(".fail-mark") && n.querySelector(".status").textContent.includes("HTTP 500"))([...document.querySelectorAll(".msg.mine")].pop())`)
	shot("gallery.png")
	step("scroll up", chromedp.Evaluate[chromedp.Void](`document.getElementById("chat-body").scrollTop -= 560`))
	shot("gallery-up.png")

	// Chinese UI, from the client details dialog.
	step("switch to Chinese",
		chromedp.Click(chromedp.ID("more")),
		chromedp.WaitVisible(chromedp.ID("info-lang")),
		chromedp.Click(chromedp.ID("info-lang")),
	)
	until("the Chinese UI", `document.documentElement.lang === "zh-CN" && document.querySelector('.msg.mine[data-status="success"] .status').textContent === "已送达"`)
	step("close the dialog", chromedp.Click(chromedp.CSS(`#dlg-info button[value="close"]`)))
	shot("phone-zh.png")
	step("back to the client list", chromedp.Click(chromedp.ID("back")), chromedp.WaitVisible(chromedp.CSS(".client-row")))
	until("the client, following via employee 42", `document.querySelector(".client-row .client-sub").textContent.includes("员工 42")`)
	shot("clients-zh.png")
	step("open the chat again", chromedp.Click(chromedp.CSS(".client-row")), chromedp.WaitVisible(chromedp.ID("messages")))
	until("the conversation reloaded", `document.querySelectorAll("#messages .msg, #messages .notice").length === 13`)

	// On a phone-width screen the page is the phone: no frame, no fake
	// status bar.
	step("phone-width screen", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	until("full-screen layout", `getComputedStyle(document.querySelector(".statusbar")).display === "none" && document.getElementById("phone").getBoundingClientRect().width === 390`)
	shot("phone-mobile.png")

	// A simulator with no account yet: the page offers to create one.
	bare := newEnv(t, Config{})
	step("open a bare simulator",
		chromedp.EmulateViewport(1200, 860),
		chromedp.Navigate(bare.srv.URL+"/phone/"),
		chromedp.WaitVisible(chromedp.ID("create-account")),
		chromedp.Click(chromedp.ID("create-account")),
		chromedp.WaitVisible(chromedp.ID("acct-name")),
		chromedp.Click(chromedp.CSS(`#form-account button[value="ok"]`)),
		chromedp.WaitVisible(chromedp.ID("account-bar")),
	)
	until("the new account selected", `document.getElementById("account").selectedOptions[0].textContent.startsWith("Acme Wealth (wx")`)
	if as := bare.sim.Accounts(); len(as) != 1 || as[0].Name != "Acme Wealth" || as[0].Mode != ModeSafe || as[0].CallbackURL != "http://127.0.0.1:8080/wechat/demo" {
		t.Errorf("account created from the page: %+v", as)
	}

	consoleMu.Lock()
	defer consoleMu.Unlock()
	for _, m := range console {
		t.Errorf("browser console: %s", m)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("the browser test took %v", d)
	}
	// The conversation as the simulator recorded it.
	if info, _ := e.sim.ClientInfo(openid); info.QRSceneStr != "emp:42" {
		t.Errorf("client: %+v", info)
	}
	log, _ := e.sim.Log(openid, 0)
	var kinds []string
	for _, l := range log {
		kinds = append(kinds, l.Direction+":"+strings.TrimSpace(l.MsgType+" "+l.Event))
	}
	want := "in:event subscribe,out:text,in:text,out:text,in:image,in:location," +
		"out:image,out:news,out:voice,out:video,out:msgmenu,out:template,in:text"
	if got := strings.Join(kinds, ","); got != want {
		t.Errorf("log:\n got %s\nwant %s", got, want)
	}
}
