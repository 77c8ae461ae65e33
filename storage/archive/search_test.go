package archive_test

import (
	"testing"

	"github.com/wechat-relay/wechat-relay/storage/archivetest"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// TestSearchConformance runs the search and export suite, the one the
// embedded archive passes too, against ClickHouse.
func TestSearchConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("needs ClickHouse")
	}
	addr := testenv.ClickHouseAddr(t)
	archivetest.RunSearch(t, func(t *testing.T) archivetest.SearchStore {
		a, _ := openConformance(t, addr)
		return a
	})
}
