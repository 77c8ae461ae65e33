package relay

import "context"

// ArchivedIDs makes memArchive a NoticeStore's archive half: the ids of
// conv among ids, whenever archived.
func (a *memArchive) ArchivedIDs(_ context.Context, conv ConversationID, ids []string) (map[string]uint64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.down {
		return nil, errDown
	}
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	out := map[string]uint64{}
	for _, r := range a.rows {
		if r.Conv == conv && want[r.ID] {
			out[r.ID] = r.Seq
		}
	}
	return out, nil
}
