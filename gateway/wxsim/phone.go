package wxsim

import (
	"embed"
	"io/fs"
	"net/http"
	"sync"

	"github.com/wechat-relay/wechat-relay/console/webassets"
)

// The phone page (gateway/wxsim/web) is a WeChat-like web page where a
// person plays a simulated client: it talks only to the admin API under
// /sim/api/ and to /sim/media/ and showqrcode for pictures. Its files are
// embedded and served by console/webassets — the one package of the
// module wxsim imports — which adds the modules the page shares with the
// console (lib/dom.js, lib/api.js):
//
//	GET /                                    302 to /phone/
//	GET /phone/                              the page (no-cache, ETag)
//	GET /phone/static/<version>/<name>.<ext> its assets, cached for a year
//
// <version> is a hash of every asset, so a new build never meets a stale
// cached asset, and the page itself is revalidated on every load. Every
// answer carries a Content-Security-Policy that allows scripts and styles
// from the simulator only (no inline script or style).

//go:embed web
var webFiles embed.FS

// phoneCSP is the Content-Security-Policy of the phone page. Images may
// come from anywhere (news cards carry the relay's picture URLs); scripts,
// styles and fetches only from the simulator.
const phoneCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob: http: https:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// phoneStatic is where the phone page's asset directories are served.
const phoneStatic = "/phone/static/"

// loadPhonePage builds the page once per process (the embedded files never
// change).
var loadPhonePage = sync.OnceValues(func() (*webassets.Site, error) { return buildPhonePage(webFiles) })

// buildPhonePage builds the page from web/ (index.html, whose {{asset
// "app.js"}} calls give the versioned URLs, and the assets beside it).
func buildPhonePage(files fs.FS) (*webassets.Site, error) {
	return webassets.Build(files, "web", phoneStatic, phoneCSP)
}

// registerPhone adds the phone page's routes to mux.
func (s *Server) registerPhone(mux *http.ServeMux) {
	page, err := loadPhonePage()
	if err != nil {
		// The embedded files are part of the build; a broken template is
		// a bug that the package's tests catch. Say so rather than crash.
		s.log.Error("wxsim: phone page unavailable", "err", err)
		mux.HandleFunc("/phone/", func(w http.ResponseWriter, r *http.Request) {
			webassets.SecurityHeaders(w.Header(), phoneCSP)
			http.Error(w, err.Error(), http.StatusInternalServerError)
		})
		return
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/phone/", http.StatusFound)
	})
	mux.HandleFunc("GET /phone/{$}", page.ServeIndex)
	mux.HandleFunc("GET "+phoneStatic, page.ServeAsset)
	// The rest of /phone/ is not found (and /phone redirects to /phone/).
	mux.HandleFunc("/phone/", page.NotFound)
}
