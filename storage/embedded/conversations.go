package embedded

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
)

var (
	_ relay.ConversationIndex = (*Archive)(nil)
	_ relay.MediaReader       = (*Archive)(nil)
)

// isInteraction is the SQL of "counts as the client's interaction",
// including rows archived before the interaction column existed (see
// migrations/0002_interaction_events.sql).
const isInteraction = `(direction = 'in' AND COALESCE(interaction, legacy_interaction) = 1)`

// prefixed returns messageColumns with every column qualified by alias.
func prefixed(alias string) string {
	cols := strings.Split(messageColumns, ",")
	for i, c := range cols {
		cols[i] = alias + "." + strings.TrimSpace(c)
	}
	return strings.Join(cols, ", ")
}

// Conversations returns the conversations f selects, the most recently
// active first (by the AcceptedAt of their latest message, then by id).
// The aggregates read each selected conversation through its (conv, seq)
// index; ActiveSince, without an index of its own, scans the
// (conv, accepted_ms) index.
func (a *Archive) Conversations(ctx context.Context, f relay.ConversationFilter) ([]relay.ConversationSummary, error) {
	var (
		where []string
		args  []any
	)
	if !f.ActiveSince.IsZero() {
		where = append(where, `conv IN (SELECT conv FROM messages WHERE accepted_ms > ?)`)
		args = append(args, f.ActiveSince.UnixMilli())
	}
	if f.Account != "" {
		where = append(where, `account = ?`)
		args = append(args, f.Account)
	}
	if f.Conv != "" {
		where = append(where, `conv = ?`)
		args = append(args, string(f.Conv))
	}
	if f.Convs != nil {
		convs := make([]string, len(f.Convs))
		for i, c := range f.Convs {
			convs[i] = string(c)
		}
		js, _ := json.Marshal(convs)
		where = append(where, `conv IN (SELECT value FROM json_each(?))`)
		args = append(args, string(js))
	}
	q := `WITH agg AS (
		SELECT conv,
			MAX(seq) AS last_seq,
			MAX(CASE WHEN direction = 'internal' AND kind = 'resolve' THEN seq ELSE 0 END) AS rs,
			MAX(CASE WHEN direction = 'internal' AND kind = 'reopen' THEN seq ELSE 0 END) AS ro,
			MAX(CASE WHEN ` + isInteraction + ` THEN seq ELSE 0 END) AS li,
			MAX(CASE WHEN ` + isInteraction + ` THEN accepted_ms END) AS li_ms
		FROM messages`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	q += ` GROUP BY conv)
	SELECT ` + prefixed("m") + `, agg.rs, agg.ro, agg.li, agg.li_ms
	FROM agg JOIN messages AS m ON m.conv = agg.conv AND m.seq = agg.last_seq`
	var cond []string
	if f.Employee != "" {
		cond = append(cond, `m.employee = ?`)
		args = append(args, f.Employee)
	}
	if len(f.Employees) > 0 {
		cond = append(cond, `m.employee IN `+placeholders(len(f.Employees)))
		for _, e := range f.Employees {
			args = append(args, e)
		}
	}
	const resolved = `(agg.rs > agg.ro AND agg.rs > agg.li)`
	switch f.Status {
	case "":
	case relay.StatusResolved:
		cond = append(cond, resolved)
	case relay.StatusOpen:
		cond = append(cond, `NOT `+resolved)
	default:
		return nil, fmt.Errorf("embedded: listing conversations: unknown status %q", f.Status)
	}
	if len(cond) > 0 {
		q += ` WHERE ` + strings.Join(cond, ` AND `)
	}
	q += ` ORDER BY m.accepted_ms DESC, m.conv LIMIT ?`
	args = append(args, sqlLimit(f.Limit))

	rows, err := a.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("embedded: listing conversations: %w", err)
	}
	defer rows.Close()
	var out []relay.ConversationSummary
	seen := map[relay.ConversationID]bool{}
	for rows.Next() {
		var (
			m          relay.Message
			rs, ro, li int64
			liMS       sql.NullInt64
		)
		if err := scanMessageInto(rows, &m, &rs, &ro, &li, &liMS); err != nil {
			return nil, fmt.Errorf("embedded: listing conversations: %w", err)
		}
		if seen[m.Conv] {
			continue // two ids with one sequence: an upstream bug, shown once
		}
		seen[m.Conv] = true
		s := relay.ConversationSummary{
			Conv: m.Conv, Account: m.Account, Client: m.Client, Employee: m.Employee,
			Status: relay.StatusOpen, LastSeq: m.Seq, Last: m,
		}
		if rs > ro && rs > li {
			s.Status = relay.StatusResolved
		}
		if liMS.Valid {
			s.LastInteraction = time.UnixMilli(liMS.Int64).UTC()
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("embedded: listing conversations: %w", err)
	}
	return out, nil
}

