package wxsim

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"path"
	"regexp"
	"strings"
	"testing"
	"time"
)

// get fetches path from the env's server without following redirects.
func (e *env) get(path string, hdr http.Header) (*http.Response, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("GET %s: %v", path, err)
	}
	return resp, body
}

var (
	// refAttr finds src and href attribute values in the page.
	refAttr = regexp.MustCompile(`\s(?:src|href)="([^"]*)"`)
	// scriptTag finds script elements and their content.
	scriptTag = regexp.MustCompile(`(?s)<script([^>]*)>(.*?)</script>`)
)

func checkSecurityHeaders(t *testing.T, what string, h http.Header) {
	t.Helper()
	csp := h.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "base-uri 'none'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("%s: CSP %q lacks %q", what, csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-") {
		t.Errorf("%s: CSP %q allows unsafe sources", what, csp)
	}
	if got := h.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("%s: X-Content-Type-Options = %q", what, got)
	}
}

func TestPhonePageServed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})

	resp, page := e.get("/phone/", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /phone/: %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("page Content-Type = %q", ct)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("page Cache-Control = %q, want no-cache (it names the hashed assets)", cc)
	}
	checkSecurityHeaders(t, "page", resp.Header)
	etag := resp.Header.Get("ETag")
	if etag == "" {
		t.Fatal("page has no ETag")
	}
	if r, _ := e.get("/phone/", http.Header{"If-None-Match": {etag}}); r.StatusCode != http.StatusNotModified {
		t.Errorf("conditional GET of the page: %d, want 304", r.StatusCode)
	}

	// No inline script, no inline style, no event-handler attributes: the
	// CSP would block them.
	html := string(page)
	for _, m := range scriptTag.FindAllStringSubmatch(html, -1) {
		if !strings.Contains(m[1], "src=") || strings.TrimSpace(m[2]) != "" {
			t.Errorf("inline script: %s", m[0])
		}
		if !strings.Contains(m[1], `type="module"`) {
			t.Errorf("script is not an ES module: %s", m[0])
		}
	}
	if regexp.MustCompile(`<style|\sstyle=|\son[a-z]+=`).MatchString(html) {
		t.Error("the page has inline styles or event-handler attributes")
	}

	// Every local asset the page references is served with its type and a
	// year of caching: its URL carries the build's hash (console/webassets
	// TestSite checks the bytes, the ETags and the versions).
	page0, err := loadPhonePage()
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]string{".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
	seen := map[string]bool{}
	for _, m := range refAttr.FindAllStringSubmatch(html, -1) {
		if !strings.HasPrefix(m[1], "/") {
			continue // external links (none expected) are not ours to serve
		}
		name, ok := strings.CutPrefix(m[1], page0.Prefix())
		if !ok {
			t.Errorf("reference %q is outside %s", m[1], page0.Prefix())
			continue
		}
		seen[name] = true
		r, _ := e.get(m[1], nil)
		checkSecurityHeaders(t, m[1], r.Header)
		switch {
		case r.StatusCode != http.StatusOK:
			t.Errorf("GET %s: %d", m[1], r.StatusCode)
		case r.Header.Get("Content-Type") != types[path.Ext(name)]:
			t.Errorf("%s: Content-Type = %q", m[1], r.Header.Get("Content-Type"))
		case !strings.Contains(r.Header.Get("Cache-Control"), "max-age=31536000"):
			t.Errorf("%s: Cache-Control = %q", m[1], r.Header.Get("Cache-Control"))
		}
	}
	for _, f := range []string{"app.js", "style.css", "icon.svg", "lib/dom.js", "lib/api.js"} {
		if !seen[f] {
			t.Errorf("the page does not reference %s", f)
		}
	}
}

func TestPhoneRoutes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	cases := []struct {
		path     string
		status   int
		location string
	}{
		{"/", http.StatusFound, "/phone/"},
		{"/phone", http.StatusTemporaryRedirect, "/phone/"}, // ServeMux's own redirect
		{"/phone/static/app.js", http.StatusNotFound, ""},   // only under the build's hash
		{"/phone/static/000000000000/app.js", http.StatusNotFound, ""},
		{"/phone/index.html", http.StatusNotFound, ""},
		{"/favicon.ico", http.StatusNotFound, ""}, // "/" redirects only itself
		{"/healthz", http.StatusOK, ""},
	}
	for _, c := range cases {
		r, _ := e.get(c.path, nil)
		if c.status == http.StatusTemporaryRedirect && r.StatusCode == http.StatusMovedPermanently {
			r.StatusCode = c.status // older ServeMux versions answer 301
		}
		if r.StatusCode != c.status {
			t.Errorf("GET %s: %d, want %d", c.path, r.StatusCode, c.status)
		}
		if c.location != "" && r.Header.Get("Location") != c.location {
			t.Errorf("GET %s: Location %q, want %q", c.path, r.Header.Get("Location"), c.location)
		}
	}
	// The admin API is still the admin API.
	if r, _ := e.get("/sim/api/state", nil); r.StatusCode != http.StatusOK {
		t.Errorf("/sim/api/state: %d", r.StatusCode)
	}
}

