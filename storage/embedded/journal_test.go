package embedded

import (
	"path/filepath"
	"testing"

	"github.com/wechat-relay/wechat-relay/storage/archivetest"
)

func TestJournalConformance(t *testing.T) {
	t.Parallel()
	archivetest.RunJournal(t, func(t *testing.T) archivetest.JournalStore {
		return openAt(t, filepath.Join(t.TempDir(), "archive.db"))
	})
}
