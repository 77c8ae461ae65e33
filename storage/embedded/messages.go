package embedded

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
)

// messageColumns is the column list of every SELECT from messages, in
// the order scanMessage reads them.
// hash and batch_id (since 0003) are the sealing columns (relay/seal.go).
const messageColumns = `id, account, client, conv, seq, direction, kind, wx_msg_id, event, event_key, ` +
	`text, media_id, attrs, raw, created_at, accepted_ms, employee, hash, batch_id`

// insertMessage adds a message unless its id is archived already. The
// conflict target is the id alone: any other constraint violation is an
// error, not a silently dropped message.
// has_media and interaction are derived from the message when it is
// archived, and not read back into a relay.Message.
const insertMessage = `INSERT INTO messages (` + messageColumns + `, has_media, interaction)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO NOTHING`

// idChunk bounds the ids in one IN (...) list, well under SQLite's limit
// on bound parameters.
const idChunk = 500

// Insert commits msgs in one transaction and returns once it is durable
// (WAL, synchronous=FULL: fsynced). All or nothing: a batch holding a
// message without an ID or a sequence number is refused whole.
//
// Idempotent by message id: an id already archived, or repeated within
// msgs, is skipped, and the archived copy is kept as it is. No row is
// ever updated or deleted.
func (a *Archive) Insert(ctx context.Context, msgs []relay.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	rows := make([][]any, len(msgs))
	for i := range msgs {
		m := &msgs[i]
		if m.ID == "" {
			return fmt.Errorf("embedded: insert: message %d of %d has no ID", i+1, len(msgs))
		}
		if m.Seq == 0 {
			return fmt.Errorf("embedded: insert: message %s has no sequence number", m.ID)
		}
		if m.Seq > math.MaxInt64 {
			return fmt.Errorf("embedded: insert: message %s: sequence %d is beyond what SQLite's INTEGER holds", m.ID, m.Seq)
		}
		attrs, err := relay.EncodeAttrs(m.Attrs)
		if err != nil {
			return fmt.Errorf("embedded: insert: message %s: %w", m.ID, err)
		}
		raw := m.Raw
		if raw == nil {
			raw = []byte{} // a nil []byte binds as NULL
		}
		hasMedia, interaction := 0, 0
		if m.Kind.HasMedia() && m.MediaID != "" {
			hasMedia = 1
		}
		if m.IsInteraction() {
			interaction = 1
		}
		rows[i] = []any{
			m.ID, m.Account, m.Client, string(m.Conv), int64(m.Seq),
			string(m.Direction), string(m.Kind), m.WxMsgID, m.Event, m.EventKey,
			m.Text, m.MediaID, attrs, raw,
			unixSeconds(m.CreatedAt), unixMillis(m.AcceptedAt), m.Employee, m.Hash, m.BatchID, hasMedia, interaction,
		}
	}
	err := a.write(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, insertMessage)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for i, row := range rows {
			res, err := stmt.ExecContext(ctx, row...)
			if err != nil {
				return fmt.Errorf("message %s: %w", msgs[i].ID, err)
			}
			if n, err := res.RowsAffected(); err == nil && n == 0 {
				a.checkReplay(ctx, tx, &msgs[i])
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("embedded: insert of %d messages (first %s): %w", len(msgs), msgs[0].ID, err)
	}
	return nil
}

// checkReplay looks at the archived copy of a message inserted again. A
// replay carries the spooled copy, so the two agree; if the sequence or
// conversation differ, something upstream numbered a message twice, which
// is worth a warning (the archived copy stands).
func (a *Archive) checkReplay(ctx context.Context, tx *sql.Tx, m *relay.Message) {
	var (
		seq  int64
		conv string
	)
	if err := tx.QueryRowContext(ctx, `SELECT seq, conv FROM messages WHERE id = ?`, m.ID).Scan(&seq, &conv); err != nil {
		return
	}
	if uint64(seq) != m.Seq || conv != string(m.Conv) {
		a.log.Warn("embedded: message archived again with another conversation or sequence; the archived copy is kept",
			"msg_id", m.ID, "archived_conv", conv, "archived_seq", seq, "conv", m.Conv, "seq", m.Seq)
	}
}

// unixSeconds is t as epoch seconds, or NULL for the zero time.
func unixSeconds(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.Unix()
}

// unixMillis is t as epoch milliseconds, or NULL for the zero time.
func unixMillis(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMilli()
}

// Existing reports which of msgs are archived (by ID), with their sequence
// numbers. The map is never nil; an empty msgs asks nothing of the
// database. The id is the primary key here, so the lookup is by id alone:
// the conversation and AcceptedAt, which the ClickHouse archive needs to
// narrow its search, would add nothing.
func (a *Archive) Existing(ctx context.Context, msgs []relay.Message) (map[string]uint64, error) {
	found := make(map[string]uint64)
	for start := 0; start < len(msgs); start += idChunk {
		chunk := msgs[start:min(start+idChunk, len(msgs))]
		args := make([]any, len(chunk))
		for i, m := range chunk {
			args[i] = m.ID
		}
		if err := a.existingChunk(ctx, `SELECT id, seq FROM messages WHERE id IN `+placeholders(len(chunk)), args, found); err != nil {
			return nil, fmt.Errorf("embedded: looking up %d messages (first %s): %w", len(msgs), msgs[0].ID, err)
		}
	}
	return found, nil
}

// placeholders is "(?, ?, ...)" with n question marks, n > 0.
func placeholders(n int) string {
	return "(?" + strings.Repeat(", ?", n-1) + ")"
}

func (a *Archive) existingChunk(ctx context.Context, q string, args []any, found map[string]uint64) error {
	rows, err := a.db.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id  string
			seq int64
		)
		if err := rows.Scan(&id, &seq); err != nil {
			return err
		}
		found[id] = uint64(seq)
	}
	return rows.Err()
}

// Since returns up to limit messages of conv with Seq > after, in sequence
// order. A limit <= 0 means no limit.
func (a *Archive) Since(ctx context.Context, conv relay.ConversationID, after uint64, limit int) ([]relay.Message, error) {
	if after >= math.MaxInt64 {
		return nil, nil // no stored sequence is greater
	}
	msgs, err := a.queryMessages(ctx,
		`SELECT `+messageColumns+` FROM messages WHERE conv = ? AND seq > ? ORDER BY seq, id LIMIT ?`,
		string(conv), int64(after), sqlLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("embedded: reading %s after seq %d: %w", conv, after, err)
	}
	return msgs, nil
}

// sqlLimit maps "limit <= 0: no limit" to SQLite's LIMIT -1.
func sqlLimit(limit int) int64 {
	if limit <= 0 {
		return -1
	}
	return int64(limit)
}

// MaxSeq returns the highest sequence archived for conv, 0 if none.
func (a *Archive) MaxSeq(ctx context.Context, conv relay.ConversationID) (uint64, error) {
	var seq int64
	if err := a.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM messages WHERE conv = ?`, string(conv)).Scan(&seq); err != nil {
		return 0, fmt.Errorf("embedded: max seq of %s: %w", conv, err)
	}
	return uint64(seq), nil
}

// queryMessages runs a query selecting messageColumns and decodes the rows.
func (a *Archive) queryMessages(ctx context.Context, q string, args ...any) ([]relay.Message, error) {
	rows, err := a.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []relay.Message
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

func scanMessage(rows *sql.Rows) (relay.Message, error) {
	var m relay.Message
	if err := scanMessageInto(rows, &m); err != nil {
		return relay.Message{}, err
	}
	return m, nil
}
