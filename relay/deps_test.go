package relay

import (
	"os/exec"
	"strings"
	"testing"
)

// The domain stays free of transports and databases: relay imports none
// of the edges, directly or through anything else.
func TestRelayImportsNoEdge(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const module = "github.com/wechat-relay/wechat-relay/"
	forbidden := []string{"gateway", "console", "storage"}
	drivers := []string{"github.com/ClickHouse/", "github.com/redis/", "github.com/gorilla/websocket", "github.com/silenceper/", "modernc.org/sqlite"}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if dep == module+f || strings.HasPrefix(dep, module+f+"/") {
				t.Errorf("relay depends on %s", dep)
			}
		}
		for _, d := range drivers {
			if strings.HasPrefix(dep, d) {
				t.Errorf("relay depends on the driver %s", dep)
			}
		}
	}
}
