package relay

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// flakyBus refuses its first subscriptions, as a Redis that is down
// when the relay starts, then works like scanBus.
type flakyBus struct {
	*scanBus
	refuse atomic.Int32
}

func (b *flakyBus) Subscribe(ctx context.Context) (<-chan Event, error) {
	if b.refuse.Add(-1) >= 0 {
		return nil, errors.New("dial tcp 127.0.0.1:6379: connect: connection refused")
	}
	return b.scanBus.Subscribe(ctx)
}

// The lexicon watcher used to end on its first failed subscription, and
// no hit was alerted again until a restart: it retries instead.
func TestLexiconWatcherRetriesItsSubscription(t *testing.T) {
	a, al := newScanArchive(), newAlerts()
	bus := &flakyBus{scanBus: &scanBus{ch: make(chan Event)}}
	bus.refuse.Store(3)
	w := &LexiconWatcher{Lexicon: scanLexicon(t), Bus: bus, Store: a, Alert: al.alert}
	w.sub(nil).RetryMin, w.sub(nil).RetryMax = time.Millisecond, 5*time.Millisecond
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()

	m := scanMsg("m1", Inbound, "能保证收益吗", time.Now())
	if err := bus.Publish(ctx, Event{Type: EventMessage, Conv: m.Conv, Message: &m}); err != nil {
		t.Fatal(err)
	}
	al.wait(t, HitID("m1", "promise"))
	if err := w.Subscribed(); err != nil {
		t.Fatalf("Subscribed after the retries: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if w.Subscribed() == nil {
		t.Fatal("still reported subscribed after Run returned")
	}
}

// A subscription that ends (the channel closed under the worker) is
// made again; Check says so meanwhile.
func TestSubscriberResubscribes(t *testing.T) {
	subs := make(chan chan Event, 2)
	bus := busFunc(func(ctx context.Context) (<-chan Event, error) {
		ch := make(chan Event, 1)
		subs <- ch
		return ch, nil
	})
	s := &Subscriber{Name: "test", Bus: bus, RetryMin: time.Millisecond}
	if s.Check() == nil {
		t.Fatal("subscribed before Run")
	}
	got := make(chan string, 2)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go s.Run(ctx, func(e Event) { got <- string(e.Conv) })
	first := <-subs
	first <- Event{Conv: "a"}
	close(first) // the subscription ends
	second := <-subs
	second <- Event{Conv: "b"}
	for _, want := range []string{"a", "b"} {
		if c := <-got; c != want {
			t.Fatalf("event %q, want %q", c, want)
		}
	}
	if err := s.Check(); err != nil {
		t.Fatalf("Check on the second subscription: %v", err)
	}
}

type busFunc func(ctx context.Context) (<-chan Event, error)

func (f busFunc) Publish(context.Context, Event) error                { return nil }
func (f busFunc) Subscribe(ctx context.Context) (<-chan Event, error) { return f(ctx) }
