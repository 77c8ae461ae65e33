package journal_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/relay/journal"
	"github.com/wechat-relay/wechat-relay/relay/journal/journaltest"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// With transcripts on, each conversation's finished day is one more
// email, listing its messages with their row ids and hashes; today's
// conversation gets none yet.
func TestJournalSendsADailyTranscriptPerConversation(t *testing.T) {
	s := journaltest.Start(t)
	a := openArchive(t)
	y, m, d := time.Now().UTC().AddDate(0, 0, -5).Date() // older than the searches between full ones look
	day := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	var msgs []relay.Message
	for _, client := range []string{"o_a", "o_b"} {
		c := relay.Conversation("acc", client)
		for i := 1; i <= 3; i++ {
			msgs = append(msgs, relay.Message{ID: fmt.Sprintf("in:acc:%s:%d", client, i), Account: "acc", Client: client,
				Conv: c, Seq: uint64(i), Direction: relay.Inbound, Kind: relay.KindText, Text: fmt.Sprintf("line %d", i),
				AcceptedAt: day.Add(time.Duration(i) * time.Hour), Employee: "emp1", Hash: fmt.Sprintf("h-%s-%d", client, i)})
		}
	}
	today := relay.Message{ID: "in:acc:o_c:1", Account: "acc", Client: "o_c", Conv: relay.Conversation("acc", "o_c"), Seq: 1,
		Direction: relay.Inbound, Kind: relay.KindText, Text: "today", AcceptedAt: time.Now(), Employee: "emp2", Hash: "h-today"}
	if err := a.Insert(t.Context(), append(msgs, today)); err != nil {
		t.Fatal(err)
	}
	cfg := config(s)
	cfg.Transcripts = true
	w, _ := run(t, cfg, a, nil, "i1")
	allJournaled(t, a, append(msgs, today))

	var keys []string
	for _, client := range []string{"o_a", "o_b"} {
		keys = append(keys, relay.TranscriptKey(relay.ConversationDay{Conv: relay.Conversation("acc", client), Day: day}))
	}
	testenv.Eventually(t, "two transcripts in the ledger", func() error {
		got, err := a.JournalEntries(t.Context(), keys)
		if err != nil || len(got) != 2 {
			return fmt.Errorf("%d transcripts, %v", len(got), err)
		}
		return nil
	})
	var transcripts []journaltest.Mail
	for _, r := range s.Mails() {
		if r.Msg.Header.Get("X-Wechat-Relay-Kind") == relay.JournalTranscript {
			transcripts = append(transcripts, r)
		}
	}
	if len(transcripts) != 2 {
		t.Fatalf("%d transcripts sent, want 2 (none for today)", len(transcripts))
	}
	for i, r := range transcripts {
		conv := msgs[3*i].Conv
		h := r.Msg.Header
		sum := sha256.New()
		for _, m := range msgs[3*i : 3*i+3] {
			sum.Write([]byte(m.ID + "\x00" + m.Hash + "\x00"))
		}
		for name, want := range map[string]string{
			"Message-Id":                    journal.MessageID(keys[i], domain),
			"X-Wechat-Relay-Conversation":   string(conv),
			"X-Wechat-Relay-Transcript-Day": day.Format("2006-01-02"),
			"X-Wechat-Relay-Rows":           "3",
			"X-Wechat-Relay-Rows-Hash":      hex.EncodeToString(sum.Sum(nil)),
		} {
			if g := h.Get(name); g != want {
				t.Errorf("transcript %d: %s = %q, want %q", i, name, g, want)
			}
		}
		text := journaltest.Parts(t, r)["text/plain"]
		for _, m := range msgs[3*i : 3*i+3] {
			if !strings.Contains(text, m.Text) || !strings.Contains(text, m.ID) || !strings.Contains(text, m.Hash) {
				t.Errorf("transcript %d lacks %s (%q, hash %s):\n%s", i, m.ID, m.Text, m.Hash, text)
			}
		}
	}
	if st := w.Status(t.Context()); st.Lag.Count != 0 {
		t.Errorf("lag after everything: %+v", st.Lag)
	}
}
