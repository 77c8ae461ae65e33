package webassets

import (
	"bytes"
	"go/build"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
)

func testFiles() fstest.MapFS {
	return fstest.MapFS{
		"web/index.html": {Data: []byte(`<link rel="stylesheet" href="{{asset "style.css"}}"><script type="module" src="{{asset "app.js"}}"></script>`)},
		"web/app.js":     {Data: []byte("import { h } from './lib/dom.js';\n")},
		"web/style.css":  {Data: []byte("body{}\n")},
		"web/notes.txt":  {Data: []byte("not an asset\n")},
	}
}

func get(t *testing.T, srv *httptest.Server, p string, hdr http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, srv.URL+p, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

// TestSite: the page and its assets, the shared ones included, are served
// with their types, caching, ETags and security headers; anything else is
// not found, with the same headers.
func TestSite(t *testing.T) {
	t.Parallel()
	const csp = "default-src 'none'"
	s, err := Build(testFiles(), "web", "/x/static/", csp)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.Assets(), []string{"app.js", "lib/api.js", "lib/dom.js", "style.css"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("assets %v, want %v", got, want)
	}
	if !bytes.Contains(s.Index(), []byte(`src="/x/static/`+s.Version()+`/app.js"`)) {
		t.Errorf("index %s does not name the versioned app.js", s.Index())
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /x/{$}", s.ServeIndex)
	mux.HandleFunc("GET /x/static/", s.ServeAsset)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	check := func(p string, status int, ct, cc string) *http.Response {
		t.Helper()
		r, body := get(t, srv, p, nil)
		if r.StatusCode != status {
			t.Errorf("GET %s: %d, want %d", p, r.StatusCode, status)
		}
		if r.Header.Get("Content-Security-Policy") != csp || r.Header.Get("X-Content-Type-Options") != "nosniff" || r.Header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("GET %s: security headers %v", p, r.Header)
		}
		if status != http.StatusOK {
			return r
		}
		if r.Header.Get("Content-Type") != ct || r.Header.Get("Cache-Control") != cc {
			t.Errorf("GET %s: Content-Type %q, Cache-Control %q", p, r.Header.Get("Content-Type"), r.Header.Get("Cache-Control"))
		}
		if name, ok := strings.CutPrefix(p, s.Prefix()); ok {
			want, _ := fs.ReadFile(testFiles(), "web/"+name)
			if shared, ok := strings.CutPrefix(name, "lib/"); ok {
				want, _ = fs.ReadFile(Lib(), shared)
			}
			if !bytes.Equal(body, want) {
				t.Errorf("GET %s: served bytes differ from the file", p)
			}
		}
		if r2, _ := get(t, srv, p, http.Header{"If-None-Match": {r.Header.Get("ETag")}}); r.Header.Get("ETag") == "" || r2.StatusCode != http.StatusNotModified {
			t.Errorf("GET %s: ETag %q, conditional GET %d", p, r.Header.Get("ETag"), r2.StatusCode)
		}
		return r
	}
	check("/x/", http.StatusOK, "text/html; charset=utf-8", "no-cache")
	check(s.Prefix()+"app.js", http.StatusOK, "text/javascript; charset=utf-8", "public, max-age=31536000, immutable")
	check(s.Prefix()+"style.css", http.StatusOK, "text/css; charset=utf-8", "public, max-age=31536000, immutable")
	check(s.Prefix()+"lib/dom.js", http.StatusOK, "text/javascript; charset=utf-8", "public, max-age=31536000, immutable")
	check("/x/static/000000000000/app.js", http.StatusNotFound, "", "") // another build's
	check(s.Prefix()+"notes.txt", http.StatusNotFound, "", "")          // not an asset type
	check(s.Prefix()+"index.html", http.StatusNotFound, "", "")         // only as the page
	check("/x/static/app.js", http.StatusNotFound, "", "")
	check(s.Prefix(), http.StatusNotFound, "", "")
}

// TestVersionFollowsContent: any changed asset, a shared one too, moves
// the whole directory, so browsers never keep an old module under a new
// page.
func TestVersionFollowsContent(t *testing.T) {
	t.Parallel()
	files := testFiles()
	a, err := Build(files, "web", "/static/", "")
	if err != nil {
		t.Fatal(err)
	}
	files["web/style.css"] = &fstest.MapFile{Data: []byte("body{color:red}\n")}
	b, err := Build(files, "web", "/static/", "")
	if err != nil {
		t.Fatal(err)
	}
	if a.Version() == b.Version() || bytes.Equal(a.Index(), b.Index()) {
		t.Errorf("version %s did not change with an asset", a.Version())
	}
	files["web/lib/dom.js"] = &fstest.MapFile{Data: []byte("// mine\n")}
	if _, err := Build(files, "web", "/static/", ""); err == nil {
		t.Error("a page's own lib/dom.js was accepted over the shared one")
	}
	delete(files, "web/lib/dom.js")
	files["web/index.html"] = &fstest.MapFile{Data: []byte(`{{asset "nosuch.js"}}`)}
	if _, err := Build(files, "web", "/static/", ""); err == nil {
		t.Error("an index naming a missing asset was built")
	}
}

// TestLibScriptsSafe keeps the shared modules to the rules of both pages
// (console TestWebScriptsSafe): no HTML parsing of strings, no eval,
// nothing written to the browser console.
func TestLibScriptsSafe(t *testing.T) {
	t.Parallel()
	banned := regexp.MustCompile(`innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|console\.(log|info|debug|warn|error)|setAttribute\('style'|\.style\.cssText`)
	err := fs.WalkDir(Lib(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		src, _ := fs.ReadFile(Lib(), p)
		for i, line := range strings.Split(string(src), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "//") {
				continue
			}
			if m := banned.FindString(line); m != "" {
				t.Errorf("lib/%s:%d uses %s", p, i+1, m)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestImports: webassets is a leaf that gateway/wxsim may import, so it
// imports nothing of the module.
func TestImports(t *testing.T) {
	t.Parallel()
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range append(pkg.Imports, pkg.TestImports...) {
		if strings.HasPrefix(p, "github.com/wechat-relay/wechat-relay") {
			t.Errorf("webassets imports %s; it imports nothing of the module", p)
		}
	}
}
