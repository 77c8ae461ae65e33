package relay

import (
	"context"
	"time"
)

// AcceptOrder keeps, per conversation, the line of messages accepted and
// not yet numbered, across every instance. Each writer numbers its own
// spool; without the line, a message accepted on one instance after
// WeChat was told `success` for an earlier one on another could be
// numbered first — the client's order inverted in the archive.
//
// Accept takes a place before the spool append; the writer numbers a
// message only once no earlier place of its conversation is left in the
// line (except its own batch's, and places older than the wait, whose
// instance died or hangs), and then leaves the line.
type AcceptOrder interface {
	// Take puts id at the end of conv's line and returns its ticket,
	// greater than every ticket of conv taken before. at is when the
	// place was taken (the message's AcceptedAt).
	Take(ctx context.Context, conv ConversationID, id string, at time.Time) (ticket uint64, err error)
	// Lines returns the places in line of each of convs, lowest ticket
	// first (at most the first few hundred of each).
	Lines(ctx context.Context, convs []ConversationID) (map[ConversationID][]Place, error)
	// Leave takes places out of their lines: numbered, or never to be
	// (an append that failed, a copy dropped as a retry).
	Leave(ctx context.Context, places []Place) error
}

// Place is one message's place in its conversation's line.
type Place struct {
	Conv   ConversationID
	ID     string
	Ticket uint64
	At     time.Time // when it was taken
}

// placeOf is m's place, for a message that took one.
func placeOf(m Message) Place {
	return Place{Conv: m.Conv, ID: m.ID, Ticket: m.Ticket, At: m.AcceptedAt}
}

// defaultOrderWait bounds how long a writer holds a message back for an
// earlier one accepted elsewhere: longer than a restart after a crash
// or a full disk, and a hang of several seconds, so that order holds
// through them; short enough that an instance lost for good delays its
// conversations once, by this much.
const defaultOrderWait = 10 * time.Second

// takePlace gives m its place in line before it is spooled. Without the
// store (Redis down) m is accepted without one: it is then numbered when
// its writer gets to it, and its order against another instance's
// messages is not kept — a refusal would lose more.
func (p *Pipeline) takePlace(ctx context.Context, m *Message) {
	if p.d.Order == nil {
		return
	}
	// Bounded below the store's own timeouts: WeChat is waiting.
	tctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	t, err := p.d.Order.Take(tctx, m.Conv, m.ID, m.AcceptedAt)
	if err != nil {
		p.log.Warn("taking the message's place in its conversation's line; accepting it without one (its order against other instances is not kept)",
			"msg_id", m.ID, "conv", m.Conv, "err", err)
		return
	}
	m.Ticket = t
}

// leave takes the places of msgs out of their lines, bounded and
// without the caller's cancellation: a place left behind only delays
// others until it is older than the wait.
func (p *Pipeline) leave(ctx context.Context, msgs []Message) {
	if p.d.Order == nil {
		return
	}
	var places []Place
	for _, m := range msgs {
		if m.Ticket != 0 {
			places = append(places, placeOf(m))
		}
	}
	if len(places) == 0 {
		return
	}
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	if err := p.d.Order.Leave(lctx, places); err != nil {
		p.log.Warn("leaving the conversations' lines; other instances wait for these places until they are older than the wait",
			"places", len(places), "err", err)
	}
}

// holdBack splits a batch into the messages that may go on now and those
// that must wait: a message to be numbered waits while an earlier place
// of its conversation, taken less than cfg.OrderWait ago, belongs to a
// message not in the batch (spooled on another instance, or not yet
// durable here). Messages without a place or numbered already (a
// replay; it left its place when it was numbered), and every message
// when the lines cannot be read, go now.
func (p *Pipeline) holdBack(ctx context.Context, batch []Message) (now, held []Message) {
	if p.d.Order == nil {
		return batch, nil
	}
	waits := func(m Message) bool { return m.Ticket != 0 && m.Seq == 0 }
	mine := map[string]bool{}
	var convs []ConversationID
	seen := map[ConversationID]bool{}
	for _, m := range batch {
		mine[m.ID] = true
		if !waits(m) {
			continue
		}
		if !seen[m.Conv] {
			seen[m.Conv] = true
			convs = append(convs, m.Conv)
		}
	}
	if len(convs) == 0 {
		return batch, nil
	}
	lines, err := p.d.Order.Lines(ctx, convs)
	if err != nil {
		p.log.Warn("reading the conversations' lines; numbering without them (order against other instances is not kept)", "err", err)
		return batch, nil
	}
	// blocked[conv] is the lowest ticket of conv that is not ours and
	// still counts: ours at or above it wait.
	blocked := map[ConversationID]uint64{}
	cutoff := p.d.Now().Add(-p.cfg.OrderWait)
	for conv, line := range lines {
		for _, pl := range line {
			if mine[pl.ID] || pl.At.Before(cutoff) {
				continue
			}
			blocked[conv] = pl.Ticket
			break
		}
	}
	for _, m := range batch {
		if b, ok := blocked[m.Conv]; ok && waits(m) && m.Ticket > b {
			held = append(held, m)
			continue
		}
		now = append(now, m)
	}
	return now, held
}
