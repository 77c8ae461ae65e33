package archive

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/wechat-relay/wechat-relay/relay"
)

// journalSkew is how far a ledger entry's day may precede the day of the
// message it journals (clocks of two relay instances disagreeing); the
// anti-joins below read the ledger from the messages' first day less
// this, as MissingMedia does with linkSkew.
const journalSkew = 24 * time.Hour

// unjournaledFrom is the WHERE of the messages accepted after ? with no
// message entry in the ledger from ?'s day (less journalSkew) on.
const unjournaledFrom = ` FROM messages
	WHERE day >= toDate(?) AND accepted_ms > ?
	  AND id NOT IN (SELECT key FROM journal WHERE kind = 'message' AND day >= toDate(?))`

// unjournaledArgs are the arguments of unjournaledFrom for since.
func unjournaledArgs(since time.Time) []any {
	sinceMS := uint64(0)
	if ms := since.UnixMilli(); !since.IsZero() && ms > 0 {
		sinceMS = uint64(ms)
	}
	from := time.UnixMilli(int64(sinceMS))
	ledgerFrom := from.Add(-journalSkew)
	if ledgerFrom.Unix() < 0 {
		ledgerFrom = time.Unix(0, 0) // Date starts in 1970
	}
	return []any{dateLiteral(from), sinceMS, dateLiteral(ledgerFrom)}
}

// Unjournaled returns archived messages accepted after since without a
// ledger entry (relay.JournalStore): oldest first, one per id, copies
// collapsed as in Since.
func (a *Archive) Unjournaled(ctx context.Context, since time.Time, limit int) ([]relay.Message, error) {
	q := `SELECT ` + messageColumns + ` FROM (
		SELECT ` + messageColumns + unjournaledFrom + `
		ORDER BY id, accepted_ms DESC
		LIMIT 1 BY id
	) ORDER BY accepted_ms, id`
	args := unjournaledArgs(since)
	if limit > 0 {
		q += ` LIMIT ?`
		args = append(args, limit)
	}
	msgs, err := a.queryMessages(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("archive: listing messages not journaled since %s: %w", since.UTC().Format(time.RFC3339), err)
	}
	return msgs, nil
}

// UnjournaledLag counts what Unjournaled(since) returns and finds its
// oldest acceptance time.
func (a *Archive) UnjournaledLag(ctx context.Context, since time.Time) (relay.JournalLag, error) {
	var n, oldest uint64
	err := a.conn.QueryRow(ctx, `SELECT count(), min(acc) FROM (
		SELECT id, max(accepted_ms) AS acc`+unjournaledFrom+`
		GROUP BY id)`, unjournaledArgs(since)...).Scan(&n, &oldest)
	if err != nil {
		return relay.JournalLag{}, fmt.Errorf("archive: counting messages not journaled since %s: %w", since.UTC().Format(time.RFC3339), err)
	}
	lag := relay.JournalLag{Count: int(n)}
	if n > 0 {
		lag.Oldest = time.UnixMilli(int64(oldest)).UTC()
	}
	return lag, nil
}

// checkJournalEntries refuses a batch holding an entry the ledger could
// not be read back by.
func checkJournalEntries(entries []relay.JournalEntry) error {
	for _, e := range entries {
		if e.Key == "" || e.Kind == "" || e.MessageID == "" || e.At.IsZero() {
			return fmt.Errorf("journal entry %q: key, kind, message id and time are required", e.Key)
		}
	}
	return nil
}

