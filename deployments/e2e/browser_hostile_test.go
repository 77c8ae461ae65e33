package e2e

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/wechat-relay/wechat-relay/storage/testenv/chromium"
)

// hostileTexts are what a client may write to get script into the
// console or to garble it: each sets window.pwned if it ever runs.
var hostileTexts = []string{
	`<img src=x onerror="window.pwned='img'">`,
	`<script>window.pwned='script'</script>`,
	`<a href="javascript:window.pwned='a'">点我 click me</a>`,
	`javascript:window.pwned='text'`,
	`<svg/onload=window.pwned='svg'>`,
	`<iframe srcdoc="<script>parent.pwned='iframe'</script>"></iframe>`,
	`&lt;b&gt;not bold, pwned&lt;/b&gt; &amp; {{constructor.constructor('window.pwned=1')()}}`,
}

// rtlText reverses what follows it on screen unless isolated.
const rtlText = "发票 invoice\u202Efdp.exe pwned"

// A client's hostile text, in a real Chromium: in the inbox, in the
// conversation and in the search results every text shows literally,
// no script runs (nor is any blocked by the CSP, which would mean it was
// parsed as HTML), a link message's javascript: URL is no link, a right-
// to-left override stays inside its text, and a very long word does not
// widen the page.
func TestBrowserHostileClientText(t *testing.T) {
	chromium.Need(t)
	r, acct := complianceBrowserRelay(t)
	browser := chromium.Start(t, 1440, 900)

	longWord := "pwned" + strings.Repeat("x", 4000) // no break opportunity: CJK would give one
	html, rtl, long := newClient(t, acct), newClient(t, acct), newClient(t, acct)
	if res, err := html.SendLink(context.Background(), `<b>标题</b> pwned`, `<img src=x onerror="window.pwned='desc'">`, `javascript:window.pwned='link'`); err != nil {
		t.Fatalf("link message: %v (%+v)", err, res)
	}
	for _, text := range hostileTexts {
		clientSays(t, html, text)
	}
	clientSays(t, rtl, rtlText)
	clientSays(t, long, longWord)
	convHTML, convRTL, convLong := "acme:"+html.OpenID, "acme:"+rtl.OpenID, "acme:"+long.OpenID
	last := hostileTexts[len(hostileTexts)-1]

	alice := openPage(t, browser, "alice", r.sys.URL()+"/")
	alice.signIn("alice", complianceBrowserPasswords["alice"])
	preview := func(conv string) string { return convItem(conv) + `?.querySelector(".ci-preview")?.textContent` }
	alice.until("the inbox previews, literally", preview(convHTML)+` === `+js(last)+` && `+preview(convRTL)+` === `+js(rtlText)+` && `+preview(convLong)+` === `+js(longWord))
	noScript(t, alice, "the inbox")

	alice.do("open the conversation", chromedp.Evaluate[chromedp.Void](`location.hash = "#/c/`+convHTML+`"`))
	for _, text := range hostileTexts {
		alice.until("the bubble of "+text, bubbleWith(text))
	}
	card := `document.querySelector("#msgs a.link-card")`
	alice.until("the link card, its title literal", card+` !== null && `+card+`.textContent.includes("<b>标题</b> pwned")`)
	href := eval[string](alice, card+`.getAttribute("href") || ""`)
	if strings.HasPrefix(strings.ToLower(strings.TrimSpace(href)), "javascript:") {
		t.Errorf("the link message's card links to %q", href)
	}
	noScript(t, alice, "the conversation")

	alice.do("open the right-to-left one", chromedp.Evaluate[chromedp.Void](`location.hash = "#/c/`+convRTL+`"`))
	alice.until("its bubble", bubbleWith(rtlText))
	// The override must end with the text's own box: a box of its own
	// (a block) or an isolated inline one.
	for what, sel := range map[string]string{
		"the bubble":  `[...document.querySelectorAll("#msgs .msg .text")].find(n => n.textContent === ` + js(rtlText) + `)`,
		"the preview": convItem(convRTL) + `.querySelector(".ci-preview")`,
	} {
		if !eval[bool](alice, `(n => { const s = getComputedStyle(n); return !s.display.startsWith("inline") || ["isolate", "plaintext", "isolate-override"].includes(s.unicodeBidi); })(`+sel+`)`) {
			t.Errorf("%s of the right-to-left text is not isolated: the override reorders what follows it", what)
		}
	}

	alice.do("open the long word", chromedp.Evaluate[chromedp.Void](`location.hash = "#/c/`+convLong+`"`))
	alice.until("its bubble", bubbleWith(longWord))
	fits := `(n => n.scrollWidth <= n.clientWidth + 1 && n.getBoundingClientRect().right <= document.getElementById("msgs").getBoundingClientRect().right + 1)([...document.querySelectorAll("#msgs .msg .text")].find(n => n.textContent === ` + js(longWord) + `))`
	if !eval[bool](alice, fits) {
		t.Error("the long word overflows its conversation")
	}
	if !eval[bool](alice, `document.documentElement.scrollWidth <= window.innerWidth && `+convItem(convLong)+`.getBoundingClientRect().right <= document.getElementById("conv-list").getBoundingClientRect().right + 1`) {
		t.Error("the long word widens the page or the inbox")
	}
	noScript(t, alice, "the long word")

	// The supervisor searches for them: every result shows its text
	// literally.
	sup := openPage(t, browser, "sup", r.sys.URL()+"/")
	sup.signIn("sup", complianceBrowserPasswords["sup"])
	sup.untilAsync("the messages archived and searchable", `fetch("/api/search?text=pwned").then(r => r.json()).then(b => b.total >= `+strconv.Itoa(len(hostileTexts)+2)+`)`)
	sup.do("search for them", chromedp.Click(chromedp.ID("nav-search")))
	sup.until("the search view", `!document.getElementById("tool-search").hidden`)
	sup.do("search", chromedp.SendKeys(chromedp.ID("s-text"), "pwned"), chromedp.Click(chromedp.ID("s-submit")))
	for _, text := range append(slices.Clone(hostileTexts), rtlText, longWord) {
		sup.until("the result "+text[:min(len(text), 40)], `[...document.querySelectorAll("#s-results .result-text")].some(n => n.textContent === `+js(text)+`)`)
	}
	if !eval[bool](sup, `document.documentElement.scrollWidth <= window.innerWidth && [...document.querySelectorAll("#s-results li")].every(n => n.scrollWidth <= n.clientWidth + 1)`) {
		t.Error("the long word widens the search page")
	}
	noScript(t, sup, "the search results")
}

// noScript fails t if a hostile text ran or became markup in p.
func noScript(t *testing.T, p *page, where string) {
	t.Helper()
	if got := eval[string](p, `String(window.pwned ?? "")`); got != "" {
		t.Errorf("%s: a client's text ran as script (%s)", where, got)
	}
	const markup = `#msgs img[src="x"], #msgs script, #msgs iframe, #msgs svg[onload], #conv-list img[src="x"], #s-results img[src="x"], #s-results script, a[href^="javascript:" i]`
	if n := eval[int](p, `document.querySelectorAll(`+js(markup)+`).length`); n != 0 {
		t.Errorf("%s: %d elements made of a client's text", where, n)
	}
}