// scanMessageInto scans messageColumns into m, then extra columns.
func scanMessageInto(rows *sql.Rows, m *relay.Message, extra ...any) error {
	var (
		conv, dir, kind     string
		attrs               string
		raw                 []byte
		seq                 int64
		created, acceptedMS sql.NullInt64
	)
	dest := []any{
		&m.ID, &m.Account, &m.Client, &conv, &seq,
		&dir, &kind, &m.WxMsgID, &m.Event, &m.EventKey,
		&m.Text, &m.MediaID, &attrs, &raw,
		&created, &acceptedMS, &m.Employee, &m.Hash, &m.BatchID,
	}
	if err := rows.Scan(append(dest, extra...)...); err != nil {
		return err
	}
	m.Conv = relay.ConversationID(conv)
	m.Seq = uint64(seq)
	m.Direction = relay.Direction(dir)
	m.Kind = relay.Kind(kind)
	var err error
	if m.Attrs, err = relay.DecodeAttrs(attrs); err != nil {
		return fmt.Errorf("message %s: %w", m.ID, err)
	}
	if len(raw) > 0 {
		m.Raw = raw
	}
	if created.Valid {
		m.CreatedAt = time.Unix(created.Int64, 0).UTC()
	}
	if acceptedMS.Valid {
		m.AcceptedAt = time.UnixMilli(acceptedMS.Int64).UTC()
	}
	return nil
}

// CountInbound returns, for each conversation of after, how many of its
// inbound messages have a sequence above after[conv], one indexed count
// per conversation. Conversations with none are absent.
func (a *Archive) CountInbound(ctx context.Context, after map[relay.ConversationID]uint64) (map[relay.ConversationID]int, error) {
	out := make(map[relay.ConversationID]int)
	if len(after) == 0 {
		return out, nil
	}
	conn, err := a.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("embedded: counting inbound messages: %w", err)
	}
	defer conn.Close()
	stmt, err := conn.PrepareContext(ctx, `SELECT COUNT(*) FROM messages WHERE conv = ? AND seq > ? AND direction = 'in'`)
	if err != nil {
		return nil, fmt.Errorf("embedded: counting inbound messages: %w", err)
	}
	defer stmt.Close()
	for conv, seq := range after {
		if seq >= math.MaxInt64 {
			continue
		}
		var n int
		if err := stmt.QueryRowContext(ctx, string(conv), int64(seq)).Scan(&n); err != nil {
			return nil, fmt.Errorf("embedded: counting inbound messages of %s: %w", conv, err)
		}
		if n > 0 {
			out[conv] = n
		}
	}
	return out, nil
}

// MessageMedia returns the archived message messageID and the media
// linked to it (the first linked, then by hash). ok is false when no
// media is linked to the id, or the message is not archived (yet: an
// upload is linked just before its message is archived).
func (a *Archive) MessageMedia(ctx context.Context, messageID string) (relay.Message, relay.Media, bool, error) {
	md := relay.Media{MessageID: messageID}
	var fetchedMS int64
	err := a.db.QueryRowContext(ctx, `SELECT l.sha256, l.media_id, l.file_name, d.content_type, d.data, d.fetched_ms
		FROM media_links AS l JOIN media AS d ON d.sha256 = l.sha256
		WHERE l.message_id = ?
		ORDER BY l.linked_ms, l.sha256 LIMIT 1`, messageID).
		Scan(&md.SHA256, &md.MediaID, &md.FileName, &md.ContentType, &md.Data, &fetchedMS)
	if errors.Is(err, sql.ErrNoRows) {
		return relay.Message{}, relay.Media{}, false, nil
	}
	if err != nil {
		return relay.Message{}, relay.Media{}, false, fmt.Errorf("embedded: reading the media of %s: %w", messageID, err)
	}
	md.FetchedAt = time.UnixMilli(fetchedMS).UTC()
	msgs, err := a.queryMessages(ctx, `SELECT `+messageColumns+` FROM messages WHERE id = ?`, messageID)
	if err != nil {
		return relay.Message{}, relay.Media{}, false, fmt.Errorf("embedded: reading message %s: %w", messageID, err)
	}
	if len(msgs) == 0 {
		return relay.Message{}, relay.Media{}, false, nil
	}
	return msgs[0], md, true, nil
}
