package archive_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/storage/archive"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// TestNoMigrate: with NoMigrate the archive runs no DDL — on an empty
// database it refuses to open and creates nothing — and on a migrated
// one it writes and reads as usual.
func TestNoMigrate(t *testing.T) {
	if testing.Short() {
		t.Skip("needs ClickHouse")
	}
	addr := testenv.ClickHouseAddr(t)
	db := testenv.UniqueName("t")
	t.Cleanup(func() { dropConformanceDB(t, addr, db) })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := admin.Exec(ctx, "CREATE DATABASE `"+db+"`"); err != nil {
		t.Fatal(err)
	}
	tables := func() uint64 {
		var n uint64
		if err := admin.QueryRow(ctx, `SELECT count() FROM system.tables WHERE database = ?`, db).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	cfg := archive.Config{Addr: addr, Database: db, NoMigrate: true}
	if a, err := archive.Open(ctx, cfg, testenv.Logger(t)); err == nil {
		a.Close()
		t.Fatal("Open with NoMigrate on an empty database succeeded")
	} else if !strings.Contains(err.Error(), "schema") {
		t.Errorf("error does not say the schema is missing: %v", err)
	}
	if n := tables(); n != 0 {
		t.Fatalf("Open with NoMigrate created %d tables", n)
	}
	// The lazy open does the same once the server answers.
	lazy, err := archive.OpenLazy(cfg, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lazy.MaxSeq(ctx, "acc:c1"); err == nil {
		t.Error("a lazy NoMigrate archive answered on an empty database")
	}
	lazy.Close()
	if n := tables(); n != 0 {
		t.Fatalf("a lazy NoMigrate archive created %d tables", n)
	}

	// An operator migrates (here: a normal Open); then the relay opens it
	// without migrating, and writes.
	m, err := archive.Open(ctx, archive.Config{Addr: addr, Database: db}, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	before := tables()
	a, err := archive.Open(ctx, cfg, testenv.Logger(t))
	if err != nil {
		t.Fatalf("Open with NoMigrate on a migrated database: %v", err)
	}
	defer a.Close()
	now := time.Now()
	msg := relay.Message{ID: "in:acc:c1:1", Account: "acc", Client: "c1", Conv: "acc:c1", Seq: 1, Direction: relay.Inbound,
		Kind: relay.KindText, Text: "hi", CreatedAt: now, AcceptedAt: now}
	if err := a.Insert(ctx, []relay.Message{msg}); err != nil {
		t.Fatalf("Insert: %v", err)
	}
	if n, err := a.MaxSeq(ctx, "acc:c1"); err != nil || n != 1 {
		t.Fatalf("MaxSeq = %d, %v", n, err)
	}
	if after := tables(); after != before {
		t.Errorf("tables %d -> %d", before, after)
	}
}
