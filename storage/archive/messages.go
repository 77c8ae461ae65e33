package archive

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/wechat-relay/wechat-relay/relay"
)

// messageColumns is the column list of every INSERT into and SELECT from
// messages. ClickHouse 18.16 needs the list spelled out in a batch INSERT.
// hash and batch_id (since 0003) are the sealing columns (relay/seal.go).
const messageColumns = `id, account, client, conv, seq, direction, kind, wx_msg_id, event, event_key, ` +
	`text, media_id, attrs, raw, created_at, accepted_at, accepted_ms, employee, day, hash, batch_id`

// insertColumns is messageColumns plus what is written but not read back
// into a relay.Message: interaction, derived from the message when it is
// archived (see migrations/0002_interaction.sql).
const insertColumns = messageColumns + `, interaction`

// idChunk bounds how many ids go into one IN (...) list: the ids are
// written into the query text, and 18.16's max_query_size is 256 KiB.
const idChunk = 1000

// messageChunk bounds the messages Existing asks about in one query, which
// carries each one's id and conversation: half of idChunk, to stay as far
// from max_query_size.
const messageChunk = idChunk / 2

// maxDateTime is the last second a DateTime (UInt32) can hold, in 2106.
const maxDateTime = math.MaxUint32

// Insert writes msgs in one batch and returns once ClickHouse has
// acknowledged it (which, as with any ClickHouse insert, means written to
// the server's page cache, not fsynced).
//
// Idempotent by message id: inserting an id again (a replay after a crash,
// an overlapping batch) adds a physical copy that ReplacingMergeTree
// collapses when parts merge, and every reader here collapses copies
// before that. No row is ever updated or deleted.
//
// Nothing is sent if any message lacks an ID or a Seq. What is sent is a
// single INSERT of one block, which ClickHouse writes as one part per
// month it touches; a failure can leave some of those parts committed
// (and an error can follow a commit, when the acknowledgement is lost),
// so after any error the caller inserts the whole batch again and the
// copies collapse as above.
func (a *Archive) Insert(ctx context.Context, msgs []relay.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	for i := range msgs {
		if msgs[i].ID == "" {
			return fmt.Errorf("archive: insert: message %d of %d has no ID", i+1, len(msgs))
		}
		if msgs[i].Seq == 0 {
			return fmt.Errorf("archive: insert: message %s has no sequence number", msgs[i].ID)
		}
	}
	ctx = insertContext(ctx, batchOf(msgs, func(m *relay.Message) string { return m.BatchID }))
	batch, err := a.conn.PrepareBatch(ctx, `INSERT INTO messages (`+insertColumns+`)`)
	if err != nil {
		return fmt.Errorf("archive: insert of %d messages: preparing batch: %w", len(msgs), err)
	}
	defer abortUnsent(batch)
	for i := range msgs {
		m := &msgs[i]
		attrs, err := relay.EncodeAttrs(m.Attrs)
		if err != nil {
			return fmt.Errorf("archive: insert: message %s: %w", m.ID, err)
		}
		created := a.clampTime(m.CreatedAt, m.ID, "created_at")
		accepted := a.clampTime(m.AcceptedAt, m.ID, "accepted_at")
		acceptedMS := epochMillis(m.AcceptedAt)
		raw := m.Raw
		if raw == nil {
			raw = []byte{}
		}
		if err := batch.Append(
			m.ID, m.Account, m.Client, string(m.Conv), m.Seq,
			string(m.Direction), string(m.Kind), m.WxMsgID, m.Event, m.EventKey,
			m.Text, m.MediaID, attrs, raw,
			created, accepted, acceptedMS, m.Employee, dayOf(accepted),
			m.Hash, m.BatchID, boolUInt8(m.IsInteraction()),
		); err != nil {
			return fmt.Errorf("archive: insert: appending message %s: %w", m.ID, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("archive: insert of %d messages (first %s): %w", len(msgs), msgs[0].ID, err)
	}
	return nil
}

// clampTime maps t into what a DateTime column holds: whole seconds from
// 1970 to 2106, in UTC. The zero time becomes the epoch, which reads back
// as the zero time. A time outside the range (a garbled CreateTime) is
// clamped and logged rather than refused: refusing would leave the
// message, whose exact bytes are in raw anyway, unarchivable for ever.
func (a *Archive) clampTime(t time.Time, id, field string) time.Time {
	if !t.IsZero() {
		switch s := t.Unix(); {
		case s < 0:
			a.log.Warn("archive: time before 1970 stored as the epoch", "msg_id", id, "field", field, "time", t)
		case s > maxDateTime:
			a.log.Warn("archive: time after 2106 stored as the last DateTime", "msg_id", id, "field", field, "time", t)
		}
	}
	return storedTime(t)
}

// storedTime is what clampTime makes of t, without the logging: readers
// use it to find the day a writer filed t under.
func storedTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Unix(0, 0).UTC()
	}
	return time.Unix(min(max(t.Unix(), 0), maxDateTime), 0).UTC()
}

