package archivetest

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
)

// The cases of relay.EventLog.

// outMessage returns an outbound text message of c with seq, accepted at
// base + offset.
func outMessage(c relay.ConversationID, seq uint64, offset time.Duration) relay.Message {
	m := message(c, seq)
	m.ID = fmt.Sprintf("out:%s:%d", c, seq)
	m.Direction = relay.Outbound
	m.WxMsgID = ""
	m.Raw = nil
	m.Text = fmt.Sprintf("回复 %d", seq)
	m.AcceptedAt = base.Add(offset)
	m.CreatedAt = m.AcceptedAt
	return m
}

// deliveryEvent returns the event of m reaching state at at, with the id
// the relay gives it.
func deliveryEvent(m relay.Message, state relay.DeliveryState, at time.Time) relay.DeliveryEvent {
	return relay.DeliveryEvent{
		ID:        m.ID + "/" + string(state),
		MessageID: m.ID,
		Account:   m.Account,
		Conv:      m.Conv,
		State:     state,
		At:        at,
	}
}

func appendEvents(t *testing.T, s Store, evs ...relay.DeliveryEvent) {
	t.Helper()
	if err := s.AppendEvents(testCtx(t), evs); err != nil {
		t.Fatalf("AppendEvents of %d events: %v", len(evs), err)
	}
}

func latestEvents(t *testing.T, s Store, ids ...string) map[string]relay.DeliveryEvent {
	t.Helper()
	got, err := s.LatestEvents(testCtx(t), ids)
	if err != nil {
		t.Fatalf("LatestEvents(%d ids): %v", len(ids), err)
	}
	if got == nil {
		t.Errorf("LatestEvents(%d ids) returned a nil map, want an empty one", len(ids))
	}
	return got
}

func unsettled(t *testing.T, s Store, after time.Time, limit int) []relay.Message {
	t.Helper()
	got, err := s.Unsettled(testCtx(t), after, limit)
	if err != nil {
		t.Fatalf("Unsettled(%s, %d): %v", after.Format(time.RFC3339Nano), limit, err)
	}
	return got
}

// eventDiff lists the fields in which got differs from want as the
// archive gives it back (At to the millisecond, in UTC).
func eventDiff(got, want relay.DeliveryEvent) []string {
	var d []string
	field := func(name string, g, w any) {
		if g != w {
			d = append(d, fmt.Sprintf("%s = %#v, want %#v", name, g, w))
		}
	}
	field("ID", got.ID, want.ID)
	field("MessageID", got.MessageID, want.MessageID)
	field("Account", got.Account, want.Account)
	field("Conv", got.Conv, want.Conv)
	field("State", got.State, want.State)
	field("ErrCode", got.ErrCode, want.ErrCode)
	field("ErrMsg", got.ErrMsg, want.ErrMsg)
	switch w := want.At.Truncate(time.Millisecond); {
	case !got.At.Equal(w):
		d = append(d, fmt.Sprintf("At = %s, want %s", got.At.Format(time.RFC3339Nano), w.UTC().Format(time.RFC3339Nano)))
	case got.At.Location() != time.UTC:
		d = append(d, fmt.Sprintf("At is in %s, want UTC", got.At.Location()))
	}
	return d
}

// sameLatest fails t unless got holds exactly want, one per message.
func sameLatest(t *testing.T, what string, got map[string]relay.DeliveryEvent, want ...relay.DeliveryEvent) {
	t.Helper()
	wantIDs := make([]string, len(want))
	for i, w := range want {
		wantIDs[i] = w.MessageID + " → " + w.ID
	}
	var gotIDs []string
	for k, e := range got {
		gotIDs = append(gotIDs, k+" → "+e.ID)
	}
	slices.Sort(wantIDs)
	slices.Sort(gotIDs)
	if !slices.Equal(gotIDs, wantIDs) {
		t.Fatalf("%s:\n got %v\nwant %v", what, gotIDs, wantIDs)
	}
	for _, w := range want {
		if d := eventDiff(got[w.MessageID], w); len(d) > 0 {
			t.Errorf("%s: latest event of %s differs:\n\t%s", what, w.MessageID, strings.Join(d, "\n\t"))
		}
	}
}

