package archivetest

import (
	"context"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/wechat-relay/wechat-relay/storage/archive"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// ClickHouse opens the ClickHouse archive, migrated, on a database of its
// own on the test server (testenv: the test is skipped without one, and
// fails under CI), for tests outside storage/archive that need what only
// ClickHouse does — keep physical copies of one id, as a replay or a
// forger leaves them. The archive is closed and its database dropped
// when the test ends; nothing else on the server is touched.
func ClickHouse(t testing.TB) *archive.Archive {
	t.Helper()
	addr := testenv.ClickHouseAddr(t)
	database := testenv.UniqueName("t_archivetest")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, err := archive.Open(ctx, archive.Config{Addr: addr, Database: database}, testenv.Logger(t))
	if err != nil {
		t.Fatalf("opening a ClickHouse archive on %s: %v", addr, err)
	}
	t.Cleanup(func() {
		a.Close()
		conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}})
		if err == nil {
			err = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS `"+database+"`")
			conn.Close()
		}
		if err != nil {
			t.Errorf("dropping the test database %s: %v", database, err)
		}
	})
	return a
}
