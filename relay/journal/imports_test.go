package journal_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The journal is a worker of the domain: of the module it imports relay
// alone, and no database or Redis driver; its SMTP transport is go-mail.
func TestImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const module = "github.com/wechat-relay/wechat-relay/"
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, module) && dep != module+"relay" && dep != module+"relay/journal" {
			t.Errorf("relay/journal depends on %s", dep)
		}
		for _, d := range []string{"github.com/ClickHouse/", "github.com/redis/", "github.com/gorilla/websocket", "github.com/silenceper/", "modernc.org/sqlite"} {
			if strings.HasPrefix(dep, d) {
				t.Errorf("relay/journal depends on the driver %s", dep)
			}
		}
	}
}