func testEventsRoundTrip(t *testing.T, s Store) {
	c := conv("o_events")
	m1, m2, m3 := outMessage(c, 1, time.Second), outMessage(c, 2, 2*time.Second), outMessage(c, 3, 3*time.Second)
	insert(t, s, m1, m2, m3)

	ctx := testCtx(t)
	if err := s.AppendEvents(ctx, nil); err != nil {
		t.Fatalf("AppendEvents(nil): %v", err)
	}
	if err := s.AppendEvents(ctx, []relay.DeliveryEvent{}); err != nil {
		t.Fatalf("AppendEvents(empty): %v", err)
	}
	sameLatest(t, "LatestEvents before any event", latestEvents(t, s, m1.ID, m2.ID, m3.ID))

	// Sub-millisecond noise to drop, a time given in China Standard
	// Time, WeChat's errcodes (negative ones too) and messages with
	// quotes, backslashes and Chinese.
	sending := deliveryEvent(m1, relay.DeliverySending, base.Add(2*time.Second+123_456*time.Nanosecond))
	failed := deliveryEvent(m1, relay.DeliveryFailed, base.Add(3*time.Second+999_999*time.Nanosecond))
	failed.ErrCode = relay.ErrCodeOutOfWindow
	failed.ErrMsg = `response out of time limit or subscription is canceled hint: [Ab1'c\"d] 超出48小时`
	busy := deliveryEvent(m2, relay.DeliveryFailed, time.Date(2026, 3, 14, 9, 27, 0, 0, cst))
	busy.ErrCode = relay.ErrCodeSystemBusy
	busy.ErrMsg = "system error"
	sent := deliveryEvent(m3, relay.DeliverySent, base.Add(4*time.Second).UTC())
	appendEvents(t, s, sending)
	appendEvents(t, s, failed, busy, sent)

	sameLatest(t, "LatestEvents", latestEvents(t, s, m1.ID, m2.ID, m3.ID), failed, busy, sent)
	sameLatest(t, "LatestEvents of one", latestEvents(t, s, m2.ID), busy)
	sameLatest(t, "LatestEvents of none", latestEvents(t, s))
	sameLatest(t, "LatestEvents of nil", latestEvents(t, s, nil...))
	sameLatest(t, "LatestEvents of unknown ids and a prefix", latestEvents(t, s, "out:nope", "", m1.ID[:len(m1.ID)-1], strings.ToUpper(m1.ID)))
	sameLatest(t, "LatestEvents of repeated ids", latestEvents(t, s, m3.ID, m3.ID, "x", m1.ID), sent, failed)

	// Events of a message that is not archived (yet) are kept all the
	// same: the log does not depend on the order the two are written in.
	orphan := deliveryEvent(outMessage(c, 9, 9*time.Second), relay.DeliverySending, base.Add(10*time.Second))
	appendEvents(t, s, orphan)
	sameLatest(t, "LatestEvents of an event without its message", latestEvents(t, s, orphan.MessageID), orphan)
}

