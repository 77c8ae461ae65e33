package wxsim

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
	"strings"
	"sync"
	"time"
)

// The phone page (gateway/wxsim/web) is a WeChat-like web page where a
// person plays a simulated client: it talks only to the admin API under
// /sim/api/ and to /sim/media/ and showqrcode for pictures. Its files are
// embedded, so the Go toolchain alone builds the binary.
//
//	GET /                         302 to /phone/
//	GET /phone/                   the page (no-cache, ETag)
//	GET /phone/static/<name>.<hash>.<ext>   its assets, cached for a year
//
// The asset URLs carry a hash of their content, so a new build never meets
// a stale cached asset, and the page itself is revalidated on every load.
// Every answer carries a Content-Security-Policy that allows scripts and
// styles from the simulator only (no inline script or style).

//go:embed web
var webFiles embed.FS

// phoneCSP is the Content-Security-Policy of the phone page. Images may
// come from anywhere (news cards carry the relay's picture URLs); scripts,
// styles and fetches only from the simulator.
const phoneCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob: http: https:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// phoneAssetCache is the Cache-Control of content-hashed assets.
const phoneAssetCache = "public, max-age=31536000, immutable"

// phoneContentTypes maps asset extensions to their content types (set
// explicitly: the system MIME tables vary).
var phoneContentTypes = map[string]string{
	".css": "text/css; charset=utf-8",
	".js":  "text/javascript; charset=utf-8",
	".svg": "image/svg+xml",
}

// phoneAsset is one embedded file of the page, served under its hashed
// name.
type phoneAsset struct {
	name        string // file name in web/, e.g. "app.js"
	url         string // "/phone/static/app.<hash>.js"
	contentType string
	etag        string
	data        []byte
}

// phonePage is the built page: the rendered index and its assets.
type phonePage struct {
	index     []byte
	indexETag string
	assets    map[string]*phoneAsset // by hashed file name
}

// loadPhonePage builds the page once per process (the embedded files never
// change).
var loadPhonePage = sync.OnceValues(func() (*phonePage, error) { return buildPhonePage(webFiles) })

// buildPhonePage hashes every asset in web/ and renders web/index.html, a
// html/template whose {{asset "app.js"}} calls give the hashed URLs.
func buildPhonePage(files fs.FS) (*phonePage, error) {
	p := &phonePage{assets: map[string]*phoneAsset{}}
	byName := map[string]*phoneAsset{}
	entries, err := fs.ReadDir(files, "web")
	if err != nil {
		return nil, fmt.Errorf("wxsim: phone page: %w", err)
	}
	for _, e := range entries {
		ext := path.Ext(e.Name())
		ct, ok := phoneContentTypes[ext]
		if e.IsDir() || !ok {
			continue
		}
		data, err := fs.ReadFile(files, "web/"+e.Name())
		if err != nil {
			return nil, fmt.Errorf("wxsim: phone page: %w", err)
		}
		sum := sha256.Sum256(data)
		h := hex.EncodeToString(sum[:6])
		hashed := strings.TrimSuffix(e.Name(), ext) + "." + h + ext
		a := &phoneAsset{name: e.Name(), url: "/phone/static/" + hashed, contentType: ct, etag: `"` + h + `"`, data: data}
		p.assets[hashed] = a
		byName[e.Name()] = a
	}
	tmpl, err := template.New("index.html").Funcs(template.FuncMap{
		"asset": func(name string) (string, error) {
			a, ok := byName[name]
			if !ok {
				return "", fmt.Errorf("no asset %q in web/", name)
			}
			return a.url, nil
		},
	}).ParseFS(files, "web/index.html")
	if err != nil {
		return nil, fmt.Errorf("wxsim: phone page: %w", err)
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, nil); err != nil {
		return nil, fmt.Errorf("wxsim: phone page: %w", err)
	}
	p.index = b.Bytes()
	sum := sha256.Sum256(p.index)
	p.indexETag = `"` + hex.EncodeToString(sum[:8]) + `"`
	return p, nil
}

// registerPhone adds the phone page's routes to mux.
func (s *Server) registerPhone(mux *http.ServeMux) {
	page, err := loadPhonePage()
	if err != nil {
		// The embedded files are part of the build; a broken template is
		// a bug that the package's tests catch. Say so rather than crash.
		s.log.Error("wxsim: phone page unavailable", "err", err)
		mux.HandleFunc("/phone/", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		})
		return
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/phone/", http.StatusFound)
	})
	mux.HandleFunc("GET /phone/{$}", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		phoneHeaders(h)
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", page.indexETag)
		http.ServeContent(w, r, "index.html", time.Time{}, bytes.NewReader(page.index))
	})
	mux.HandleFunc("GET /phone/static/{file}", func(w http.ResponseWriter, r *http.Request) {
		a, ok := page.assets[r.PathValue("file")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		phoneHeaders(h)
		h.Set("Content-Type", a.contentType)
		h.Set("Cache-Control", phoneAssetCache)
		h.Set("ETag", a.etag)
		http.ServeContent(w, r, a.name, time.Time{}, bytes.NewReader(a.data))
	})
	// The rest of /phone/ is not found (and /phone redirects to /phone/).
	mux.HandleFunc("/phone/", http.NotFound)
}

// phoneHeaders sets the security headers of every phone page answer.
func phoneHeaders(h http.Header) {
	h.Set("Content-Security-Policy", phoneCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
}
