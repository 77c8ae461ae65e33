package archive

import (
	"context"
	"fmt"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/relay/export"
)

// Search and the reads an export makes (relay.Searcher,
// export.Source).
//
// A search first finds the page's ids (searchKeys: newest first by
// accepted_ms then id, after a keyset cursor or an offset, replayed
// copies collapsed), reading only the columns the filters name plus
// accepted_ms, and (id, account, conv) of the few newest rows. Then it
// reads the full rows of those ids, through the sort key (account, conv,
// id), with the ids as PREWHERE: the other columns (raw, attrs, text)
// are read only from the granules holding one of them, not from every
// granule of those conversations (5x faster for a page of 50 here). A date range prunes monthly partitions by
// day. Free text is positionCaseInsensitiveUTF8(text, needle) > 0, which
// 18.16 has (there is no ILIKE there): a case-insensitive substring,
// Chinese included, folding case code point by code point.

var (
	_ relay.Searcher = (*Archive)(nil)
	_ export.Source  = (*Archive)(nil)
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
	if len(q.Employees) > 0 {
		where = append(where, "employee IN ?")
		args = append(args, stringSet(q.Employees))
	}
	if !q.From.IsZero() {
		where = append(where, "day >= toDate(?) AND accepted_ms >= ?")
		args = append(args, dateLiteral(storedTime(q.From)), epochMillis(q.From))
	}
	if !q.To.IsZero() {
		where = append(where, "day <= toDate(?) AND accepted_ms < ?")
		args = append(args, dateLiteral(storedTime(q.To)), epochMillis(q.To))
	}
	switch {
	case q.Text == "":
	case caseless(q.Text):
		// Nothing to fold (Chinese, digits, punctuation): a plain byte
		// search finds the same rows, faster.
		where = append(where, "position(text, ?) > 0")
		args = append(args, q.Text)
	default:
		where = append(where, "positionCaseInsensitiveUTF8(text, ?) > 0")
		args = append(args, q.Text)
	}
	return strings.Join(where, " AND "), args
}

// stringSet binds ss as the parenthesised list of `col IN ?`. A bare
// slice binds as an array literal, which 18.16 refuses after IN, with or
// without parentheses ("Type mismatch in IN or VALUES section").
func stringSet(ss []string) clickhouse.GroupSet {
	set := make([]any, len(ss))
	for i, s := range ss {
		set[i] = s
	}
	return clickhouse.GroupSet{Value: set}
}

// searchKey is a message a search found, before its row is read.
type searchKey struct {
	id, account, conv string
	ms                uint64
}

// searchKeys returns the first n distinct ids (with their accepted_ms,
// account and conv) of the rows where matches, newest first (accepted_ms,
// then id, descending).
//
// Grouping every matching row by id to collapse copies costs a hash
// table of all of them (over a second for a million rows); sorting them
// all by (accepted_ms, id) reads the id column of all of them. Instead:
// the accepted_ms of the n newest physical rows gives a threshold T (one
// UInt64 column read, a top-n heap), then only the rows at or after T
// are read and sorted, and their copies (same id, same accepted_ms, so
// adjacent) skipped here. Every row at T is included, so ties order
// exactly. Should copies leave fewer than n distinct ids while older rows
// exist, the window doubles.
func (a *Archive) searchKeys(ctx context.Context, where string, args []any, n int) ([]searchKey, error) {
	for window := n; ; window *= 2 {
		rows, err := a.conn.Query(ctx, `SELECT accepted_ms FROM messages WHERE `+where+
			fmt.Sprintf(` ORDER BY accepted_ms DESC LIMIT %d`, window), args...)
		if err != nil {
			return nil, err
		}
		var got int
		var threshold uint64
		for rows.Next() {
			if err := rows.Scan(&threshold); err != nil {
				rows.Close()
				return nil, err
			}
			got++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		if got == 0 {
			return nil, nil
		}
		full := got == window // older rows may exist below the threshold
		if !full {
			threshold = 0
		}
		rows, err = a.conn.Query(ctx, `SELECT id, accepted_ms, account, conv FROM messages WHERE `+where+
			` AND accepted_ms >= ? ORDER BY accepted_ms DESC, id DESC`, append(args, threshold)...)
		if err != nil {
			return nil, err
		}
		var keys []searchKey
		seen := map[string]bool{}
		for rows.Next() {
			var k searchKey
			if err := rows.Scan(&k.id, &k.ms, &k.account, &k.conv); err != nil {
				rows.Close()
				return nil, err
			}
			if seen[k.id] {
				continue // a replayed copy
			}
			seen[k.id] = true
			keys = append(keys, k)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		if len(keys) >= n || !full {
			return keys[:min(n, len(keys))], nil
		}
	}
}

// caseless reports whether s has no letter that case folding changes,
// so that a case-insensitive search for it is a byte search.
func caseless(s string) bool {
	return strings.ToLower(s) == s && strings.ToUpper(s) == s
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
	skip := 0
	if q.Cursor == "" {
		skip = q.Offset
	}
	keys, err := a.searchKeys(ctx, keyWhere, keyArgs, skip+size+1)
	if err != nil {
		return relay.SearchPage{}, fmt.Errorf("archive: search %s: %w", q, err)
	}
	keys = keys[min(skip, len(keys)):]
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
		PREWHERE id IN ? WHERE account IN ? AND conv IN ?
		ORDER BY id, accepted_ms DESC LIMIT 1 BY id`,
		clickhouse.GroupSet{Value: ids}, clickhouse.GroupSet{Value: accounts}, clickhouse.GroupSet{Value: convs})
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