// RecordJournal adds entries to the ledger, in one insert.
func (a *Archive) RecordJournal(ctx context.Context, entries []relay.JournalEntry) error {
	if len(entries) == 0 {
		return nil
	}
	if err := checkJournalEntries(entries); err != nil {
		return fmt.Errorf("archive: recording the journal: %w", err)
	}
	batch, err := a.conn.PrepareBatch(ctx, `INSERT INTO journal (key, kind, conv, message_id, hash, answer, at, at_ms, day)`)
	if err != nil {
		return fmt.Errorf("archive: recording %d journal entries: %w", len(entries), err)
	}
	defer abortUnsent(batch)
	for _, e := range entries {
		at := a.clampTime(e.At, e.Key, "journal_at")
		if err := batch.Append(e.Key, e.Kind, string(e.Conv), e.MessageID, e.Hash, e.Answer,
			at, uint64(max(e.At.UnixMilli(), 0)), dayOf(at)); err != nil {
			return fmt.Errorf("archive: recording journal entry %s: %w", e.Key, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("archive: recording %d journal entries: %w", len(entries), err)
	}
	return nil
}

// JournalEntries returns the earliest ledger entry of each of keys.
func (a *Archive) JournalEntries(ctx context.Context, keys []string) (map[string]relay.JournalEntry, error) {
	found := make(map[string]relay.JournalEntry)
	for start := 0; start < len(keys); start += idChunk {
		chunk := keys[start:min(start+idChunk, len(keys))]
		set := make([]any, len(chunk))
		for i, k := range chunk {
			set[i] = k
		}
		if err := a.journalChunk(ctx, set, found); err != nil {
			return nil, fmt.Errorf("archive: reading the journal entries of %d keys (first %s): %w", len(keys), keys[0], err)
		}
	}
	return found, nil
}

func (a *Archive) journalChunk(ctx context.Context, keys []any, found map[string]relay.JournalEntry) error {
	rows, err := a.conn.Query(ctx, `SELECT key, kind, conv, message_id, hash, answer, at_ms FROM journal
		WHERE key IN ?
		ORDER BY key, at_ms, message_id
		LIMIT 1 BY key`, clickhouse.GroupSet{Value: keys})
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			e    relay.JournalEntry
			conv string
			atMS uint64
		)
		if err := rows.Scan(&e.Key, &e.Kind, &conv, &e.MessageID, &e.Hash, &e.Answer, &atMS); err != nil {
			return err
		}
		e.Conv = relay.ConversationID(conv)
		e.At = time.UnixMilli(int64(atMS)).UTC()
		found[e.Key] = e
	}
	return rows.Err()
}

// UntranscribedDays returns the conversation days in [since's day,
// before's day) with archived messages and no transcript in the ledger.
func (a *Archive) UntranscribedDays(ctx context.Context, since, before time.Time, limit int) ([]relay.ConversationDay, error) {
	if since.Unix() < 0 {
		since = time.Unix(0, 0)
	}
	if !before.After(since) {
		return nil, nil
	}
	ledgerFrom := since.Add(-journalSkew)
	if ledgerFrom.Unix() < 0 {
		ledgerFrom = time.Unix(0, 0)
	}
	q := `SELECT conv, day FROM (
		SELECT DISTINCT conv, day FROM messages WHERE day >= toDate(?) AND day < toDate(?)
	) WHERE concat('transcript:', conv, ':', toString(day))
		NOT IN (SELECT key FROM journal WHERE kind = 'transcript' AND day >= toDate(?))
	ORDER BY day, conv`
	args := []any{dateLiteral(since), dateLiteral(before), dateLiteral(ledgerFrom)}
	if limit > 0 {
		q += ` LIMIT ?`
		args = append(args, limit)
	}
	rows, err := a.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("archive: listing conversation days without a transcript: %w", err)
	}
	defer rows.Close()
	var out []relay.ConversationDay
	for rows.Next() {
		var (
			conv string
			day  time.Time
		)
		if err := rows.Scan(&conv, &day); err != nil {
			return nil, fmt.Errorf("archive: listing conversation days without a transcript: %w", err)
		}
		out = append(out, relay.ConversationDay{Conv: relay.ConversationID(conv), Day: dayOf(day)})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("archive: listing conversation days without a transcript: %w", err)
	}
	return out, nil
}

// DayMessages returns d's messages in sequence order, copies collapsed.
func (a *Archive) DayMessages(ctx context.Context, d relay.ConversationDay) ([]relay.Message, error) {
	if d.Conv == "" {
		return nil, errors.New("archive: day messages: no conversation")
	}
	msgs, err := a.queryMessages(ctx, `SELECT `+messageColumns+` FROM (
		SELECT `+messageColumns+` FROM messages
		WHERE conv = ? AND day = toDate(?)
		ORDER BY id, accepted_ms DESC
		LIMIT 1 BY id
	) ORDER BY seq, id`, string(d.Conv), dateLiteral(d.Day))
	if err != nil {
		return nil, fmt.Errorf("archive: reading the messages of %s on %s: %w", d.Conv, dateLiteral(d.Day), err)
	}
	return msgs, nil
}
