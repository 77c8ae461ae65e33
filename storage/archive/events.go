package archive

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/wechat-relay/wechat-relay/relay"
)

// eventColumns is the column list of every INSERT into and SELECT from
// events. type holds the relay.DeliveryState; hash and batch_id (since
// 0003) are the sealing columns (relay/seal.go).
const eventColumns = `id, message_id, account, conv, type, errcode, errmsg, at, at_ms, day, hash, batch_id`

// stateOrder ranks delivery states that share a millisecond, lowest first:
// the one later in a delivery's life wins a tie, so that a "sending" and
// its outcome archived within one millisecond read as the outcome, and
// "sent" (WeChat took the message) outranks everything. A state not listed
// (pending, which is normally implicit, or one this version does not
// know) ranks below all of them. The embedded archive uses the same order,
// and storage/archivetest pins it down.
var stateOrder = []relay.DeliveryState{
	relay.DeliverySending, relay.DeliveryUnknown, relay.DeliveryRefused, relay.DeliveryFailed, relay.DeliverySent,
}

// stateRank is the SQL of a state's rank in stateOrder: 1-based, 0 for a
// state not listed (what indexOf returns when it finds nothing).
var stateRank = `indexOf([` + quoteStates(stateOrder) + `], type)`

// finalStates lists, as SQL, the states after which nothing more happens
// to a message (relay.DeliveryState.Final).
var finalStates = quoteStates([]relay.DeliveryState{
	relay.DeliverySent, relay.DeliveryFailed, relay.DeliveryUnknown, relay.DeliveryRefused,
})

// uncountedStates lists, as SQL, the states of outbound messages that did
// not reach the client and so do not use WeChat's per-interaction quota.
var uncountedStates = quoteStates([]relay.DeliveryState{relay.DeliveryFailed, relay.DeliveryRefused})

// latestEventsOrder orders events so that LIMIT 1 BY message_id keeps each
// message's latest: by at_ms, then by stateOrder, then by id, so that the
// answer is the same on every read whatever the order of parts.
var latestEventsOrder = `ORDER BY message_id, at_ms DESC, ` + stateRank + ` DESC, id DESC`

// quoteStates writes states as a comma-separated list of SQL strings. They
// are the relay's own constants, plain ASCII words, but quoted properly all
// the same.
func quoteStates(states []relay.DeliveryState) string {
	q := make([]string, len(states))
	for i, s := range states {
		q[i] = "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(string(s)) + "'"
	}
	return strings.Join(q, ", ")
}

// eventSkew is how far an event's day may precede the day of the message
// it belongs to (clocks of two relay instances disagreeing). Readers that
// start from messages accepted after some time look at the events of the
// days from then, less eventSkew: not at every event ever archived.
const eventSkew = 24 * time.Hour

// AppendEvents writes evs in one batch and returns once ClickHouse has
// acknowledged it (the page cache, as for Insert).
//
// Idempotent by event id, the way Insert is by message id: appending an
// id again adds a physical copy that ReplacingMergeTree(at_ms) collapses
// when parts merge, and every reader collapses copies before that. An id
// is one event: appending it again with other content is a caller's bug,
// and the copy with the latest at_ms is the one that stays (the embedded
// archive keeps the first).
//
// Nothing is sent if any event lacks an ID, a MessageID, a State or an At
// (an event without a time cannot be ordered), or has an ErrCode outside
// Int32. After an error, append the same events again.
func (a *Archive) AppendEvents(ctx context.Context, evs []relay.DeliveryEvent) error {
	if len(evs) == 0 {
		return nil
	}
	for i := range evs {
		if err := evs[i].Validate(); err != nil {
			return fmt.Errorf("archive: append events: event %d of %d: %w", i+1, len(evs), err)
		}
	}
	ctx = insertContext(ctx, batchOf(evs, func(e *relay.DeliveryEvent) string { return e.BatchID }))
	batch, err := a.conn.PrepareBatch(ctx, `INSERT INTO events (`+eventColumns+`)`)
	if err != nil {
		return fmt.Errorf("archive: append of %d events: preparing batch: %w", len(evs), err)
	}
	defer abortUnsent(batch)
	for i := range evs {
		e := &evs[i]
		at := a.clampTime(e.At, e.MessageID, "event "+e.ID)
		if err := batch.Append(
			e.ID, e.MessageID, e.Account, string(e.Conv), string(e.State),
			int32(e.ErrCode), e.ErrMsg, at, epochMillis(e.At), dayOf(at),
			e.Hash, e.BatchID,
		); err != nil {
			return fmt.Errorf("archive: append events: appending event %s: %w", e.ID, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("archive: append of %d events (first %s): %w", len(evs), evs[0].ID, err)
	}
	return nil
}

// LatestEvents returns, for each of messageIDs that has events, its latest
// event: the one with the latest At (to the millisecond), of those the
// latest in stateOrder (sending < unknown < refused < failed < sent; any
// other state below sending), of those the greatest id. The map is never
// nil; ids without events are absent.
//
// The ids are not a prefix of events' sort key (account, conv, id), so
// this reads the message_id column of every part of events; events are
// few beside messages (a handful per outbound message), and callers ask
// about a few messages at a time, in chunks of idChunk.
func (a *Archive) LatestEvents(ctx context.Context, messageIDs []string) (map[string]relay.DeliveryEvent, error) {
	found := make(map[string]relay.DeliveryEvent)
	for start := 0; start < len(messageIDs); start += idChunk {
		chunk := messageIDs[start:min(start+idChunk, len(messageIDs))]
		set := make([]any, len(chunk))
		for i, id := range chunk {
			set[i] = id
		}
		if err := a.latestChunk(ctx, set, found); err != nil {
			return nil, fmt.Errorf("archive: latest events of %d messages: %w", len(messageIDs), err)
		}
	}
	return found, nil
}

func (a *Archive) latestChunk(ctx context.Context, ids []any, found map[string]relay.DeliveryEvent) error {
	rows, err := a.conn.Query(ctx, `SELECT `+eventColumns+` FROM events
		WHERE message_id IN ? `+latestEventsOrder+` LIMIT 1 BY message_id`,
		clickhouse.GroupSet{Value: ids})
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return err
		}
		found[e.MessageID] = e
	}
	return rows.Err()
}

