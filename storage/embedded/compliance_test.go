package embedded

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/wechat-relay/wechat-relay/storage/archivetest"
)

func TestComplianceConformance(t *testing.T) {
	t.Parallel()
	archivetest.RunCompliance(t, func(t *testing.T) archivetest.ComplianceStore {
		return openAt(t, filepath.Join(t.TempDir(), "archive.db"))
	}, func(s archivetest.ComplianceStore) archivetest.Tamper {
		return func(t *testing.T, writer string, n uint64) {
			// The triggers forbid it; someone with the file drops them.
			db := s.(*Archive).db
			for _, q := range []string{
				`DROP TRIGGER audit_no_update`,
				fmt.Sprintf(`UPDATE audit SET target = 'forged' WHERE writer = '%s' AND number = %d`, writer, n),
			} {
				if _, err := db.Exec(q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
		}
	})
}

func TestComplianceTablesAreAppendOnly(t *testing.T) {
	t.Parallel()
	a := openAt(t, filepath.Join(t.TempDir(), "archive.db"))
	for _, q := range []string{
		`INSERT INTO audit (id, writer, number, prev, at_ms, employee, role, action, conv, target, detail, remote, user_agent, hash)
			VALUES ('a', 'w', 1, '', 1, 'e', 'r', 'x', '', '', '', '', '', 'h')`,
		`INSERT INTO lexicon_hits (id, account, conv, message_id, direction, employee, rule, matched, excerpt, at_ms)
			VALUES ('h', 'a', 'a:c', 'm', 'in', '', 'r', 'w', 'w', 1)`,
		`INSERT INTO alert_reviews (id, hit_id, decision, comment, reviewer, at_ms) VALUES ('r', 'h', 'reviewed', '', 'c', 1)`,
		`INSERT INTO holds (id, account, client, conv, reason, placed_by, at_ms) VALUES ('h', 'a', 'c', '', 'r', 'p', 1)`,
	} {
		if _, err := a.db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	for _, table := range []string{"audit", "lexicon_hits", "alert_reviews", "holds"} {
		for _, q := range []string{`UPDATE ` + table + ` SET id = 'x'`, `DELETE FROM ` + table} {
			if _, err := a.db.Exec(q); err == nil {
				t.Errorf("%s: allowed, want the append-only trigger to refuse it", q)
			}
		}
	}
}

// TestRecordTrustConformance: a hold release or a review written into
// the archive behind the relay's back neither lifts the hold nor hides
// the alert, and verify names it (relay/record_seal.go).
func TestRecordTrustConformance(t *testing.T) {
	t.Parallel()
	archivetest.RunRecordTrust(t, func(t *testing.T) archivetest.RecordTrustStore {
		return openAt(t, filepath.Join(t.TempDir(), "archive.db"))
	})
}
