package bus

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"

	"github.com/wechat-relay/wechat-relay/relay"
)

var _ relay.Bus = (*MemoryBus)(nil)

// MemoryBus is a relay.Bus within one process, for the embedded mode.
// Publish delivers to every subscription before it returns, never
// blocking: a full subscription drops the event, as RedisBus does.
type MemoryBus struct {
	buffer  int
	log     *slog.Logger
	dropped atomic.Uint64

	// mu serialises publishers with each other and with closing a
	// subscription, so nothing is sent on a closed channel and each
	// subscriber sees one publisher's events in order.
	mu   sync.Mutex
	subs map[*subscriber]struct{}
}

// NewMemoryBus returns a bus with no subscriptions.
func NewMemoryBus(opts Options) *MemoryBus {
	return &MemoryBus{
		buffer: opts.buffer(),
		log:    opts.logger(),
		subs:   make(map[*subscriber]struct{}),
	}
}

// Dropped returns how many events this bus has dropped, over all its
// subscriptions, because their consumers were behind.
func (b *MemoryBus) Dropped() uint64 { return b.dropped.Load() }

// Publish hands a copy of e to every subscription.
func (b *MemoryBus) Publish(ctx context.Context, e relay.Event) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("bus: publish %s event of %s: %w", e.Type, e.Conv, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		s.deliver(cloneEvent(e))
	}
	return nil
}

// Subscribe registers a subscription; its channel is closed when ctx is
// done.
func (b *MemoryBus) Subscribe(ctx context.Context) (<-chan relay.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("bus: subscribe: %w", err)
	}
	s := newSubscriber(b.buffer, &b.dropped, b.log)
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	context.AfterFunc(ctx, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		delete(b.subs, s)
		close(s.ch)
	})
	return s.ch, nil
}

// cloneEvent gives a subscriber its own message, so no two consumers (or
// the publisher) share the Attrs map or the Raw bytes.
func cloneEvent(e relay.Event) relay.Event {
	if e.Message != nil {
		m := *e.Message
		m.Attrs = maps.Clone(m.Attrs)
		m.Raw = bytes.Clone(m.Raw)
		e.Message = &m
	}
	return e
}
