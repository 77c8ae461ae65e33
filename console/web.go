package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"sort"
	"sync"
	"time"
)

// The web console (console/web) is the employees' and supervisors' page:
// our own HTML, CSS and ES modules, no framework and no build step. Its
// files are embedded, so the Go toolchain alone builds the binary.
//
//	GET /                               the page (no-cache, ETag)
//	GET /static/<version>/<name>.<ext>  its assets, cached for a year
//
// <version> is a hash of every embedded asset: a new build serves its
// files under a new directory, so a browser never mixes a cached module of
// the old build with the new page, and the ES modules import each other
// by plain relative names ("./api.js"). The page itself is revalidated on
// every load. Every answer carries a Content-Security-Policy that allows
// scripts and styles from the relay only (no inline script or style) and
// connections (fetch, WebSocket) to the relay only.

//go:embed web
var webFiles embed.FS

// webCSP is the Content-Security-Policy of the console page. Pictures,
// voice and video come from the relay's own /api/media/ (never from
// WeChat's servers, which would learn who looks at what), or are
// previews the page made itself (blob:).
const webCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; " +
	"media-src 'self' blob:; connect-src 'self'; font-src 'self'; manifest-src 'self'; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// webAssetCache is the Cache-Control of versioned assets.
const webAssetCache = "public, max-age=31536000, immutable"

// webContentTypes maps asset extensions to their content types (set
// explicitly: the system MIME tables vary). Files with other extensions
// in web/ are not served.
var webContentTypes = map[string]string{
	".css": "text/css; charset=utf-8",
	".js":  "text/javascript; charset=utf-8",
	".svg": "image/svg+xml",
	".png": "image/png",
}

// webAsset is one embedded file of the console.
type webAsset struct {
	name        string // file name in web/, e.g. "app.js"
	contentType string
	etag        string
	data        []byte
}

// webPage is the built console: the rendered index and its assets.
type webPage struct {
	version   string // hash of all assets: the static directory
	index     []byte
	indexETag string
	assets    map[string]*webAsset // by file name
}

// staticPrefix is where the assets of this build are served.
func (p *webPage) staticPrefix() string { return "/static/" + p.version + "/" }

// loadWebPage builds the page once per process (the embedded files never
// change).
var loadWebPage = sync.OnceValues(func() (*webPage, error) { return buildWebPage(webFiles) })

// buildWebPage reads every asset in web/, hashes them together into the
// version, and renders web/index.html, a html/template whose
// {{asset "app.js"}} calls give the versioned URLs.
func buildWebPage(files fs.FS) (*webPage, error) {
	p := &webPage{assets: map[string]*webAsset{}}
	entries, err := fs.ReadDir(files, "web")
	if err != nil {
		return nil, fmt.Errorf("console: web page: %w", err)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	all := sha256.New()
	for _, e := range entries {
		ct, ok := webContentTypes[path.Ext(e.Name())]
		if e.IsDir() || !ok {
			continue
		}
		data, err := fs.ReadFile(files, "web/"+e.Name())
		if err != nil {
			return nil, fmt.Errorf("console: web page: %w", err)
		}
		sum := sha256.Sum256(data)
		fmt.Fprintf(all, "%s\x00%x\x00", e.Name(), sum)
		p.assets[e.Name()] = &webAsset{name: e.Name(), contentType: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`, data: data}
	}
	p.version = hex.EncodeToString(all.Sum(nil)[:6])
	tmpl, err := template.New("index.html").Funcs(template.FuncMap{
		"asset": func(name string) (string, error) {
			if _, ok := p.assets[name]; !ok {
				return "", fmt.Errorf("no asset %q in web/", name)
			}
			return p.staticPrefix() + name, nil
		},
	}).ParseFS(files, "web/index.html")
	if err != nil {
		return nil, fmt.Errorf("console: web page: %w", err)
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, nil); err != nil {
		return nil, fmt.Errorf("console: web page: %w", err)
	}
	p.index = b.Bytes()
	sum := sha256.Sum256(p.index)
	p.indexETag = `"` + hex.EncodeToString(sum[:8]) + `"`
	return p, nil
}

// WebHandler serves the web console at "/" and its assets under
// /static/. Mount it on the catch-all pattern: paths it does not know are
// answered 404.
func WebHandler() http.Handler {
	page, err := loadWebPage()
	if err != nil {
		// The embedded files are part of the build; a broken template is a
		// bug that this package's tests catch. Say so rather than crash.
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			webHeaders(w.Header())
			http.Error(w, err.Error(), http.StatusInternalServerError)
		})
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		webHeaders(h)
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", page.indexETag)
		http.ServeContent(w, r, "index.html", time.Time{}, bytes.NewReader(page.index))
	})
	mux.HandleFunc("GET /static/{version}/{file}", func(w http.ResponseWriter, r *http.Request) {
		a, ok := page.assets[r.PathValue("file")]
		if !ok || r.PathValue("version") != page.version {
			// An older build's asset: answering it with this build's bytes
			// would cache them for a year under the wrong name.
			webHeaders(w.Header())
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		webHeaders(h)
		h.Set("Content-Type", a.contentType)
		h.Set("Cache-Control", webAssetCache)
		h.Set("ETag", a.etag)
		http.ServeContent(w, r, a.name, time.Time{}, bytes.NewReader(a.data))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		webHeaders(w.Header())
		http.NotFound(w, r)
	})
	return mux
}

// webHeaders sets the security headers of every answer of the web
// console.
func webHeaders(h http.Header) {
	h.Set("Content-Security-Policy", webCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
}
