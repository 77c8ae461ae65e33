package archive

import (
	"context"
	"fmt"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
)

// LastInteraction returns when the client of conv last interacted with the
// account — the latest AcceptedAt of its inbound messages archived with
// interaction = 1 (relay.Message.IsInteraction), the zero time if none —
// and how many outbound messages of conv were accepted after that instant
// (strictly) and count against WeChat's per-interaction quota.
//
// An outbound message counts unless its latest event (as LatestEvents
// picks it) is failed or refused: those never reached the client. One that
// is sent, sending, unknown (it may have reached the client), or has no
// event yet (archived and about to be sent) counts, so the quota is never
// overrun by a burst of sends still in flight. With no interaction at all,
// every outbound message of conv is counted.
//
// Both queries stay within conv, which leads the sort key after the
// account, and the second within the days from the last interaction on
// (less eventSkew for events). Events are found by their own Conv, which
// the relay copies from their message: an event filed under another
// conversation is not seen, and its message counts — the safe side of
// the quota.
func (a *Archive) LastInteraction(ctx context.Context, conv relay.ConversationID) (time.Time, int, error) {
	var lastMS uint64
	if err := a.conn.QueryRow(ctx,
		`SELECT max(accepted_ms) FROM messages WHERE conv = ? AND direction = ? AND interaction = 1`,
		string(conv), string(relay.Inbound)).Scan(&lastMS); err != nil {
		return time.Time{}, 0, fmt.Errorf("archive: last interaction in %s: %w", conv, err)
	}
	var last time.Time
	if lastMS > 0 {
		last = time.UnixMilli(int64(lastMS)).UTC()
	}
	from := time.UnixMilli(int64(lastMS))
	var sends uint64
	if err := a.conn.QueryRow(ctx, `SELECT count() FROM (
			SELECT id FROM messages
			WHERE conv = ? AND direction = ? AND day >= toDate(?) AND accepted_ms > ?
			GROUP BY id
		) WHERE id NOT IN (
			SELECT message_id FROM (
				SELECT message_id, type FROM events
				WHERE conv = ? AND day >= toDate(?)
				`+latestEventsOrder+`
				LIMIT 1 BY message_id
			) WHERE type IN (`+uncountedStates+`)
		)`,
		string(conv), string(relay.Outbound), dateLiteral(from), lastMS,
		string(conv), dateLiteral(daysBefore(from, eventSkew))).Scan(&sends); err != nil {
		return time.Time{}, 0, fmt.Errorf("archive: counting sends in %s since its last interaction: %w", conv, err)
	}
	return last, int(sends), nil
}
