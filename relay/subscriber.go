package relay

import (
	"context"
	"errors"
	"iter"
	"log/slog"
	"sync/atomic"
	"time"
)

// Subscriber keeps one subscription to the bus alive for a worker (the
// console hub, the bot, the lexicon watcher): it subscribes, hands every
// event to the handler, and subscribes again with backoff whenever
// subscribing fails or the subscription ends, until ctx is done. What a
// worker misses meanwhile is in the archive, which every reader catches
// up from.
type Subscriber struct {
	// Name says whose subscription this is, in logs and readiness.
	Name string
	Bus  Bus
	Log  *slog.Logger
	// RetryMin and RetryMax bound the backoff (100ms, 5s).
	RetryMin, RetryMax time.Duration

	up atomic.Bool
}

// errNotSubscribed is what Check says while there is no subscription.
var errNotSubscribed = errors.New("not subscribed to the bus")

// Run subscribes and calls handle for every event, one at a time, until
// ctx is done; it returns nil then. It never gives up on its own.
func (s *Subscriber) Run(ctx context.Context, handle func(Event)) error {
	for e := range s.Events(ctx) {
		handle(e)
	}
	return nil
}

// Events yields the bus's events, in the caller's goroutine, until ctx
// is done: it subscribes, and subscribes again with backoff whenever
// subscribing fails or the subscription ends. It never gives up on its
// own.
func (s *Subscriber) Events(ctx context.Context) iter.Seq[Event] {
	return func(yield func(Event) bool) {
		log := s.Log
		if log == nil {
			log = slog.New(slog.DiscardHandler)
		}
		minWait, maxWait := s.RetryMin, s.RetryMax
		if minWait <= 0 {
			minWait = 100 * time.Millisecond
		}
		if maxWait <= 0 {
			maxWait = 5 * time.Second
		}
		wait := minWait
		for ctx.Err() == nil {
			events, err := s.Bus.Subscribe(ctx)
			if err != nil {
				log.Warn("subscribing to the bus", "subscriber", s.Name, "err", err, "retry_in", wait)
				if sleep(ctx, wait) != nil {
					return
				}
				wait = min(2*wait, maxWait)
				continue
			}
			s.up.Store(true)
			wait = minWait
			for e := range events {
				if !yield(e) {
					s.up.Store(false)
					return
				}
			}
			s.up.Store(false)
			if ctx.Err() == nil {
				log.Warn("bus subscription ended; subscribing again", "subscriber", s.Name)
			}
		}
	}
}

// Check returns nil while the subscription is up: a readiness check.
func (s *Subscriber) Check() error {
	if s.up.Load() {
		return nil
	}
	return errNotSubscribed
}
