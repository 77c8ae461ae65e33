package spool

import (
	"container/list"
	"maps"
	"slices"

	"github.com/wechat-relay/wechat-relay/relay"
)

// entry is one pending message.
type entry struct {
	msg relay.Message // Seq is updated by Assign; guarded by Spool.mu
	// durable is set once the Accept record is fsynced; only durable
	// entries are visible through Pending and Len. Guarded by Spool.mu.
	durable bool
	removed bool // Done before its Accept was durable; guarded by Spool.mu
	// settled is closed by the writer once the Accept record's write has
	// succeeded or failed; nil for entries replayed from disk.
	settled chan struct{}
	// seg is the segment that holds the Accept record. Set by the
	// writer when it places the record (or by replay) and read only by
	// the writer: no lock.
	seg uint64
}

// pendingSet holds pending messages in acceptance order.
type pendingSet struct {
	order   list.List // of *entry
	byID    map[string]*list.Element
	durable int // number of durable, not removed entries
}

func newPendingSet() *pendingSet {
	return &pendingSet{byID: make(map[string]*list.Element)}
}

func (p *pendingSet) get(id string) *entry {
	if el, ok := p.byID[id]; ok {
		return el.Value.(*entry)
	}
	return nil
}

func (p *pendingSet) add(e *entry) {
	p.byID[e.msg.ID] = p.order.PushBack(e)
	if e.durable {
		p.durable++
	}
}

func (p *pendingSet) remove(id string) *entry {
	el, ok := p.byID[id]
	if !ok {
		return nil
	}
	delete(p.byID, id)
	e := p.order.Remove(el).(*entry)
	e.removed = true
	if e.durable {
		p.durable--
	}
	return e
}

func (p *pendingSet) markDurable(e *entry) {
	if e.durable {
		return
	}
	e.durable = true
	if !e.removed {
		p.durable++
	}
}

// segInfo is what compaction needs to know about one live segment.
type segInfo struct {
	// accepts counts the pending messages whose Accept record is here.
	accepts int
	// refs names earlier segments holding the Accept of a message that
	// an Assign or Done record here applies to. While such a segment
	// exists this one must too: deleting it would lose the Done (the
	// message would come back on replay) or the Assign (it would come
	// back without its sequence number).
	refs map[uint64]struct{}
}

// segTable tracks the live segments. Owned by the writer goroutine once
// the spool is open.
type segTable map[uint64]*segInfo

func (t segTable) add(n uint64) { t[n] = &segInfo{} }

// accepted records an Accept written to segment n.
func (t segTable) accepted(n uint64) { t[n].accepts++ }

// released records that the message whose Accept is in segment n is done.
func (t segTable) released(n uint64) {
	if i := t[n]; i != nil {
		i.accepts--
	}
}

// ref records that a record in segment from applies to a message whose
// Accept is in segment to.
func (t segTable) ref(from, to uint64) {
	if from == to {
		return
	}
	if _, live := t[to]; !live {
		return
	}
	i := t[from]
	if i.refs == nil {
		i.refs = make(map[uint64]struct{})
	}
	i.refs[to] = struct{}{}
}

// deletable reports whether segment n can go: it is not the active one,
// every Accept in it is done, and no segment it refers to is left.
// Because records only refer backwards, checking segments in ascending
// order and removing each deletable one as it is found reaches every
// segment that can go in a single pass.
func (t segTable) deletable(n, active uint64) bool {
	i := t[n]
	if i == nil || n == active || i.accepts > 0 {
		return false
	}
	for r := range i.refs {
		if _, live := t[r]; live {
			return false
		}
	}
	return true
}

func (t segTable) sorted() []uint64 { return slices.Sorted(maps.Keys(t)) }

// replayer rebuilds the pending set and the segment table from records,
// applying exactly the rules the writer follows when it writes them.
type replayer struct {
	pending *pendingSet
	segs    segTable
	// dupes counts Accepts for a message that was pending already; the
	// spool never writes one, so a non-zero count is worth a warning.
	dupes int
}

func newReplayer() *replayer {
	return &replayer{pending: newPendingSet(), segs: make(segTable)}
}

// apply applies rec, read from segment seg. Assign and Done records for
// unknown messages are ignored: their Accept lived in a segment that
// compaction deleted, because the message was done.
func (r *replayer) apply(seg uint64, rec record) {
	switch rec.typ {
	case recAccept:
		if r.pending.get(rec.msg.ID) != nil {
			r.dupes++
			return
		}
		r.pending.add(&entry{msg: rec.msg, durable: true, seg: seg})
		r.segs.accepted(seg)
	case recAssign:
		for _, s := range rec.seqs {
			if e := r.pending.get(s.id); e != nil {
				e.msg.Seq = s.seq
				r.segs.ref(seg, e.seg)
			}
		}
	case recDone:
		for _, id := range rec.ids {
			if e := r.pending.remove(id); e != nil {
				r.segs.released(e.seg)
				r.segs.ref(seg, e.seg)
			}
		}
	}
}
