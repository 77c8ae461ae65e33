package relay

import (
	"os/exec"
	"strings"
	"testing"
)

// The domain stays free of transports and databases: relay, and the
// read-only tools under it (relay/export, relay/verify), import none of the edges,
// directly or through anything else — only relay, the standard library
// and maintained libraries, no database or transport drivers.
func TestRelayImportsNoEdge(t *testing.T) {
	for _, pkg := range []string{".", "./export", "./verify"} {
		out, err := exec.Command("go", "list", "-deps", pkg).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pkg, err)
		}
		const module = "github.com/wechat-relay/wechat-relay/"
		forbidden := []string{"gateway", "console", "storage"}
		drivers := []string{"github.com/ClickHouse/", "github.com/redis/", "github.com/gorilla/websocket", "github.com/silenceper/", "modernc.org/sqlite"}
		for _, dep := range strings.Fields(string(out)) {
			for _, f := range forbidden {
				if dep == module+f || strings.HasPrefix(dep, module+f+"/") {
					t.Errorf("%s depends on %s", pkg, dep)
				}
			}
			for _, d := range drivers {
				if strings.HasPrefix(dep, d) {
					t.Errorf("%s depends on the driver %s", pkg, dep)
				}
			}
		}
	}
}
