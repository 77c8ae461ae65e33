package bus

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/redis/go-redis/v9"

	"github.com/wechat-relay/wechat-relay/relay"
)

var (
	_ relay.Bus            = (*RedisBus)(nil)
	_ relay.BatchPublisher = (*RedisBus)(nil)
)

// RedisBus is a relay.Bus over Redis pub/sub, shared by every relay
// instance using the same Redis and prefix.
type RedisBus struct {
	rdb     redis.UniversalClient
	channel string
	buffer  int
	log     *slog.Logger
	dropped atomic.Uint64
}

// NewRedisBus returns a bus publishing on the channel <prefix>bus of rdb
// (prefix DefaultPrefix if empty).
func NewRedisBus(rdb redis.UniversalClient, prefix string, opts Options) *RedisBus {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return &RedisBus{
		rdb:     rdb,
		channel: prefix + "bus",
		buffer:  opts.buffer(),
		log:     opts.logger().With("channel", prefix+"bus"),
	}
}

// Dropped returns how many events this bus has dropped, over all its
// subscriptions, because their consumers were behind.
func (b *RedisBus) Dropped() uint64 { return b.dropped.Load() }

// Publish sends e to every subscription of every instance. It returns
// once Redis has accepted it; whether anyone was listening is not an
// error.
func (b *RedisBus) Publish(ctx context.Context, e relay.Event) error {
	data, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("bus: encode %s event of %s: %w", e.Type, e.Conv, err)
	}
	if err := b.rdb.Publish(ctx, b.channel, data).Err(); err != nil {
		return fmt.Errorf("bus: publish %s event of %s to redis: %w", e.Type, e.Conv, err)
	}
	return nil
}

// PublishBatch publishes events in order in one pipelined round trip
// (relay.BatchPublisher).
func (b *RedisBus) PublishBatch(ctx context.Context, events []relay.Event) error {
	if len(events) == 0 {
		return nil
	}
	datas := make([][]byte, len(events))
	for i, e := range events {
		data, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("bus: encode %s event of %s: %w", e.Type, e.Conv, err)
		}
		datas[i] = data
	}
	_, err := b.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, data := range datas {
			p.Publish(ctx, b.channel, data)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("bus: publish %d events to redis: %w", len(events), err)
	}
	return nil
}

// Subscribe subscribes to the bus and returns once Redis has confirmed
// the subscription. The channel is closed when ctx is done; it stays
// open while go-redis reconnects after a Redis outage.
func (b *RedisBus) Subscribe(ctx context.Context) (<-chan relay.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("bus: subscribe to %s: %w", b.channel, err)
	}
	ps := b.rdb.Subscribe(ctx, b.channel)
	// Closing the PubSub is what ends a subscription: it interrupts a
	// pending read, including the wait for the confirmation below.
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
	if err := b.confirm(ctx, ps); err != nil {
		stop()
		_ = ps.Close()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("bus: subscribe to %s: %w", b.channel, err)
	}
	sub := newSubscriber(b.buffer, &b.dropped, b.log)
	go b.forward(ctx, ps.Channel(), sub)
	return sub.ch, nil
}

// confirm waits for Redis' reply to SUBSCRIBE: from then on, every
// message published on the channel is queued for this connection.
func (b *RedisBus) confirm(ctx context.Context, ps *redis.PubSub) error {
	for {
		reply, err := ps.ReceiveTimeout(ctx, SubscribeTimeout)
		if err != nil {
			return err
		}
		switch r := reply.(type) {
		case *redis.Subscription:
			if r.Kind == "subscribe" && r.Channel == b.channel {
				return nil
			}
		case *redis.Pong:
		default:
			return fmt.Errorf("unexpected %T before the subscription was confirmed", reply)
		}
	}
}

// forward decodes messages from go-redis' channel into sub until ctx is
// done. It then drains go-redis' channel until go-redis closes it (the
// AfterFunc closed the PubSub), so go-redis' goroutine has ended too,
// and closes sub's channel last.
func (b *RedisBus) forward(ctx context.Context, msgs <-chan *redis.Message, sub *subscriber) {
	defer close(sub.ch)
	defer func() {
		for range msgs {
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-msgs:
			// When both are ready select picks either: ctx wins.
			if !ok || ctx.Err() != nil {
				return
			}
			b.handle(m, sub)
		}
	}
}

// handle decodes one message and queues it for sub.
func (b *RedisBus) handle(m *redis.Message, sub *subscriber) {
	var e relay.Event
	if err := json.Unmarshal([]byte(m.Payload), &e); err != nil {
		// The payload may hold a message body: log its size only.
		b.log.Error("bus: dropping an undecodable event", "bytes", len(m.Payload), "err", err)
		return
	}
	sub.deliver(e)
}
