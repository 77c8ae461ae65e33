package relay

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"time"
)

// number gives each message without a sequence the next number of its
// conversation, in batch order, and records the numbers in the spool
// before anything is inserted, so that a replay inserts the same numbers.
//
// The sequencer holds each id's number for this writer until release,
// after the insert: a writer killed before recording gets the same
// numbers on its replay (no gap); and a copy of a message that another
// writer has numbered — WeChat's retry accepted by two instances when a
// claim could not be marked done — is not numbered a second time: it
// waits in the spool (copies) until that writer's insert lets the
// archive check drop it, unless that writer is dead, whose number this
// writer then takes over.
func (p *Pipeline) number(ctx context.Context, msgs []Message) (numbered, copies []Message, err error) {
	ids := map[ConversationID][]string{}
	for _, m := range msgs {
		if m.Seq == 0 {
			ids[m.Conv] = append(ids[m.Conv], m.ID)
		}
	}
	if len(ids) == 0 {
		return msgs, nil, nil
	}
	got, err := p.numberOnce(ctx, ids, nil)
	if err != nil {
		return nil, nil, err
	}
	if abandoned := p.abandoned(got.Held); len(abandoned) > 0 {
		again := map[ConversationID][]string{}
		for _, m := range msgs {
			if _, ok := abandoned[m.ID]; ok {
				again[m.Conv] = append(again[m.Conv], m.ID)
			}
		}
		more, err := p.numberOnce(ctx, again, abandoned)
		if err != nil {
			return nil, nil, err
		}
		maps.Copy(got.Nums, more.Nums)
		for id := range abandoned {
			delete(got.Held, id)
		}
		maps.Copy(got.Held, more.Held)
	}

	seqs := map[string]uint64{}
	for _, m := range msgs {
		if m.Seq == 0 {
			if _, ok := got.Held[m.ID]; ok {
				copies = append(copies, m)
				continue
			}
			if m.Seq = got.Nums[m.ID]; m.Seq == 0 {
				return nil, nil, fmt.Errorf("numbering messages: no number for %s", m.ID)
			}
			seqs[m.ID] = m.Seq
		}
		numbered = append(numbered, m)
	}
	if err := p.retry(ctx, "recording sequence numbers in the spool", func() error {
		return p.d.Spool.Assign(ctx, seqs)
	}); err != nil {
		return nil, nil, err
	}
	return numbered, copies, nil
}

// numberOnce numbers ids, seeding from the archive's highest number the
// conversations whose counter does not exist (new ones, or counters the
// store forgot).
func (p *Pipeline) numberOnce(ctx context.Context, ids map[ConversationID][]string, abandoned map[string]string) (Numbering, error) {
	got, err := p.d.Sequencer.Number(ctx, p.cfg.Writer, ids, abandoned)
	if err != nil {
		return Numbering{}, fmt.Errorf("numbering messages: %w", err)
	}
	if len(got.Unseeded) == 0 {
		return got, nil
	}
	again := map[ConversationID][]string{}
	for _, conv := range got.Unseeded {
		var floor uint64
		if err := p.retry(ctx, "reading the highest sequence number", func() (err error) {
			floor, err = p.d.Archive.MaxSeq(ctx, conv)
			return err
		}); err != nil {
			return Numbering{}, err
		}
		if err := p.d.Sequencer.Seed(ctx, conv, floor); err != nil {
			return Numbering{}, fmt.Errorf("seeding the sequence of %s at %d: %w", conv, floor, err)
		}
		again[conv] = ids[conv]
	}
	more, err := p.d.Sequencer.Number(ctx, p.cfg.Writer, again, abandoned)
	if err != nil {
		return Numbering{}, fmt.Errorf("numbering messages of new conversations: %w", err)
	}
	if len(more.Unseeded) > 0 {
		return Numbering{}, fmt.Errorf("numbering messages: the counter of %s is gone right after seeding", more.Unseeded[0])
	}
	maps.Copy(got.Nums, more.Nums)
	maps.Copy(got.Held, more.Held)
	got.Unseeded = nil
	return got, nil
}

// abandoned picks, among ids held by other writers, those whose writer is
// dead: it has not said it is alive (heartbeat) as of the lines last read.
// Without shared lines (a single instance) every holder is this one under
// an earlier writer id.
func (p *Pipeline) abandoned(held map[string]string) map[string]string {
	out := map[string]string{}
	now := p.d.Now()
	for id, writer := range held {
		if writer == HeldArchived {
			continue // archived already: the copy is dropped, never numbered
		}
		if p.d.Order == nil || !p.writerAlive(writer, now) {
			out[id] = writer
		}
	}
	return out
}

// writerAlive reports whether a process of writer said it is alive until
// after now, as the lines last said (their Alive is per process).
func (p *Pipeline) writerAlive(writer string, now time.Time) bool {
	for process, until := range p.alive {
		if w, _, _ := strings.Cut(process, "/"); w == writer && until.After(now) {
			return true
		}
	}
	return false
}

// release tells the sequencer that the numbers of these archived
// messages need holding no more; bounded and best effort (an id not
// released is forgotten a day after its conversation was last numbered).
func (p *Pipeline) release(ctx context.Context, lists ...[]Message) {
	ids := map[ConversationID][]string{}
	for _, list := range lists {
		for _, m := range list {
			ids[m.Conv] = append(ids[m.Conv], m.ID)
		}
	}
	if len(ids) == 0 {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	if err := p.d.Sequencer.Release(rctx, ids); err != nil {
		p.log.Debug("releasing numbered ids", "err", err)
	}
}
