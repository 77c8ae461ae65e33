package archive

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/wechat-relay/wechat-relay/relay"
)

var (
	_ relay.ConversationIndex = (*Archive)(nil)
	_ relay.MediaReader       = (*Archive)(nil)
)

// convChunk bounds the conversations one query asks about: each goes
// into the query text (twice for CountInbound), and 18.16's
// max_query_size is 256 KiB.
const convChunk = 200

// statusResolved is the SQL of relay.StatusResolved over the aggregates
// of summarySelect: a resolve later than any reopen and than the client's
// latest interaction.
const statusResolved = `(rs > ro AND rs > li)`

// summarySelect aggregates each conversation's messages into what a
// summary needs besides its latest message. Copies of a message (a
// replay) carry the same seq, so they change no aggregate. The aliases
// differ from every column name: ClickHouse resolves an alias before a
// column of the same name.
const summarySelect = `SELECT conv,
	max(seq) AS last_seq,
	argMax(employee, seq) AS last_employee,
	argMax(accepted_ms, seq) AS last_ms,
	maxIf(seq, direction = 'internal' AND kind = 'resolve') AS rs,
	maxIf(seq, direction = 'internal' AND kind = 'reopen') AS ro,
	maxIf(seq, direction = 'in' AND interaction = 1) AS li,
	maxIf(accepted_ms, direction = 'in' AND interaction = 1) AS li_ms
FROM messages`

// Conversations returns the conversations f selects, the most recently
// active first (by the AcceptedAt of their latest message, then by id).
//
// With ActiveSince, the conversations are those with a message accepted
// after it, found in the partitions from its day on; their summaries are
// then computed over all their messages, which the sort key (account,
// conv, id) finds without a full scan. Without ActiveSince every
// conversation of the archive (or of the account) is aggregated: callers
// should bound it.
func (a *Archive) Conversations(ctx context.Context, f relay.ConversationFilter) ([]relay.ConversationSummary, error) {
	var (
		where []string
		args  []any
	)
	if !f.ActiveSince.IsZero() {
		sub := `conv IN (SELECT conv FROM messages WHERE day >= toDate(?) AND accepted_ms > ?`
		args = append(args, dateLiteral(storedTime(f.ActiveSince)), epochMillis(f.ActiveSince))
		if f.Account != "" {
			sub += ` AND account = ?`
			args = append(args, f.Account)
		}
		where = append(where, sub+`)`)
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
		// "\x00" keeps the set non-empty (18.16 has no empty IN ()).
		convs := []string{"\x00"}
		for _, c := range f.Convs {
			convs = append(convs, string(c))
		}
		where = append(where, `conv IN ?`)
		args = append(args, stringSet(convs))
	}
	q := summarySelect
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	q += ` GROUP BY conv`
	var having []string
	if f.Employee != "" {
		having = append(having, `last_employee = ?`)
		args = append(args, f.Employee)
	}
	if len(f.Employees) > 0 {
		having = append(having, `last_employee IN ?`)
		args = append(args, stringSet(f.Employees))
	}
	switch f.Status {
	case "":
	case relay.StatusResolved:
		having = append(having, statusResolved)
	case relay.StatusOpen:
		having = append(having, `NOT `+statusResolved)
	default:
		return nil, fmt.Errorf("archive: listing conversations: unknown status %q", f.Status)
	}
	if len(having) > 0 {
		q += ` HAVING ` + strings.Join(having, ` AND `)
	}
	q += ` ORDER BY last_ms DESC, conv`
	if f.Limit > 0 {
		q += ` LIMIT ?`
		args = append(args, f.Limit)
	}

	rows, err := a.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("archive: listing conversations: %w", err)
	}
	var out []relay.ConversationSummary
	for rows.Next() {
		var (
			s                  relay.ConversationSummary
			conv               string
			lastMS, rs, ro, li uint64
			liMS               uint64
		)
		if err := rows.Scan(&conv, &s.LastSeq, &s.Employee, &lastMS, &rs, &ro, &li, &liMS); err != nil {
			rows.Close()
			return nil, fmt.Errorf("archive: listing conversations: %w", err)
		}
		s.Conv = relay.ConversationID(conv)
		s.Status = relay.StatusOpen
		if rs > ro && rs > li {
			s.Status = relay.StatusResolved
		}
		if liMS > 0 {
			s.LastInteraction = time.UnixMilli(int64(liMS)).UTC()
		}
		out = append(out, s)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("archive: listing conversations: %w", err)
	}
	if err := a.fillLast(ctx, out); err != nil {
		return nil, fmt.Errorf("archive: reading the latest messages of %d conversations: %w", len(out), err)
	}
	return out, nil
}

// fillLast reads the latest message of each summary, in chunks.
func (a *Archive) fillLast(ctx context.Context, sums []relay.ConversationSummary) error {
	for start := 0; start < len(sums); start += convChunk {
		chunk := sums[start:min(start+convChunk, len(sums))]
		convs := make([]any, len(chunk))
		for i, s := range chunk {
			convs[i] = string(s.Conv)
		}
		set := clickhouse.GroupSet{Value: convs}
		msgs, err := a.queryMessages(ctx, `SELECT `+messageColumns+` FROM messages
			WHERE conv IN ? AND (conv, seq) IN (SELECT conv, max(seq) FROM messages WHERE conv IN ? GROUP BY conv)
			ORDER BY id, accepted_ms DESC
			LIMIT 1 BY id`, set, set)
		if err != nil {
			return err
		}
		last := make(map[relay.ConversationID]relay.Message, len(msgs))
		for _, m := range msgs {
			if _, dup := last[m.Conv]; !dup {
				last[m.Conv] = m
			}
		}
		for i := range chunk {
			m := last[chunk[i].Conv]
			chunk[i].Last = m
			chunk[i].Account, chunk[i].Client = m.Account, m.Client
		}
	}
	return nil
}

