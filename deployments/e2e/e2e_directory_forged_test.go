package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/wechat-relay/wechat-relay/configs"
	"github.com/wechat-relay/wechat-relay/console"
	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// An insider who can write ClickHouse, but not the relay's host or its
// seal key, inserts one directory row: employee mallory, role admin, the
// hash of a token they chose. The relay refuses the row (counted,
// alerted), and the token gets 401; a change made through the admin API
// still works.
func TestE2EForgedDirectoryRowGrantsNothing(t *testing.T) {
	ch := testenv.ClickHouseAddr(t)
	rd := testenv.RedisAddr(t)
	db := testenv.UniqueName("e2e")
	cfg := e2eConfig(t, ch, rd, db, testenv.UniqueName("wr")+":", t.TempDir())
	cfg.Console.Employees = append(cfg.Console.Employees, configs.EmployeeConfig{ID: "adm", Role: console.RoleAdmin, Token: admTok})
	cfg.Console.DirectoryRefresh = 100 * time.Millisecond
	cfg.Pipeline.SealKeyFile, _ = makeSealKey(t, t.TempDir(), "seal.key")
	r := startRelay(t, cfg)

	// A legitimate employee, made through the API, signs in.
	if code, out := r.api(t, "POST", "/api/admin/employees", admTok, map[string]any{"id": "bob", "name": "Bob", "role": "agent"}); code != http.StatusCreated {
		t.Fatalf("create bob: %d %v", code, out)
	}
	code, out := r.api(t, "POST", "/api/admin/employees/bob/token", admTok, map[string]any{"version": 1})
	bobTok, _ := out["token"].(string)
	if code != http.StatusOK || bobTok == "" {
		t.Fatalf("bob's token: %d %v", code, out)
	}
	if code, _ := r.api(t, "GET", "/api/me", bobTok, nil); code != http.StatusOK {
		t.Fatalf("bob's token: /api/me answered %d", code)
	}

	// The insider's row, straight into ClickHouse.
	const malloryTok = "wr_chosen_by_the_insider"
	sum := sha256.Sum256([]byte(malloryTok))
	data, _ := json.Marshal(relay.Employee{ID: "mallory", Name: "Mallory", Role: relay.RoleAdmin, TokenHash: hex.EncodeToString(sum[:])})
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{ch}, Auth: clickhouse.Auth{Database: db}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := context.Background()
	batch, err := conn.PrepareBatch(ctx, `INSERT INTO directory (kind, id, version, at_ms, by, deleted, data)`)
	if err != nil {
		t.Fatal(err)
	}
	if err := batch.Append("employee", "mallory", uint64(1), uint64(time.Now().UnixMilli()), "adm", uint8(0), string(data)); err != nil {
		t.Fatal(err)
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}

	// Once the relay has read the row (and refused it), the token is
	// still nobody's.
	testenv.Until(t, "the relay to refuse the forged row", func() bool {
		return strings.Contains(r.metrics(t), `wechat_relay_directory_refused_records_total{reason="unsigned"} 1`)
	})
	if code, out := r.api(t, "GET", "/api/me", malloryTok, nil); code != http.StatusUnauthorized {
		t.Fatalf("the forged admin's token: /api/me answered %d %v, want 401", code, out)
	}
	if code, _ := r.api(t, "GET", "/api/me", bobTok, nil); code != http.StatusOK {
		t.Fatalf("bob's token after the forged row: /api/me answered %d", code)
	}
	// The admins are alerted.
	code, out = r.api(t, "GET", "/api/alerts", admTok, nil)
	alerts, _ := out["alerts"].([]any)
	found := false
	for _, a := range alerts {
		m, _ := a.(map[string]any)
		found = found || (m["rule"] == "directory_refused" && strings.HasPrefix(m["matched"].(string), "employee:mallory "))
	}
	if code != http.StatusOK || !found {
		t.Fatalf("alerts: %d %v, want a directory_refused alert for mallory", code, out)
	}
}

// metrics is the relay's /metrics page.
func (r *testRelay) metrics(t *testing.T) string {
	t.Helper()
	resp, err := http.Get(r.sys.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
