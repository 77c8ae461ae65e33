package archive_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/wechat-relay/wechat-relay/storage/archivetest"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// TestComplianceConformance runs the compliance suite against ClickHouse.
func TestComplianceConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("needs ClickHouse")
	}
	addr := testenv.ClickHouseAddr(t)
	var mu sync.Mutex
	dbs := map[archivetest.ComplianceStore]string{}
	archivetest.RunCompliance(t, func(t *testing.T) archivetest.ComplianceStore {
		a, db := openConformance(t, addr)
		mu.Lock()
		dbs[a] = db
		mu.Unlock()
		return a
	}, func(s archivetest.ComplianceStore) archivetest.Tamper {
		mu.Lock()
		db := dbs[s]
		mu.Unlock()
		return func(t *testing.T, writer string, n uint64) {
			// A second, different record in the same place, as someone
			// with INSERT on the table could write it.
			conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, Auth: clickhouse.Auth{Database: db}, DialTimeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			q := fmt.Sprintf(`INSERT INTO audit (id, writer, number, prev, at, at_ms, employee, role, action, conv, target, detail, remote, user_agent, hash, day)
				SELECT id, writer, number, prev, at, at_ms, employee, role, action, conv, 'forged', detail, remote, user_agent, hash, day
				FROM audit WHERE writer = '%s' AND number = %d`, writer, n)
			if err := conn.Exec(context.Background(), q); err != nil {
				t.Fatalf("forging an audit record: %v", err)
			}
		}
	})
}

// TestRecordTrustConformance runs the suite of signed holds and reviews
// against ClickHouse.
func TestRecordTrustConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("needs ClickHouse")
	}
	addr := testenv.ClickHouseAddr(t)
	archivetest.RunRecordTrust(t, func(t *testing.T) archivetest.RecordTrustStore {
		a, _ := openConformance(t, addr)
		return a
	})
}