// TestPhoneAssetsReferenced catches a file added to web/ and forgotten in
// index.html (or a template that fails to build).
func TestPhoneAssetsReferenced(t *testing.T) {
	t.Parallel()
	page, err := buildPhonePage(webFiles)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range page.Assets() {
		if !bytes.Contains(page.Index(), []byte(`"`+page.Prefix()+name+`"`)) {
			t.Errorf("web/%s is embedded but index.html does not use it", name)
		}
	}
	for _, name := range page.Unused() {
		t.Errorf("web/%s is embedded but the page never loads it", name)
	}
	if bytes.Contains(page.Index(), []byte("{{")) {
		t.Error("unrendered template action in the page")
	}
}

// TestLogCallbackState checks what the phone page shows under a client's
// bubble: the callback state recorded in the log entry, in flight and
// after.
func TestLogCallbackState(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{CallbackTimeout: time.Second})
	acct, err := e.sim.AddAccount(Account{Name: "Acme"})
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	newRelay(t, e.sim, acct, func(n int, rec received) (int, []byte, time.Duration) {
		switch {
		case rec.msg.Content == "slow" && n == 2:
			return http.StatusOK, []byte("success"), time.Minute // unanswered: retried
		case rec.msg.Content == "slow" && n == 3:
			<-release // the second try waits until the test has seen "retrying"
			return http.StatusOK, []byte("success"), 0
		case rec.msg.Content == "refused":
			return http.StatusInternalServerError, []byte("relay is down"), 0
		}
		return http.StatusOK, []byte("success"), 0
	})
	c, err := e.sim.NewClient(acct.AppID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscribe(context.Background()); err != nil {
		t.Fatal(err)
	}
	log, _ := c.Log(0)
	if st := log[0].Callback; st == nil || st.Status != CallbackSuccess || st.Attempts != 1 || st.Tries != 3 {
		t.Fatalf("subscribe entry callback = %+v", st)
	}

	done := make(chan CallbackResult)
	go func() {
		res, _ := c.SendText(context.Background(), "slow")
		done <- res
	}()
	var seen []CallbackStatus
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		log, _ = c.Log(1)
		if len(log) == 1 && log[0].Callback != nil {
			st := *log[0].Callback
			if len(seen) == 0 || seen[len(seen)-1] != st.Status {
				seen = append(seen, st.Status)
			}
			if st.Status == CallbackRetrying {
				if st.Attempts != 2 || !strings.Contains(st.Error, "not answered in time") {
					t.Errorf("retrying state = %+v", st)
				}
				break
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(release)
	res := <-done
	if res.Status != CallbackSuccess || res.Attempts != 2 {
		t.Fatalf("slow: %+v", res)
	}
	if len(seen) == 0 || seen[0] != CallbackPending || seen[len(seen)-1] != CallbackRetrying {
		t.Errorf("states seen in flight: %v, want pending then retrying", seen)
	}
	log, _ = c.Log(1)
	if st := log[0].Callback; st.Status != CallbackSuccess || st.Attempts != 2 {
		t.Errorf("after: %+v", st)
	}

	if _, err := c.SendText(context.Background(), "refused"); err == nil {
		t.Fatal("a 500 answer was accepted")
	}
	log, _ = c.Log(2)
	st := log[0].Callback
	if st.Status != CallbackError || st.HTTPStatus != 500 || st.Response != "relay is down" || st.Error == "" {
		t.Errorf("refused: %+v", st)
	}

	// Messages delivered to the client carry no callback state, and the
	// account's name goes through the admin API.
	if r := e.call(http.MethodGet, "/sim/api/accounts/"+acct.AppID, nil, nil); r.str("name") != "Acme" {
		t.Errorf("account name over the admin API: %v", r)
	}
}
