// Package webassets serves a web page whose files are embedded in the
// binary — the console's (console/web) and the WeChat simulator's phone
// page (gateway/wxsim/web) — and the small ES modules both pages share
// (lib/dom.js: the h() element builder and its friends; lib/api.js: JSON
// over fetch). No framework and no build step: the Go toolchain alone
// builds the binary.
//
// A Site is built once from a directory of files: every asset (.css, .js,
// .svg, .png, in the directory or below it, and this package's lib/) is
// hashed, the hashes together make the build's version, and the
// directory's index.html, a html/template, is rendered with {{asset
// "app.js"}} giving the versioned URL of a file:
//
//	<prefix><version>/<name>   an asset: cached for a year, immutable, ETag
//	(wherever it is mounted)   the page: no-cache, ETag
//
// A new build serves its files under a new directory, so a browser never
// mixes a cached module of the old build with the new page, and the ES
// modules import each other by plain relative names ("./api.js",
// "./lib/dom.js"). An asset of another version is not found: answering it
// with this build's bytes would cache them for a year under the wrong
// name. Every answer carries the site's Content-Security-Policy and the
// same security headers.
//
// Where it lives: the console and gateway/wxsim both use it, and wxsim
// stands for WeChat, so it imports nothing of the module but this leaf
// (gateway/wxsim/imports_test.go). It sits under console/ because it is
// about pages for people, which the console owns; it imports nothing of
// the module itself (imports_test.go beside it).
package webassets

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
	"regexp"
	"sort"
	"strings"
	"time"
)

//go:embed lib
var libFiles embed.FS

// Lib returns the shared modules, as they are served under "lib/".
func Lib() fs.FS {
	sub, err := fs.Sub(libFiles, "lib")
	if err != nil {
		panic(err) // lib is embedded: cannot happen
	}
	return sub
}

// assetCache is the Cache-Control of versioned assets.
const assetCache = "public, max-age=31536000, immutable"

// contentTypes maps asset extensions to their content types (set
// explicitly: the system MIME tables vary). Files with other extensions
// are not served.
var contentTypes = map[string]string{
	".css": "text/css; charset=utf-8",
	".js":  "text/javascript; charset=utf-8",
	".svg": "image/svg+xml",
	".png": "image/png",
}

// asset is one embedded file of a site.
type asset struct {
	name        string // path below the site's directory, e.g. "app.js", "lib/dom.js"
	contentType string
	etag        string
	data        []byte
}

// Site is a built page: its rendered index and its assets.
type Site struct {
	prefix    string // where the versioned directories are served, e.g. "/static/"
	csp       string
	version   string // hash of all assets: the directory they are served in
	index     []byte
	indexETag string
	assets    map[string]*asset // by name
	reached   map[string]bool   // assets the page loads, directly or through others
}

// Build reads every asset below dir in files and this package's lib/
// (served as "lib/…"), and renders dir/index.html. The assets are served
// under prefix (which begins and ends with "/"); csp is the
// Content-Security-Policy of every answer.
//
// index.html names assets with {{asset "name"}}, and may preload every ES
// module but its entry with {{modulepreloads "app.js"}}. Modules import
// each other, and stylesheets name files, by relative names ("./api.js"):
// a name that is not relative or is no asset fails the build.
func Build(files fs.FS, dir, prefix, csp string) (*Site, error) {
	s := &Site{prefix: prefix, csp: csp, assets: map[string]*asset{}}
	own, err := fs.Sub(files, dir)
	if err != nil {
		return nil, fmt.Errorf("webassets: %w", err)
	}
	if err := s.add(own, ""); err != nil {
		return nil, err
	}
	if err := s.add(Lib(), "lib/"); err != nil {
		return nil, err
	}
	names := make([]string, 0, len(s.assets))
	for name := range s.assets {
		names = append(names, name)
	}
	sort.Strings(names)
	all := sha256.New()
	for _, name := range names {
		fmt.Fprintf(all, "%s\x00%s\x00", name, s.assets[name].etag)
	}
	s.version = hex.EncodeToString(all.Sum(nil)[:6])
	s.reached = map[string]bool{}
	tmpl, err := template.New("index.html").Funcs(template.FuncMap{
		"asset": func(name string) (string, error) {
			if _, ok := s.assets[name]; !ok {
				return "", fmt.Errorf("no asset %q in %s/", name, dir)
			}
			s.reached[name] = true
			return s.Prefix() + name, nil
		},
		"modulepreloads": s.modulepreloads,
	}).ParseFS(own, "index.html")
	if err != nil {
		return nil, fmt.Errorf("webassets: %s: %w", dir, err)
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, nil); err != nil {
		return nil, fmt.Errorf("webassets: %s: %w", dir, err)
	}
	if err := s.follow(); err != nil {
		return nil, fmt.Errorf("webassets: %s: %w", dir, err)
	}
	s.index = b.Bytes()
	s.indexETag = etag(s.index)
	return s, nil
}

