package console

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
)

type fakeJournal struct{ st relay.JournalStatus }

func (f fakeJournal) Status(context.Context) relay.JournalStatus { return f.st }

func TestAdminJournalStatus(t *testing.T) {
	oldest := time.Date(2026, 3, 14, 1, 2, 3, 0, time.UTC)
	e := adminEnv(t, func(d *Deps) {
		d.Journal = fakeJournal{relay.JournalStatus{Enabled: true, Server: "smtp.example.com:587",
			Lag: relay.JournalLag{Count: 7, Oldest: oldest}, LastError: "journal: sending message x: 451 later", LastErrorKind: "deferred"}}
	})
	for _, tok := range []string{aliceTok, "lead-token-0123456789ab"} {
		if code, body := e.adminDo(t, "GET", "/api/admin/journal", tok, nil); code != http.StatusForbidden {
			t.Errorf("GET /api/admin/journal as non-admin: %d %v, want 403", code, body)
		}
	}
	code, body := e.adminDo(t, "GET", "/api/admin/journal", rootTok, nil)
	lag, _ := body["lag"].(map[string]any)
	if code != http.StatusOK || body["enabled"] != true || lag["count"] != 7.0 || lag["oldest"] != "2026-03-14T01:02:03Z" || body["last_error_kind"] != "deferred" {
		t.Errorf("GET /api/admin/journal: %d %v", code, body)
	}

	off := adminEnv(t)
	if code, body := off.adminDo(t, "GET", "/api/admin/journal", rootTok, nil); code != http.StatusOK || body["enabled"] != false {
		t.Errorf("GET /api/admin/journal without a journal: %d %v, want enabled false", code, body)
	}
}
