package archive_test

import (
	"testing"

	"github.com/wechat-relay/wechat-relay/storage/archivetest"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// TestProfilesConformance runs the client profiles suite, the one the
// embedded archive passes too, against ClickHouse: each subtest on a
// database of its own, dropped when it ends.
func TestProfilesConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("needs ClickHouse")
	}
	addr := testenv.ClickHouseAddr(t)
	archivetest.RunProfiles(t, func(t *testing.T) archivetest.ProfileStore {
		a, _ := openConformance(t, addr)
		return a
	})
}
