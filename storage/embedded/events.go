package embedded

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
)

// stateOrder ranks delivery states that share a millisecond, lowest first:
// the one later in a delivery's life wins a tie, so that a "sending" and
// its outcome archived within one millisecond read as the outcome, and
// "sent" (WeChat took the message) outranks everything. A state not listed
// (pending, which is normally implicit, or one this version does not
// know) ranks below all of them. The ClickHouse archive uses the same
// order, and storage/archivetest pins it down.
var stateOrder = []relay.DeliveryState{
	relay.DeliverySending, relay.DeliveryUnknown, relay.DeliveryRefused, relay.DeliveryFailed, relay.DeliverySent,
}

// stateRank returns the SQL of the rank in stateOrder of the state in
// column col: 1-based, 0 for a state not listed.
func stateRank(col string) string {
	var b strings.Builder
	b.WriteString("CASE " + col)
	for i, s := range stateOrder {
		fmt.Fprintf(&b, " WHEN %s THEN %d", quoteState(s), i+1)
	}
	b.WriteString(" ELSE 0 END")
	return b.String()
}

// latestEventType is the SQL of the state of the latest event of the
// message m.id (NULL if it has none), in the order LatestEvents uses.
var latestEventType = `(SELECT e.type FROM events AS e WHERE e.message_id = m.id
	ORDER BY e.at_ms DESC, ` + stateRank("e.type") + ` DESC, e.id DESC LIMIT 1)`

// finalStates lists, as SQL, the states after which nothing more happens
// to a message (relay.DeliveryState.Final).
var finalStates = quoteStates(relay.DeliverySent, relay.DeliveryFailed, relay.DeliveryUnknown, relay.DeliveryRefused)

// uncountedStates lists, as SQL, the states of outbound messages that did
// not reach the client and so do not use WeChat's per-interaction quota.
var uncountedStates = quoteStates(relay.DeliveryFailed, relay.DeliveryRefused)

// quoteState writes s as an SQL string. States are the relay's own
// constants, plain ASCII words, but quoted properly all the same.
func quoteState(s relay.DeliveryState) string {
	return "'" + strings.ReplaceAll(string(s), "'", "''") + "'"
}

func quoteStates(states ...relay.DeliveryState) string {
	q := make([]string, len(states))
	for i, s := range states {
		q[i] = quoteState(s)
	}
	return strings.Join(q, ", ")
}

// AppendEvents commits evs in one transaction and returns once it is
// durable (fsynced), like Insert. All or nothing: a batch holding an
// event without an ID, a MessageID, a State or an At (an event without a
// time cannot be ordered), or with an ErrCode beyond 32 bits, is refused
// whole.
//
// Idempotent by event id: an id already archived, or repeated within evs,
// is skipped (ON CONFLICT (id) DO NOTHING) and the archived copy kept. An
// id is one event: appending it again with other content is a caller's
// bug (the ClickHouse archive keeps the copy with the latest At).
func (a *Archive) AppendEvents(ctx context.Context, evs []relay.DeliveryEvent) error {
	if len(evs) == 0 {
		return nil
	}
	for i := range evs {
		if err := evs[i].Validate(); err != nil {
			return fmt.Errorf("embedded: append events: event %d of %d: %w", i+1, len(evs), err)
		}
	}
	err := a.write(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO events (`+eventColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO NOTHING`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, e := range evs {
			if _, err := stmt.ExecContext(ctx, e.ID, e.MessageID, e.Account, string(e.Conv), string(e.State),
				int64(e.ErrCode), e.ErrMsg, e.At.UnixMilli(), e.Hash, e.BatchID); err != nil {
				return fmt.Errorf("event %s: %w", e.ID, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("embedded: append of %d events (first %s): %w", len(evs), evs[0].ID, err)
	}
	return nil
}

// LatestEvents returns, for each of messageIDs that has events, its latest
// event: the one with the latest At (to the millisecond), of those the
// latest in stateOrder (sending < unknown < refused < failed < sent; any
// other state below sending), of those the greatest id. The map is never
// nil; ids without events are absent.
func (a *Archive) LatestEvents(ctx context.Context, messageIDs []string) (map[string]relay.DeliveryEvent, error) {
	found := make(map[string]relay.DeliveryEvent)
	for start := 0; start < len(messageIDs); start += idChunk {
		chunk := messageIDs[start:min(start+idChunk, len(messageIDs))]
		args := make([]any, len(chunk))
		for i, id := range chunk {
			args[i] = id
		}
		if err := a.latestChunk(ctx, args, found); err != nil {
			return nil, fmt.Errorf("embedded: latest events of %d messages: %w", len(messageIDs), err)
		}
	}
	return found, nil
}

func (a *Archive) latestChunk(ctx context.Context, ids []any, found map[string]relay.DeliveryEvent) error {
	rows, err := a.db.QueryContext(ctx, `SELECT `+eventColumns+` FROM (
			SELECT *, ROW_NUMBER() OVER (PARTITION BY message_id
				ORDER BY at_ms DESC, `+stateRank("type")+` DESC, id DESC) AS latest
			FROM events WHERE message_id IN `+placeholders(len(ids))+`
		) WHERE latest = 1`, ids...)
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

// eventColumns is the column list of every INSERT into and SELECT from
// events; hash and batch_id (since 0003) are the sealing columns.
const eventColumns = `id, message_id, account, conv, type, errcode, errmsg, at_ms, hash, batch_id`

// scanEvent decodes a row of eventColumns.
func scanEvent(rows *sql.Rows) (relay.DeliveryEvent, error) {
	var (
		e           relay.DeliveryEvent
		conv, state string
		errcode     int64
		atMS        int64
	)
	if err := rows.Scan(&e.ID, &e.MessageID, &e.Account, &conv, &state, &errcode, &e.ErrMsg, &atMS, &e.Hash, &e.BatchID); err != nil {
		return relay.DeliveryEvent{}, err
	}
	e.Conv = relay.ConversationID(conv)
	e.State = relay.DeliveryState(state)
	e.ErrCode = int(errcode)
	e.At = time.UnixMilli(atMS).UTC()
	return e, nil
}

// Unsettled returns archived outbound messages accepted after since whose
// latest event (as LatestEvents picks it) is not final: none yet (pending)
// or sending, or a state this version does not know. Oldest first (by
// acceptance, then id), at most limit (limit <= 0: no limit).
func (a *Archive) Unsettled(ctx context.Context, since time.Time, limit int) ([]relay.Message, error) {
	msgs, err := a.queryMessages(ctx, `SELECT `+messageColumns+` FROM messages AS m
		WHERE m.direction = ? AND m.accepted_ms > ?
		  AND COALESCE(`+latestEventType+`, '') NOT IN (`+finalStates+`)
		ORDER BY m.accepted_ms, m.id
		LIMIT ?`,
		string(relay.Outbound), since.UnixMilli(), sqlLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("embedded: listing unsettled outbound messages since %s: %w", since.UTC().Format(time.RFC3339), err)
	}
	return msgs, nil
}
