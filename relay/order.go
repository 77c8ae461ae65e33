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
	// Take puts id at the end of conv's line and returns its ticket:
	// greater than every ticket of conv taken before, and at least at
	// in microseconds (ticketAt), so that the tickets taken after the
	// store lost its lines still come after those taken before. at is
	// when the place was taken (the message's AcceptedAt).
	Take(ctx context.Context, conv ConversationID, id string, at time.Time) (ticket uint64, err error)
	// Lines puts places back in their lines where they are missing (the
	// store lost its data; a message accepted without a place, whose
	// ticket is then ticketAt(AcceptedAt)), and returns the lines of
	// their conversations, lowest ticket first (at most the first few
	// hundred places of each), with the store's epoch: an id that
	// changes when the store loses what it held.
	Lines(ctx context.Context, places []Place) (lines map[ConversationID][]Place, epoch string, err error)
	// Leave takes places out of their lines: numbered, or never to be
	// (an append that failed, a copy dropped as a retry).
	Leave(ctx context.Context, places []Place) error
}

// ticketAt is the ticket of a place taken at t, when no later place of
// its conversation was taken before it.
func ticketAt(t time.Time) uint64 { return uint64(max(t.UnixMicro(), 1)) }

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
// store (Redis down) m is accepted without one — a refusal would lose
// more — and takes it, at its acceptance time, when its writer gets to
// it (holdBack).
func (p *Pipeline) takePlace(ctx context.Context, m *Message) {
	if p.d.Order == nil {
		return
	}
	// Bounded below the store's own timeouts: WeChat is waiting.
	tctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	t, err := p.d.Order.Take(tctx, m.Conv, m.ID, m.AcceptedAt)
	if err != nil {
		// At most every few seconds: while Redis is down, every message.
		now, last := p.d.Now().UnixNano(), p.lastPlaceWarn.Load()
		if now-last >= int64(5*time.Second) && p.lastPlaceWarn.CompareAndSwap(last, now) {
			p.log.Warn("taking the message's place in its conversation's line; accepting it without one (it takes one when its writer gets to it)",
				"msg_id", m.ID, "conv", m.Conv, "err", err)
		}
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

// holdBack splits the messages about to be numbered into those that may
// be numbered now and those that must wait: a message waits while an
// earlier place of its conversation, taken less than cfg.OrderWait ago,
// belongs to a message not among them (spooled on another instance, or
// not yet durable here).
//
// Two things make the lines trustworthy after Redis lost them. Every
// waiting message puts its place back (or takes one, if it was accepted
// while Redis was down), and tickets are at least the acceptance time,
// so places taken since rank after those put back. And a writer that
// sees the store's epoch change numbers nothing for cfg.OrderWait,
// while every instance puts its messages back in line.
//
// When the lines cannot be read nothing is numbered: the numbers come
// from the same store, and numbering blind would give up order.
func (p *Pipeline) holdBack(ctx context.Context, fresh []Message) (now, held []Message) {
	if p.d.Order == nil || len(fresh) == 0 {
		return fresh, nil
	}
	waits := func(m Message) bool { return m.Seq == 0 }
	mine := map[string]bool{}
	var places []Place
	for i := range fresh {
		m := &fresh[i]
		mine[m.ID] = true
		if !waits(*m) {
			continue
		}
		if m.Ticket == 0 {
			m.Ticket = ticketAt(m.AcceptedAt)
		}
		places = append(places, placeOf(*m))
	}
	if len(places) == 0 {
		return fresh, nil
	}
	split := func(hold func(Message) bool) (now, held []Message) {
		for _, m := range fresh {
			if waits(m) && hold(m) {
				held = append(held, m)
			} else {
				now = append(now, m)
			}
		}
		return now, held
	}
	holdAll := func(Message) bool { return true }
	lines, epoch, err := p.d.Order.Lines(ctx, places)
	if err != nil {
		p.warnOrder("reading the conversations' lines; numbering waits for them", err)
		return split(holdAll)
	}
	at := p.d.Now()
	if p.lineEpoch != "" && epoch != p.lineEpoch {
		p.regroupUntil = at.Add(p.cfg.OrderWait)
		p.log.Warn("the conversations' lines were lost (Redis restarted empty?): numbering waits while every instance puts its messages back in line",
			"wait", p.cfg.OrderWait)
	}
	p.lineEpoch = epoch
	if at.Before(p.regroupUntil) {
		return split(holdAll)
	}
	// blocked[conv] is the lowest ticket of conv that is not ours and
	// still counts: ours above it wait. A place counts for the wait
	// after it was taken — or after the last loss of the lines, since
	// the places put back then are as old as their messages, and their
	// instances, alive, may still be waiting out the loss themselves.
	blocked := map[ConversationID]uint64{}
	cutoff := at.Add(-p.cfg.OrderWait)
	for conv, line := range lines {
		for _, pl := range line {
			if mine[pl.ID] || maxTime(pl.At, p.regroupUntil).Before(cutoff) {
				continue
			}
			blocked[conv] = pl.Ticket
			break
		}
	}
	return split(func(m Message) bool {
		b, ok := blocked[m.Conv]
		return ok && m.Ticket > b
	})
}

// warnOrder logs a failure of the writer's order keeping at most every
// few seconds: while Redis is down it recurs at every attempt.
func (p *Pipeline) warnOrder(msg string, err error) {
	if at := p.d.Now(); at.Sub(p.lastOrderWarn) >= 5*time.Second {
		p.lastOrderWarn = at
		p.log.Warn(msg, "err", err)
	}
}
