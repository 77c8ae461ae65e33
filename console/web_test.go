package console

import (
	"bytes"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"sort"
	"strings"
	"testing"
	"testing/fstest"
)

// webGet fetches path from the web handler.
func webGet(t *testing.T, srv *httptest.Server, method, p string, hdr http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+p, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, p, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

var (
	webRefAttr   = regexp.MustCompile(`\s(?:src|href)="([^"]*)"`)
	webScriptTag = regexp.MustCompile(`(?s)<script([^>]*)>(.*?)</script>`)
)

func checkWebHeaders(t *testing.T, what string, h http.Header) {
	t.Helper()
	csp := h.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'",
		"base-uri 'none'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("%s: CSP %q lacks %q", what, csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-") || strings.Contains(csp, "*") {
		t.Errorf("%s: CSP %q allows unsafe or wildcard sources", what, csp)
	}
	for k, want := range map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"} {
		if got := h.Get(k); got != want {
			t.Errorf("%s: %s = %q, want %q", what, k, got, want)
		}
	}
}

func TestWebPageServed(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(WebHandler())
	defer srv.Close()

	resp, page := webGet(t, srv, "GET", "/", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /: %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("page Content-Type = %q", ct)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("page Cache-Control = %q, want no-cache (it names the versioned assets)", cc)
	}
	checkWebHeaders(t, "page", resp.Header)
	etag := resp.Header.Get("ETag")
	if etag == "" {
		t.Fatal("page has no ETag")
	}
	if r, _ := webGet(t, srv, "GET", "/", http.Header{"If-None-Match": {etag}}); r.StatusCode != http.StatusNotModified {
		t.Errorf("conditional GET of the page: %d, want 304", r.StatusCode)
	}

	// No inline script or style and no event-handler attributes: the CSP
	// would block them, and the page would silently not work.
	html := string(page)
	scripts := webScriptTag.FindAllStringSubmatch(html, -1)
	if len(scripts) == 0 {
		t.Fatal("the page loads no script")
	}
	for _, m := range scripts {
		if !strings.Contains(m[1], "src=") || strings.TrimSpace(m[2]) != "" {
			t.Errorf("inline script: %s", m[0])
		}
		if !strings.Contains(m[1], `type="module"`) {
			t.Errorf("script is not an ES module: %s", m[0])
		}
	}
	if regexp.MustCompile(`<style|\sstyle=|\son[a-z]+=|javascript:`).MatchString(html) {
		t.Error("the page has inline styles, event-handler attributes or javascript: URLs")
	}
	if strings.Contains(html, "{{") {
		t.Error("unrendered template action in the page")
	}

	// Every local asset the page references is served with its type and a
	// year of caching (webassets TestSite checks the bytes, the ETags and
	// the versions; the build checks that modules and stylesheets name only
	// assets, by relative names).
	page0, err := loadWebPage()
	if err != nil {
		t.Fatal(err)
	}
	prefix := page0.Prefix()
	want := map[string]string{".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
	for _, m := range webRefAttr.FindAllStringSubmatch(html, -1) {
		ref := m[1]
		if ref == "#" {
			continue // a link the page fills in
		}
		if !strings.HasPrefix(ref, prefix) {
			t.Errorf("reference %q is outside %s", ref, prefix)
			continue
		}
		r, _ := webGet(t, srv, "GET", ref, nil)
		if ct, cc := r.Header.Get("Content-Type"), r.Header.Get("Cache-Control"); r.StatusCode != http.StatusOK || ct != want[path.Ext(ref)] || !strings.Contains(cc, "immutable") {
			t.Errorf("GET %s: %d, Content-Type %q, Cache-Control %q", ref, r.StatusCode, ct, cc)
		}
		checkWebHeaders(t, ref, r.Header)
	}
	for _, f := range []string{"app.js", "style.css", "icon.svg", "i18n.js", "live.js"} {
		if !strings.Contains(html, `"`+prefix+f+`"`) {
			t.Errorf("the page does not load %s", f)
		}
	}
	// Every embedded asset is reached from the page (a forgotten file
	// would ship unused), and every module the app imports is preloaded
	// (the browser fetches them in parallel rather than one level at a
	// time).
	for _, name := range page0.Unused() {
		t.Errorf("web/%s is embedded but the page never loads it", name)
	}
	for _, name := range page0.Assets() {
		if path.Ext(name) == ".js" && name != "app.js" && !strings.Contains(html, `rel="modulepreload" href="`+prefix+name+`"`) {
			t.Errorf("web/%s is not preloaded by index.html", name)
		}
	}
}

func TestWebRoutes(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(WebHandler())
	defer srv.Close()
	page, err := loadWebPage()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		method, path string
		status       int
	}{
		{"GET", "/", http.StatusOK},
		{"HEAD", "/", http.StatusOK},
		{"POST", "/", http.StatusNotFound}, // nothing to post to: the API is under /api/
		{"GET", page.Prefix() + "app.js", http.StatusOK},
		{"GET", page.Prefix() + "lib/dom.js", http.StatusOK},        // shared with the phone page
		{"GET", "/static/000000000000/app.js", http.StatusNotFound}, // another build's asset
		{"GET", page.Prefix() + "nosuch.js", http.StatusNotFound},
		{"GET", page.Prefix() + "index.html", http.StatusNotFound}, // only through /
		{"GET", "/static/app.js", http.StatusNotFound},
		{"GET", "/index.html", http.StatusNotFound},
		{"GET", "/favicon.ico", http.StatusNotFound},
		{"GET", "/c/acme:o123", http.StatusNotFound}, // the app routes by #fragment
	}
	for _, c := range cases {
		r, _ := webGet(t, srv, c.method, c.path, nil)
		if r.StatusCode != c.status {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, r.StatusCode, c.status)
		}
		if r.StatusCode != http.StatusMethodNotAllowed {
			checkWebHeaders(t, c.method+" "+c.path, r.Header)
		}
	}
}

