package archive_test

import (
	"context"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/storage/archive"
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
