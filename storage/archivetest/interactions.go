package archivetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
)

// The cases of relay.Interactions.

func lastInteraction(t *testing.T, s Store, c relay.ConversationID) (time.Time, int) {
	t.Helper()
	at, sends, err := s.LastInteraction(testCtx(t), c)
	if err != nil {
		t.Fatalf("LastInteraction(%s): %v", c, err)
	}
	if !at.IsZero() && at.Location() != time.UTC {
		t.Errorf("LastInteraction(%s) is in %s, want UTC", c, at.Location())
	}
	return at, sends
}

// wantInteraction fails t unless LastInteraction(c) is at (to the
// millisecond) with sends.
func wantInteraction(t *testing.T, s Store, what string, c relay.ConversationID, at time.Time, sends int) {
	t.Helper()
	gotAt, gotSends := lastInteraction(t, s, c)
	wantAt := at.Truncate(time.Millisecond)
	if !gotAt.Equal(wantAt) || gotSends != sends {
		t.Errorf("%s: LastInteraction(%s) = %s, %d sends; want %s, %d",
			what, c, fmtTime(gotAt), gotSends, fmtTime(wantAt), sends)
	}
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "zero"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// inbound returns an inbound message of c with seq and kind (an event if
// event is set), accepted at base + offset.
func inbound(c relay.ConversationID, seq uint64, kind relay.Kind, event string, offset time.Duration) relay.Message {
	m := message(c, seq)
	m.Kind = kind
	m.AcceptedAt = base.Add(offset)
	m.CreatedAt = m.AcceptedAt.Add(-time.Second)
	if event != "" {
		m.Kind = relay.KindEvent
		m.Event = event
		m.WxMsgID = ""
		m.Text = ""
		m.ID = relay.InboundID(m.Account, m.Client, "", m.CreatedAt.Unix(), event, "")
	}
	return m
}

func testLastInteraction(t *testing.T, s Store) {
	c := conv("o_li")
	// Conversations that must not be counted with c: names that are
	// prefixes of each other, and the same client of another account.
	c1, c0, other := conv("o_li1"), conv("o_l"), relay.Conversation("acc2", "o_li")

	wantInteraction(t, s, "empty archive", c, time.Time{}, 0)

	// Before the client ever wrote: no interaction, and every outbound
	// message that may have reached the client is counted.
	early1, early2 := outMessage(c, 1, 1*time.Second), outMessage(c, 2, 2*time.Second)
	insert(t, s, early1, early2)
	appendEvents(t, s, deliveryEvent(early2, relay.DeliveryFailed, early2.AcceptedAt.Add(time.Second)))
	wantInteraction(t, s, "outbound only", c, time.Time{}, 1)

	// The client writes.
	text := inbound(c, 3, relay.KindText, "", 10*time.Second)
	insert(t, s, text)
	wantInteraction(t, s, "after a text", c, text.AcceptedAt, 0)

	// Events that are not the client's own action leave it.
	insert(t, s,
		inbound(c, 4, relay.KindEvent, "unsubscribe", 11*time.Second),
		inbound(c, 5, relay.KindEvent, "LOCATION", 12*time.Second),
		inbound(c, 6, relay.KindEvent, "TEMPLATESENDJOBFINISH", 12500*time.Millisecond),
	)
	wantInteraction(t, s, "after non-interaction events", c, text.AcceptedAt, 0)

	// Sends after it, in every state. At the same instant as the
	// interaction is not after it.
	same := outMessage(c, 7, 10*time.Second)
	pending := outMessage(c, 8, 13*time.Second)
	sending := outMessage(c, 9, 14*time.Second)
	sent := outMessage(c, 10, 15*time.Second)
	unknown := outMessage(c, 11, 16*time.Second)
	failed := outMessage(c, 12, 17*time.Second)
	refused := outMessage(c, 13, 18*time.Second)
	retried := outMessage(c, 14, 19*time.Second) // failed, then sent
	sentThenOdd := outMessage(c, 15, 19500*time.Millisecond)
	batch := []relay.Message{same, pending, sending, sent, unknown, failed, refused, retried, sentThenOdd}
	insert(t, s, batch...)
	insert(t, s, batch...) // replayed: each counted once
	ev := func(m relay.Message, st relay.DeliveryState, after time.Duration) relay.DeliveryEvent {
		return deliveryEvent(m, st, m.AcceptedAt.Add(after))
	}
	failedFirst := ev(retried, relay.DeliveryFailed, time.Second)
	failedFirst.ID += "/1"
	appendEvents(t, s,
		ev(same, relay.DeliverySent, time.Second),
		ev(sending, relay.DeliverySending, time.Second),
		ev(sent, relay.DeliverySending, time.Second), ev(sent, relay.DeliverySent, 2*time.Second),
		ev(unknown, relay.DeliverySending, time.Second), ev(unknown, relay.DeliveryUnknown, 2*time.Second),
		ev(failed, relay.DeliverySending, time.Second), ev(failed, relay.DeliveryFailed, 2*time.Second),
		ev(refused, relay.DeliveryRefused, 0),
		failedFirst, ev(retried, relay.DeliverySent, 3*time.Second),
		ev(sentThenOdd, relay.DeliverySent, time.Second), ev(sentThenOdd, "queued", 2*time.Second),
	)
	// pending, sending, sent, unknown, retried, sentThenOdd.
	wantInteraction(t, s, "after sends", c, text.AcceptedAt, 6)

	// Other conversations, with interactions and sends of their own,
	// change nothing for c.
	for i, oc := range []relay.ConversationID{c1, c0, other} {
		in := inbound(oc, 1, relay.KindText, "", time.Duration(30+i)*time.Second)
		in.Account = string(oc)[:len(oc)-len(in.Client)-1]
		in.ID = fmt.Sprintf("in:%s:1", oc)
		out := outMessage(oc, 2, time.Duration(40+i)*time.Second)
		out.Account = in.Account
		insert(t, s, in, out)
		wantInteraction(t, s, "another conversation", oc, in.AcceptedAt, 1)
	}
	wantInteraction(t, s, "after other conversations", c, text.AcceptedAt, 6)

	// The client clicks a menu: a new interaction, nothing sent since.
	click := inbound(c, 16, relay.KindEvent, "CLICK", 20*time.Second)
	insert(t, s, click)
	wantInteraction(t, s, "after a click", c, click.AcceptedAt, 0)
	insert(t, s, outMessage(c, 17, 21*time.Second))
	wantInteraction(t, s, "after a click and a send", c, click.AcceptedAt, 1)

	// An interaction archived late (a batch from the spool) with an
	// earlier AcceptedAt does not move the time back.
	insert(t, s, inbound(c, 18, relay.KindImage, "", 9*time.Second))
	wantInteraction(t, s, "after a late, older message", c, click.AcceptedAt, 1)
}

// testLastInteractionKinds: which inbound messages are interactions (as
// relay.Message.IsInteraction says), each in a conversation of its own,
// and across midnight UTC.
func testLastInteractionKinds(t *testing.T, s Store) {
	kinds := []struct {
		kind  relay.Kind
		event string
	}{
		{relay.KindText, ""}, {relay.KindImage, ""}, {relay.KindVoice, ""}, {relay.KindVideo, ""},
		{relay.KindShortVideo, ""}, {relay.KindLocation, ""}, {relay.KindLink, ""}, {relay.KindFile, ""},
		{relay.KindEvent, "subscribe"}, {relay.KindEvent, "SCAN"}, {relay.KindEvent, "CLICK"}, {relay.KindEvent, "VIEW"},
		{relay.KindEvent, "scancode_push"}, {relay.KindEvent, "location_select"},
		{relay.KindEvent, "unsubscribe"}, {relay.KindEvent, "LOCATION"}, {relay.KindEvent, "TEMPLATESENDJOBFINISH"},
		{relay.KindEvent, "MASSSENDJOBFINISH"}, {relay.KindEvent, "view_miniprogram_ignored_by_wechat"},
	}
	// Accepted a moment before midnight UTC; the sends after midnight.
	midnight := time.Date(2026, 3, 15, 0, 0, 0, 0, time.UTC)
	offset := midnight.Add(-100 * time.Millisecond).Sub(base)
	var batch []relay.Message
	type expect struct {
		conv relay.ConversationID
		at   time.Time
		m    relay.Message
	}
	var want []expect
	for i, k := range kinds {
		c := conv(fmt.Sprintf("o_kind%d", i))
		m := inbound(c, 1, k.kind, k.event, offset)
		send := outMessage(c, 2, midnight.Add(100*time.Millisecond).Sub(base))
		batch = append(batch, m, send)
		e := expect{conv: c, m: m}
		if m.IsInteraction() {
			e.at = m.AcceptedAt
		}
		want = append(want, e)
	}
	insert(t, s, batch...)
	for _, w := range want {
		what := fmt.Sprintf("kind %s, event %q", w.m.Kind, w.m.Event)
		// With or without an interaction the one send counts: after it,
		// or (with none) at all.
		wantInteraction(t, s, what, w.conv, w.at, 1)
	}
	// An outbound message is never an interaction, whatever its kind.
	c := conv("o_kind_out")
	out := outMessage(c, 1, time.Second)
	out.Kind = relay.KindEvent
	out.Event = "subscribe"
	insert(t, s, out)
	wantInteraction(t, s, "an outbound event", c, time.Time{}, 1)
}
