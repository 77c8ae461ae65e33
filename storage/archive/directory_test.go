package archive_test

import (
	"testing"

	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/storage/archivetest"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// TestDirectoryConformance runs the directory suite, the one the
// embedded archive passes too, against ClickHouse: each subtest on a
// database of its own, dropped when it ends.
func TestDirectoryConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("needs ClickHouse")
	}
	addr := testenv.ClickHouseAddr(t)
	archivetest.RunDirectory(t, func(t *testing.T) relay.DirectoryStore {
		a, _ := openConformance(t, addr)
		return a
	})
}

// TestDirectoryTrustConformance runs the suite of the directory's checks
// of what it loads against ClickHouse: rows inserted behind the relay's
// back do not count.
func TestDirectoryTrustConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("needs ClickHouse")
	}
	addr := testenv.ClickHouseAddr(t)
	archivetest.RunDirectoryTrust(t, func(t *testing.T) archivetest.TrustStore {
		a, _ := openConformance(t, addr)
		return a
	})
}
