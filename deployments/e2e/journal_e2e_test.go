package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/wechat-relay/wechat-relay/deployments/commands"
	"github.com/wechat-relay/wechat-relay/deployments/commands/cmdtest"
	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/relay/journal"
	"github.com/wechat-relay/wechat-relay/relay/journal/journaltest"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// A relay journals what it archives to the firm's SMTP server; while
// that server refuses everything, callbacks are still archived and
// delivered; the relay restarts with the backlog unjournaled, and once
// the server takes mail again every message is journaled, each once
// under its Message-ID, and journal-status says nothing is behind.
func TestE2EJournalNeverHoldsUpTheRelay(t *testing.T) {
	cfg, ch, db := ownConfig(t)
	mailSrv := journaltest.Start(t)
	const domain = "wechat.example.com"
	cfg.Journal = mailSrv.Config(domain)
	r := startRelay(t, cfg)
	alice := r.dial(t, aliceTok)

	now := time.Now()
	post := func(r *testRelay, wxID string, at time.Time) {
		t.Helper()
		if status, body := r.post(t, safeCallback(t, "acme", textXML("oJournal", wxID, "journal "+wxID, at), at)); status != 200 || body != "success" {
			t.Fatalf("callback %s answered %d %q", wxID, status, body)
		}
	}
	frame := func(ws *socket, wxID string) {
		t.Helper()
		f, ok := readFrame(t, ws, 10*time.Second)
		if !ok || f.Message.WxMsgID != wxID {
			t.Fatalf("frame for %s: %+v", wxID, f)
		}
	}
	journaled := func(wxIDs ...string) {
		t.Helper()
		testenv.Eventually(t, "journaled "+fmt.Sprint(wxIDs), func() error {
			seen := map[string]int{}
			for _, m := range mailSrv.Mails() {
				seen[m.Msg.Header.Get("Message-Id")]++
			}
			for _, id := range wxIDs {
				if n := seen[journal.MessageID(msgID("oJournal", id), domain)]; n != 1 {
					return fmt.Errorf("%s taken %d times", id, n)
				}
			}
			if len(seen) != len(wxIDs) {
				return fmt.Errorf("%d Message-IDs taken, want %d", len(seen), len(wxIDs))
			}
			return nil
		})
	}

	post(r, "70001", now)
	post(r, "70002", now.Add(time.Second))
	frame(alice, "70001")
	frame(alice, "70002")
	journaled("70001", "70002")
	if m := mailSrv.Mails()[0]; m.Msg.Header.Get("X-Wechat-Relay-Row-Id") != msgID("oJournal", "70001") || m.Msg.Header.Get("X-Wechat-Relay-Row-Hash") == "" {
		t.Errorf("first journal email: row %q, hash %q", m.Msg.Header.Get("X-Wechat-Relay-Row-Id"), m.Msg.Header.Get("X-Wechat-Relay-Row-Hash"))
	}

	// The firm's server refuses everything: the relay goes on.
	mailSrv.SetHook(func(int, io.Reader, *smtp.Conn) error { return journaltest.Answer(451, "mailbox busy") })
	post(r, "70003", now.Add(2*time.Second))
	post(r, "70004", now.Add(3*time.Second))
	frame(alice, "70003")
	frame(alice, "70004")
	r.stop()

	mailSrv.SetHook(nil)
	r2 := startRelay(t, cfg)
	journaled("70001", "70002", "70003", "70004")
	r2.stop()

	var out, errOut bytes.Buffer
	if code := commands.Run([]string{"journal-status", "-json", "-config", cmdtest.ArchiveConfig(t, cfg.DataDir, ch, db)}, &out, &errOut, func(string) string { return "" }); code != 0 {
		t.Fatalf("journal-status: %d %s", code, errOut.String())
	}
	var st struct{ Lag relay.JournalLag }
	if err := json.Unmarshal(out.Bytes(), &st); err != nil || st.Lag.Count != 0 {
		t.Errorf("journal-status after everything was journaled: %v %s", err, out.String())
	}
}
