package journal_test

import (
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/relay/journal"
	"github.com/wechat-relay/wechat-relay/relay/journal/journaltest"
	"github.com/wechat-relay/wechat-relay/storage/state"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// The server refuses the third message three times, permanently (5xx)
// or for now (4xx): the journal retries it, sends nothing after it
// meanwhile, and then everything, once.
func TestJournalRetriesARefusedMessageInOrder(t *testing.T) {
	for _, c := range []struct {
		code int
		kind string
	}{{550, "refused"}, {451, "deferred"}} {
		t.Run(fmt.Sprint(c.code), func(t *testing.T) {
			s := journaltest.Start(t)
			s.SetHook(func(attempt int, _ io.Reader, _ *smtp.Conn) error {
				if attempt >= 3 && attempt <= 5 {
					return journaltest.Answer(c.code, "not now")
				}
				return nil
			})
			a := openArchive(t)
			msgs := archived(t, a, []string{"o_a", "o_b"}, 4)
			w, _ := run(t, config(s), a, nil, "i1")
			allJournaled(t, a, msgs)
			onceEach(t, s, msgs)
			// Nothing was taken while the third waited.
			third := s.Mails()[2].Msg.Header.Get("X-Wechat-Relay-Row-Id")
			if third != msgs[2].ID {
				t.Errorf("third email taken is %s, want %s", third, msgs[2].ID)
			}
			st := w.Status(t.Context())
			if st.LastErrorKind != c.kind || !strings.Contains(st.LastError, fmt.Sprint(c.code)) || !strings.Contains(st.LastError, msgs[2].ID) {
				t.Errorf("status: last error %q (%s), want a %s naming %d and %s", st.LastError, st.LastErrorKind, c.kind, c.code, msgs[2].ID)
			}
		})
	}
}

// The server hangs after the data of the second message (never
// answers), then closes the connection in the middle of the fourth: the
// journal gives up on each after its timeout or the closed connection,
// and sends them again.
func TestJournalSurvivesAHungAndAClosingServer(t *testing.T) {
	s := journaltest.Start(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	s.SetHook(func(attempt int, r io.Reader, c *smtp.Conn) error {
		switch attempt {
		case 2:
			_, _ = io.Copy(io.Discard, r)
			<-release // never answered while the test runs
			return journaltest.Answer(451, "too late")
		case 4:
			_, _ = io.ReadFull(r, make([]byte, 64))
			_ = c.Close()
			return journaltest.Answer(421, "closing")
		}
		return nil
	})
	a := openArchive(t)
	msgs := archived(t, a, []string{"o_a", "o_b"}, 3)
	cfg := config(s)
	cfg.Timeout = 300 * time.Millisecond
	w, _ := run(t, cfg, a, nil, "i1")
	allJournaled(t, a, msgs)
	onceEach(t, s, msgs)
	if st := w.Status(t.Context()); st.LastErrorKind != "connection" {
		t.Errorf("status: last error %q (%s), want a connection failure", st.LastError, st.LastErrorKind)
	}
}

// The server takes the second message but the connection closes before
// its answer: the journal sends it again, under the same Message-ID, for
// the receiver to drop; the ledger keeps the first entry.
func TestJournalResendsUnderTheSameMessageIDWhenTheAnswerIsLost(t *testing.T) {
	s := journaltest.Start(t)
	s.SetHook(func(attempt int, _ io.Reader, _ *smtp.Conn) error {
		if attempt == 2 {
			return journaltest.ErrTakeAndDrop
		}
		return nil
	})
	a := openArchive(t)
	msgs := archived(t, a, []string{"o_a"}, 3)
	run(t, config(s), a, nil, "i1")
	ledger := allJournaled(t, a, msgs)
	count := map[string]int{}
	for _, r := range s.Mails() {
		count[r.Msg.Header.Get("Message-Id")]++
	}
	for i, m := range msgs {
		want := 1
		if i == 1 {
			want = 2
		}
		if n := count[journal.MessageID(m.ID, domain)]; n != want {
			t.Errorf("%s taken %d times, want %d", m.ID, n, want)
		}
		if ledger[m.ID].MessageID != journal.MessageID(m.ID, domain) {
			t.Errorf("ledger of %s: %+v", m.ID, ledger[m.ID])
		}
	}
}

// The relay stops in the middle of a backlog (the server is busy with a
// message when it does) and a new worker starts: it resumes from the
// ledger, and every message is taken once.
func TestJournalResumesFromTheLedgerAfterARestart(t *testing.T) {
	s := journaltest.Start(t)
	a := openArchive(t)
	msgs := archived(t, a, []string{"o_a", "o_b"}, 10)
	stopped := make(chan struct{})
	stops := make(chan func(), 1)
	s.SetHook(func(attempt int, _ io.Reader, _ *smtp.Conn) error {
		if attempt == 10 {
			stop := <-stops
			go func() { stop(); close(stopped) }()
			<-stopped
			return journaltest.Answer(421, "shutting down")
		}
		return nil
	})
	_, stop := run(t, config(s), a, nil, "i1")
	stops <- stop
	<-stopped
	s.SetHook(nil)
	// What the server took before the stop is in the ledger.
	took := s.Mails()
	if len(took) != 9 {
		t.Fatalf("the server took %d messages before the stop, want 9", len(took))
	}
	keys := make([]string, len(msgs))
	for i, m := range msgs {
		keys[i] = m.ID
	}
	ledger, err := a.JournalEntries(t.Context(), keys)
	if err != nil {
		t.Fatal(err)
	}
	if len(ledger) != len(took) {
		t.Errorf("ledger holds %d entries after the stop, want the %d the server took", len(ledger), len(took))
	}
	run(t, config(s), a, nil, "i2")
	allJournaled(t, a, msgs)
	onceEach(t, s, msgs)
}

// Two instances journal the same archive, taking turns: every message
// once.
func TestJournalTwoInstancesTakeTurns(t *testing.T) {
	s := journaltest.Start(t)
	a := openArchive(t)
	msgs := archived(t, a, []string{"o_a", "o_b", "o_c"}, 8)
	turns := state.NewMemoryDedupe()
	run(t, config(s), a, turns, "i1")
	run(t, config(s), a, turns, "i2")
	allJournaled(t, a, msgs)
	onceEach(t, s, msgs)
}

// A message whose media is still being fetched waits, with what follows
// it; once the media is archived, both go, the media attached.
func TestJournalWaitsForMedia(t *testing.T) {
	s := journaltest.Start(t)
	a := openArchive(t)
	c := relay.Conversation("acc", "o_a")
	now := time.Now()
	img := relay.Message{ID: "in:acc:img", Account: "acc", Client: "o_a", Conv: c, Seq: 1, Direction: relay.Inbound,
		Kind: relay.KindImage, MediaID: "M1", AcceptedAt: now, Employee: "emp1", Hash: "h1"}
	txt := relay.Message{ID: "in:acc:txt", Account: "acc", Client: "o_a", Conv: c, Seq: 2, Direction: relay.Inbound,
		Kind: relay.KindText, Text: "after the picture", AcceptedAt: now.Add(time.Second), Employee: "emp1", Hash: "h2"}
	if err := a.Insert(t.Context(), []relay.Message{img, txt}); err != nil {
		t.Fatal(err)
	}
	w, _ := run(t, config(s), a, nil, "i1")
	// Two rounds have run and sent nothing.
	first := time.Time{}
	testenv.Until(t, "two rounds", func() bool {
		r := w.Status(t.Context()).LastRound
		if first.IsZero() {
			first = r
		}
		return !first.IsZero() && r.After(first)
	})
	if n := len(s.Mails()); n != 0 {
		t.Fatalf("%d emails sent while the media was missing, want none", n)
	}
	if err := a.PutMedia(t.Context(), relay.Media{MessageID: img.ID, MediaID: "M1", ContentType: "image/jpeg", Data: []byte("jpeg")}); err != nil {
		t.Fatal(err)
	}
	allJournaled(t, a, []relay.Message{img, txt})
	onceEach(t, s, []relay.Message{img, txt})
	if parts := journaltest.Parts(t, s.Mails()[0]); parts["image/jpeg"] != "jpeg" {
		t.Errorf("image email parts: %v", parts)
	}
}

// An archive that cannot be read is a failed round like a server's
// refusal: counted, shown, retried.
func TestJournalReportsAnUnreadableArchive(t *testing.T) {
	s := journaltest.Start(t)
	a := openArchive(t)
	archived(t, a, []string{"o_a"}, 1)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	w, _ := run(t, config(s), a, nil, "i1")
	testenv.Until(t, "an archive failure", func() bool { return w.Status(t.Context()).LastErrorKind == "archive" })
	if n := len(s.Mails()); n != 0 {
		t.Errorf("%d emails sent", n)
	}
}