// add reads the assets of files, named under at.
func (s *Site) add(files fs.FS, at string) error {
	return fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("webassets: %w", err)
		}
		ct, ok := contentTypes[path.Ext(p)]
		if d.IsDir() || !ok {
			return nil
		}
		name := at + p
		if _, dup := s.assets[name]; dup {
			return fmt.Errorf("webassets: %s is both the page's and shared", name)
		}
		data, err := fs.ReadFile(files, p)
		if err != nil {
			return fmt.Errorf("webassets: %w", err)
		}
		s.assets[name] = &asset{name: name, contentType: ct, etag: etag(data), data: data}
		return nil
	})
}

var (
	// jsImport finds the module specifiers of static and dynamic imports
	// and of re-exports.
	jsImport = regexp.MustCompile(`(?m)(?:^\s*(?:import|export)\s[^'"]*?from\s*|^\s*import\s*|import\()\s*['"]([^'"]+)['"]`)
	// cssURL finds the URLs of a stylesheet.
	cssURL = regexp.MustCompile(`url\(\s*['"]?([^'")]+)['"]?\s*\)`)
)

// follow marks the assets the reached ones import or name, and checks
// that each of those names is relative and an asset.
func (s *Site) follow() error {
	var queue []string
	for name := range s.reached {
		queue = append(queue, name)
	}
	for len(queue) > 0 {
		name := queue[0]
		queue = queue[1:]
		var refs [][]string
		switch path.Ext(name) {
		case ".js":
			refs = jsImport.FindAllStringSubmatch(string(s.assets[name].data), -1)
		case ".css":
			refs = cssURL.FindAllStringSubmatch(string(s.assets[name].data), -1)
		}
		for _, m := range refs {
			spec := m[1]
			if strings.HasPrefix(spec, "data:") {
				continue
			}
			if !strings.HasPrefix(spec, "./") && !strings.HasPrefix(spec, "../") {
				return fmt.Errorf("%s: %q is not relative to the asset directory", name, spec)
			}
			target := path.Join(path.Dir(name), spec)
			if _, ok := s.assets[target]; !ok {
				return fmt.Errorf("%s: %q is no asset", name, spec)
			}
			if !s.reached[target] {
				s.reached[target] = true
				queue = append(queue, target)
			}
		}
	}
	return nil
}

// modulepreloads gives a <link rel="modulepreload"> for every ES module
// but entry, so that the browser fetches them in parallel rather than one
// level of imports at a time.
func (s *Site) modulepreloads(entry string) (template.HTML, error) {
	if _, ok := s.assets[entry]; !ok {
		return "", fmt.Errorf("no asset %q", entry)
	}
	var links []string
	for _, name := range s.Assets() {
		if path.Ext(name) == ".js" && name != entry {
			links = append(links, `<link rel="modulepreload" href="`+template.HTMLEscapeString(s.Prefix()+name)+`">`)
		}
	}
	return template.HTML(strings.Join(links, "\n")), nil
}

// Unused names the assets the page never loads, neither from index.html
// nor through the modules and stylesheets it loads: files shipped for
// nothing (the pages' tests want none).
func (s *Site) Unused() []string {
	var unused []string
	for _, name := range s.Assets() {
		if !s.reached[name] {
			unused = append(unused, name)
		}
	}
	return unused
}

func etag(data []byte) string {
	sum := sha256.Sum256(data)
	return `"` + hex.EncodeToString(sum[:8]) + `"`
}

// Version is the hash of all the site's assets.
func (s *Site) Version() string { return s.version }

// Prefix is the directory the assets of this build are served from, e.g.
// "/static/<version>/".
func (s *Site) Prefix() string { return s.prefix + s.version + "/" }

// Index is the rendered page.
func (s *Site) Index() []byte { return s.index }

// Assets names every asset the site serves ("app.js", "lib/dom.js", …),
// sorted.
func (s *Site) Assets() []string {
	names := make([]string, 0, len(s.assets))
	for name := range s.assets {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// ServeIndex answers the page, revalidated on every load.
func (s *Site) ServeIndex(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	s.Headers(h)
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", s.indexETag)
	http.ServeContent(w, r, "index.html", time.Time{}, bytes.NewReader(s.index))
}

// ServeAsset answers GET <prefix><version>/<name>, cached for a year;
// any other path, or another build's version, is not found. Mount it on
// the pattern "GET <prefix>".
func (s *Site) ServeAsset(w http.ResponseWriter, r *http.Request) {
	rest, _ := strings.CutPrefix(r.URL.Path, s.prefix)
	version, name, _ := strings.Cut(rest, "/")
	a, ok := s.assets[name]
	if !ok || version != s.version {
		s.NotFound(w, r)
		return
	}
	h := w.Header()
	s.Headers(h)
	h.Set("Content-Type", a.contentType)
	h.Set("Cache-Control", assetCache)
	h.Set("ETag", a.etag)
	http.ServeContent(w, r, path.Base(a.name), time.Time{}, bytes.NewReader(a.data))
}

// NotFound answers 404 with the site's headers.
func (s *Site) NotFound(w http.ResponseWriter, r *http.Request) {
	s.Headers(w.Header())
	http.NotFound(w, r)
}

// Headers sets the security headers of every answer of the site.
func (s *Site) Headers(h http.Header) { SecurityHeaders(h, s.csp) }

// SecurityHeaders sets the headers every answer of a page carries, with
// csp as its Content-Security-Policy (for answers made before a Site
// exists, such as the error of a broken build).
func SecurityHeaders(h http.Header, csp string) {
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
}
