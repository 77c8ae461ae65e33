package bus

import (
	"log/slog"
	"sync/atomic"

	"github.com/wechat-relay/wechat-relay/relay"
)

// subscriber is one subscription's bounded queue. Only one goroutine at
// a time may call deliver: the Redis forwarder, or a MemoryBus publisher
// holding the bus lock.
type subscriber struct {
	ch       chan relay.Event
	total    *atomic.Uint64 // the bus' drop counter
	log      *slog.Logger
	dropping bool   // the last event was dropped
	dropped  uint64 // dropped in the current episode
}

func newSubscriber(buffer int, total *atomic.Uint64, log *slog.Logger) *subscriber {
	return &subscriber{ch: make(chan relay.Event, buffer), total: total, log: log}
}

// deliver queues e without blocking, or drops it if the queue is full.
// It logs when a subscriber starts falling behind and when it catches
// up, not once per event.
func (s *subscriber) deliver(e relay.Event) {
	select {
	case s.ch <- e:
		if s.dropping {
			s.log.Info("bus: subscriber caught up; the events it missed are in the archive",
				"dropped", s.dropped)
			s.dropping, s.dropped = false, 0
		}
	default:
		s.total.Add(1)
		s.dropped++
		if !s.dropping {
			s.dropping = true
			s.log.Warn("bus: subscriber is behind, dropping events until it catches up",
				"buffer", cap(s.ch), "conv", e.Conv)
		}
	}
}