func boolUInt8(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// epochMillis is t as the UInt64 epoch milliseconds of the *_ms columns:
// 0 for the zero time and anything before 1970, which read back as zero.
func epochMillis(t time.Time) uint64 {
	if ms := t.UnixMilli(); !t.IsZero() && ms > 0 {
		return uint64(ms)
	}
	return 0
}

// dayOf is the partition day of t: its UTC date, as a midnight UTC time,
// which is what the driver writes into a Date column unchanged.
func dayOf(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// dateLiteral formats the UTC date of t for comparison with a Date column.
// It is passed as a string: 18.16 compares a Date with a DateTime
// parameter (what the driver makes of a time.Time) wrongly, matching
// nothing.
func dateLiteral(t time.Time) string {
	return t.UTC().Format("2006-01-02")
}

// retrySkew is how far either side of a message's AcceptedAt Existing
// looks for an archived copy. A replay from the spool carries the
// AcceptedAt it was archived with; a WeChat retry that slipped past the
// dedupe is accepted again seconds after the first copy.
const retrySkew = 24 * time.Hour

// Existing reports which of msgs are archived (by ID), with their sequence
// numbers. The map is never nil; an empty msgs asks nothing of the server.
//
// It looks only where a copy of each message can be: the messages'
// accounts and conversations, which lead the sort key (account, conv, id),
// and the days from a day before the earliest AcceptedAt to a day after
// the latest, which name the partitions and parts to read. Asking by id
// alone would read the whole id column of the archive for every batch.
// One query per chunk of messageChunk messages.
//
// Ids, accounts and conversations go into the query as tuples
// (clickhouse.GroupSet) for IN: 18.16 rejects `id IN [...]`, which is
// what a bound []string becomes, and has(array, id), which it does
// accept, scans the array for every row. Days go in as 'YYYY-MM-DD'
// strings through toDate (see dateLiteral).
func (a *Archive) Existing(ctx context.Context, msgs []relay.Message) (map[string]uint64, error) {
	found := make(map[string]uint64)
	for start := 0; start < len(msgs); start += messageChunk {
		chunk := msgs[start:min(start+messageChunk, len(msgs))]
		if err := a.existingChunk(ctx, chunk, found); err != nil {
			return nil, fmt.Errorf("archive: looking up %d messages (first %s): %w", len(msgs), msgs[0].ID, err)
		}
	}
	return found, nil
}

func (a *Archive) existingChunk(ctx context.Context, msgs []relay.Message, found map[string]uint64) error {
	var (
		ids, accounts, convs []any
		seenAccount          = map[string]bool{}
		seenConv             = map[relay.ConversationID]bool{}
		first, last          time.Time
	)
	for i, m := range msgs {
		ids = append(ids, m.ID)
		if !seenAccount[m.Account] {
			seenAccount[m.Account] = true
			accounts = append(accounts, m.Account)
		}
		if !seenConv[m.Conv] {
			seenConv[m.Conv] = true
			convs = append(convs, string(m.Conv))
		}
		// The day Insert files the message under, from the same clamped time.
		day := dayOf(storedTime(m.AcceptedAt))
		if i == 0 || day.Before(first) {
			first = day
		}
		if i == 0 || day.After(last) {
			last = day
		}
	}
	from := first.Add(-retrySkew)
	if from.Unix() < 0 {
		from = time.Unix(0, 0) // Date starts in 1970
	}
	to := last.Add(retrySkew)
	// argMax by accepted_ms picks the copy a merge would keep.
	rows, err := a.conn.Query(ctx, `SELECT id, argMax(seq, accepted_ms) FROM messages
		WHERE account IN ? AND conv IN ? AND day >= toDate(?) AND day <= toDate(?) AND id IN ?
		GROUP BY id`,
		clickhouse.GroupSet{Value: accounts}, clickhouse.GroupSet{Value: convs},
		dateLiteral(from), dateLiteral(to), clickhouse.GroupSet{Value: ids})
	if err != nil {
		return err
	}
	return scanIDSeqs(rows, found)
}

// scanIDSeqs adds the (id, seq) rows of an id lookup to found.
func scanIDSeqs(rows driver.Rows, found map[string]uint64) error {
	defer rows.Close()
	for rows.Next() {
		var (
			id  string
			seq uint64
		)
		if err := rows.Scan(&id, &seq); err != nil {
			return err
		}
		found[id] = seq
	}
	return rows.Err()
}

// Since returns up to limit messages of conv with Seq > after, in sequence
// order, one per id whatever copies a replay left behind (the copy with
// the latest accepted_ms, as a merge would keep). A limit <= 0 means no
// limit.
func (a *Archive) Since(ctx context.Context, conv relay.ConversationID, after uint64, limit int) ([]relay.Message, error) {
	q := `SELECT ` + messageColumns + ` FROM (
		SELECT ` + messageColumns + ` FROM messages
		WHERE conv = ? AND seq > ?
		ORDER BY id, accepted_ms DESC
		LIMIT 1 BY id
	) ORDER BY seq, id`
	args := []any{string(conv), after}
	if limit > 0 {
		q += ` LIMIT ?`
		args = append(args, limit)
	}
	msgs, err := a.queryMessages(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("archive: reading %s after seq %d: %w", conv, after, err)
	}
	return msgs, nil
}

// MaxSeq returns the highest sequence archived for conv, 0 if none. It is
// the maximum over every stored copy, so a sequencer resuming from it
// never hands out a number already used.
func (a *Archive) MaxSeq(ctx context.Context, conv relay.ConversationID) (uint64, error) {
	var seq uint64
	if err := a.conn.QueryRow(ctx, `SELECT max(seq) FROM messages WHERE conv = ?`, string(conv)).Scan(&seq); err != nil {
		return 0, fmt.Errorf("archive: max seq of %s: %w", conv, err)
	}
	return seq, nil
}

// queryMessages runs a query selecting messageColumns and decodes the rows.
func (a *Archive) queryMessages(ctx context.Context, q string, args ...any) ([]relay.Message, error) {
	rows, err := a.conn.Query(ctx, q, args...)
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

func scanMessage(rows driver.Rows) (relay.Message, error) {
	return scanMessageWith(rows)
}

// scanMessageWith decodes a row of messageColumns followed by extra
// columns, scanned into extra.
func scanMessageWith(rows driver.Rows, extra ...any) (relay.Message, error) {
	var (
		m                 relay.Message
		conv, dir, kind   string
		attrs             string
		raw               []byte
		created, accepted time.Time
		acceptedMS        uint64
		day               time.Time
	)
	dest := append([]any{
		&m.ID, &m.Account, &m.Client, &conv, &m.Seq,
		&dir, &kind, &m.WxMsgID, &m.Event, &m.EventKey,
		&m.Text, &m.MediaID, &attrs, &raw,
		&created, &accepted, &acceptedMS, &m.Employee, &day,
		&m.Hash, &m.BatchID,
	}, extra...)
	if err := rows.Scan(dest...); err != nil {
		return relay.Message{}, err
	}
	m.Conv = relay.ConversationID(conv)
	m.Direction = relay.Direction(dir)
	m.Kind = relay.Kind(kind)
	var err error
	if m.Attrs, err = relay.DecodeAttrs(attrs); err != nil {
		return relay.Message{}, fmt.Errorf("message %s: %w", m.ID, err)
	}
	if len(raw) > 0 {
		m.Raw = raw
	}
	if created.Unix() > 0 {
		m.CreatedAt = created.UTC()
	}
	// accepted_ms keeps the milliseconds accepted_at cannot.
	if acceptedMS > 0 {
		m.AcceptedAt = time.UnixMilli(int64(acceptedMS)).UTC()
	} else if accepted.Unix() > 0 {
		m.AcceptedAt = accepted.UTC()
	}
	return m, nil
}
