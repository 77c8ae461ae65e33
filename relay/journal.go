package relay

import (
	"context"
	"time"
)

// Journal kinds: what a ledger entry stands for.
const (
	// JournalMessage: one archived message, keyed by its id.
	JournalMessage = "message"
	// JournalTranscript: one conversation's messages of one UTC day,
	// keyed by TranscriptKey.
	JournalTranscript = "transcript"
)

// JournalEntry is one line of the journal ledger: an archived record
// that the firm's own archive (Smarsh, Global Relay, ...) accepted as an
// email, so that the two archives can be reconciled. Entries are only
// added; a record handed over twice (at least once) may have two
// entries under the same Message-ID, and readers keep one.
type JournalEntry struct {
	Key       string // the archived message's id, or a TranscriptKey
	Kind      string // JournalMessage or JournalTranscript
	Conv      ConversationID
	MessageID string    // the email's Message-ID header, with its angle brackets
	Hash      string    // the message's archive hash, or the transcript's
	At        time.Time // when the receiving server accepted it
	Answer    string    // the server's answer to the message's data ("250 2.0.0 queued as ...")
}

// ConversationDay is one conversation's messages of one UTC day: the unit
// of a journal transcript.
type ConversationDay struct {
	Conv ConversationID
	Day  time.Time // midnight UTC
}

// TranscriptKey is the ledger key of d's transcript.
func TranscriptKey(d ConversationDay) string {
	return "transcript:" + string(d.Conv) + ":" + d.Day.UTC().Format("2006-01-02")
}

// JournalLag is what the journal has still to hand over.
type JournalLag struct {
	Count  int       `json:"count"`  // archived messages without a ledger entry
	Oldest time.Time `json:"oldest"` // the acceptance time of the oldest of them; zero when Count is 0
}

// JournalStore is the archive as the journal needs it: what is archived
// but not journaled yet, and the ledger. Both archives in storage
// implement it; storage/archivetest holds the contract.
type JournalStore interface {
	// Unjournaled returns archived messages accepted strictly after
	// since that have no JournalMessage entry: oldest first (AcceptedAt,
	// then ID), one per id, at most limit (limit <= 0: no limit).
	Unjournaled(ctx context.Context, since time.Time, limit int) ([]Message, error)
	// UnjournaledLag counts what Unjournaled(since) would return, and
	// the acceptance time of its oldest.
	UnjournaledLag(ctx context.Context, since time.Time) (JournalLag, error)
	// RecordJournal adds entries to the ledger. An entry without Key,
	// Kind, MessageID or At refuses the batch whole.
	RecordJournal(ctx context.Context, entries []JournalEntry) error
	// JournalEntries returns the ledger entries of keys (one per key,
	// the earliest), keys without one left out; an empty map, not nil,
	// when none is found.
	JournalEntries(ctx context.Context, keys []string) (map[string]JournalEntry, error)
	// UntranscribedDays returns the conversation days from since's day
	// up to, not including, before's day that hold archived messages
	// and have no JournalTranscript entry: by day, then conversation; at
	// most limit (limit <= 0: no limit).
	UntranscribedDays(ctx context.Context, since, before time.Time, limit int) ([]ConversationDay, error)
	// DayMessages returns d's archived messages (accepted on d.Day,
	// UTC), in sequence order, one per id.
	DayMessages(ctx context.Context, d ConversationDay) ([]Message, error)
}

// JournalStatus is what an instance knows of the journal, for the
// console's admins and `wechat-relay journal-status`.
type JournalStatus struct {
	Enabled        bool       `json:"enabled"`
	Server         string     `json:"server,omitempty"`          // host:port of the SMTP server
	JournalAddress string     `json:"journal_address,omitempty"` // where emails go
	Lag            JournalLag `json:"lag"`
	LagAt          time.Time  `json:"lag_at"` // when Lag was measured
	// Turn: this instance journaled the last round (another instance
	// may hold the turn).
	Turn bool `json:"turn"`
	// LastRound: when this instance last finished a round (sent
	// something, found nothing to send, or failed).
	LastRound     time.Time `json:"last_round"`
	LastSent      time.Time `json:"last_sent"`
	LastKey       string    `json:"last_key,omitempty"`
	LastError     string    `json:"last_error,omitempty"`
	LastErrorAt   time.Time `json:"last_error_at"`
	LastErrorKind string    `json:"last_error_kind,omitempty"` // refused, deferred, connection, archive
}
