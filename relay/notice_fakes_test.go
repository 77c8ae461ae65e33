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

// noticeLookup is a NoticeStore made of the memory archive and an event
// log, as both archives are one in production.
type noticeLookup struct {
	*memArchive
	events EventLog
}

func (l noticeLookup) LatestEvents(ctx context.Context, ids []string) (map[string]DeliveryEvent, error) {
	return l.events.LatestEvents(ctx, ids)
}
