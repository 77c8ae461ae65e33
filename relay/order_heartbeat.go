package relay

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The heartbeat: how an instance keeps its places counting while it
// lives, and puts them back when the lines were lost, when it was taken
// for dead, and when it starts (taking over its replayed spool's).

// heartbeat tells the other instances, until ctx ends, that this
// instance is alive, so that they wait for its places however long its
// writer takes to reach them (a backlog after an outage), rather than
// only for cfg.OrderWait. When it sees the lines' epoch change (Redis
// restarted empty) it puts the places of every message of this spool
// back at once. It runs beside the writer, not in its loop, which may be
// busy with one flush for a long time: an instance that restarts in the
// meantime has not seen the epoch change and does not wait, so the
// places must be back before it numbers.
func (p *Pipeline) heartbeat(ctx context.Context) {
	every := max(p.cfg.OrderWait/4, 10*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	// The places of a spool replayed after a restart were taken by the
	// process before, which is dead: this process takes them over, so
	// that they count while it lives, however long it takes to reach
	// them. Until the takeover is done — a deep spool takes seconds, and
	// the process may hang meanwhile — it says the processes of this
	// writer that died lately are alive too, so that their places do not
	// stop counting in between.
	preds := p.predecessors(ctx)
	var takenOver atomic.Bool
	var takeover sync.WaitGroup
	takeover.Go(func() {
		defer takenOver.Store(true)
		if _, err := p.d.Order.Alive(ctx, p.instance, p.d.Now().Add(p.cfg.OrderWait)); err == nil {
			p.putBack(ctx)
		}
	})
	defer takeover.Wait()
	var seen string
	lastAlive := time.Now()
	for {
		actx, cancel := context.WithTimeout(ctx, every)
		epoch, err := p.d.Order.Alive(actx, p.instance, p.d.Now().Add(p.cfg.OrderWait))
		if !takenOver.Load() {
			for _, pred := range preds {
				if _, err := p.d.Order.Alive(actx, pred, p.d.Now().Add(p.cfg.OrderWait)); err != nil {
					break
				}
			}
		}
		cancel()
		if err == nil {
			p.leaveAgain(ctx)
		}
		switch {
		case err != nil:
			if ctx.Err() == nil {
				p.log.Debug("saying this instance is alive", "err", err)
			}
		case seen != "" && epoch != seen:
			// The lines were lost (Redis restarted empty).
			p.putBack(ctx)
			seen = epoch
		case time.Since(lastAlive) > p.cfg.OrderWait:
			// This process was taken for dead (frozen, or Redis out
			// of reach longer than the wait): the others may have
			// forgotten its places.
			p.putBack(ctx)
			seen = epoch
		default:
			seen = epoch
		}
		if err == nil {
			lastAlive = time.Now()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// predecessors returns the processes of this writer, other than this
// one, that said they were alive within the last few waits: the ones
// whose places this process's spool may hold.
func (p *Pipeline) predecessors(ctx context.Context) []string {
	lines, err := p.d.Order.Lines(ctx, nil)
	if err != nil {
		return nil
	}
	var preds []string
	recent := p.d.Now().Add(-3 * p.cfg.OrderWait)
	for proc, until := range lines.Alive {
		if proc != p.instance && strings.HasPrefix(proc, p.cfg.Writer+"/") && until.After(recent) {
			preds = append(preds, proc)
		}
	}
	return preds
}

// putBack puts the place of every message of this spool not yet
// numbered back in its line, under this process, a thousand at a time.
func (p *Pipeline) putBack(ctx context.Context) {
	var places []Place
	for _, m := range p.d.Spool.Pending(p.d.Spool.Len()) {
		if m.Seq != 0 {
			continue
		}
		if m.Ticket == 0 {
			m.Ticket = ticketAt(m.AcceptedAt)
		}
		places = append(places, p.placeOf(m))
	}
	// Bounded: a deep spool takes seconds, and the heartbeat must go on.
	ctx, cancel := context.WithTimeout(ctx, max(p.cfg.OrderWait, time.Second))
	defer cancel()
	for chunk := range slices.Chunk(places, 1000) {
		if err := p.d.Order.PutBack(ctx, chunk); err != nil {
			p.log.Warn("putting this spool's messages back in their conversations' lines; the writer puts each back when it gets to it", "err", err)
			return
		}
	}
	if len(places) > 0 {
		p.log.Info("put this spool's messages back in their conversations' lines", "places", len(places))
	}
	// The writer may have numbered some of them, and left their lines,
	// before they were put back: a place left behind by a message
	// numbered already would hold its conversation back while this
	// process lives. Messages numbered from now on leave on their own.
	waiting := map[string]bool{}
	for _, m := range p.d.Spool.Pending(p.d.Spool.Len()) {
		if m.Seq == 0 {
			waiting[m.ID] = true
		}
	}
	var numbered []Place
	for _, pl := range places {
		if !waiting[pl.ID] {
			numbered = append(numbered, pl)
		}
	}
	p.leavePlaces(ctx, numbered)
}