func testEventsRefused(t *testing.T, s Store) {
	c := conv("o_events_bad")
	m := outMessage(c, 1, time.Second)
	insert(t, s, m)
	good := deliveryEvent(m, relay.DeliverySending, base.Add(2*time.Second))
	bad := func(id string, change func(e *relay.DeliveryEvent)) relay.DeliveryEvent {
		e := good
		e.ID = id
		change(&e)
		return e
	}
	for name, e := range map[string]relay.DeliveryEvent{
		"without ID":            bad("", func(*relay.DeliveryEvent) {}),
		"without message ID":    bad(m.ID+"/b1", func(e *relay.DeliveryEvent) { e.MessageID = "" }),
		"without state":         bad(m.ID+"/b2", func(e *relay.DeliveryEvent) { e.State = "" }),
		"without time":          bad(m.ID+"/b3", func(e *relay.DeliveryEvent) { e.At = time.Time{} }),
		"with a 33-bit errcode": bad(m.ID+"/b4", func(e *relay.DeliveryEvent) { e.ErrCode = math.MaxInt32 + 1 }),
	} {
		if err := s.AppendEvents(testCtx(t), []relay.DeliveryEvent{good, e}); err == nil {
			t.Errorf("AppendEvents of a batch with an event %s succeeded, want an error", name)
		}
	}
	sameLatest(t, "LatestEvents after refused batches", latestEvents(t, s, m.ID))
	sameMessages(t, "Unsettled after refused batches", unsettled(t, s, base, 0), []relay.Message{m})
	// The edges of 32 bits are accepted.
	lo, hi := good, good
	lo.ID, lo.ErrCode, lo.State = m.ID+"/lo", math.MinInt32, relay.DeliveryFailed
	hi.ID, hi.ErrCode, hi.State, hi.At = m.ID+"/hi", math.MaxInt32, relay.DeliveryFailed, good.At.Add(time.Millisecond)
	appendEvents(t, s, lo)
	sameLatest(t, "LatestEvents with errcode -2^31", latestEvents(t, s, m.ID), lo)
	appendEvents(t, s, hi)
	sameLatest(t, "LatestEvents with errcode 2^31-1", latestEvents(t, s, m.ID), hi)
}

func testEventsIdempotent(t *testing.T, s Store) {
	c := conv("o_events_replay")
	m1, m2 := outMessage(c, 1, time.Second), outMessage(c, 2, 2*time.Second)
	insert(t, s, m1, m2)
	s1 := deliveryEvent(m1, relay.DeliverySending, base.Add(2*time.Second))
	d1 := deliveryEvent(m1, relay.DeliverySent, base.Add(3*time.Second))
	s2 := deliveryEvent(m2, relay.DeliverySending, base.Add(4*time.Second))
	appendEvents(t, s, s1, d1)
	// A replay of the same batch after a crash, an overlapping batch,
	// and a batch holding the same event twice.
	appendEvents(t, s, s1, d1)
	appendEvents(t, s, d1, s2)
	appendEvents(t, s, s2, s2, s1)

	sameLatest(t, "LatestEvents after replays", latestEvents(t, s, m1.ID, m2.ID), d1, s2)
	sameMessages(t, "Unsettled after replays", unsettled(t, s, base, 0), []relay.Message{m2})
	if at, sends, err := s.LastInteraction(testCtx(t), c); err != nil || !at.IsZero() || sends != 2 {
		t.Errorf("LastInteraction after replays = %v, %d, %v; want zero, 2 (each message once)", at, sends, err)
	}
}

