package oidc

import (
	"strings"
	"testing"

	"github.com/wechat-relay/wechat-relay/storage/testenv/importcheck"
)

// TestImports: the provider uses only the console's seam and the
// domain; its tests also run the storage it is wired to in the relay
// (the embedded archive, the memory session store) and the test
// provider.
func TestImports(t *testing.T) {
	t.Parallel()
	importcheck.Check(t, "console/oidc may import only console and relay", func(file, path string) bool {
		switch path {
		case importcheck.Module + "/console", importcheck.Module + "/relay":
			return true
		}
		return strings.HasSuffix(file, "_test.go") &&
			(strings.HasPrefix(path, importcheck.Module+"/storage/") || path == importcheck.Module+"/console/oidc/oidctest")
	})
}
