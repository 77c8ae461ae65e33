package archive

import (
	"context"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/wechat-relay/wechat-relay/relay"
)

// ArchivedIDs reports which of ids are archived as messages of conv, with
// their sequence, whenever they were accepted (relay.NoticeStore). Unlike
// Existing it is not bounded to the days around an acceptance time, so it
// answers for an id whose time is not known: the relay's own messages,
// keyed by conversation (the compliance notice).
//
// The query stays within conv, which leads the sort key after the
// account, and looks the ids up in each monthly partition; copies of an
// id collapse as in Existing (argMax by accepted_ms).
func (a *Archive) ArchivedIDs(ctx context.Context, conv relay.ConversationID, ids []string) (map[string]uint64, error) {
	found := make(map[string]uint64)
	for start := 0; start < len(ids); start += idChunk {
		chunk := ids[start:min(start+idChunk, len(ids))]
		set := make([]any, len(chunk))
		for i, id := range chunk {
			set[i] = id
		}
		if err := a.archivedChunk(ctx, conv, set, found); err != nil {
			return nil, fmt.Errorf("archive: looking up %d ids in %s (first %s): %w", len(ids), conv, ids[0], err)
		}
	}
	return found, nil
}

func (a *Archive) archivedChunk(ctx context.Context, conv relay.ConversationID, ids []any, found map[string]uint64) error {
	rows, err := a.conn.Query(ctx, `SELECT id, argMax(seq, accepted_ms) FROM messages
		WHERE conv = ? AND id IN ?
		GROUP BY id`,
		string(conv), clickhouse.GroupSet{Value: ids})
	if err != nil {
		return err
	}
	return scanIDSeqs(rows, found)
}
