package embedded

import (
	"context"
	"fmt"
	"math"
	"strings"

	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/relay/export"
)

// Search and the reads an export makes (relay.Searcher,
// export.Source).
//
// The filters other than free text are SQL; the order is
// accepted_ms DESC, id DESC. Free text is matched in Go, row by row, on
// strings.ToLower of both sides: SQLite's LIKE and lower() fold ASCII
// only (without the ICU extension, which the pure-Go driver lacks), so
// "ÄBC" would not match "äbc" there. Go's folding is Unicode's simple
// lower-casing, as ClickHouse's positionCaseInsensitiveUTF8 does it code
// point by code point; the two may still differ on the rare letters
// whose lower case has another length in UTF-8 (e.g. 'İ'). Chinese has
// no case and matches as a plain substring on both.
//
// The embedded archive has no index for a search across conversations:
// a search reads the messages table in order (ids and texts only, then
// the page's rows). Fine for a trial's archive; production searches run
// on ClickHouse. Every id is one row here (a replay is never stored
// twice), so nothing needs collapsing.

var (
	_ relay.Searcher = (*Archive)(nil)
	_ export.Source  = (*Archive)(nil)
)

// acceptedMS is the SQL of a row's AcceptedAt in epoch milliseconds, 0
// for the zero time (stored as NULL).
const acceptedMS = `COALESCE(accepted_ms, 0)`

// searchWhere is the WHERE clause of q's filters other than Text.
func searchWhere(q relay.SearchQuery) (string, []any) {
	where := []string{"1"}
	var args []any
	eq := func(col, v string) {
		if v != "" {
			where = append(where, col+" = ?")
			args = append(args, v)
		}
	}
	eq("account", q.Account)
	eq("client", q.Client)
	eq("employee", q.Employee)
	eq("conv", string(q.Conv))
	eq("direction", string(q.Direction))
	eq("kind", string(q.Kind))
	if len(q.Employees) > 0 {
		where = append(where, "employee IN "+placeholders(len(q.Employees)))
		for _, e := range q.Employees {
			args = append(args, e)
		}
	}
	if !q.From.IsZero() {
		where = append(where, acceptedMS+" >= ?")
		args = append(args, millis(q.From))
	}
	if !q.To.IsZero() {
		where = append(where, acceptedMS+" < ?")
		args = append(args, millis(q.To))
	}
	return strings.Join(where, " AND "), args
}

