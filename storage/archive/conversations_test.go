package archive_test

import (
	"testing"

	"github.com/wechat-relay/wechat-relay/storage/archivetest"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// TestConversationsConformance runs the inbox and media-read suite, the
// one the embedded archive passes too, against ClickHouse: each subtest
// on a database of its own, dropped when it ends.
func TestConversationsConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("needs ClickHouse")
	}
	addr := testenv.ClickHouseAddr(t)
	archivetest.RunConversations(t, func(t *testing.T) archivetest.ConversationStore {
		a, _ := openConformance(t, addr)
		return a
	})
}

// TestReportsConformance runs the reports' suite, the one the embedded
// archive passes too, against ClickHouse.
func TestReportsConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("needs ClickHouse")
	}
	addr := testenv.ClickHouseAddr(t)
	archivetest.RunReports(t, func(t *testing.T) archivetest.ReportStore {
		a, _ := openConformance(t, addr)
		return a
	})
}
