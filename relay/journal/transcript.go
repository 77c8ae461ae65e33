package journal

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/wneessen/go-mail"

	"github.com/wechat-relay/wechat-relay/relay"
)

// transcriptWindow: how far back the search for conversation days
// without a transcript looks between full searches, when the last one
// found none older.
const transcriptWindow = 3 * 24 * time.Hour

// transcripts returns the next batch of conversation-day transcripts to
// send: days that are over (and TranscriptDelay more, for messages still
// on their way into the archive), oldest first.
func (w *Worker) transcripts(ctx context.Context) ([]email, error) {
	// As for messages: a full search from Since every fullScanEvery, in
	// between from the oldest day it found (or transcriptWindow back).
	from, full := w.cfg.Start(), w.tFullAt.IsZero() || w.now().Sub(w.tFullAt) >= fullScanEvery
	if !full {
		from = later(from, w.tMark)
	}
	before := w.now().Add(-w.cfg.TranscriptDelay)
	days, err := w.store.UntranscribedDays(ctx, from, before, w.cfg.BatchSize)
	if err != nil {
		return nil, fmt.Errorf("journal: reading the days without a transcript: %w", err)
	}
	if full {
		w.tFullAt = w.now()
		w.tMark = w.now().Add(-transcriptWindow)
		if len(days) > 0 && days[0].Day.Before(w.tMark) {
			w.tMark = days[0].Day
		}
	}
	var out []email
	for _, d := range days {
		msgs, err := w.store.DayMessages(ctx, d)
		if err != nil {
			return nil, fmt.Errorf("journal: reading %s: %w", relay.TranscriptKey(d), err)
		}
		if len(msgs) == 0 {
			continue
		}
		e, err := renderTranscript(d, msgs, w.cfg.Domain)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// transcriptHash is the hash of a transcript: SHA-256 over each row's id
// and archive hash, in order, each followed by a zero byte; the receiving
// archive recomputes it from the rows the transcript lists.
func transcriptHash(msgs []relay.Message) string {
	h := sha256.New()
	for _, m := range msgs {
		h.Write([]byte(m.ID))
		h.Write([]byte{0})
		h.Write([]byte(m.Hash))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// renderTranscript renders a conversation's day as one email from the
// client to the employees who wrote or received its messages (the
// account when none did): one line per message, with its row id and
// hash.
func renderTranscript(d relay.ConversationDay, msgs []relay.Message, domain string) (email, error) {
	key := relay.TranscriptKey(d)
	account, client := d.Conv.Split()
	day := d.Day.UTC().Format("2006-01-02")
	msg := newMsg(key, domain, d.Day.UTC().AddDate(0, 0, 1).Add(-time.Second))
	if err := msg.From(clientAddress(client, domain)); err != nil {
		return email{}, fmt.Errorf("journal: transcript %s: %w", key, err)
	}
	staff := map[string]bool{}
	for _, m := range msgs {
		if m.Employee != "" {
			staff[staffAddress(m.Employee, domain)] = true
		}
	}
	to := make([]string, 0, len(staff))
	for a := range staff {
		to = append(to, a)
	}
	sort.Strings(to)
	if len(to) == 0 {
		to = []string{accountAddress(account, domain)}
	}
	if err := msg.To(to...); err != nil {
		return email{}, fmt.Errorf("journal: transcript %s: %w", key, err)
	}
	msg.Subject(fmt.Sprintf("WeChat %s transcript %s %s (%d messages)", account, client, day, len(msgs)))
	hash := transcriptHash(msgs)
	for _, h := range [][2]string{
		{hdrAccount, account}, {hdrConversation, string(d.Conv)}, {hdrClient, client},
		{hdrKind, relay.JournalTranscript}, {hdrDay, day}, {hdrRows, strconv.Itoa(len(msgs))},
		{hdrRowsHash, hash},
	} {
		msg.SetGenHeader(mail.Header(h[0]), h[1])
	}
	var b strings.Builder
	fmt.Fprintf(&b, "WeChat conversation %s, %s (UTC), %d messages.\n\n", d.Conv, day, len(msgs))
	for _, m := range msgs {
		who := "client"
		switch {
		case m.Direction == relay.Outbound && m.Employee != "":
			who = m.Employee
		case m.Direction == relay.Outbound:
			who = account
		case m.Direction == relay.Internal:
			who = m.Employee + " (staff note)"
		}
		text := m.Text
		if text == "" {
			text = "[" + string(m.Kind) + " " + m.Event + "]"
		}
		fmt.Fprintf(&b, "[%s] #%d %s: %s\n    row %s hash %s\n",
			m.AcceptedAt.UTC().Format("15:04:05"), m.Seq, who, text, m.ID, m.Hash)
	}
	fmt.Fprintf(&b, "\n-- \nTranscript hash (SHA-256 of each row id and hash): %s\n", hash)
	msg.SetBodyString(mail.TypeTextPlain, b.String())
	return email{
		entry: relay.JournalEntry{Key: key, Kind: relay.JournalTranscript, Conv: d.Conv, MessageID: MessageID(key, domain), Hash: hash},
		msg:   msg,
	}, nil
}
