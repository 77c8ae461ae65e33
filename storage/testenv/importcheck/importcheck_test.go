package importcheck

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLeaves checks that the test helpers a package kept apart from the
// module may import in its tests (this one, chromium and ctcompare) import nothing
// of wechat-relay, directly or through anything else.
func TestLeaves(t *testing.T) {
	for _, pkg := range []string{".", "../chromium", "../ctcompare"} {
		out, err := exec.Command("go", "list", "-deps", "-test=false", pkg).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pkg, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			if dep == Module+"/storage/testenv/importcheck" || dep == Module+"/storage/testenv/chromium" || dep == Module+"/storage/testenv/ctcompare" {
				continue
			}
			if dep == Module || strings.HasPrefix(dep, Module+"/") {
				t.Errorf("%s depends on %s", pkg, dep)
			}
		}
	}
}