// scanEvent decodes a row of eventColumns.
func scanEvent(rows driver.Rows) (relay.DeliveryEvent, error) {
	var (
		e           relay.DeliveryEvent
		conv, state string
		errcode     int32
		at, day     time.Time
		atMS        uint64
	)
	if err := rows.Scan(&e.ID, &e.MessageID, &e.Account, &conv, &state, &errcode, &e.ErrMsg, &at, &atMS, &day, &e.Hash, &e.BatchID); err != nil {
		return relay.DeliveryEvent{}, err
	}
	e.Conv = relay.ConversationID(conv)
	e.State = relay.DeliveryState(state)
	e.ErrCode = int(errcode)
	if atMS > 0 {
		e.At = time.UnixMilli(int64(atMS)).UTC()
	} else if at.Unix() > 0 {
		e.At = at.UTC()
	}
	return e, nil
}

// Unsettled returns archived outbound messages accepted after since whose
// latest event (as LatestEvents picks it) is not final: none yet (pending)
// or sending, or a state this version does not know. Oldest first (by
// acceptance, then id), at most limit (limit <= 0: no limit), one message
// per id as in Since.
//
// It reads the partitions of messages from since's day on and the events
// of the same days less eventSkew; callers pass a recent since (WeChat's
// 48-hour window), which keeps both small.
func (a *Archive) Unsettled(ctx context.Context, since time.Time, limit int) ([]relay.Message, error) {
	sinceMS := epochMillis(since)
	from := time.UnixMilli(int64(sinceMS))
	q := `SELECT ` + messageColumns + ` FROM (
		SELECT ` + messageColumns + ` FROM messages
		WHERE day >= toDate(?) AND accepted_ms > ? AND direction = ?
		  AND id NOT IN (
			SELECT message_id FROM (
				SELECT message_id, type FROM events
				WHERE day >= toDate(?)
				` + latestEventsOrder + `
				LIMIT 1 BY message_id
			) WHERE type IN (` + finalStates + `)
		  )
		ORDER BY id, accepted_ms DESC
		LIMIT 1 BY id
	) ORDER BY accepted_ms, id`
	args := []any{dateLiteral(from), sinceMS, string(relay.Outbound), dateLiteral(daysBefore(from, eventSkew))}
	if limit > 0 {
		q += ` LIMIT ?`
		args = append(args, limit)
	}
	msgs, err := a.queryMessages(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("archive: listing unsettled outbound messages since %s: %w", since.UTC().Format(time.RFC3339), err)
	}
	return msgs, nil
}

// daysBefore is t less d, but not before 1970, where Date starts.
func daysBefore(t time.Time, d time.Duration) time.Time {
	if u := t.Add(-d); u.Unix() > 0 {
		return u
	}
	return time.Unix(0, 0)
}
