package journal_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/relay/journal"
	"github.com/wechat-relay/wechat-relay/relay/journal/journaltest"
	"github.com/wechat-relay/wechat-relay/storage/embedded"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

const domain = "wechat.example.com"

func config(s *journaltest.Server) journal.Config { return s.Config(domain) }

func openArchive(t *testing.T) *embedded.Archive {
	t.Helper()
	a, err := embedded.Open(t.Context(), embedded.MemoryPath, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}

var base = time.Now().Add(-time.Hour).Truncate(time.Millisecond)

// archived inserts n text messages per conversation, interleaved, and
// returns them in acceptance order.
func archived(t *testing.T, a *embedded.Archive, convs []string, n int) []relay.Message {
	t.Helper()
	var msgs []relay.Message
	for i := range n {
		for j, client := range convs {
			c := relay.Conversation("acc", client)
			at := base.Add(time.Duration(i*len(convs)+j) * time.Second)
			m := relay.Message{
				ID: fmt.Sprintf("in:acc:%s:%d", client, i+1), Account: "acc", Client: client, Conv: c,
				Seq: uint64(i + 1), Direction: relay.Inbound, Kind: relay.KindText,
				Text: fmt.Sprintf("你好 %s %d", client, i+1), CreatedAt: at.Add(-time.Second).Truncate(time.Second),
				AcceptedAt: at, Employee: "emp1", Hash: fmt.Sprintf("hash-%s-%d", client, i+1),
			}
			msgs = append(msgs, m)
		}
	}
	if err := a.Insert(t.Context(), msgs); err != nil {
		t.Fatal(err)
	}
	return msgs
}

// run starts a worker on a and returns a function that stops it.
func run(t *testing.T, cfg journal.Config, a journal.Store, turns journal.Turns, owner string) (*journal.Worker, func()) {
	t.Helper()
	w, err := journal.New(cfg, a, turns, owner, testenv.Logger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return w, stop
}

// allJournaled waits until the ledger has an entry for every message.
func allJournaled(t *testing.T, a *embedded.Archive, msgs []relay.Message) map[string]relay.JournalEntry {
	t.Helper()
	keys := make([]string, len(msgs))
	for i, m := range msgs {
		keys[i] = m.ID
	}
	var got map[string]relay.JournalEntry
	testenv.Eventually(t, "every message journaled", func() error {
		var err error
		if got, err = a.JournalEntries(t.Context(), keys); err != nil {
			return err
		}
		if len(got) != len(keys) {
			return fmt.Errorf("%d of %d journaled", len(got), len(keys))
		}
		return nil
	})
	return got
}

// onceEach checks that the server took every message exactly once
// under its Message-ID, each conversation's in sequence order.
func onceEach(t *testing.T, s *journaltest.Server, msgs []relay.Message) {
	t.Helper()
	byID := map[string]int{}
	lastSeq := map[string]int{}
	for _, r := range s.Mails() {
		id := r.Msg.Header.Get("Message-Id")
		byID[id]++
		conv := r.Msg.Header.Get("X-Wechat-Relay-Conversation")
		var seq int
		fmt.Sscan(r.Msg.Header.Get("X-Wechat-Relay-Seq"), &seq)
		if seq <= lastSeq[conv] {
			t.Errorf("%s: seq %d after %d", conv, seq, lastSeq[conv])
		}
		lastSeq[conv] = seq
	}
	for _, m := range msgs {
		if n := byID[journal.MessageID(m.ID, domain)]; n != 1 {
			t.Errorf("message %s taken %d times by the server, want once", m.ID, n)
		}
	}
	if len(byID) != len(msgs) {
		t.Errorf("the server took %d Message-IDs, want %d", len(byID), len(msgs))
	}
}

func TestJournalsEveryMessageWithItsHeadersAndParts(t *testing.T) {
	s := journaltest.Start(t)
	a := openArchive(t)
	msgs := archived(t, a, []string{"o_client_a", "o_client_b"}, 3)
	c := relay.Conversation("acc", "o_client_a")
	img := relay.Message{ID: "in:acc:img", Account: "acc", Client: "o_client_a", Conv: c, Seq: 4,
		Direction: relay.Inbound, Kind: relay.KindImage, MediaID: "MEDIA1", AcceptedAt: base.Add(time.Minute),
		Employee: "emp1", Hash: "hash-img", Raw: []byte("<xml><MsgType>image</MsgType></xml>")}
	out := relay.Message{ID: "out:acc:o_client_a:k1", Account: "acc", Client: "o_client_a", Conv: c, Seq: 5,
		Direction: relay.Outbound, Kind: relay.KindText, Text: "回复 reply", AcceptedAt: base.Add(2 * time.Minute),
		Employee: "Li.Wei", Hash: "hash-out"}
	note := relay.Message{ID: "staff:acc:note", Account: "acc", Client: "o_client_a", Conv: c, Seq: 6,
		Direction: relay.Internal, Kind: relay.KindText, Text: "internal note", AcceptedAt: base.Add(3 * time.Minute),
		Employee: "emp:odd id", Hash: "hash-note"}
	if err := a.Insert(t.Context(), []relay.Message{img, out, note}); err != nil {
		t.Fatal(err)
	}
	picture := []byte("\x89PNG\r\n\x1a\n the picture")
	if err := a.PutMedia(t.Context(), relay.Media{MessageID: img.ID, MediaID: "MEDIA1", ContentType: "image/png", Data: picture}); err != nil {
		t.Fatal(err)
	}
	msgs = append(msgs, img, out, note)

	w, _ := run(t, config(s), a, nil, "i1")
	ledger := allJournaled(t, a, msgs)
	onceEach(t, s, msgs)

	got := map[string]journaltest.Mail{}
	for _, r := range s.Mails() {
		got[r.Msg.Header.Get("X-Wechat-Relay-Row-Id")] = r
		if !r.TLS || r.User != journaltest.User {
			t.Errorf("message %s: tls %v, user %q: want STARTTLS and AUTH", r.Msg.Header.Get("Message-Id"), r.TLS, r.User)
		}
		if r.From != "relay@wechat.example.com" || r.To != "journal@archive.example.com" {
			t.Errorf("envelope %s -> %s, want the configured from and journal address", r.From, r.To)
		}
	}
	for _, m := range msgs {
		r, ok := got[m.ID]
		if !ok {
			t.Fatalf("no email with row id %s", m.ID)
		}
		h := r.Msg.Header
		for name, want := range map[string]string{
			"Message-Id":                  journal.MessageID(m.ID, domain),
			"X-Wechat-Relay-Row-Hash":     m.Hash,
			"X-Wechat-Relay-Account":      "acc",
			"X-Wechat-Relay-Conversation": string(m.Conv),
			"X-Wechat-Relay-Client":       m.Client,
			"X-Wechat-Relay-Employee":     m.Employee,
			"X-Wechat-Relay-Direction":    string(m.Direction),
			"X-Wechat-Relay-Seq":          fmt.Sprint(m.Seq),
		} {
			if g := h.Get(name); g != want {
				t.Errorf("%s: %s = %q, want %q", m.ID, name, g, want)
			}
		}
		e := ledger[m.ID]
		if e.MessageID != journal.MessageID(m.ID, domain) || e.Hash != m.Hash || e.Kind != relay.JournalMessage || !strings.HasPrefix(e.Answer, "250") {
			t.Errorf("ledger entry of %s: %+v", m.ID, e)
		}
		parts := journaltest.Parts(t, r)
		if m.Text != "" && !strings.Contains(parts["text/plain"], m.Text) {
			t.Errorf("%s: text part %q does not hold %q", m.ID, parts["text/plain"], m.Text)
		}
	}
	// Addresses: client and employee, each stable; an id that is no
	// dot-atom is hashed.
	wantAddr := func(id, header, want string) {
		t.Helper()
		if g := got[id].Msg.Header.Get(header); !strings.Contains(g, want) {
			t.Errorf("%s: %s = %q, want %s", id, header, g, want)
		}
	}
	wantAddr(msgs[0].ID, "From", "<o_client_a@clients.wechat.example.com>")
	wantAddr(msgs[0].ID, "To", "<emp1@staff.wechat.example.com>")
	wantAddr(out.ID, "From", "<Li.Wei@staff.wechat.example.com>")
	wantAddr(out.ID, "To", "<o_client_a@clients.wechat.example.com>")
	wantAddr(note.ID, "From", "@staff.wechat.example.com>")
	wantAddr(note.ID, "To", "<acc@accounts.wechat.example.com>")
	if g := got[note.ID].Msg.Header.Get("From"); !strings.Contains(g, "<x-") {
		t.Errorf("note: From %q, want a hashed local part for %q", g, note.Employee)
	}
	parts := journaltest.Parts(t, got[img.ID])
	if parts["image/png"] != string(picture) {
		t.Errorf("image part = %q, want the archived media", parts["image/png"])
	}
	if parts["application/xml"] != string(img.Raw) {
		t.Errorf("callback part = %q, want the raw callback", parts["application/xml"])
	}
	if st := w.Status(t.Context()); st.Lag.Count != 0 || st.LastSent.IsZero() || !st.Enabled {
		t.Errorf("status after everything was journaled: %+v", st)
	}
}
