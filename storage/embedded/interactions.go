package embedded

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
)

// LastInteraction returns when the client of conv last interacted with the
// account — the latest AcceptedAt of its inbound messages that count as
// an interaction (relay.Message.IsInteraction, recorded when archived; see
// migrations/0002_interaction_events.sql for rows archived before), the
// zero time if none — and how many outbound messages of conv were accepted
// after that instant (strictly) and count against WeChat's
// per-interaction quota.
//
// An outbound message counts unless its latest event (as LatestEvents
// picks it) is failed or refused: those never reached the client. One that
// is sent, sending, unknown (it may have reached the client), or has no
// event yet (archived and about to be sent) counts, so the quota is never
// overrun by a burst of sends still in flight. With no interaction at all,
// every outbound message of conv is counted.
func (a *Archive) LastInteraction(ctx context.Context, conv relay.ConversationID) (time.Time, int, error) {
	var lastMS sql.NullInt64
	if err := a.db.QueryRowContext(ctx, `SELECT MAX(accepted_ms) FROM messages
		WHERE conv = ? AND direction = ? AND COALESCE(interaction, legacy_interaction) = 1`,
		string(conv), string(relay.Inbound)).Scan(&lastMS); err != nil {
		return time.Time{}, 0, fmt.Errorf("embedded: last interaction in %s: %w", conv, err)
	}
	var (
		last  time.Time
		after int64
	)
	if lastMS.Valid {
		last = time.UnixMilli(lastMS.Int64).UTC()
		after = lastMS.Int64
	}
	var sends int
	if err := a.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM messages AS m
		WHERE m.conv = ? AND m.direction = ? AND m.accepted_ms > ?
		  AND COALESCE(`+latestEventType+`, '') NOT IN (`+uncountedStates+`)`,
		string(conv), string(relay.Outbound), after).Scan(&sends); err != nil {
		return time.Time{}, 0, fmt.Errorf("embedded: counting sends in %s since its last interaction: %w", conv, err)
	}
	return last, sends, nil
}
