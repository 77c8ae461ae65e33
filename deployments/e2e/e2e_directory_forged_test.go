package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/configs"
	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// An insider who can write ClickHouse, but not the relay's host or its
// seal key, inserts one directory row: employee mallory, role admin, the
// hash of a token they chose. The relay refuses the row (counted,
// alerted), and the token gets 401; a change made through the admin API
// still works.
func TestE2EForgedDirectoryRowGrantsNothing(t *testing.T) {
	r := startInsider(t, func(cfg *configs.Config) { cfg.Console.DirectoryRefresh = 100 * time.Millisecond })

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
	r.insert(t, `INSERT INTO directory (kind, id, version, at_ms, by, deleted, data)`,
		"employee", "mallory", uint64(1), uint64(time.Now().UnixMilli()), "adm", uint8(0), string(data))

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

	// verify, with the relay's public key, reports the row (and only it).
	vcode, rep := r.verify(t)
	if vcode != 1 || rep.Directory == nil || rep.Directory.OK || len(rep.Directory.Problems) != 1 ||
		rep.Directory.Problems[0].ID != "employee:mallory v1" || rep.Directory.Problems[0].Kind != relay.ProblemUnsigned {
		t.Fatalf("verify: exit %d, directory %+v; want mallory's row reported, unsigned", vcode, rep.Directory)
	}
	if rep.Directory.Audited != 2 {
		t.Errorf("verify matched %d directory versions with their audit record, want 2 (bob, bob's token)", rep.Directory.Audited)
	}
	if vcode, text := runVerifyText(t, r.archive, "-public-key", r.public); vcode != 1 ||
		!strings.Contains(text, "unsigned       directory employee:mallory v1") || !strings.Contains(text, "FAILED: the directory does not verify") {
		t.Fatalf("verify, text: exit %d\n%s", vcode, text)
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
