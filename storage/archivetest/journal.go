package archivetest

import (
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
)

// JournalStore is what RunJournal tests: an archive with the journal's
// ledger.
type JournalStore interface {
	relay.Archive
	relay.JournalStore
}

// RunJournal runs the conformance suite of relay.JournalStore. open is
// called once per subtest, from parallel subtests, and must return a new,
// empty store. What it pins down beyond the interface's comments:
//
//   - "After since" is strict, as in MissingMedia; the zero time takes
//     every message. A replayed message is listed and counted once.
//   - Only message entries take a message off Unjournaled; a transcript
//     entry does not, nor a message entry of another id.
//   - An entry's At comes back to the millisecond, in UTC; a key
//     recorded twice comes back with its earliest entry.
//   - Days are UTC days of AcceptedAt.
func RunJournal(t *testing.T, open func(t *testing.T) JournalStore) {
	t.Helper()
	for _, c := range []struct {
		name string
		run  func(t *testing.T, s JournalStore)
	}{
		{"Unjournaled", testUnjournaled},
		{"RecordJournalRefusesBadBatchWhole", testRecordJournalRefused},
		{"JournalEntriesRoundTrip", testJournalEntries},
		{"TranscriptDays", testTranscriptDays},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t, open(t))
		})
	}
}

// entry is the ledger entry of m, accepted by the server at after
// m.AcceptedAt.
func entry(m relay.Message, after time.Duration) relay.JournalEntry {
	return relay.JournalEntry{
		Key: m.ID, Kind: relay.JournalMessage, Conv: m.Conv,
		MessageID: "<" + m.ID + "@journal.example>", Hash: "h-" + m.ID,
		At: m.AcceptedAt.Add(after), Answer: "250 2.0.0 queued as " + m.ID,
	}
}

func record(t *testing.T, s JournalStore, entries ...relay.JournalEntry) {
	t.Helper()
	if err := s.RecordJournal(testCtx(t), entries); err != nil {
		t.Fatalf("RecordJournal(%d entries): %v", len(entries), err)
	}
}

func unjournaled(t *testing.T, s JournalStore, after time.Time, limit int) []relay.Message {
	t.Helper()
	got, err := s.Unjournaled(testCtx(t), after, limit)
	if err != nil {
		t.Fatalf("Unjournaled(%s, %d): %v", after.Format(time.RFC3339Nano), limit, err)
	}
	return got
}

func wantLag(t *testing.T, s JournalStore, what string, after time.Time, count int, oldest time.Time) {
	t.Helper()
	got, err := s.UnjournaledLag(testCtx(t), after)
	if err != nil {
		t.Fatalf("%s: UnjournaledLag: %v", what, err)
	}
	want := relay.JournalLag{Count: count}
	if count > 0 {
		want.Oldest = oldest.Truncate(time.Millisecond).UTC()
	}
	if got.Count != want.Count || !got.Oldest.Equal(want.Oldest) || (!got.Oldest.IsZero() && got.Oldest.Location() != time.UTC) {
		t.Errorf("%s: UnjournaledLag = %d, oldest %s; want %d, oldest %s", what, got.Count, fmtTime(got.Oldest), want.Count, fmtTime(want.Oldest))
	}
}