// testLatestEventsOrder pins down which event is a message's latest.
func testLatestEventsOrder(t *testing.T, s Store) {
	c := conv("o_order")
	at := base.Add(time.Minute)
	// The order of states within one millisecond, lowest first. Pending
	// is normally implicit, but an explicit one ranks with states the
	// backend does not know, below sending.
	order := []relay.DeliveryState{relay.DeliverySending, relay.DeliveryUnknown, relay.DeliveryRefused, relay.DeliveryFailed, relay.DeliverySent}
	low := []relay.DeliveryState{relay.DeliveryPending, "queued"}

	seq := uint64(0)
	next := func() relay.Message {
		seq++
		return outMessage(c, seq, time.Duration(seq)*time.Second)
	}
	type pair struct {
		name   string
		events [2]relay.DeliveryEvent // appended in this order
		want   relay.DeliveryEvent
	}
	var cases []pair
	ranked := append(slices.Clone(low[:1]), order...)
	for i, lo := range ranked {
		for _, hi := range ranked[i+1:] {
			m := next()
			// Within one millisecond: a tenth and nine tenths into it.
			a := deliveryEvent(m, lo, at.Add(900*time.Microsecond))
			b := deliveryEvent(m, hi, at.Add(100*time.Microsecond))
			cases = append(cases, pair{fmt.Sprintf("%s then %s, same millisecond", lo, hi), [2]relay.DeliveryEvent{a, b}, b})
			m = next()
			a, b = deliveryEvent(m, lo, at), deliveryEvent(m, hi, at)
			cases = append(cases, pair{fmt.Sprintf("%s then %s, same instant, appended the other way", lo, hi), [2]relay.DeliveryEvent{b, a}, b})
		}
	}
	for _, st := range low {
		m := next()
		a, b := deliveryEvent(m, st, at), deliveryEvent(m, relay.DeliverySending, at)
		cases = append(cases, pair{fmt.Sprintf("%s below sending", st), [2]relay.DeliveryEvent{b, a}, b})
	}
	// Time first: a later event wins whatever its state.
	{
		m := next()
		a, b := deliveryEvent(m, relay.DeliverySent, at), deliveryEvent(m, relay.DeliverySending, at.Add(time.Millisecond))
		cases = append(cases, pair{"a millisecond later beats a higher state", [2]relay.DeliveryEvent{b, a}, b})
		m = next()
		a, b = deliveryEvent(m, relay.DeliveryFailed, at.Add(-time.Hour)), deliveryEvent(m, relay.DeliveryFailed, at)
		a.ID, b.ID = m.ID+"/failed/2", m.ID+"/failed/1"
		a.ErrCode, b.ErrCode = relay.ErrCodeSystemBusy, relay.ErrCodeSendQuota
		cases = append(cases, pair{"the later of two attempts", [2]relay.DeliveryEvent{b, a}, b})
	}
	// Same state, same millisecond: the greatest id.
	{
		m := next()
		a, b := deliveryEvent(m, relay.DeliverySending, at), deliveryEvent(m, relay.DeliverySending, at)
		a.ID, b.ID = m.ID+"/sending/1", m.ID+"/sending/2"
		cases = append(cases, pair{"greatest id in a full tie", [2]relay.DeliveryEvent{b, a}, b})
	}

	// Two batches: every case's first event, then every case's second,
	// so that neither "the last appended" nor "the first" decides.
	var ids []string
	for round := range 2 {
		var batch []relay.DeliveryEvent
		for _, c := range cases {
			batch = append(batch, c.events[round])
		}
		appendEvents(t, s, batch...)
	}
	for _, c := range cases {
		ids = append(ids, c.want.MessageID)
	}
	got := latestEvents(t, s, ids...)
	for _, c := range cases {
		if d := eventDiff(got[c.want.MessageID], c.want); len(d) > 0 {
			t.Errorf("%s: latest event is %s, want %s:\n\t%s", c.name, got[c.want.MessageID].ID, c.want.ID, strings.Join(d, "\n\t"))
		}
	}
	if len(got) != len(cases) {
		t.Errorf("LatestEvents returned %d events, want %d", len(got), len(cases))
	}
}

// testLatestEventsMany asks about more ids than any chunking a backend
// does, the known ones scattered among unknown ones.
func testLatestEventsMany(t *testing.T, s Store) {
	c := conv("o_many_events")
	var (
		ids  []string
		want []relay.DeliveryEvent
		evs  []relay.DeliveryEvent
	)
	for i := range 2500 {
		m := outMessage(c, uint64(i+1), time.Duration(i)*time.Millisecond)
		ids = append(ids, m.ID)
		if i%499 == 3 {
			e := deliveryEvent(m, relay.DeliverySent, m.AcceptedAt.Add(time.Second))
			evs = append(evs, deliveryEvent(m, relay.DeliverySending, m.AcceptedAt), e)
			want = append(want, e)
		}
	}
	appendEvents(t, s, evs...)
	sameLatest(t, fmt.Sprintf("LatestEvents(%d ids)", len(ids)), latestEvents(t, s, ids...), want...)
}

