package archive

import (
	"strings"
	"testing"

	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// ReadOnly opens an archive without DDL, and only one whose schema is
// complete: verify must neither create a database nor migrate one.
func TestOpenReadOnly(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)

	missing := testConfig(t)
	missing.ReadOnly = true
	if a, err := Open(ctx, missing, testenv.Logger(t)); err == nil {
		a.Close()
		t.Fatal("ReadOnly opened a database that does not exist")
	}

	cfg, conn := openRaw(t)
	ms, err := loadMigrations(migrationFiles, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	if err := migrate(ctx, conn, ms[:len(ms)-1], testenv.Logger(t)); err != nil {
		t.Fatal(err)
	}
	cfg.ReadOnly = true
	if a, err := Open(ctx, cfg, testenv.Logger(t)); err == nil || !strings.Contains(err.Error(), "schema version") {
		if a != nil {
			a.Close()
		}
		t.Fatalf("ReadOnly on an old schema: %v", err)
	}
	// The last migration, left out above, is still not applied.
	var n uint64
	if err := conn.QueryRow(ctx, `SELECT count() FROM schema_migrations WHERE version = ?`, ms[len(ms)-1].version).Scan(&n); err != nil || n != 0 {
		t.Fatalf("ReadOnly migrated the database (migration %d recorded %d times, %v)", ms[len(ms)-1].version, n, err)
	}

	if err := migrate(ctx, conn, ms, testenv.Logger(t)); err != nil {
		t.Fatal(err)
	}
	a, err := Open(ctx, cfg, testenv.Logger(t))
	if err != nil {
		t.Fatalf("ReadOnly on a current schema: %v", err)
	}
	defer a.Close()
	if _, err := a.Seals(ctx, nil, 10); err != nil {
		t.Fatalf("Seals: %v", err)
	}
}
