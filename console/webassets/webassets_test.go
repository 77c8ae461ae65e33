package webassets

import (
	"bytes"
	"go/build"
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
		"web/index.html": {Data: []byte(`<link rel="stylesheet" href="{{asset "style.css"}}">{{modulepreloads "app.js"}}<script type="module" src="{{asset "app.js"}}"></script>`)},
		"web/app.js":     {Data: []byte("import { h } from './lib/dom.js';\nimport { go } from './ui/go.js';\n")},
		"web/ui/go.js":   {Data: []byte("import { request } from '../lib/api.js';\nexport const go = 1;\n")},
		"web/style.css":  {Data: []byte("body{background:url(./bg.png)}\n.x{background:url(\"data:image/svg+xml,%3Csvg%3E\")}\n")},
		"web/bg.png":     {Data: []byte("png")},
		"web/notes.txt":  {Data: []byte("not an asset\n")},
	}
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
	if got, want := strings.Join(s.Assets(), " "), "app.js bg.png lib/api.js lib/dom.js style.css ui/go.js"; got != want {
		t.Errorf("assets %s, want %s", got, want)
	}
	for _, want := range []string{`src="/x/static/` + s.Version() + `/app.js"`, `<link rel="modulepreload" href="/x/static/` + s.Version() + `/ui/go.js">`} {
		if !bytes.Contains(s.Index(), []byte(want)) {
			t.Errorf("index %s lacks %s", s.Index(), want)
		}
	}
	if bytes.Contains(s.Index(), []byte(`modulepreload" href="/x/static/`+s.Version()+`/app.js"`)) {
		t.Error("the entry module is preloaded too")
	}
	if len(s.Unused()) != 0 {
		t.Errorf("unused %v: every asset is reached from the page", s.Unused())
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /x/{$}", s.ServeIndex)
	mux.HandleFunc("GET /x/static/", s.ServeAsset)
	serve := func(p, etag string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, p, nil)
		if etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		return rec
	}
	const year = "public, max-age=31536000, immutable"
	for _, c := range []struct {
		path     string
		status   int
		ct, cc   string
		fileName string // the bytes it serves, below web/ or lib/
	}{
		{"/x/", http.StatusOK, "text/html; charset=utf-8", "no-cache", ""},
		{s.Prefix() + "app.js", http.StatusOK, "text/javascript; charset=utf-8", year, "app.js"},
		{s.Prefix() + "ui/go.js", http.StatusOK, "text/javascript; charset=utf-8", year, "ui/go.js"},
		{s.Prefix() + "style.css", http.StatusOK, "text/css; charset=utf-8", year, "style.css"},
		{s.Prefix() + "bg.png", http.StatusOK, "image/png", year, "bg.png"},
		{s.Prefix() + "lib/dom.js", http.StatusOK, "text/javascript; charset=utf-8", year, "lib/dom.js"},
		{"/x/static/000000000000/app.js", http.StatusNotFound, "", "", ""}, // another build's
		{s.Prefix() + "notes.txt", http.StatusNotFound, "", "", ""},        // not an asset type
		{s.Prefix() + "index.html", http.StatusNotFound, "", "", ""},       // only as the page
		{"/x/static/app.js", http.StatusNotFound, "", "", ""},
		{s.Prefix(), http.StatusNotFound, "", "", ""},
	} {
		rec := serve(c.path, "")
		h := rec.Result().Header
		if h.Get("Content-Security-Policy") != csp || h.Get("X-Content-Type-Options") != "nosniff" || h.Get("X-Frame-Options") != "DENY" || h.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("GET %s: security headers %v", c.path, h)
		}
		if rec.Code != c.status {
			t.Errorf("GET %s: %d, want %d", c.path, rec.Code, c.status)
			continue
		}
		if c.status != http.StatusOK {
			continue
		}
		if h.Get("Content-Type") != c.ct || h.Get("Cache-Control") != c.cc {
			t.Errorf("GET %s: Content-Type %q, Cache-Control %q", c.path, h.Get("Content-Type"), h.Get("Cache-Control"))
		}
		if c.fileName != "" {
			want, _ := fs.ReadFile(testFiles(), "web/"+c.fileName)
			if shared, ok := strings.CutPrefix(c.fileName, "lib/"); ok {
				want, _ = fs.ReadFile(Lib(), shared)
			}
			if !bytes.Equal(rec.Body.Bytes(), want) {
				t.Errorf("GET %s: served bytes differ from the file", c.path)
			}
		}
		if again := serve(c.path, h.Get("ETag")); h.Get("ETag") == "" || again.Code != http.StatusNotModified {
			t.Errorf("GET %s: ETag %q, conditional GET %d", c.path, h.Get("ETag"), again.Code)
		}
	}
}

// TestBuild: the version follows any changed asset, so browsers never keep
// an old module under a new page; a page cannot hide a shared module, name
// a missing asset, or import one that is not there or by a name that is
// not relative; a file nothing loads is reported.
func TestBuild(t *testing.T) {
	t.Parallel()
	a, err := Build(testFiles(), "web", "/static/", "")
	if err != nil {
		t.Fatal(err)
	}
	changed := testFiles()
	changed["web/bg.png"] = &fstest.MapFile{Data: []byte("png2")}
	b, err := Build(changed, "web", "/static/", "")
	if err != nil {
		t.Fatal(err)
	}
	if a.Version() == b.Version() || bytes.Equal(a.Index(), b.Index()) {
		t.Errorf("version %s did not change with an asset", a.Version())
	}

	unused := testFiles()
	unused["web/old.js"] = &fstest.MapFile{Data: []byte("export const old = 1;\n")}
	if s, err := Build(unused, "web", "/static/", ""); err != nil {
		t.Error(err)
	} else if got := strings.Join(s.Unused(), " "); got != "old.js" {
		t.Errorf("an asset nothing imports: unused %q, want old.js", got)
	}

	for name, data := range map[string]string{
		"web/lib/dom.js": "// the page's own",
		"web/index.html": `{{asset "nosuch.js"}}`,
		"web/ui/go.js":   "import { x } from './nosuch.js';\n",
		"web/app.js":     "import { h } from '/static/lib/dom.js';\n",
		"web/style.css":  "body{background:url(./nosuch.png)}\n",
	} {
		files := testFiles()
		files[name] = &fstest.MapFile{Data: []byte(data)}
		if _, err := Build(files, "web", "/static/", ""); err == nil {
			t.Errorf("built with %s = %q", name, data)
		}
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
