package embedded

import (
	"path/filepath"
	"testing"

	"github.com/wechat-relay/wechat-relay/storage/archivetest"
)

func TestConversationsConformance(t *testing.T) {
	t.Parallel()
	archivetest.RunConversations(t, func(t *testing.T) archivetest.ConversationStore {
		return openAt(t, filepath.Join(t.TempDir(), "archive.db"))
	})
}

func TestConversationsConformanceInMemory(t *testing.T) {
	t.Parallel()
	archivetest.RunConversations(t, func(t *testing.T) archivetest.ConversationStore {
		return openAt(t, MemoryPath)
	})
}

func TestReportsConformance(t *testing.T) {
	t.Parallel()
	archivetest.RunReports(t, func(t *testing.T) archivetest.ReportStore {
		return openAt(t, filepath.Join(t.TempDir(), "archive.db"))
	})
}
