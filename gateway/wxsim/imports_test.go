package wxsim

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImports guards the package's isolation: wxsim stands for WeChat, so
// it imports no part of wechat-relay but console/webassets (a leaf that
// serves its phone page), and never silenceper's root package (whose
// init() turns on debug logging) or logrus.
func TestImports(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			switch {
			case path == "github.com/silenceper/wechat/v2":
				t.Errorf("%s imports the root package of silenceper/wechat", name)
			case strings.HasPrefix(path, "github.com/sirupsen/logrus"):
				t.Errorf("%s imports logrus", name)
			case path == "github.com/wechat-relay/wechat-relay/console/webassets":
				// the phone page's server, itself importing nothing of the module
			case strings.HasPrefix(path, "github.com/wechat-relay/wechat-relay"):
				t.Errorf("%s imports %s; wxsim imports no part of wechat-relay but console/webassets", name, path)
			}
		}
	}
}