func testUnsettled(t *testing.T, s Store) {
	a, b := conv("o_unsettled_a"), conv("o_unsettled_b")
	var (
		o0 = outMessage(a, 1, -10*time.Second) // accepted before since
		o1 = outMessage(a, 2, 1*time.Second)   // no event: pending
		o2 = outMessage(b, 1, 2*time.Second)   // sending
		o3 = outMessage(a, 3, 3*time.Second)   // sending, then sent
		o4 = outMessage(b, 2, 4*time.Second)   // failed
		o5 = outMessage(a, 4, 5*time.Second)   // unknown, archived by a clock a little behind
		o6 = outMessage(b, 3, 6*time.Second)   // refused
		o7 = outMessage(a, 5, 7*time.Second)   // sending and sent in one millisecond
		o8 = outMessage(b, 4, 8*time.Second)   // an explicit pending event
		o9 = outMessage(a, 6, 9*time.Second)   // no event, newest
		in = message(a, 7)                     // inbound: never listed
	)
	in.AcceptedAt = base.Add(1500 * time.Millisecond)
	insert(t, s, o9, o8, o7, o6, o5)
	insert(t, s, in, o4, o3, o2, o1, o0)
	insert(t, s, o1, o2) // replayed: still listed once
	appendEvents(t, s,
		deliveryEvent(o2, relay.DeliverySending, o2.AcceptedAt.Add(time.Second)),
		deliveryEvent(o3, relay.DeliverySending, o3.AcceptedAt.Add(time.Second)),
		deliveryEvent(o3, relay.DeliverySent, o3.AcceptedAt.Add(2*time.Second)),
		deliveryEvent(o4, relay.DeliveryFailed, o4.AcceptedAt.Add(time.Second)),
		deliveryEvent(o5, relay.DeliveryUnknown, o5.AcceptedAt.Add(-500*time.Millisecond)),
		deliveryEvent(o6, relay.DeliveryRefused, o6.AcceptedAt),
		deliveryEvent(o7, relay.DeliverySent, o7.AcceptedAt.Add(time.Second+100*time.Microsecond)),
		deliveryEvent(o7, relay.DeliverySending, o7.AcceptedAt.Add(time.Second+800*time.Microsecond)),
		deliveryEvent(o8, relay.DeliveryPending, o8.AcceptedAt),
	)

	all := []relay.Message{o1, o2, o8, o9}
	sameMessages(t, "Unsettled(base, 0)", unsettled(t, s, base, 0), all)
	sameMessages(t, "Unsettled(base, -1)", unsettled(t, s, base, -1), all)
	sameMessages(t, "Unsettled(base, 100)", unsettled(t, s, base, 100), all)
	sameMessages(t, "Unsettled(base, 2)", unsettled(t, s, base, 2), all[:2])
	sameMessages(t, "Unsettled(base in UTC, 0)", unsettled(t, s, base.UTC(), 0), all)
	// After is strict: o1 was accepted at exactly base+1s.
	sameMessages(t, "Unsettled(base+1s, 0)", unsettled(t, s, base.Add(time.Second), 0), all[1:])
	sameMessages(t, "Unsettled(base+9s, 0)", unsettled(t, s, base.Add(9*time.Second), 0), nil)
	sameMessages(t, "Unsettled(zero time, 0)", unsettled(t, s, time.Time{}, 0), append([]relay.Message{o0}, all...))
	sameMessages(t, "Unsettled(a day before, 3)", unsettled(t, s, base.Add(-24*time.Hour), 3), []relay.Message{o0, o1, o2})

	// Settling them, in the ways the relay does.
	appendEvents(t, s, deliveryEvent(o1, relay.DeliverySending, base.Add(20*time.Second)))
	sameMessages(t, "Unsettled after o1 is sending", unsettled(t, s, base, 0), all)
	appendEvents(t, s,
		deliveryEvent(o1, relay.DeliverySent, base.Add(21*time.Second)),
		deliveryEvent(o2, relay.DeliveryUnknown, base.Add(21*time.Second)),
		deliveryEvent(o9, relay.DeliveryRefused, base.Add(21*time.Second)),
	)
	sameMessages(t, "Unsettled after settling three", unsettled(t, s, base, 0), []relay.Message{o8})
}
