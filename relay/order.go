package relay

import (
	"context"
	"errors"
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
	// Take puts p (Conv, ID, Writer, At: the message's AcceptedAt) at
	// the end of its conversation's line and returns its ticket: greater
	// than every ticket of the conversation taken before, and at least
	// At in microseconds (ticketAt), so that the tickets taken after the
	// store lost its lines still come after those taken before.
	Take(ctx context.Context, p Place) (ticket uint64, err error)
	// PutBack puts places back in their lines where they are missing
	// (the store lost its data; a message accepted without a place,
	// whose ticket is then ticketAt(AcceptedAt)), and makes p.Writer the
	// owner of each (a restarted process takes over the places of the
	// spool it replays: one place per message id).
	PutBack(ctx context.Context, places []Place) error
	// Lines returns the lines of the conversations of places up to the
	// highest of their tickets — the places of the messages given left
	// out, and a long line cut (Lines.Cut) — with the writers known to
	// be alive and the store's epoch.
	Lines(ctx context.Context, places []Place) (Lines, error)
	// Leave takes places out of their lines: numbered, or never to be
	// (an append that failed, a copy dropped as a retry).
	Leave(ctx context.Context, places []Place) error
	// Forget takes out of their lines the places still owned as given
	// (Writer and At): places that no longer count, so that they do not
	// fill the front of a line. A place its process has taken over again
	// since (Lines) stays.
	Forget(ctx context.Context, places []Place) error
	// Alive says that writer's process is alive until until: its places
	// count, however old, while it says so (see holdBack). It returns
	// the store's epoch (as Lines does).
	Alive(ctx context.Context, writer string, until time.Time) (epoch string, err error)
}

// Lines is what AcceptOrder.Lines read.
type Lines struct {
	// Conv holds each conversation's places, lowest ticket first, up to
	// the highest ticket asked about; those of the messages asked about
	// may be left out.
	Conv map[ConversationID][]Place
	// Cut holds, for a line too long to read to that ticket, the last
	// ticket read: a place after it is not known, and may be another
	// instance's, earlier than a message asked about.
	Cut map[ConversationID]uint64
	// Alive holds, per writer, until when it said it is alive.
	Alive map[string]time.Time
	// Epoch changes when the store loses what it held.
	Epoch string
}

// ticketAt is the ticket of a place taken at t, when no later place of
// its conversation was taken before it.
func ticketAt(t time.Time) uint64 { return uint64(max(t.UnixMicro(), 1)) }

// Place is one message's place in its conversation's line.
type Place struct {
	Conv ConversationID
	ID   string
	// Writer is the process that took the place: its writer id, a
	// slash and an id of the process (Pipeline.instance). A process
	// killed between taking a place and spooling its message leaves the
	// place behind; restarted, the writer is alive again, but under
	// another process id, so the old place does not count for its life.
	Writer string
	Ticket uint64
	At     time.Time // when it was taken
}

// placeOf is the place of m, a message of this instance's spool.
func (p *Pipeline) placeOf(m Message) Place {
	return Place{Conv: m.Conv, ID: m.ID, Writer: p.instance, Ticket: m.Ticket, At: m.AcceptedAt}
}

// defaultOrderWait bounds how long a writer holds a message back for an
// earlier one accepted elsewhere: longer than a restart after a crash
// or a full disk, and a hang of several seconds, so that order holds
// through them; short enough that an instance lost for good delays its
// conversations once, by this much.
const defaultOrderWait = 10 * time.Second

// maxOrderHold bounds how long a place of an instance alive holds its
// conversation back: a writer an hour behind has lost more than order,
// and a place left behind by a bug must not hold a conversation forever.
const maxOrderHold = time.Hour

