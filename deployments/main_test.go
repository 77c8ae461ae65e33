package deployments

import (
	"os"
	"testing"
)

// Servers and directories started or made once for the package's tests,
// stopped and removed when they are done.
var (
	stopServers []func()
	cleanupDirs []string
)

func TestMain(m *testing.M) {
	code := m.Run()
	for _, stop := range stopServers {
		stop()
	}
	for _, d := range cleanupDirs {
		os.RemoveAll(d)
	}
	os.Exit(code)
}
