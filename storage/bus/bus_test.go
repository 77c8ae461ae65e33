package bus

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// testedBus is what the conformance suite needs of a bus.
type testedBus interface {
	relay.Bus
	Dropped() uint64
}

// busFactory returns n buses sharing one channel, as n relay instances
// would; for the memory bus, the same bus n times.
type busFactory func(t *testing.T, opts Options, n int) []testedBus

func TestBusRedis(t *testing.T) {
	t.Parallel()
	testBus(t, func(t *testing.T, opts Options, n int) []testedBus {
		prefix := testenv.UniqueName("wrtest") + ":"
		buses := make([]testedBus, n)
		for i := range buses {
			buses[i] = NewRedisBus(newTestClient(t), prefix, opts)
		}
		return buses
	})
}

func TestBusMemory(t *testing.T) {
	t.Parallel()
	testBus(t, func(t *testing.T, opts Options, n int) []testedBus {
		b := NewMemoryBus(opts)
		buses := make([]testedBus, n)
		for i := range buses {
			buses[i] = b
		}
		return buses
	})
}

// testBus is the contract of relay.Bus (see doc.go), run against every
// backend.
func testBus(t *testing.T, newBuses busFactory) {
	ctx := context.Background()
	conv := relay.Conversation("acct", "openid")

	t.Run("message round trip", func(t *testing.T) {
		t.Parallel()
		b := newBuses(t, Options{Logger: testenv.Logger(t)}, 1)[0]
		ch := subscribe(t, b)
		want := relay.Event{Type: relay.EventMessage, Conv: conv, Employee: "alice", Message: fullMessage()}
		if err := b.Publish(ctx, want); err != nil {
			t.Fatal(err)
		}
		got := receive(t, ch)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("received\n%#v\nwant\n%#v", got.Message, want.Message)
		}
		bare := relay.Event{Type: relay.EventMessage, Conv: conv}
		if err := b.Publish(ctx, bare); err != nil {
			t.Fatal(err)
		}
		if got := receive(t, ch); !reflect.DeepEqual(got, bare) {
			t.Fatalf("received %#v, want %#v", got, bare)
		}
	})

	t.Run("receivers own their copy", func(t *testing.T) {
		t.Parallel()
		b := newBuses(t, Options{Logger: testenv.Logger(t)}, 1)[0]
		ch1, ch2 := subscribe(t, b), subscribe(t, b)
		sent := relay.Event{Type: relay.EventMessage, Conv: conv, Message: fullMessage()}
		if err := b.Publish(ctx, sent); err != nil {
			t.Fatal(err)
		}
		got1 := receive(t, ch1)
		got1.Message.Attrs["pic_url"] = "changed"
		got1.Message.Raw[0] = 'X'
		got2 := receive(t, ch2)
		if want := fullMessage(); !reflect.DeepEqual(got2.Message, want) || !reflect.DeepEqual(sent.Message, want) {
			t.Fatal("a receiver's change to its message reached another receiver or the publisher")
		}
	})

	t.Run("every subscriber in order", func(t *testing.T) {
		t.Parallel()
		buses := newBuses(t, Options{Logger: testenv.Logger(t)}, 2)
		subs := []<-chan relay.Event{subscribe(t, buses[0]), subscribe(t, buses[0]), subscribe(t, buses[1])}
		const n = 200
		var wg sync.WaitGroup
		for p, b := range buses {
			wg.Go(func() {
				for i := range n {
					e := relay.Event{Type: relay.EventMessage, Conv: conv, Employee: fmt.Sprint(p),
						Message: &relay.Message{Seq: uint64(i + 1)}}
					if err := b.Publish(ctx, e); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		for s, ch := range subs {
			last := map[string]uint64{}
			for range len(buses) * n {
				e := receive(t, ch)
				if want := last[e.Employee] + 1; e.Message.Seq != want {
					t.Fatalf("subscriber %d: publisher %s's event %d arrived after %d", s, e.Employee, e.Message.Seq, last[e.Employee])
				}
				last[e.Employee] = e.Message.Seq
			}
		}
		for _, b := range buses {
			if d := b.Dropped(); d != 0 {
				t.Errorf("%d events dropped", d)
			}
		}
	})

	t.Run("subscribe then publish is never lost", func(t *testing.T) {
		t.Parallel()
		buses := newBuses(t, Options{Logger: testenv.Logger(t)}, 2)
		for i := range 20 {
			ctx, cancel := context.WithCancel(ctx)
			ch, err := buses[0].Subscribe(ctx)
			if err != nil {
				t.Fatal(err)
			}
			e := relay.Event{Type: relay.EventMessage, Conv: conv, Message: &relay.Message{Seq: uint64(i)}}
			if err := buses[1].Publish(ctx, e); err != nil {
				t.Fatal(err)
			}
			if got := receive(t, ch); got.Message.Seq != uint64(i) {
				t.Fatalf("round %d: received %d", i, got.Message.Seq)
			}
			cancel()
			waitClosed(t, ch)
		}
	})

	t.Run("cancel closes the channel", func(t *testing.T) {
		t.Parallel()
		b := newBuses(t, Options{Logger: testenv.Logger(t)}, 1)[0]
		sctx, cancel := context.WithCancel(ctx)
		ch, err := b.Subscribe(sctx)
		if err != nil {
			t.Fatal(err)
		}
		other := subscribe(t, b)
		cancel()
		waitClosed(t, ch)
		// The bus and its other subscriptions carry on.
		if err := b.Publish(ctx, relay.Event{Type: relay.EventMessage, Conv: conv}); err != nil {
			t.Fatal(err)
		}
		receive(t, other)
		if _, err := b.Subscribe(sctx); err == nil {
			t.Fatal("Subscribe with a done ctx: no error")
		}
	})

	t.Run("slow consumer drops, never blocks", func(t *testing.T) {
		t.Parallel()
		const buffer, n = 4, 50
		b := newBuses(t, Options{Buffer: buffer, Logger: testenv.Logger(t)}, 1)[0]
		slow := subscribe(t, b)
		start := time.Now()
		for i := range n {
			e := relay.Event{Type: relay.EventMessage, Conv: conv, Message: &relay.Message{Seq: uint64(i + 1)}}
			if err := b.Publish(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("publishing to a stalled subscriber took %v", took)
		}
		testenv.Until(t, "the dropped count", func() bool { return b.Dropped() == n-buffer })
		for i := range buffer {
			if got := receive(t, slow); got.Message.Seq != uint64(i+1) {
				t.Fatalf("kept event %d has seq %d, want the oldest ones", i, got.Message.Seq)
			}
		}
		// Caught up: new events flow again.
		if err := b.Publish(ctx, relay.Event{Type: relay.EventMessage, Conv: conv, Message: &relay.Message{Seq: n + 1}}); err != nil {
			t.Fatal(err)
		}
		if got := receive(t, slow); got.Message.Seq != n+1 {
			t.Fatalf("after catching up, received seq %d, want %d", got.Message.Seq, n+1)
		}
		if d := b.Dropped(); d != n-buffer {
			t.Fatalf("Dropped = %d, want %d", d, n-buffer)
		}
	})
}

// fullMessage returns a message with every field set, including bytes
// that are not UTF-8 in Raw and a control character in Text.
func fullMessage() *relay.Message {
	return &relay.Message{
		ID:         relay.InboundID("acct", "openid", "24681357", 0, "", ""),
		Account:    "acct",
		Client:     "openid",
		Conv:       relay.Conversation("acct", "openid"),
		Seq:        7,
		Direction:  relay.Inbound,
		Kind:       relay.KindImage,
		WxMsgID:    "24681357",
		Event:      "subscribe",
		EventKey:   "qrscene_alice",
		Text:       "你好 \u0002 <b>&amp;</b>",
		MediaID:    "media-1",
		Attrs:      map[string]string{"pic_url": "http://mmbiz.qpic.cn/x", "format": "jpg", "": "empty key"},
		Raw:        []byte("<xml>\x00\xff\xfe\x02 not UTF-8</xml>"),
		CreatedAt:  time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		AcceptedAt: time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC),
		Employee:   "alice",
	}
}

// subscribe subscribes to b until the test ends, and then checks that the
// channel is closed.
func subscribe(t *testing.T, b relay.Bus) <-chan relay.Event {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := b.Subscribe(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		waitClosed(t, ch)
	})
	return ch
}

// receive returns the next event on ch, failing the test if none comes
// within a few seconds or ch is closed.
func receive(t *testing.T, ch <-chan relay.Event) relay.Event {
	t.Helper()
	select {
	case e, ok := <-ch:
		if !ok {
			t.Fatal("subscription closed")
		}
		return e
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5s")
	}
	panic("unreachable")
}

// waitClosed discards events until ch is closed, failing the test if it
// is not closed within a few seconds.
func waitClosed(t *testing.T, ch <-chan relay.Event) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-timeout:
			t.Error("subscription not closed within 5s of its ctx ending")
			return
		}
	}
}
