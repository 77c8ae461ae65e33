package embedded

import (
	"path/filepath"
	"testing"

	"github.com/wechat-relay/wechat-relay/storage/archivetest"
)

func TestSearchConformance(t *testing.T) {
	t.Parallel()
	archivetest.RunSearch(t, func(t *testing.T) archivetest.SearchStore {
		return openAt(t, filepath.Join(t.TempDir(), "archive.db"))
	})
}

func TestSearchConformanceInMemory(t *testing.T) {
	t.Parallel()
	archivetest.RunSearch(t, func(t *testing.T) archivetest.SearchStore {
		return openAt(t, MemoryPath)
	})
}
