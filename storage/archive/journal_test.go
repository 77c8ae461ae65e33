package archive_test

import (
	"testing"

	"github.com/wechat-relay/wechat-relay/storage/archivetest"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// TestJournalConformance runs the journal ledger's suite, the one the
// embedded archive passes too, against ClickHouse.
func TestJournalConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("needs ClickHouse")
	}
	addr := testenv.ClickHouseAddr(t)
	archivetest.RunJournal(t, func(t *testing.T) archivetest.JournalStore {
		a, _ := openConformance(t, addr)
		return a
	})
}
