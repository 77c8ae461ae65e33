package console

import (
	"embed"
	"io/fs"
	"net/http"
	"sync"

	"github.com/wechat-relay/wechat-relay/console/webassets"
)

// The web console (console/web) is the employees' and supervisors' page:
// our own HTML, CSS and ES modules, no framework and no build step. Its
// files are embedded and served by console/webassets, which adds the
// modules the console shares with the simulator's phone page
// (lib/dom.js, lib/api.js):
//
//	GET /                               the page (no-cache, ETag)
//	GET /static/<version>/<name>.<ext>  its assets, cached for a year
//
// <version> is a hash of every asset (see webassets). Every answer carries
// a Content-Security-Policy that allows scripts and styles from the relay
// only (no inline script or style) and connections (fetch, WebSocket) to
// the relay only.

//go:embed web
var webFiles embed.FS

// webCSP is the Content-Security-Policy of the console page. Pictures,
// voice and video come from the relay's own /api/media/ (never from
// WeChat's servers, which would learn who looks at what), or are
// previews the page made itself (blob:).
const webCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; " +
	"media-src 'self' blob:; connect-src 'self'; font-src 'self'; manifest-src 'self'; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// webStatic is where the console's asset directories are served.
const webStatic = "/static/"

// loadWebPage builds the page once per process (the embedded files never
// change).
var loadWebPage = sync.OnceValues(func() (*webassets.Site, error) { return buildWebPage(webFiles) })

// buildWebPage builds the console from web/ (index.html, whose {{asset
// "app.js"}} calls give the versioned URLs, and the assets beside it).
func buildWebPage(files fs.FS) (*webassets.Site, error) {
	return webassets.Build(files, "web", webStatic, webCSP)
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
			webassets.SecurityHeaders(w.Header(), webCSP)
			http.Error(w, "console: web page: "+err.Error(), http.StatusInternalServerError)
		})
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", page.ServeIndex)
	mux.HandleFunc("GET "+webStatic, page.ServeAsset)
	mux.HandleFunc("/", page.NotFound)
	return mux
}
