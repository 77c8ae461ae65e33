package gateway

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImports guards two rules: the root package of silenceper/wechat is
// never imported (its init() turns on debug logging of decrypted bodies),
// and gateway imports no other part of wechat-relay than relay.
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
			case strings.HasPrefix(path, "github.com/wechat-relay/wechat-relay/") &&
				path != "github.com/wechat-relay/wechat-relay/relay":
				t.Errorf("%s imports %s; gateway may import only relay", name, path)
			}
		}
	}
}
