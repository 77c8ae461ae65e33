// Package importcheck checks the imports of a package's files against
// the package's rules, for the tests that keep a package apart from the
// rest of wechat-relay (gateway, gateway/wxsim). It imports nothing of
// wechat-relay, so that even a package that must stay alone (wxsim) may
// use it in its tests.
package importcheck

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Module is wechat-relay's module path.
const Module = "github.com/wechat-relay/wechat-relay"

// Check parses the imports of every .go file in the current directory,
// tests included, and fails t for each import of silenceper/wechat's
// root package (its init() turns on debug logging of decrypted bodies)
// or of logrus, and for each import of a package of this module that
// allowed refuses; rule says what the package may import.
func Check(t *testing.T, rule string, allowed func(file, path string) bool) {
	t.Helper()
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
			case (path == Module || strings.HasPrefix(path, Module+"/")) && !allowed(name, path):
				t.Errorf("%s imports %s; %s", name, path, rule)
			}
		}
	}
}
