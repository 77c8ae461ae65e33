package relay

import "sync"

// OutboundQueue is where the pipeline's writer hands each archived
// outbound message (Deps.Outbound) and the Delivery's workers take them
// from: one queue per worker, each a share of the conversations, so
// that a conversation's messages leave in order. It also counts, for the
// Outbox's window, the sends accepted and not archived yet.
//
// Its methods may be called from any goroutine.
type OutboundQueue struct {
	shares []chan Message

	mu       sync.Mutex
	inFlight map[string]bool // message ids queued or being sent here
	// spooled holds, per conversation, the sends accepted here that the
	// archive does not show yet: the window's count must include them.
	spooled map[ConversationID]map[string]bool
	// unspooled counts removals from spooled, so a count can tell that a
	// send moved into the archive while it was reading.
	unspooled uint64
}

var _ OutboundSink = (*OutboundQueue)(nil)

// NewOutboundQueue returns a queue for cfg.Workers workers.
func NewOutboundQueue(cfg OutboxConfig) *OutboundQueue {
	q := &OutboundQueue{inFlight: map[string]bool{}, spooled: map[ConversationID]map[string]bool{}}
	for range cfg.withDefaults().Workers {
		q.shares = append(q.shares, make(chan Message, 1024))
	}
	return q
}

// Archived is called by the pipeline as soon as m is inserted: from then
// on the archive counts it for the window, so the spool count stops.
func (q *OutboundQueue) Archived(m Message) { q.unspool(m) }

// Deliver is called by the pipeline for each archived outbound message
// (and by the scan for one a crash left unsent): it queues m for the
// worker of its share of the conversations, unless it is queued already.
func (q *OutboundQueue) Deliver(m Message) {
	q.unspool(m) // the archive counts it from now on
	q.mu.Lock()
	if q.inFlight[m.ID] {
		q.mu.Unlock()
		return
	}
	q.inFlight[m.ID] = true
	q.mu.Unlock()
	select {
	case q.shares[int(convHash(m.Conv)%uint32(len(q.shares)))] <- m:
	default:
		// Full: the next scan of the archive finds it.
		q.done(m.ID)
	}
}

// done says a worker is through with id.
func (q *OutboundQueue) done(id string) {
	q.mu.Lock()
	delete(q.inFlight, id)
	q.mu.Unlock()
}

// busy reports whether id is queued or being sent here.
func (q *OutboundQueue) busy(id string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.inFlight[id]
}

// spooling counts m, accepted and not archived yet, for its window.
func (q *OutboundQueue) spooling(m Message) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.spooled[m.Conv] == nil {
		q.spooled[m.Conv] = map[string]bool{}
	}
	q.spooled[m.Conv][m.ID] = true
}

// unspool forgets a send counted as spooled.
func (q *OutboundQueue) unspool(m Message) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.spooled[m.Conv][m.ID] {
		q.unspooled++
	}
	delete(q.spooled[m.Conv], m.ID)
	if len(q.spooled[m.Conv]) == 0 {
		delete(q.spooled, m.Conv)
	}
}

// spooledIn returns how many sends of conv are counted as spooled, and
// how many removals there were so far.
func (q *OutboundQueue) spooledIn(conv ConversationID) (removals uint64, n int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.unspooled, len(q.spooled[conv])
}
