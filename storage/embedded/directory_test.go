package embedded

import (
	"path/filepath"
	"testing"

	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/storage/archivetest"
)

func TestDirectoryConformance(t *testing.T) {
	t.Parallel()
	archivetest.RunDirectory(t, func(t *testing.T) relay.DirectoryStore {
		return openAt(t, filepath.Join(t.TempDir(), "archive.db"))
	})
}

func TestDirectoryConformanceInMemory(t *testing.T) {
	t.Parallel()
	archivetest.RunDirectory(t, func(t *testing.T) relay.DirectoryStore {
		return openAt(t, MemoryPath)
	})
}

func TestDirectoryTableIsAppendOnly(t *testing.T) {
	t.Parallel()
	a := openAt(t, filepath.Join(t.TempDir(), "archive.db"))
	r := relay.DirectoryRecord{Kind: relay.DirTeam, ID: "t", Version: 1, By: "root", Data: `{"id":"t"}`}
	if err := a.AppendDirectory(testCtx(t), r); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`UPDATE directory SET data = 'forged'`, `DELETE FROM directory`} {
		if _, err := a.db.Exec(q); err == nil {
			t.Errorf("%s: allowed, want the append-only trigger to refuse it", q)
		}
	}
	// Nor can a record go in without its key.
	for _, bad := range []relay.DirectoryRecord{{ID: "t", Version: 1}, {Kind: relay.DirTeam, Version: 1}, {Kind: relay.DirTeam, ID: "t"}} {
		if err := a.AppendDirectory(testCtx(t), bad); err == nil {
			t.Errorf("AppendDirectory(%+v) succeeded", bad)
		}
	}
}

// TestDirectoryTrustConformance: rows written into the archive behind
// the relay's back do not count (relay/directory_trust.go).
func TestDirectoryTrustConformance(t *testing.T) {
	t.Parallel()
	archivetest.RunDirectoryTrust(t, func(t *testing.T) archivetest.TrustStore {
		return openAt(t, filepath.Join(t.TempDir(), "archive.db"))
	})
}