// CountInbound returns, for each conversation of after, how many of its
// inbound messages (one per id, whatever copies a replay left) have a
// sequence above after[conv]. Conversations with none are absent.
func (a *Archive) CountInbound(ctx context.Context, after map[relay.ConversationID]uint64) (map[relay.ConversationID]int, error) {
	out := make(map[relay.ConversationID]int)
	convs := make([]relay.ConversationID, 0, len(after))
	for c := range after {
		convs = append(convs, c)
	}
	for start := 0; start < len(convs); start += convChunk {
		chunk := convs[start:min(start+convChunk, len(convs))]
		set := make([]any, len(chunk))
		conds := make([]string, len(chunk))
		args := []any{clickhouse.GroupSet{Value: set}}
		for i, c := range chunk {
			set[i] = string(c)
			conds[i] = `(conv = ? AND seq > ?)`
			args = append(args, string(c), after[c])
		}
		rows, err := a.conn.Query(ctx, `SELECT conv, uniqExact(id) FROM messages
			WHERE conv IN ? AND direction = 'in' AND (`+strings.Join(conds, ` OR `)+`)
			GROUP BY conv`, args...)
		if err != nil {
			return nil, fmt.Errorf("archive: counting inbound messages of %d conversations: %w", len(after), err)
		}
		for rows.Next() {
			var (
				conv string
				n    uint64
			)
			if err := rows.Scan(&conv, &n); err != nil {
				rows.Close()
				return nil, fmt.Errorf("archive: counting inbound messages: %w", err)
			}
			out[relay.ConversationID(conv)] = int(n)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("archive: counting inbound messages: %w", err)
		}
	}
	return out, nil
}

// mediaMessageSkew bounds how far from its media link's day a message is
// looked for: inbound media is fetched within WeChat's three days after
// the message, an employee's upload is linked just before its message is
// archived. Outside the window (a clock gone wrong) the whole archive is
// searched.
const (
	mediaMessageBefore = 8 * 24 * time.Hour
	mediaMessageAfter  = 2 * 24 * time.Hour
)

// MessageMedia returns the archived message messageID and the media
// linked to it (the first linked, then by hash). ok is false when no
// media is linked to the id, or the message is not archived (yet: an
// upload is linked just before its message is archived).
//
// media_links is sorted by message_id and media by sha256, so both are
// index lookups; the message is looked for in the days around its link.
func (a *Archive) MessageMedia(ctx context.Context, messageID string) (relay.Message, relay.Media, bool, error) {
	fail := func(what string, err error) (relay.Message, relay.Media, bool, error) {
		return relay.Message{}, relay.Media{}, false, fmt.Errorf("archive: reading the media of %s: %s: %w", messageID, what, err)
	}
	var (
		md       relay.Media
		linkedAt time.Time
		linkDay  time.Time
	)
	rows, err := a.conn.Query(ctx, `SELECT sha256, media_id, file_name, linked_at, day FROM media_links
		WHERE message_id = ? ORDER BY linked_at, sha256 LIMIT 1`, messageID)
	if err != nil {
		return fail("link", err)
	}
	found := rows.Next()
	if found {
		err = rows.Scan(&md.SHA256, &md.MediaID, &md.FileName, &linkedAt, &linkDay)
	}
	rows.Close()
	if err == nil {
		err = rows.Err()
	}
	if err != nil {
		return fail("link", err)
	}
	if !found {
		return relay.Message{}, relay.Media{}, false, nil
	}
	md.MessageID = messageID

	rows, err = a.conn.Query(ctx, `SELECT content_type, data, fetched_at FROM media WHERE sha256 = ? LIMIT 1`, md.SHA256)
	if err != nil {
		return fail("content", err)
	}
	found = rows.Next()
	var (
		data    string
		fetched time.Time
	)
	if found {
		err = rows.Scan(&md.ContentType, &data, &fetched)
	}
	rows.Close()
	if err == nil {
		err = rows.Err()
	}
	if err != nil {
		return fail("content", err)
	}
	if !found {
		// A link is written after its content: a link without content
		// is a broken archive, not media still to come.
		return fail("content", fmt.Errorf("media %s is linked but not stored", md.SHA256))
	}
	md.Data = []byte(data)
	if fetched.Unix() > 0 {
		md.FetchedAt = fetched.UTC()
	}

	byID := `SELECT ` + messageColumns + ` FROM messages WHERE id = ?`
	msgs, err := a.queryMessages(ctx, byID+` AND day >= toDate(?) AND day <= toDate(?) ORDER BY accepted_ms DESC LIMIT 1`,
		messageID, dateLiteral(daysBefore(linkDay, mediaMessageBefore)), dateLiteral(linkDay.Add(mediaMessageAfter)))
	if err == nil && len(msgs) == 0 {
		msgs, err = a.queryMessages(ctx, byID+` ORDER BY accepted_ms DESC LIMIT 1`, messageID)
	}
	if err != nil {
		return fail("message", err)
	}
	if len(msgs) == 0 {
		return relay.Message{}, relay.Media{}, false, nil
	}
	return msgs[0], md, true, nil
}
