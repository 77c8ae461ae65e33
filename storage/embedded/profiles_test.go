package embedded

import (
	"path/filepath"
	"testing"

	"github.com/wechat-relay/wechat-relay/storage/archivetest"
)

func TestProfilesConformance(t *testing.T) {
	t.Parallel()
	archivetest.RunProfiles(t, func(t *testing.T) archivetest.ProfileStore {
		return openAt(t, filepath.Join(t.TempDir(), "archive.db"))
	})
}

func TestProfileTablesAreAppendOnly(t *testing.T) {
	t.Parallel()
	a := openAt(t, filepath.Join(t.TempDir(), "archive.db"))
	for _, q := range []string{
		`INSERT INTO client_profiles (account, openid, conv, version, at_ms, "by", name, remark, tags, note, prev_hash, hash, key_id, signature)
			VALUES ('a', 'o', 'a:o', 1, 1, 'e', 'n', '', '[]', '', '', 'h', '', '')`,
		`INSERT INTO client_tags (account, version, at_ms, "by", tags, prev_hash, hash, key_id, signature)
			VALUES ('a', 1, 1, 'e', '["x"]', '', 'h', '', '')`,
	} {
		if _, err := a.db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	for _, table := range []string{"client_profiles", "client_tags"} {
		for _, q := range []string{`UPDATE ` + table + ` SET account = 'x'`, `DELETE FROM ` + table} {
			if _, err := a.db.Exec(q); err == nil {
				t.Errorf("%s: allowed, want the append-only trigger to refuse it", q)
			}
		}
	}
}