// TestWebVersionFollowsContent: the asset directory changes when any
// asset changes, so browsers never keep an old module under a new page.
func TestWebVersionFollowsContent(t *testing.T) {
	t.Parallel()
	sub, err := fs.Sub(webFiles, "web")
	if err != nil {
		t.Fatal(err)
	}
	files := fstest.MapFS{}
	fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			data, _ := fs.ReadFile(sub, p)
			files["web/"+p] = &fstest.MapFile{Data: data}
		}
		return nil
	})
	a, err := buildWebPage(files)
	if err != nil {
		t.Fatal(err)
	}
	files["web/live.js"] = &fstest.MapFile{Data: append(append([]byte{}, files["web/live.js"].Data...), "\n// changed\n"...)}
	b, err := buildWebPage(files)
	if err != nil {
		t.Fatal(err)
	}
	if a.Version() == b.Version() || bytes.Equal(a.Index(), b.Index()) {
		t.Errorf("version %s did not change with an asset", a.Version())
	}
}

// TestWebScriptsSafe keeps the rules that protect employees from what
// clients write: no HTML parsing of strings, no eval, and nothing written
// to the browser console (where message bodies could leak into logs).
func TestWebScriptsSafe(t *testing.T) {
	t.Parallel()
	banned := regexp.MustCompile(`innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|console\.(log|info|debug|warn|error)|setAttribute\('style'|\.style\.cssText`)
	entries, _ := fs.ReadDir(webFiles, "web")
	for _, e := range entries {
		if path.Ext(e.Name()) != ".js" {
			continue
		}
		src, _ := fs.ReadFile(webFiles, "web/"+e.Name())
		for i, line := range strings.Split(string(src), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "//") {
				continue
			}
			if m := banned.FindString(line); m != "" {
				t.Errorf("web/%s:%d uses %s", e.Name(), i+1, m)
			}
		}
	}
}

// TestWebStrings: every text the page shows exists in English and
// Chinese.
func TestWebStrings(t *testing.T) {
	t.Parallel()
	src, err := fs.ReadFile(webFiles, "web/i18n.js")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile(`(?s)\n  (en|zh): \{\n(.*?)\n  \},`).FindAllStringSubmatch(string(src), -1)
	if len(blocks) != 2 {
		t.Fatalf("found %d language blocks in i18n.js, want en and zh", len(blocks))
	}
	keyRe := regexp.MustCompile(`(?m)^    (\w+): `)
	langs := map[string]map[string]bool{}
	for _, b := range blocks {
		langs[b[1]] = map[string]bool{}
		for _, k := range keyRe.FindAllStringSubmatch(b[2], -1) {
			if langs[b[1]][k[1]] {
				t.Errorf("%s: key %s twice", b[1], k[1])
			}
			langs[b[1]][k[1]] = true
		}
	}
	for k := range langs["en"] {
		if !langs["zh"][k] {
			t.Errorf("zh lacks %s", k)
		}
	}
	for k := range langs["zh"] {
		if !langs["en"][k] {
			t.Errorf("en lacks %s", k)
		}
	}
	// Keys used by the page and the modules.
	used := map[string]string{}
	html, _ := fs.ReadFile(webFiles, "web/index.html")
	for _, m := range regexp.MustCompile(`data-i18n(?:-title|-label|-placeholder)?="(\w+)"`).FindAllStringSubmatch(string(html), -1) {
		used[m[1]] = "index.html"
	}
	entries, _ := fs.ReadDir(webFiles, "web")
	for _, e := range entries {
		if path.Ext(e.Name()) != ".js" {
			continue
		}
		js, _ := fs.ReadFile(webFiles, "web/"+e.Name())
		for _, m := range regexp.MustCompile(`\bt\('(\w+)'`).FindAllStringSubmatch(string(js), -1) {
			used[m[1]] = e.Name()
		}
		// t(`role_${…}`) and the like: every key with the prefix counts.
		for _, m := range regexp.MustCompile("\\bt\\(`(\\w+)\\$\\{").FindAllStringSubmatch(string(js), -1) {
			found := false
			for k := range langs["en"] {
				found = found || strings.HasPrefix(k, m[1])
			}
			if !found {
				t.Errorf("%s: no string starts with %s", e.Name(), m[1])
			}
		}
	}
	var missing []string
	for k, where := range used {
		if !langs["en"][k] {
			missing = append(missing, k+" ("+where+")")
		}
	}
	sort.Strings(missing)
	for _, k := range missing {
		t.Errorf("string %s has no translation", k)
	}
}

