package console

import "sync"

// sendQueue is a connection's bounded queue of work for its writer. It
// holds memory only while items wait: most sockets are idle, and a
// channel of the whole length, allocated with each (6 KB at 256 items),
// was a fifth of an idle socket's cost (docs/performance.md, target 5).
type sendQueue struct {
	mu    sync.Mutex
	items []outItem
	limit int
	// ready has a token while items wait (one token for any number).
	ready chan struct{}
}

func newSendQueue(limit int) *sendQueue {
	return &sendQueue{limit: limit, ready: make(chan struct{}, 1)}
}

// push adds it and reports whether it fit: false when limit items wait.
func (q *sendQueue) push(it outItem) bool {
	q.mu.Lock()
	if len(q.items) >= q.limit {
		q.mu.Unlock()
		return false
	}
	q.items = append(q.items, it)
	q.mu.Unlock()
	q.again()
	return true
}

// again makes ready say that items wait (a writer that stops before the
// queue is empty calls it).
func (q *sendQueue) again() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// pop takes the oldest waiting item, if any. An emptied queue lets its
// backing array go.
func (q *sendQueue) pop() (outItem, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 {
		return outItem{}, false
	}
	it := q.items[0]
	q.items[0] = outItem{}
	q.items = q.items[1:]
	if len(q.items) == 0 {
		q.items = nil
	}
	return it, true
}
