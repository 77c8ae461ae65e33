package embedded

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
)

// unjournaledWhere selects the messages accepted after ? without a
// message entry in the ledger.
const unjournaledWhere = ` FROM messages AS m
	WHERE m.accepted_ms > ?
	  AND NOT EXISTS (SELECT 1 FROM journal AS j WHERE j.key = m.id AND j.kind = 'message')`

// Unjournaled returns archived messages accepted after since without a
// ledger entry (relay.JournalStore), oldest first.
func (a *Archive) Unjournaled(ctx context.Context, since time.Time, limit int) ([]relay.Message, error) {
	msgs, err := a.queryMessages(ctx, `SELECT `+messageColumns+unjournaledWhere+`
		ORDER BY m.accepted_ms, m.id
		LIMIT ?`, sinceMS(since), sqlLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("embedded: listing messages not journaled since %s: %w", since.UTC().Format(time.RFC3339), err)
	}
	return msgs, nil
}

// sinceMS is since in epoch milliseconds, the zero time counting as the
// epoch (so that "after since" takes every message with a time).
func sinceMS(since time.Time) int64 {
	if since.IsZero() {
		return 0
	}
	return since.UnixMilli()
}

// UnjournaledLag counts what Unjournaled(since) returns and finds its
// oldest acceptance time.
func (a *Archive) UnjournaledLag(ctx context.Context, since time.Time) (relay.JournalLag, error) {
	var (
		n      int64
		oldest sql.NullInt64
	)
	err := a.db.QueryRowContext(ctx, `SELECT count(*), min(m.accepted_ms)`+unjournaledWhere, sinceMS(since)).Scan(&n, &oldest)
	if err != nil {
		return relay.JournalLag{}, fmt.Errorf("embedded: counting messages not journaled since %s: %w", since.UTC().Format(time.RFC3339), err)
	}
	lag := relay.JournalLag{Count: int(n)}
	if n > 0 && oldest.Valid {
		lag.Oldest = time.UnixMilli(oldest.Int64).UTC()
	}
	return lag, nil
}

// RecordJournal adds entries to the ledger in one transaction; an
// identical entry already there is ignored.
func (a *Archive) RecordJournal(ctx context.Context, entries []relay.JournalEntry) error {
	if len(entries) == 0 {
		return nil
	}
	for _, e := range entries {
		if e.Key == "" || e.Kind == "" || e.MessageID == "" || e.At.IsZero() {
			return fmt.Errorf("embedded: recording the journal: entry %q: key, kind, message id and time are required", e.Key)
		}
	}
	err := a.write(ctx, func(tx *sql.Tx) error {
		for _, e := range entries {
			if _, err := tx.ExecContext(ctx, `INSERT INTO journal (key, kind, conv, message_id, hash, answer, at_ms)
				VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
				e.Key, e.Kind, string(e.Conv), e.MessageID, e.Hash, e.Answer, e.At.UnixMilli()); err != nil {
				return fmt.Errorf("entry %s: %w", e.Key, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("embedded: recording %d journal entries: %w", len(entries), err)
	}
	return nil
}

// JournalEntries returns the earliest ledger entry of each of keys.
func (a *Archive) JournalEntries(ctx context.Context, keys []string) (map[string]relay.JournalEntry, error) {
	found := make(map[string]relay.JournalEntry)
	const chunk = 500 // well under SQLite's limit on bound variables
	for start := 0; start < len(keys); start += chunk {
		part := keys[start:min(start+chunk, len(keys))]
		args := make([]any, len(part))
		for i, k := range part {
			args[i] = k
		}
		rows, err := a.db.QueryContext(ctx, `SELECT key, kind, conv, message_id, hash, answer, at_ms FROM journal
			WHERE key IN (?`+strings.Repeat(", ?", len(part)-1)+`)
			ORDER BY key, at_ms DESC, message_id DESC`, args...)
		if err != nil {
			return nil, fmt.Errorf("embedded: reading the journal entries of %d keys (first %s): %w", len(keys), keys[0], err)
		}
		err = scanJournal(rows, found)
		if err != nil {
			return nil, fmt.Errorf("embedded: reading the journal entries of %d keys (first %s): %w", len(keys), keys[0], err)
		}
	}
	return found, nil
}

// scanJournal reads entries into found, the last row of a key winning
// (the query orders each key's entries latest first).
func scanJournal(rows *sql.Rows, found map[string]relay.JournalEntry) error {
	defer rows.Close()
	for rows.Next() {
		var (
			e    relay.JournalEntry
			conv string
			atMS int64
		)
		if err := rows.Scan(&e.Key, &e.Kind, &conv, &e.MessageID, &e.Hash, &e.Answer, &atMS); err != nil {
			return err
		}
		e.Conv = relay.ConversationID(conv)
		e.At = time.UnixMilli(atMS).UTC()
		found[e.Key] = e
	}
	return rows.Err()
}

// utcDayExpr is a message's UTC day, as YYYY-MM-DD.
const utcDayExpr = `date(m.accepted_ms / 1000, 'unixepoch')`

// UntranscribedDays returns the conversation days in [since's day,
// before's day) with archived messages and no transcript in the ledger.
func (a *Archive) UntranscribedDays(ctx context.Context, since, before time.Time, limit int) ([]relay.ConversationDay, error) {
	from, to := utcDay(since), utcDay(before)
	if !to.After(from) {
		return nil, nil
	}
	rows, err := a.db.QueryContext(ctx, `SELECT DISTINCT m.conv, `+utcDayExpr+` AS d FROM messages AS m
		WHERE m.accepted_ms >= ? AND m.accepted_ms < ?
		  AND NOT EXISTS (SELECT 1 FROM journal AS j
			WHERE j.kind = 'transcript' AND j.key = 'transcript:' || m.conv || ':' || `+utcDayExpr+`)
		ORDER BY d, m.conv
		LIMIT ?`, from.UnixMilli(), to.UnixMilli(), sqlLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("embedded: listing conversation days without a transcript: %w", err)
	}
	defer rows.Close()
	var out []relay.ConversationDay
	for rows.Next() {
		var conv, day string
		if err := rows.Scan(&conv, &day); err != nil {
			return nil, fmt.Errorf("embedded: listing conversation days without a transcript: %w", err)
		}
		d, err := time.Parse("2006-01-02", day)
		if err != nil {
			return nil, fmt.Errorf("embedded: listing conversation days without a transcript: day %q: %w", day, err)
		}
		out = append(out, relay.ConversationDay{Conv: relay.ConversationID(conv), Day: d})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("embedded: listing conversation days without a transcript: %w", err)
	}
	return out, nil
}

// utcDay is midnight UTC of t's day.
func utcDay(t time.Time) time.Time {
	y, mo, d := t.UTC().Date()
	return time.Date(y, mo, d, 0, 0, 0, 0, time.UTC)
}

// DayMessages returns d's messages in sequence order.
func (a *Archive) DayMessages(ctx context.Context, d relay.ConversationDay) ([]relay.Message, error) {
	if d.Conv == "" {
		return nil, errors.New("embedded: day messages: no conversation")
	}
	from := utcDay(d.Day)
	msgs, err := a.queryMessages(ctx, `SELECT `+messageColumns+` FROM messages AS m
		WHERE m.conv = ? AND m.accepted_ms >= ? AND m.accepted_ms < ?
		ORDER BY m.seq, m.id`, string(d.Conv), from.UnixMilli(), from.AddDate(0, 0, 1).UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("embedded: reading the messages of %s on %s: %w", d.Conv, from.Format("2006-01-02"), err)
	}
	return msgs, nil
}