// Search returns one page of the messages q selects, newest first.
func (a *Archive) Search(ctx context.Context, q relay.SearchQuery) (relay.SearchPage, error) {
	if err := q.Validate(); err != nil {
		return relay.SearchPage{}, err
	}
	afterMS, afterID, _ := q.After()
	if afterMS > math.MaxInt64 {
		return relay.SearchPage{}, relay.ErrBadCursor
	}
	size := q.PageSize()
	where, args := searchWhere(q)
	page := relay.SearchPage{Total: -1}
	needle := strings.ToLower(q.Text)
	match := func(text string) bool { return needle == "" || strings.Contains(strings.ToLower(text), needle) }

	if q.WithTotal {
		if needle == "" {
			var n int64
			if err := a.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM messages WHERE `+where, args...).Scan(&n); err != nil {
				return relay.SearchPage{}, fmt.Errorf("embedded: search %s: counting: %w", q, err)
			}
			page.Total = int(n)
		} else {
			n := 0
			err := a.scanTexts(ctx, `SELECT id, text FROM messages WHERE `+where, args, func(_, text string) bool {
				if match(text) {
					n++
				}
				return true
			})
			if err != nil {
				return relay.SearchPage{}, fmt.Errorf("embedded: search %s: counting: %w", q, err)
			}
			page.Total = n
		}
	}

	keyWhere, keyArgs := where, append([]any(nil), args...)
	if q.Cursor != "" {
		keyWhere += ` AND (` + acceptedMS + ` < ? OR (` + acceptedMS + ` = ? AND id < ?))`
		keyArgs = append(keyArgs, int64(afterMS), int64(afterMS), afterID)
	}
	offset := 0
	if q.Cursor == "" {
		offset = q.Offset
	}
	order := ` ORDER BY ` + acceptedMS + ` DESC, id DESC`
	var msgs []relay.Message
	if needle == "" {
		var err error
		msgs, err = a.queryMessages(ctx, `SELECT `+messageColumns+` FROM messages WHERE `+keyWhere+order+` LIMIT ? OFFSET ?`,
			append(keyArgs, size+1, offset)...)
		if err != nil {
			return relay.SearchPage{}, fmt.Errorf("embedded: search %s: %w", q, err)
		}
	} else {
		var ids []any
		err := a.scanTexts(ctx, `SELECT id, text FROM messages WHERE `+keyWhere+order, keyArgs, func(id, text string) bool {
			if !match(text) {
				return true
			}
			if offset > 0 {
				offset--
				return true
			}
			ids = append(ids, id)
			return len(ids) <= size
		})
		if err != nil {
			return relay.SearchPage{}, fmt.Errorf("embedded: search %s: %w", q, err)
		}
		for start := 0; start < len(ids); start += idChunk {
			chunk := ids[start:min(start+idChunk, len(ids))]
			got, err := a.queryMessages(ctx, `SELECT `+messageColumns+` FROM messages WHERE id IN `+placeholders(len(chunk))+order, chunk...)
			if err != nil {
				return relay.SearchPage{}, fmt.Errorf("embedded: search %s: reading %d messages: %w", q, len(ids), err)
			}
			msgs = append(msgs, got...)
		}
	}
	if len(msgs) > size {
		msgs = msgs[:size]
		page.Next = relay.SearchCursor(msgs[len(msgs)-1])
	}
	page.Messages = msgs
	return page, nil
}

// scanTexts runs q (selecting id, text) and calls fn for each row until
// it returns false.
func (a *Archive) scanTexts(ctx context.Context, q string, args []any, fn func(id, text string) bool) error {
	rows, err := a.db.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id, text string
		if err := rows.Scan(&id, &text); err != nil {
			return err
		}
		if !fn(id, text) {
			return nil
		}
	}
	return rows.Err()
}

// MessageEvents returns every delivery event of the messages, ordered
// by message id, then At, then id.
func (a *Archive) MessageEvents(ctx context.Context, messageIDs []string) ([]relay.DeliveryEvent, error) {
	var out []relay.DeliveryEvent
	for start := 0; start < len(messageIDs); start += idChunk {
		chunk := messageIDs[start:min(start+idChunk, len(messageIDs))]
		args := make([]any, len(chunk))
		for i, id := range chunk {
			args[i] = id
		}
		rows, err := a.db.QueryContext(ctx, `SELECT `+eventColumns+` FROM events WHERE message_id IN `+placeholders(len(args))+`
			ORDER BY message_id, at_ms, id`, args...)
		if err != nil {
			return nil, fmt.Errorf("embedded: events of %d messages: %w", len(messageIDs), err)
		}
		for rows.Next() {
			e, err := scanEvent(rows)
			if err != nil {
				rows.Close()
				return nil, fmt.Errorf("embedded: events of %d messages: %w", len(messageIDs), err)
			}
			out = append(out, e)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("embedded: events of %d messages: %w", len(messageIDs), err)
		}
	}
	return out, nil
}

// SealsByID returns the stored seals with these ids, in id order;
// unknown ids are absent.
func (a *Archive) SealsByID(ctx context.Context, ids []string) ([]relay.Seal, error) {
	var out []relay.Seal
	for start := 0; start < len(ids); start += idChunk {
		chunk := ids[start:min(start+idChunk, len(ids))]
		args := make([]any, len(chunk))
		for i, id := range chunk {
			args[i] = id
		}
		seals, err := a.querySeals(ctx, `SELECT `+sealColumns+` FROM seals WHERE id IN `+placeholders(len(args))+` ORDER BY id`, args...)
		if err != nil {
			return nil, fmt.Errorf("embedded: reading %d seals: %w", len(ids), err)
		}
		out = append(out, seals...)
	}
	return out, nil
}