func testUnjournaled(t *testing.T, s JournalStore) {
	a, b := conv("o_j_a"), conv("o_j_b")
	a0 := message(a, 1)
	a0.AcceptedAt = base.Add(-10 * time.Second) // before since
	var (
		a1, a2, a3 = message(a, 2), message(a, 3), message(a, 4)
		b1, b2     = message(b, 1), message(b, 5)
	)
	b1.AcceptedAt = base.Add(2500 * time.Millisecond) // between a1 and a2
	insert(t, s, b1, b2)
	insert(t, s, a0, a1, a2, a3)
	insert(t, s, a1, b1) // replayed: still listed once

	sameMessages(t, "Unjournaled(base, 0)", unjournaled(t, s, base, 0), []relay.Message{a1, b1, a2, a3, b2})
	sameMessages(t, "Unjournaled(base, 2)", unjournaled(t, s, base, 2), []relay.Message{a1, b1})
	sameMessages(t, "Unjournaled(base in UTC, -1)", unjournaled(t, s, base.UTC(), -1), []relay.Message{a1, b1, a2, a3, b2})
	sameMessages(t, "Unjournaled(zero, 0)", unjournaled(t, s, time.Time{}, 0), []relay.Message{a0, a1, b1, a2, a3, b2})
	// After is strict: a1 was accepted at base+2s (and some noise the
	// archive drops).
	sameMessages(t, "Unjournaled(a1's time, 0)", unjournaled(t, s, a1.AcceptedAt.Truncate(time.Millisecond), 0), []relay.Message{b1, a2, a3, b2})
	wantLag(t, s, "before any entry", base, 5, a1.AcceptedAt)
	wantLag(t, s, "before any entry, from zero", time.Time{}, 6, a0.AcceptedAt)

	// A transcript entry, or an entry of another id, takes nothing off.
	record(t, s, relay.JournalEntry{Key: relay.TranscriptKey(relay.ConversationDay{Conv: a, Day: base}), Kind: relay.JournalTranscript,
		Conv: a, MessageID: "<t@journal.example>", At: base.Add(time.Hour)})
	record(t, s, relay.JournalEntry{Key: a1.ID + "x", Kind: relay.JournalMessage, Conv: a, MessageID: "<x@journal.example>", At: base})
	sameMessages(t, "Unjournaled after unrelated entries", unjournaled(t, s, base, 0), []relay.Message{a1, b1, a2, a3, b2})

	record(t, s, entry(a1, time.Second), entry(b2, time.Second))
	record(t, s, entry(a1, time.Minute)) // journaled twice (at least once)
	sameMessages(t, "Unjournaled after two entries", unjournaled(t, s, base, 0), []relay.Message{b1, a2, a3})
	wantLag(t, s, "after two entries", base, 3, b1.AcceptedAt)
	// A ledger entry dated before its message (another instance's clock)
	// counts all the same.
	record(t, s, entry(a0, -time.Hour))
	sameMessages(t, "Unjournaled(zero) after an early entry", unjournaled(t, s, time.Time{}, 0), []relay.Message{b1, a2, a3})

	record(t, s, entry(b1, 0), entry(a2, 0), entry(a3, 0))
	sameMessages(t, "Unjournaled when all are journaled", unjournaled(t, s, time.Time{}, 0), nil)
	wantLag(t, s, "when all are journaled", time.Time{}, 0, time.Time{})
}

func testRecordJournalRefused(t *testing.T, s JournalStore) {
	c := conv("o_j_refused")
	m1, m2 := message(c, 1), message(c, 2)
	insert(t, s, m1, m2)
	if err := s.RecordJournal(testCtx(t), nil); err != nil {
		t.Errorf("RecordJournal(nothing) = %v, want nil", err)
	}
	for name, bad := range map[string]func(*relay.JournalEntry){
		"no key":        func(e *relay.JournalEntry) { e.Key = "" },
		"no kind":       func(e *relay.JournalEntry) { e.Kind = "" },
		"no message id": func(e *relay.JournalEntry) { e.MessageID = "" },
		"no time":       func(e *relay.JournalEntry) { e.At = time.Time{} },
	} {
		e := entry(m2, 0)
		bad(&e)
		if err := s.RecordJournal(testCtx(t), []relay.JournalEntry{entry(m1, 0), e}); err == nil {
			t.Errorf("RecordJournal with an entry with %s = nil, want an error", name)
		}
	}
	sameMessages(t, "Unjournaled after refused batches", unjournaled(t, s, time.Time{}, 0), []relay.Message{m1, m2})
	got, err := s.JournalEntries(testCtx(t), []string{m1.ID, m2.ID})
	if err != nil {
		t.Fatalf("JournalEntries: %v", err)
	}
	if len(got) != 0 {
		t.Errorf("JournalEntries after refused batches = %v, want none", got)
	}
}

func testJournalEntries(t *testing.T, s JournalStore) {
	c := conv("o_j_entries")
	m1, m2, m3 := message(c, 1), message(c, 2), message(c, 3)
	insert(t, s, m1, m2, m3)
	e1, e2 := entry(m1, 1500*time.Millisecond+123*time.Microsecond), entry(m2, 0)
	e1.At = e1.At.In(cst)
	later := entry(m1, time.Hour)
	later.MessageID, later.Answer = "<other@journal.example>", "250 again"
	record(t, s, later)
	record(t, s, e1, e2)
	record(t, s, e2) // an identical entry again

	ctx := testCtx(t)
	none, err := s.JournalEntries(ctx, nil)
	if err != nil || none == nil || len(none) != 0 {
		t.Errorf("JournalEntries(nothing) = %v, %v; want an empty map", none, err)
	}
	got, err := s.JournalEntries(ctx, []string{m1.ID, m2.ID, m3.ID, "in:acc:nobody:1"})
	if err != nil {
		t.Fatalf("JournalEntries: %v", err)
	}
	if keys := slices.Sorted(maps.Keys(got)); !slices.Equal(keys, []string{m1.ID, m2.ID}) {
		t.Fatalf("JournalEntries found %v, want %s and %s", keys, m1.ID, m2.ID)
	}
	for _, want := range []relay.JournalEntry{e1, e2} {
		want.At = want.At.Truncate(time.Millisecond).UTC()
		g := got[want.Key]
		if g.At.Location() != time.UTC || !g.At.Equal(want.At) {
			t.Errorf("entry %s: At %s, want %s in UTC", want.Key, fmtTime(g.At), fmtTime(want.At))
		}
		g.At = want.At
		if g != want {
			t.Errorf("entry %s:\n got %+v\nwant %+v (the earliest)", want.Key, g, want)
		}
	}
}

