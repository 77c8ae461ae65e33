package archive

import (
	"context"
	"fmt"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/wechat-relay/wechat-relay/relay"
)

// Search and the reads an export makes (relay.Searcher,
// relay.ExportSource).
//
// A search runs in two steps. The first reads only the columns the
// filters name plus (id, accepted_ms, account, conv), groups by id (which
// collapses replayed copies: they share id and accepted_ms) and keeps the
// page: newest first by accepted_ms then id, a keyset cursor or an
// offset. The second reads the full rows of the page's ids, through the
// sort key (account, conv, id). A date range prunes monthly partitions by
// day. Free text is positionCaseInsensitiveUTF8(text, needle) > 0, which
// 18.16 has (there is no ILIKE there): a case-insensitive substring,
// Chinese included, folding case code point by code point.

var (
	_ relay.Searcher     = (*Archive)(nil)
	_ relay.ExportSource = (*Archive)(nil)
)

// searchWhere is the WHERE clause of q's filters (without the cursor).
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
	if !q.From.IsZero() {
		where = append(where, "day >= toDate(?) AND accepted_ms >= ?")
		args = append(args, dateLiteral(storedTime(q.From)), epochMillis(q.From))
	}
	if !q.To.IsZero() {
		where = append(where, "day <= toDate(?) AND accepted_ms < ?")
		args = append(args, dateLiteral(storedTime(q.To)), epochMillis(q.To))
	}
	if q.Text != "" {
		where = append(where, "positionCaseInsensitiveUTF8(text, ?) > 0")
		args = append(args, q.Text)
	}
	return strings.Join(where, " AND "), args
}

// Search returns one page of the messages q selects, newest first, one
// per id. See the top of this file for how.
func (a *Archive) Search(ctx context.Context, q relay.SearchQuery) (relay.SearchPage, error) {
	if err := q.Validate(); err != nil {
		return relay.SearchPage{}, err
	}
	afterMS, afterID, _ := q.After()
	size := q.PageSize()
	where, args := searchWhere(q)
	page := relay.SearchPage{Total: -1}
	if q.WithTotal {
		var n uint64
		if err := a.conn.QueryRow(ctx, `SELECT uniqExact(id) FROM messages WHERE `+where, args...).Scan(&n); err != nil {
			return relay.SearchPage{}, fmt.Errorf("archive: search %s: counting: %w", q, err)
		}
		page.Total = int(n)
	}

	keyWhere, keyArgs := where, append([]any(nil), args...)
	if q.Cursor != "" {
		keyWhere += " AND (accepted_ms < ? OR (accepted_ms = ? AND id < ?))"
		keyArgs = append(keyArgs, afterMS, afterMS, afterID)
	}
	limit := fmt.Sprintf(" LIMIT %d", size+1)
	if q.Cursor == "" && q.Offset > 0 {
		limit = fmt.Sprintf(" LIMIT %d, %d", q.Offset, size+1)
	}
	rows, err := a.conn.Query(ctx, `SELECT id, max(accepted_ms) AS ms, any(account), any(conv) FROM messages
		WHERE `+keyWhere+` GROUP BY id ORDER BY ms DESC, id DESC`+limit, keyArgs...)
	if err != nil {
		return relay.SearchPage{}, fmt.Errorf("archive: search %s: %w", q, err)
	}
	type key struct {
		id, account, conv string
		ms                uint64
	}
	var keys []key
	for rows.Next() {
		var k key
		if err := rows.Scan(&k.id, &k.ms, &k.account, &k.conv); err != nil {
			rows.Close()
			return relay.SearchPage{}, fmt.Errorf("archive: search %s: %w", q, err)
		}
		keys = append(keys, k)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return relay.SearchPage{}, fmt.Errorf("archive: search %s: %w", q, err)
	}
	more := len(keys) > size
	if more {
		keys = keys[:size]
	}
	if len(keys) == 0 {
		return page, nil
	}

	ids, accounts, convs := make([]any, len(keys)), []any{}, []any{}
	seenA, seenC := map[string]bool{}, map[string]bool{}
	for i, k := range keys {
		ids[i] = k.id
		if !seenA[k.account] {
			seenA[k.account] = true
			accounts = append(accounts, k.account)
		}
		if !seenC[k.conv] {
			seenC[k.conv] = true
			convs = append(convs, k.conv)
		}
	}
	msgs, err := a.queryMessages(ctx, `SELECT `+messageColumns+` FROM messages
		WHERE account IN ? AND conv IN ? AND id IN ?
		ORDER BY id, accepted_ms DESC LIMIT 1 BY id`,
		clickhouse.GroupSet{Value: accounts}, clickhouse.GroupSet{Value: convs}, clickhouse.GroupSet{Value: ids})
	if err != nil {
		return relay.SearchPage{}, fmt.Errorf("archive: search %s: reading %d messages: %w", q, len(keys), err)
	}
	byID := make(map[string]relay.Message, len(msgs))
	for _, m := range msgs {
		byID[m.ID] = m
	}
	page.Messages = make([]relay.Message, 0, len(keys))
	for _, k := range keys {
		if m, ok := byID[k.id]; ok {
			page.Messages = append(page.Messages, m)
		}
	}
	if more && len(page.Messages) > 0 {
		page.Next = relay.SearchCursor(page.Messages[len(page.Messages)-1])
	}
	return page, nil
}

// MessageEvents returns every delivery event of the messages, one per
// event id (the copy a merge would keep), by message id then At.
func (a *Archive) MessageEvents(ctx context.Context, messageIDs []string) ([]relay.DeliveryEvent, error) {
	var out []relay.DeliveryEvent
	for start := 0; start < len(messageIDs); start += idChunk {
		chunk := messageIDs[start:min(start+idChunk, len(messageIDs))]
		ids := make([]any, len(chunk))
		for i, id := range chunk {
			ids[i] = id
		}
		rows, err := a.conn.Query(ctx, `SELECT `+eventColumns+` FROM (
			SELECT `+eventColumns+` FROM events WHERE message_id IN ?
			ORDER BY id, at_ms DESC LIMIT 1 BY id
		) ORDER BY message_id, at_ms, id`, clickhouse.GroupSet{Value: ids})
		if err != nil {
			return nil, fmt.Errorf("archive: events of %d messages: %w", len(messageIDs), err)
		}
		for rows.Next() {
			e, err := scanEvent(rows)
			if err != nil {
				rows.Close()
				return nil, fmt.Errorf("archive: events of %d messages: %w", len(messageIDs), err)
			}
			out = append(out, e)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("archive: events of %d messages: %w", len(messageIDs), err)
		}
	}
	return out, nil
}

// SealsByID returns the stored seals with these ids, one per id (the
// copy with the latest at_ms), in id order; unknown ids are absent.
func (a *Archive) SealsByID(ctx context.Context, ids []string) ([]relay.Seal, error) {
	var out []relay.Seal
	for start := 0; start < len(ids); start += idChunk {
		chunk := ids[start:min(start+idChunk, len(ids))]
		set := make([]any, len(chunk))
		for i, id := range chunk {
			set[i] = id
		}
		seals, err := a.querySeals(ctx, `SELECT `+sealColumns+` FROM seals WHERE id IN ?
			ORDER BY id, at_ms DESC, hash LIMIT 1 BY id`, clickhouse.GroupSet{Value: set})
		if err != nil {
			return nil, fmt.Errorf("archive: reading %d seals: %w", len(ids), err)
		}
		out = append(out, seals...)
	}
	return out, nil
}
