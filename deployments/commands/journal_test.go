package commands

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/deployments/commands/cmdtest"
	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/storage/embedded"
)

// journal-status and journal-reconcile on an embedded archive where two
// of five messages are journaled.
func TestJournalCommands(t *testing.T) {
	dataDir := t.TempDir()
	ctx := context.Background()
	a, err := embedded.Open(ctx, filepath.Join(dataDir, "archive.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 3, 14, 8, 0, 0, 0, time.UTC)
	c := relay.Conversation("acc", "o_a")
	var msgs []relay.Message
	for i := 1; i <= 5; i++ {
		msgs = append(msgs, relay.Message{ID: fmt.Sprintf("in:acc:%d", i), Account: "acc", Client: "o_a", Conv: c, Seq: uint64(i),
			Direction: relay.Inbound, Kind: relay.KindText, Text: "hi", AcceptedAt: base.Add(time.Duration(i) * time.Minute), Hash: fmt.Sprintf("hash%d", i)})
	}
	if err := a.Insert(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs[:2] {
		if err := a.RecordJournal(ctx, []relay.JournalEntry{{Key: m.ID, Kind: relay.JournalMessage, Conv: c, MessageID: "<" + m.ID + "@x>", At: base.Add(time.Hour), Answer: "250 ok"}}); err != nil {
			t.Fatal(err)
		}
	}
	a.Close()
	cfg := cmdtest.ArchiveConfig(t, dataDir, "", "")
	run := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := Run(args, &out, &errOut, envMap(nil))
		return code, out.String(), errOut.String()
	}

	code, out, errOut := run("journal-status", "-config", cfg)
	if code != 0 || !strings.Contains(out, "not journaled: 3 messages, the oldest accepted 2026-03-14T08:03:00Z") || !strings.Contains(out, "not configured") {
		t.Errorf("journal-status: %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = run("journal-status", "-config", cfg, "-json")
	var st struct {
		Lag relay.JournalLag `json:"lag"`
	}
	if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil || st.Lag.Count != 3 || !st.Lag.Oldest.Equal(msgs[2].AcceptedAt) {
		t.Errorf("journal-status -json: %d %v\n%s%s", code, err, out, errOut)
	}
	code, out, errOut = run("journal-reconcile", "-config", cfg)
	if code != 1 || !strings.Contains(out, "3 archived but not journaled") {
		t.Errorf("journal-reconcile: %d\n%s%s", code, out, errOut)
	}
	for i, m := range msgs {
		if listed := strings.Contains(out, m.ID+" ") && strings.Contains(out, m.Hash); listed != (i >= 2) {
			t.Errorf("journal-reconcile lists %s: %v, want %v\n%s", m.ID, listed, i >= 2, out)
		}
	}
	code, out, _ = run("journal-reconcile", "-config", cfg, "-json", "-limit", "1")
	var rows []struct{ ID string }
	if err := json.Unmarshal([]byte(out), &rows); code != 1 || err != nil || len(rows) != 1 || rows[0].ID != msgs[2].ID {
		t.Errorf("journal-reconcile -json -limit 1: %d %v %s", code, err, out)
	}
	if code, _, _ := run("journal-reconcile", "-config", cfg, "extra"); code != 2 {
		t.Errorf("journal-reconcile with an argument: exit %d, want 2", code)
	}
}