// takePlace gives m its place in line before it is spooled. Without the
// store (Redis down) m is accepted without one — a refusal would lose
// more — and takes it, at its acceptance time, when its writer gets to
// it (holdBack).
func (p *Pipeline) takePlace(ctx context.Context, m *Message) {
	if p.d.Order == nil {
		return
	}
	// Bounded below the store's own timeouts: WeChat is waiting.
	const budget = 500 * time.Millisecond
	var t uint64
	var err error
	for attempt := 1; attempt <= 2; attempt++ {
		start := time.Now()
		tctx, cancel := context.WithTimeout(ctx, budget)
		t, err = p.d.Order.Take(tctx, p.placeOf(*m))
		cancel()
		// A deadline that passed while this process was frozen (a
		// hang, a long pause) — the call took far longer than its
		// budget — is tried once more: the message must be in line
		// before WeChat is answered, or the client's next message,
		// accepted elsewhere, could be numbered first. A store that
		// is merely slow is not waited for twice.
		frozen := time.Since(start) > 2*budget
		if !errors.Is(err, context.DeadlineExceeded) || !frozen || ctx.Err() != nil {
			break
		}
	}
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
// without the caller's cancellation. Places that could not be taken out
// are kept and tried again by the heartbeat: while this instance says it
// is alive, a place it left behind holds its conversation back.
func (p *Pipeline) leave(ctx context.Context, msgs []Message) {
	if p.d.Order == nil {
		return
	}
	var places []Place
	for _, m := range msgs {
		if m.Ticket != 0 {
			places = append(places, p.placeOf(m))
		}
	}
	p.leavePlaces(ctx, places)
}

func (p *Pipeline) leavePlaces(ctx context.Context, places []Place) {
	if len(places) == 0 {
		return
	}
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	if err := p.d.Order.Leave(lctx, places); err != nil {
		p.log.Warn("leaving the conversations' lines; trying again shortly", "places", len(places), "err", err)
		p.unleftMu.Lock()
		p.unleft = append(p.unleft, places...)
		p.unleftMu.Unlock()
	}
}

// leaveAgain tries again the places leave could not take out.
func (p *Pipeline) leaveAgain(ctx context.Context) {
	p.unleftMu.Lock()
	places := p.unleft
	p.unleft = nil
	p.unleftMu.Unlock()
	p.leavePlaces(ctx, places)
}

// holdBack splits the messages about to be numbered into those that may
// be numbered now and those that must wait: a message waits while an
// earlier place of its conversation that still counts (see counts below)
// belongs to a message not among them (spooled on another instance, or
// not yet durable here).
//
// Two things make the lines trustworthy after Redis lost them. Every
// instance puts its waiting messages back in line (the heartbeat, and
// the writer for its window) and a message accepted while Redis was
// down takes its place when its writer gets to it; tickets are at least
// the acceptance time, so places taken since rank after those put back.
// And a writer that sees the store's epoch change numbers nothing for
// cfg.OrderWait, while every instance puts its messages back in line.
//
// When the lines cannot be read nothing is numbered: the numbers come
// from the same store, and numbering blind would give up order.
func (p *Pipeline) holdBack(ctx context.Context, fresh []Message) (now, held []Message) {
	if p.d.Order == nil || len(fresh) == 0 {
		return fresh, nil
	}
	waits := func(m Message) bool { return m.Seq == 0 }
	mine := map[string]bool{}
	var places, placeless []Place
	for i := range fresh {
		m := &fresh[i]
		mine[m.ID] = true
		if !waits(*m) {
			continue
		}
		if m.Ticket == 0 { // accepted without a place: it takes one now
			m.Ticket = ticketAt(m.AcceptedAt)
			placeless = append(placeless, p.placeOf(*m))
		}
		places = append(places, p.placeOf(*m))
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
	if p.lineEpoch == "" {
		placeless = places // the first round: all of them, as the heartbeat does
	}
	if len(placeless) > 0 {
		if err := p.d.Order.PutBack(ctx, placeless); err != nil {
			p.warnOrder("putting messages back in their conversations' lines; numbering waits for them", err)
			return split(holdAll)
		}
	}
	lines, err := p.d.Order.Lines(ctx, places)
	if err != nil {
		p.warnOrder("reading the conversations' lines; numbering waits for them", err)
		return split(holdAll)
	}
	at := p.d.Now()
	if p.lineEpoch != "" && lines.Epoch != p.lineEpoch {
		p.regroupUntil = at.Add(p.cfg.OrderWait)
		p.log.Warn("the conversations' lines were lost (Redis restarted empty?): numbering waits while every instance puts its messages back in line",
			"wait", p.cfg.OrderWait)
		if err := p.d.Order.PutBack(ctx, places); err != nil {
			p.warnOrder("putting messages back in their conversations' lines", err)
		}
	}
	p.lineEpoch, p.alive = lines.Epoch, lines.Alive
	if at.Before(p.regroupUntil) {
		return split(holdAll)
	}
	// blocked[conv] is the lowest ticket of conv that is not ours and
	// still counts: ours above it wait. A place counts while its
	// instance says it is alive — however far behind, it numbers the
	// place in time — and otherwise for the wait after it was taken, or
	// after the last loss of the lines (the places put back then are as
	// old as their messages). An instance that neither says it is alive
	// nor numbers its place within the wait is taken to be dead.
	blocked := map[ConversationID]uint64{}
	cutoff := at.Add(-p.cfg.OrderWait)
	counts := func(pl Place) bool {
		taken := maxTime(pl.At, p.regroupUntil)
		alive := lines.Alive[pl.Writer].After(at) && taken.After(at.Add(-maxOrderHold))
		return alive || !taken.Before(cutoff)
	}
	// A place that stopped counting a wait ago is forgotten: a process
	// killed before its message was durable never leaves its line, and
	// such places would fill the front of the line. If its process lives
	// after all (it hung), its heartbeat, finding it was taken for dead,
	// puts its places back.
	var stale []Place
	for conv, line := range lines.Conv {
		for _, pl := range line {
			if mine[pl.ID] {
				continue
			}
			if !counts(pl) {
				if maxTime(pl.At, p.regroupUntil).Before(cutoff.Add(-p.cfg.OrderWait)) {
					stale = append(stale, pl)
				}
				continue
			}
			if _, ok := blocked[conv]; !ok {
				blocked[conv] = pl.Ticket
			}
		}
	}
	p.forget(ctx, stale)
	return split(func(m Message) bool {
		b, ok := blocked[m.Conv]
		cut, isCut := lines.Cut[m.Conv]
		return ok && m.Ticket > b || isCut && m.Ticket > cut
	})
}

// forgetOwn takes m's place out of its line if this attempt took it.
func (p *Pipeline) forgetOwn(ctx context.Context, m Message) {
	if p.d.Order == nil || m.Ticket == 0 {
		return
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	if err := p.d.Order.Forget(fctx, []Place{p.placeOf(m)}); err != nil {
		// Left in line, it would count while this process lives: the
		// heartbeat takes it out with the places leave could not.
		p.log.Warn("taking a failed message's place out of its line; trying again shortly", "msg_id", m.ID, "err", err)
		p.unleftMu.Lock()
		p.unleft = append(p.unleft, p.placeOf(m))
		p.unleftMu.Unlock()
	}
}

// forget takes places that stopped counting out of their lines; a
// failure only leaves them for the next round.
func (p *Pipeline) forget(ctx context.Context, places []Place) {
	if len(places) == 0 {
		return
	}
	if err := p.d.Order.Forget(ctx, places); err != nil {
		p.log.Debug("forgetting places that no longer count", "places", len(places), "err", err)
		return
	}
	p.log.Info("forgot places in line of processes gone", "places", len(places))
}

// window is how many spooled messages a round of the writer looks at:
// with shared lines, four batches, so that a writer whose first messages
// wait for another instance finds others to number (at most a batch of
// them).
func (p *Pipeline) window() int {
	if p.d.Order == nil {
		return p.cfg.BatchSize
	}
	return 4 * p.cfg.BatchSize
}

// linesStill reports whether the lines holdBack read are still those of
// the store: the epoch has not changed since (it says this instance is
// alive on the way). Without shared lines, always.
func (p *Pipeline) linesStill(ctx context.Context) bool {
	if p.d.Order == nil {
		return true
	}
	epoch, err := p.d.Order.Alive(ctx, p.instance, p.d.Now().Add(p.cfg.OrderWait))
	if err != nil {
		p.warnOrder("checking the conversations' lines before numbering; trying again", err)
		return false
	}
	return epoch == p.lineEpoch
}

// warnOrder logs a failure of the writer's order keeping at most every
// few seconds: while Redis is down it recurs at every attempt.
func (p *Pipeline) warnOrder(msg string, err error) {
	if at := p.d.Now(); at.Sub(p.lastOrderWarn) >= 5*time.Second {
		p.lastOrderWarn = at
		p.log.Warn(msg, "err", err)
	}
}
