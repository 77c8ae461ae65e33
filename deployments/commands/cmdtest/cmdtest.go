// Package cmdtest is what the tests of the commands
// (deployments/commands) and the end-to-end tests (deployments/e2e)
// share to run the read-only commands on an archive: a configuration
// file naming the archive, and dropping a test database afterwards.
package cmdtest

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// ArchiveConfig writes the configuration verify reads: the archive
// the relay wrote (ClickHouse when chAddr is set, else the embedded file
// in dataDir).
func ArchiveConfig(t testing.TB, dataDir, chAddr, db string) string {
	t.Helper()
	y := "data_dir: " + dataDir + "\n"
	if chAddr != "" {
		y += "storage:\n  clickhouse:\n    addr: " + chAddr + "\n    database: " + db + "\n"
	}
	path := filepath.Join(t.TempDir(), "verify.yaml")
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// DropDatabase drops a test database db on the ClickHouse at addr.
func DropDatabase(t testing.TB, addr, db string) {
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}})
	if err != nil {
		t.Errorf("dropping %s: %v", db, err)
		return
	}
	defer conn.Close()
	if err := conn.Exec(context.Background(), "DROP DATABASE IF EXISTS `"+db+"`"); err != nil {
		t.Errorf("dropping %s: %v", db, err)
	}
}
