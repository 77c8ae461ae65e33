package archive_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/wechat-relay/wechat-relay/storage/archive"
	"github.com/wechat-relay/wechat-relay/storage/archivetest"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// TestConformance runs the archive's conformance suite, the one the
// embedded archive passes too, against ClickHouse: each subtest on a
// database of its own, dropped when it ends.
func TestConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("needs ClickHouse")
	}
	addr := testenv.ClickHouseAddr(t)
	archivetest.Run(t, func(t *testing.T) archivetest.Store {
		a, _ := openConformance(t, addr)
		return a
	})
}

// openConformance opens an archive on a database of its own, dropped
// when the test ends, and says which.
func openConformance(t *testing.T, addr string) (*archive.Archive, string) {
	t.Helper()
	db := testenv.UniqueName("t")
	t.Cleanup(func() { dropConformanceDB(t, addr, db) })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, err := archive.Open(ctx, archive.Config{Addr: addr, Database: db}, testenv.Logger(t))
	if err != nil {
		t.Fatalf("archive.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := a.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return a, db
}

// dropConformanceDB drops a database this test created; the server may be
// shared, so nothing else is touched.
func dropConformanceDB(t *testing.T, addr, db string) {
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Errorf("dropping database %s: %v", db, err)
		return
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS `"+db+"`"); err != nil {
		t.Errorf("dropping database %s: %v", db, err)
	}
}

type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
