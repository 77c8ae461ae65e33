// Package chromium starts Debian's headless Chromium for the tests that
// drive a web page (the console's end-to-end tests, wxsim's phone page),
// through chromedp. Without Chromium the tests skip, except under CI
// (CI=true), where a missing browser is a broken setup and fails them.
//
// It imports nothing of wechat-relay, so that packages which must stay
// apart from the rest of the module (gateway/wxsim) may use it in their
// tests.
package chromium

import (
	"context"
	"os"
	"testing"

	"github.com/chromedp/chromedp"
)

// Path is Debian's Chromium (package chromium).
const Path = "/usr/bin/chromium"

// Need skips the test when Chromium is missing, except in CI, where it
// fails it.
func Need(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(Path); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("Chromium is required in CI: %v", err)
		}
		t.Skipf("no Chromium at %s", Path)
	}
}

// Start starts one headless Chromium for the test, with a window of
// width×height, and returns its context; the browser is closed when the
// test ends. It runs as root, so without the sandbox. Pages opened from
// the context with chromedp.WithNewBrowserContext each get their own
// cookies, like different people on different machines.
func Start(t *testing.T, width, height int) context.Context {
	t.Helper()
	Need(t)
	alloc, cancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(Path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("lang", "en-US"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
	)
	t.Cleanup(cancel)
	ctx, cancelBrowser := chromedp.NewContext(alloc)
	t.Cleanup(cancelBrowser)
	if err := chromedp.Do(ctx); err != nil { // start the browser
		t.Fatalf("starting Chromium: %v", err)
	}
	return ctx
}
