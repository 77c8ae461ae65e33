package wxsim

import (
	"strings"
	"testing"

	"github.com/wechat-relay/wechat-relay/storage/testenv/importcheck"
)

// TestImports guards the package's isolation: wxsim stands for WeChat, so
// it imports no part of wechat-relay but console/webassets (a leaf that
// serves its phone page), and never silenceper's root package (whose
// init() turns on debug logging) or logrus.
//
// Its tests may also use two test helpers, importcheck (for this test)
// and chromium (to drive the phone page in a browser): leaves like
// webassets, importing nothing of the module (importcheck's TestLeaves
// checks that), so they bring no part of wechat-relay into wxsim.
func TestImports(t *testing.T) {
	t.Parallel()
	importcheck.Check(t, "wxsim imports no part of wechat-relay but console/webassets", func(file, path string) bool {
		switch path {
		case importcheck.Module + "/console/webassets":
			return true // the phone page's server, itself importing nothing of the module
		case importcheck.Module + "/storage/testenv/importcheck", importcheck.Module + "/storage/testenv/chromium":
			return strings.HasSuffix(file, "_test.go")
		}
		return false
	})
}
