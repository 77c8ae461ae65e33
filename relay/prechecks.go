package relay

import (
	"context"
	"sync"
	"time"
)

// Prechecks: a message held back for order (holdBack) waits for another
// instance to number an earlier one; when its turn comes, the archive
// check (Archive.Existing) is the slowest step before it can be numbered
// and leave its line, and under a backlog two instances take turns
// conversation by conversation. So while its messages wait, a writer
// asks the archive about them ahead of their turn (prechecker), and a
// round uses an answer if it is recent (checkFresh).
//
// Why a recent answer is as good as a new one: a message the archive did
// not hold at the check may be archived since only by another instance
// (a copy of it, a retry both accepted). That instance numbered it
// first and holds the number until its insert, then remembers it as
// archived for ArchivedGrace; numbering the copy here meanwhile answers
// Held, and the copy is checked again (forgotten here). An answer is
// used only for checkFresh, well inside ArchivedGrace.

// checkFresh is how long an archive check of a held message is used.
const checkFresh = ArchivedGrace / 6

// checkedIDs remembers archive checks of spooled messages.
type checkedIDs struct {
	mu   sync.Mutex
	byID map[string]checkedID
}

type checkedID struct {
	seq      uint64 // the archived sequence, when archived
	archived bool
	at       time.Time
}

// maxChecked bounds what is remembered; beyond it everything is
// forgotten (and asked again).
const maxChecked = 50_000

// lookup splits msgs into those with a fresh answer (known: the
// archived ones, as Existing answers) and those to ask about.
func (c *checkedIDs) lookup(msgs []Message, now time.Time) (known map[string]uint64, ask []Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	known = map[string]uint64{}
	for _, m := range msgs {
		a, ok := c.byID[m.ID]
		switch {
		case !ok || now.Sub(a.at) >= checkFresh:
			ask = append(ask, m)
		case a.archived:
			known[m.ID] = a.seq
		}
	}
	return known, ask
}

// store remembers the archive's answer about msgs, given at at.
func (c *checkedIDs) store(msgs []Message, existing map[string]uint64, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byID == nil || len(c.byID)+len(msgs) > maxChecked {
		c.byID = map[string]checkedID{}
	}
	for _, m := range msgs {
		seq, archived := existing[m.ID]
		c.byID[m.ID] = checkedID{seq: seq, archived: archived, at: at}
	}
}

// forget drops what is remembered of ids.
func (c *checkedIDs) forget(ids []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		delete(c.byID, id)
	}
}

// existing is Archive.Existing for a round: fresh answers from
// prechecks, the archive for the rest (remembered too).
func (p *Pipeline) existing(ctx context.Context, batch []Message) (map[string]uint64, error) {
	known, ask := p.checked.lookup(batch, p.d.Now())
	if len(ask) == 0 {
		return known, nil
	}
	at := p.d.Now()
	got, err := p.d.Archive.Existing(ctx, ask)
	if err != nil {
		return nil, err
	}
	p.checked.store(ask, got, at)
	for id, seq := range got {
		known[id] = seq
	}
	return known, nil
}

// precheck hands the messages a round held back to the prechecker,
// without waiting; a busy prechecker gets the next round's.
func (p *Pipeline) precheck(held []Message) {
	if len(held) == 0 {
		return
	}
	select {
	case p.prechecks <- held:
	default:
	}
}

// prechecker asks the archive about held messages not checked recently,
// a batch at a time, until ctx is done. A failure is only logged: the
// round asks again when their turn comes.
func (p *Pipeline) prechecker(ctx context.Context) {
	for {
		var held []Message
		select {
		case <-ctx.Done():
			return
		case held = <-p.prechecks:
		}
		_, ask := p.checked.lookup(held, p.d.Now())
		if len(ask) > p.cfg.BatchSize {
			ask = ask[:p.cfg.BatchSize]
		}
		if len(ask) == 0 {
			continue
		}
		if _, err := p.existing(ctx, ask); err != nil {
			p.log.Debug("checking held messages in the archive ahead of their turn", "messages", len(ask), "err", err)
		}
	}
}

func idsOf(msgs []Message) []string {
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	return ids
}
