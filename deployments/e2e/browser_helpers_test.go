package e2e

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/wechat-relay/wechat-relay/configs"
	"golang.org/x/crypto/bcrypt"
)

// Helpers for driving the web console in Debian's headless Chromium.

var updateScreenshots = flag.Bool("update-screenshots", false,
	"browser tests: also write the console's screenshots to docs/screenshots/ (for the README)")

var keepScreenshots = flag.String("keep-screenshots", "",
	"browser tests: also keep every screenshot in this directory")

// page is one tab of one person, with what it writes to the console.
type page struct {
	t    *testing.T
	name string
	ctx  context.Context

	mu      sync.Mutex
	console []string // every console message, for the log on failure
	bad     []string // exceptions and CSP violations: fail the test
}

// openPage opens a tab in a fresh browser context (its own cookies) at
// url, with a desktop viewport.
func openPage(t *testing.T, browser context.Context, name, url string) *page {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	p := &page{t: t, name: name, ctx: ctx}
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("%s: opening a tab: %v", name, err)
	}
	consoleCtx, stopConsole := context.WithCancel(ctx)
	done := make(chan struct{})
	messages := chromedp.Console(consoleCtx)
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			s := m.String()
			p.mu.Lock()
			p.console = append(p.console, s)
			if m.IsException() || strings.Contains(s, "Content Security Policy") || strings.Contains(s, "Refused to") {
				p.bad = append(p.bad, s)
			}
			p.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		stopConsole()
		<-done
		p.mu.Lock()
		defer p.mu.Unlock()
		if t.Failed() {
			for _, s := range p.console {
				t.Logf("%s console: %s", name, s)
			}
		}
		for _, s := range p.bad {
			t.Errorf("%s: the page reported: %s", name, s)
		}
		cancel()
	})
	p.do("open the console", chromedp.EmulateViewport(1440, 900), chromedp.Navigate(url))
	return p
}

// do runs actions, failing the test (with a screenshot) on error.
func (p *page) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	// A click waits for its element to be visible, for ever: bounded, so
	// that a page that never shows it fails this test with a screenshot
	// instead of the whole package at its timeout (it once did, CI 8).
	ctx, cancel := context.WithTimeout(p.ctx, browserWait)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.shot("failed-" + p.name + ".png")
		p.t.Fatalf("%s: %s: %v", p.name, what, err)
	}
}

// browserWait bounds each wait for a page's condition. It is generous on
// purpose: it only decides how long a broken page takes to fail, and the
// full suite runs under -race on two busy cores.
const browserWait = time.Minute

// until waits for a JavaScript condition to hold.
func (p *page) until(what, cond string) {
	p.t.Helper()
	_, err := chromedp.Run(p.ctx, chromedp.Poll[bool]("!!("+cond+")",
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(browserWait)))
	if err != nil {
		p.shot("failed-" + p.name + ".png")
		p.t.Fatalf("%s: waiting for %s: %v", p.name, what, err)
	}
}

// untilAsync waits for an async JavaScript condition (a promise of a
// boolean), such as an answer of the API.
func (p *page) untilAsync(what, cond string) {
	p.t.Helper()
	deadline := time.Now().Add(browserWait)
	for !eval[bool](p, cond) {
		if time.Now().After(deadline) {
			p.shot("failed-" + p.name + ".png")
			p.t.Fatalf("%s: waiting for %s", p.name, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// eval returns the value of a JavaScript expression (awaited when it
// is a promise).
func eval[T any](p *page, expr string) T {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		p.t.Fatalf("%s: evaluating %s: %v", p.name, expr, err)
	}
	return v
}

// shot saves a screenshot in the test's temp dir and returns it.
func (p *page) shot(name string) []byte {
	p.t.Helper()
	png, err := chromedp.Run(p.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.t.Logf("%s: screenshot: %v", p.name, err)
		return nil
	}
	path := filepath.Join(p.t.TempDir(), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("screenshot: %s", path)
	if *keepScreenshots != "" {
		if err := os.WriteFile(filepath.Join(*keepScreenshots, name), png, 0o644); err != nil {
			p.t.Error(err)
		}
	}
	return png
}

// keep writes a screenshot into docs/screenshots/ (at the module root) when asked to
// (-update-screenshots).
func keepScreenshot(t *testing.T, name string, png []byte) {
	t.Helper()
	if !*updateScreenshots || png == nil {
		return
	}
	dst := filepath.Join("..", "..", "docs", "screenshots", name)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot written to %s", dst)
}

// signIn fills the sign-in form and waits for the console.
func (p *page) signIn(id, password string) {
	p.t.Helper()
	p.until("the sign-in form", `!document.getElementById("signin").hidden`)
	p.do("sign in",
		chromedp.SendKeys(chromedp.ID("signin-id"), id),
		chromedp.SendKeys(chromedp.ID("signin-password"), password),
		chromedp.Click(chromedp.ID("signin-submit")),
	)
	p.until("the console after signing in", `!document.getElementById("shell").hidden && document.body.dataset.live === "live"`)
}

// typeAndSend types text into the composer and presses Ctrl+Enter.
func (p *page) typeAndSend(text string) {
	p.t.Helper()
	p.do("type and send",
		chromedp.WaitEnabled(chromedp.ID("input")),
		chromedp.Click(chromedp.ID("input")),
		chromedp.SendKeys(chromedp.ID("input"), text),
		chromedp.KeyEvent(kb.Enter, chromedp.KeyModifiers(chromedp.ModifierCtrl)),
	)
}

// flakyProxy forwards TCP connections to a server and can cut them: a
// network failure between one browser and the relay, which the page
// cannot tell from a real one.
type flakyProxy struct {
	t      *testing.T
	ln     net.Listener
	target string

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	down  bool
	wg    sync.WaitGroup
}

func newFlakyProxy(t *testing.T, targetURL string) *flakyProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &flakyProxy{t: t, ln: ln, target: strings.TrimPrefix(targetURL, "http://"), conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.setDown(true)
		p.wg.Wait()
	})
	return p
}

func (p *flakyProxy) URL() string { return "http://" + p.ln.Addr().String() }

func (p *flakyProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.wg.Add(2)
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			defer p.wg.Done()
			io.Copy(dst, src)
			dst.Close()
			src.Close()
			p.mu.Lock()
			delete(p.conns, dst)
			delete(p.conns, src)
			p.mu.Unlock()
		}
		go pipe(up, c)
		go pipe(c, up)
	}
}

// setDown cuts every connection and refuses new ones (true), or lets
// them through again (false).
func (p *flakyProxy) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for c := range p.conns {
			c.Close()
		}
	}
}

// js quotes s as a JavaScript string literal.
func js(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// convItem is the selector of a conversation in the list.
func convItem(conv string) string {
	return `document.querySelector('#conv-list li[data-conv=` + js(conv) + `]')`
}

// bubbleWith is a condition: a message bubble in the open conversation
// shows text.
func bubbleWith(text string) string {
	return `[...document.querySelectorAll("#msgs .msg .text")].some(n => n.textContent === ` + js(text) + `)`
}

// setPasswords names the employees of cfg and gives them console
// passwords, hashed at bcrypt's lowest cost.
func setPasswords(t *testing.T, cfg *configs.Config, names, passwords map[string]string) {
	t.Helper()
	for i := range cfg.Console.Employees {
		e := &cfg.Console.Employees[i]
		e.Name = names[e.ID]
		hash, err := bcrypt.GenerateFromPassword([]byte(passwords[e.ID]), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		e.PasswordHash = string(hash)
	}
}