func testTranscriptDays(t *testing.T, s JournalStore) {
	a, b := conv("o_t_a"), conv("o_t_b")
	day1 := time.Date(2026, 3, 14, 0, 0, 0, 0, time.UTC) // base's UTC day
	day2 := day1.AddDate(0, 0, 1)
	at := func(m relay.Message, t time.Time) relay.Message { m.AcceptedAt = t; return m }
	var (
		a1 = at(message(a, 1), day1.Add(time.Hour))
		a2 = at(message(a, 2), day1.Add(23*time.Hour+59*time.Minute+59*time.Second+999*time.Millisecond))
		a3 = at(message(a, 3), day2) // midnight: the next day
		b1 = at(message(b, 1), day2.Add(5*time.Hour))
		b2 = at(message(b, 2), day2.Add(4*time.Hour)) // numbered after b1, accepted before
		a4 = at(message(a, 4), day2.AddDate(0, 0, 1).Add(time.Hour))
	)
	insert(t, s, a1, a2, a3, b1, b2, a4)
	insert(t, s, a2) // replayed

	ctx := testCtx(t)
	days := func(what string, since, before time.Time, limit int, want ...relay.ConversationDay) {
		t.Helper()
		got, err := s.UntranscribedDays(ctx, since, before, limit)
		if err != nil {
			t.Fatalf("%s: UntranscribedDays: %v", what, err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: UntranscribedDays = %v, want %v", what, got, want)
		}
		for i := range want {
			if got[i].Conv != want[i].Conv || !got[i].Day.Equal(want[i].Day) {
				t.Errorf("%s: UntranscribedDays = %v, want %v", what, got, want)
				break
			}
		}
	}
	ad1, ad2, bd2 := relay.ConversationDay{Conv: a, Day: day1}, relay.ConversationDay{Conv: a, Day: day2}, relay.ConversationDay{Conv: b, Day: day2}
	// before is a day: its messages are not included.
	days("two days", day1, day2.AddDate(0, 0, 1).Add(-time.Nanosecond), 0, ad1)
	days("up to the third day", day1.Add(3*time.Hour), day2.AddDate(0, 0, 1).Add(time.Hour), 0, ad1, ad2, bd2)
	days("limited", day1, day2.AddDate(0, 0, 1), 2, ad1, ad2)
	days("from the second day", day2.Add(time.Hour), day2.AddDate(0, 0, 1), 0, ad2, bd2)
	days("before since", day2, day1, 0)

	for _, c := range []struct {
		d    relay.ConversationDay
		want []relay.Message
	}{
		{ad1, []relay.Message{a1, a2}},
		{ad2, []relay.Message{a3}},
		{bd2, []relay.Message{b1, b2}},
		{relay.ConversationDay{Conv: b, Day: day1}, nil},
	} {
		got, err := s.DayMessages(ctx, c.d)
		if err != nil {
			t.Fatalf("DayMessages(%v): %v", c.d, err)
		}
		sameMessages(t, "DayMessages of "+relay.TranscriptKey(c.d), got, c.want)
	}

	record(t, s, relay.JournalEntry{Key: relay.TranscriptKey(ad2), Kind: relay.JournalTranscript, Conv: a,
		MessageID: "<t@journal.example>", Hash: "th", At: day2.AddDate(0, 0, 1).Add(time.Hour)})
	// A message entry under a transcript's key does not count as its transcript.
	record(t, s, relay.JournalEntry{Key: relay.TranscriptKey(bd2), Kind: relay.JournalMessage, Conv: b,
		MessageID: "<m@journal.example>", At: day2.AddDate(0, 0, 1)})
	days("after a transcript", day1, day2.AddDate(0, 0, 1), 0, ad1, bd2)
	record(t, s, entry(a1, 0)) // a message's entry is not its day's transcript
	days("after a message entry", day1, day2.AddDate(0, 0, 1), 0, ad1, bd2)
}
