package embedded

import (
	"context"
	"fmt"

	"github.com/wechat-relay/wechat-relay/relay"
)

// ArchivedIDs reports which of ids are archived as messages of conv, with
// their sequence, whenever they were accepted (relay.NoticeStore): a
// primary-key lookup per id.
func (a *Archive) ArchivedIDs(ctx context.Context, conv relay.ConversationID, ids []string) (map[string]uint64, error) {
	found := make(map[string]uint64)
	for start := 0; start < len(ids); start += idChunk {
		chunk := ids[start:min(start+idChunk, len(ids))]
		args := make([]any, 0, len(chunk)+1)
		args = append(args, string(conv))
		for _, id := range chunk {
			args = append(args, id)
		}
		q := `SELECT id, seq FROM messages WHERE conv = ? AND id IN ` + placeholders(len(chunk))
		if err := a.existingChunk(ctx, q, args, found); err != nil {
			return nil, fmt.Errorf("embedded: looking up %d ids in %s (first %s): %w", len(ids), conv, ids[0], err)
		}
	}
	return found, nil
}