// TestWebElementIDs: every element a module looks up by id
// ($('…')) exists in index.html, once; a typo would only show as an
// exception in the browser.
func TestWebElementIDs(t *testing.T) {
	t.Parallel()
	html, err := fs.ReadFile(webFiles, "web/index.html")
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]int{}
	for _, m := range regexp.MustCompile(`\sid="([^"]+)"`).FindAllStringSubmatch(string(html), -1) {
		ids[m[1]]++
	}
	for id, n := range ids {
		if n > 1 {
			t.Errorf("index.html: id %q %d times", id, n)
		}
	}
	lookup := regexp.MustCompile(`\$\('([A-Za-z0-9_-]+)'\)`)
	entries, _ := fs.ReadDir(webFiles, "web")
	for _, e := range entries {
		if path.Ext(e.Name()) != ".js" {
			continue
		}
		src, _ := fs.ReadFile(webFiles, "web/"+e.Name())
		for _, m := range lookup.FindAllStringSubmatch(string(src), -1) {
			if ids[m[1]] == 0 {
				t.Errorf("web/%s looks up #%s, which index.html does not have", e.Name(), m[1])
			}
		}
	}
	// The compliance views' ids built from their names.
	for _, v := range []string{"search", "alerts", "audit"} {
		for _, id := range []string{"nav-" + v, "tool-" + v} {
			if ids[id] == 0 {
				t.Errorf("index.html lacks #%s", id)
			}
		}
	}
}

// TestWebComplianceViews: the search, export, alerts, audit and
// legal-hold views are hidden until the page knows the employee's role
// (an agent never sees them, not even while the page starts), use the
// compliance API, and answer the live alert frame.
func TestWebComplianceViews(t *testing.T) {
	t.Parallel()
	html, err := fs.ReadFile(webFiles, "web/index.html")
	if err != nil {
		t.Fatal(err)
	}
	tag := func(id string) string {
		m := regexp.MustCompile(`<[a-z]+[^>]*\sid="` + regexp.QuoteMeta(id) + `"[^>]*>`).Find(html)
		if m == nil {
			t.Fatalf("index.html has no #%s", id)
		}
		return string(m)
	}
	for _, id := range []string{"nav-search", "nav-alerts", "nav-audit", "tool-pane", "tool-search", "tool-alerts", "tool-audit",
		"act-export", "d-export", "d-hold-card", "alerts-badge", "x-download"} {
		if !regexp.MustCompile(`\shidden[\s>]`).MatchString(tag(id)) {
			t.Errorf("#%s is not hidden from the start: %s", id, tag(id))
		}
	}
	// Keyboard reachable: the views' controls are buttons, links and
	// form fields with labels, never clickable divs.
	if regexp.MustCompile(`<(div|span|li)[^>]*\s(tabindex="[0-9]|role="button")`).Match(html) {
		t.Error("index.html makes a div, span or li clickable; use a button")
	}
	src, err := fs.ReadFile(webFiles, "web/compliance.js")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"'/api/search?", "'/api/exports'", "`/api/exports/${", "'/api/alerts?", "`/api/alerts/${",
		"/review`", "`/api/audit?${", "'/api/holds'"} {
		if !strings.Contains(string(src), strings.Trim(want, "'")) {
			t.Errorf("compliance.js does not call %s", want)
		}
	}
	app, _ := fs.ReadFile(webFiles, "web/app.js")
	if !regexp.MustCompile(`case 'alert':\s*\n\s*onAlert\(f\.alert\)`).Match(app) {
		t.Error("app.js does not hand alert frames to onAlert")
	}
	// The agent's view: the role check is in one place and names the
	// roles the API allows.
	for _, want := range []string{`maySearch = () => !!state.me && ['supervisor', 'compliance', 'admin'].includes(state.me.role)`,
		`mayAudit = () => !!state.me && ['compliance', 'admin'].includes(state.me.role)`} {
		if !strings.Contains(string(src), want) {
			t.Errorf("compliance.js lacks %s", want)
		}
	}
}
