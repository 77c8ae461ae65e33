package gateway

import (
	"strings"
	"testing"

	"github.com/wechat-relay/wechat-relay/storage/testenv/importcheck"
)

// TestImports guards two rules: the root package of silenceper/wechat is
// never imported (its init() turns on debug logging of decrypted bodies),
// and gateway imports no other part of wechat-relay than relay — but for
// the test helpers importcheck, promtest and ctcompare, which import nothing of the
// module themselves.
func TestImports(t *testing.T) {
	t.Parallel()
	importcheck.Check(t, "gateway may import only relay", func(file, path string) bool {
		return path == importcheck.Module+"/relay" ||
			file == "imports_test.go" && path == importcheck.Module+"/storage/testenv/importcheck" ||
			strings.HasSuffix(file, "_test.go") && path == importcheck.Module+"/storage/testenv/promtest" ||
			file == "constanttime_test.go" && path == importcheck.Module+"/storage/testenv/ctcompare"
	})
}
