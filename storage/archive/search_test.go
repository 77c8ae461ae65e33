package archive_test

import (
	"context"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/storage/archive"
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
		db := testenv.UniqueName("t")
		t.Cleanup(func() { dropConformanceDB(t, addr, db) })
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		a, err := archive.Open(ctx, archive.Config{Addr: addr, Database: db}, conformanceLogger(t))
		if err != nil {
			t.Fatalf("archive.Open: %v", err)
		}
		t.Cleanup(func() {
			if err := a.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return a
	})
}
