package relay

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// sealer is the tamper evidence of one writer: it seals every batch the
// pipeline archives (its messages chain) and every call of SealedEvents
// (its events chain). The pipeline calls it at four moments only: heal
// at start, archive for each batch, tend every second, checkpoint at
// shutdown.
type sealer struct {
	msgs, events *chain
	store        Archive
	log          *slog.Logger
	// retry is the pipeline's: calls f until it succeeds or ctx ends.
	retry func(ctx context.Context, what string, f func() error) error
}

func newSealer(writer string, archive Archive, log *slog.Logger, now func() time.Time, signer *SealSigner,
	retry func(ctx context.Context, what string, f func() error) error) *sealer {
	return &sealer{
		msgs:   newChain(writer, StreamMessages, archive, log, now, signer),
		events: newChain(writer, StreamEvents, archive, log, now, signer),
		store:  archive, log: log, retry: retry,
	}
}

// heal loads both chains from the archive and seals a batch the previous
// process left unsealed, retrying until ctx ends.
func (s *sealer) heal(ctx context.Context) error {
	for _, c := range []*chain{s.msgs, s.events} {
		if err := c.acquire(ctx); err != nil {
			return err
		}
		err := s.retry(ctx, "healing the seal chain", func() error { return c.heal(ctx) })
		c.release()
		if err != nil {
			return err
		}
	}
	return nil
}

// tend, called every second, seals what a failed write left unsealed in
// a chain nobody is using, and logs the latest seals when logSeals is
// set.
func (s *sealer) tend(ctx context.Context, logSeals bool) {
	for _, c := range []*chain{s.msgs, s.events} {
		if !c.tryAcquire() {
			continue
		}
		if c.loaded && c.open != nil {
			if err := c.heal(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("sealing an unsealed batch", "stream", c.stream, "err", err)
			}
		}
		if logSeals {
			c.checkpoint(false)
		}
		c.release()
	}
}

// checkpoint logs the latest seal of each chain, at shutdown. It waits a
// moment for a chain in use, then gives up on it.
func (s *sealer) checkpoint() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, c := range []*chain{s.msgs, s.events} {
		if c.acquire(ctx) != nil {
			continue
		}
		c.checkpoint(true)
		c.release()
	}
}

// healMessages seals what the messages chain left open, if anything.
func (s *sealer) healMessages(ctx context.Context) error {
	c := s.msgs
	if err := c.acquire(ctx); err != nil {
		return fmt.Errorf("healing the seal chain: %w", err)
	}
	defer c.release()
	return s.retry(ctx, "healing the seal chain", func() error { return c.heal(ctx) })
}

// archive inserts fresh as the next batch of the messages chain, calls
// inserted, and then stores the batch's seal, retrying each until ctx
// ends. Each message gets its hash and batch id first. If ctx ends
// between the insert and the seal, the chain remembers the open batch,
// and the next batch (or the next start, from the archive) seals it
// before anything else.
func (s *sealer) archive(ctx context.Context, fresh []Message, inserted func([]Message)) error {
	c := s.msgs
	if err := c.acquire(ctx); err != nil {
		return fmt.Errorf("archiving batch: %w", err)
	}
	defer c.release()
	if err := s.retry(ctx, "healing the seal chain", func() error { return c.heal(ctx) }); err != nil {
		return err
	}
	batch := c.begin()
	leaves := make([]Leaf, len(fresh))
	first, last := fresh[0].AcceptedAt, fresh[0].AcceptedAt
	for i := range fresh {
		fresh[i].BatchID = batch
		fresh[i].Hash = MessageHash(fresh[i])
		leaves[i] = Leaf{ID: fresh[i].ID, Conv: fresh[i].Conv, Hash: fresh[i].Hash}
		first = minTime(first, fresh[i].AcceptedAt)
		last = maxTime(last, fresh[i].AcceptedAt)
	}
	// An insert that failed may have landed all the same (ClickHouse
	// killed or hung mid-answer), or may land yet: a retry first makes
	// sure the earlier attempt is over, then inserts only what the
	// archive does not have, so that no row is inserted twice.
	tried := false
	if err := s.retry(ctx, "archiving batch", func() error {
		rows := fresh
		if tried {
			if err := s.store.SettleInserts(ctx, batch); err != nil {
				return err
			}
			have, err := s.store.Existing(ctx, fresh)
			if err != nil {
				return err
			}
			rows = slices.DeleteFunc(slices.Clone(fresh), func(m Message) bool { _, ok := have[m.ID]; return ok })
			if len(rows) == 0 {
				return nil
			}
		}
		tried = true
		return s.store.Insert(ctx, rows)
	}); err != nil {
		return err
	}
	inserted(fresh)
	c.stored(leaves, first, last)
	return s.retry(ctx, "sealing batch", func() error { return c.writeSeal(ctx) })
}

// chain is one stream of one writer: it numbers the batches, remembers
// the latest seal, and heals a batch whose seal did not get written.
//
// Batches of a chain are strictly sequential: batch n+1 begins only once
// seal n is stored. So at most one batch is ever unsealed — the open one,
// number last+1 — and after a crash the writer finds it by its batch id
// (BatchRows) and seals what it holds. Callers hold the chain's turn
// (acquire/release) from begin until the seal is stored.
type chain struct {
	writer, stream string
	store          SealStore
	log            *slog.Logger
	now            func() time.Time
	turn           chan struct{} // one token: whoever holds it uses the chain
	signer         *SealSigner   // signs every seal made here; nil: unsigned

	loaded bool
	last   Seal       // latest stored seal; Number 0 before the first
	open   *openBatch // begun and not known to be sealed
	logged uint64     // number of the last seal logged as a checkpoint
	// healed holds the ids of rows sealed by heal rather than by the
	// call that wrote them, so that a caller retrying that call does not
	// archive them a second time in another batch.
	healed *recentIDs
}

// openBatch is a batch begun and not yet known to be sealed.
type openBatch struct {
	number uint64
	// seal is set once the batch's rows are known to be stored: it only
	// remains to store the seal.
	seal *Seal
}

func newChain(writer, stream string, store SealStore, log *slog.Logger, now func() time.Time, signer *SealSigner) *chain {
	c := &chain{
		writer: writer, stream: stream, store: store, now: now, signer: signer,
		log:    log.With("writer", writer, "stream", stream),
		turn:   make(chan struct{}, 1),
		healed: newRecentIDs(10000),
	}
	c.turn <- struct{}{}
	return c
}

// acquire takes the chain's turn, or fails when ctx ends first.
func (c *chain) acquire(ctx context.Context) error {
	select {
	case <-c.turn:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// tryAcquire takes the turn if it is free.
func (c *chain) tryAcquire() bool {
	select {
	case <-c.turn:
		return true
	default:
		return false
	}
}

func (c *chain) release() { c.turn <- struct{}{} }

// heal brings the chain to a state where a batch can begin: it loads the
// latest seal from the archive (the first time), and seals the open
// batch if its rows may be stored — from the seal already made, or, when
// it is not known what of the batch reached the archive, from the rows
// the archive holds under its batch id. A batch with no stored rows is
// simply begun again. Deterministic: the same archive gives the same
// seal, and a seal made here is kept and stored again until it is in.
func (c *chain) heal(ctx context.Context) error {
	if !c.loaded {
		last, ok, err := c.store.LatestSeal(ctx, c.writer, c.stream)
		if err != nil {
			return fmt.Errorf("reading the latest seal of %s/%s: %w", c.writer, c.stream, err)
		}
		if !ok {
			last = Seal{}
		}
		c.last, c.logged = last, last.Number
		// Whatever the previous process left: the next batch may hold
		// rows written just before a crash.
		c.open = &openBatch{number: last.Number + 1}
		c.loaded = true
	}
	if c.open == nil {
		return nil
	}
	o := c.open
	if o.seal == nil {
		id := BatchID(c.writer, c.stream, o.number)
		if err := c.store.SettleInserts(ctx, id); err != nil {
			return err
		}
		rows, err := c.store.BatchRows(ctx, id)
		if err != nil {
			return fmt.Errorf("reading the rows of batch %s: %w", id, err)
		}
		if len(rows) == 0 {
			c.open = nil // nothing was stored: the number is free again
			return nil
		}
		s := c.sealRows(o.number, rows)
		o.seal = &s
		c.log.Warn("sealing a batch that was archived without its seal (a crash or a failed write)",
			"batch", id, "rows", s.Count)
	}
	if err := c.store.InsertSeal(ctx, *o.seal); err != nil {
		return fmt.Errorf("storing seal %s: %w", o.seal.ID, err)
	}
	for _, l := range o.seal.Leaves {
		c.healed.add(l.ID)
	}
	c.sealed(*o.seal)
	return nil
}

// sealRows makes the recovery seal of batch n from its stored rows:
// copies of one id collapse, and of two different copies (which no
// writer makes) the smaller hash is taken, so the result is the same
// whatever order the archive returns.
func (c *chain) sealRows(n uint64, rows []StoredRow) Seal {
	byID := map[string]Leaf{}
	var first, last time.Time
	for i, r := range rows {
		l := Leaf{ID: r.ID(), Conv: r.Conv(), Hash: r.ComputeHash()}
		if have, ok := byID[l.ID]; !ok || l.Hash < have.Hash {
			byID[l.ID] = l
		}
		t := r.time()
		if i == 0 || t.Before(first) {
			first = t
		}
		if i == 0 || t.After(last) {
			last = t
		}
	}
	leaves := make([]Leaf, 0, len(byID))
	for _, l := range byID {
		leaves = append(leaves, l)
	}
	return c.signer.Sign(newSeal(c.writer, c.stream, n, c.last.Hash, leaves, first, last, c.now(), true))
}

// begin opens the next batch and returns its id. The chain must be
// healed (no open batch).
func (c *chain) begin() string {
	if !c.loaded || c.open != nil {
		panic("relay: sealing chain used before it was healed")
	}
	c.open = &openBatch{number: c.last.Number + 1}
	return BatchID(c.writer, c.stream, c.open.number)
}

// stored records that the open batch's rows, leaves, are stored, and
// makes its seal.
func (c *chain) stored(leaves []Leaf, first, last time.Time) Seal {
	s := c.signer.Sign(newSeal(c.writer, c.stream, c.open.number, c.last.Hash, leaves, first, last, c.now(), false))
	c.open.seal = &s
	return s
}

// writeSeal stores the open batch's seal.
func (c *chain) writeSeal(ctx context.Context) error {
	s := *c.open.seal
	if err := c.store.InsertSeal(ctx, s); err != nil {
		return fmt.Errorf("storing seal %s: %w", s.ID, err)
	}
	c.sealed(s)
	return nil
}

func (c *chain) sealed(s Seal) {
	c.last = s
	c.open = nil
	c.log.Debug("batch sealed", "number", s.Number, "rows", s.Count, "hash", s.Hash)
}

// checkpoint logs the latest seal if it changed since the last
// checkpoint (or always, with force): the line an outside witness keeps,
// to check later with `wechat-relay verify -seal HASH` that the archive
// still holds it.
func (c *chain) checkpoint(force bool) {
	if !c.loaded || c.last.Number == 0 || (!force && c.last.Number == c.logged) {
		return
	}
	c.logged = c.last.Number
	c.log.Info("archive seal", "seal", c.last.ID, "number", c.last.Number, "hash", c.last.Hash,
		"at", c.last.At.Format(time.RFC3339Nano))
}

// recentIDs is a bounded set of ids that forgets the oldest first.
type recentIDs struct {
	max   int
	order []string
	set   map[string]bool
}

func newRecentIDs(max int) *recentIDs { return &recentIDs{max: max, set: map[string]bool{}} }

func (r *recentIDs) add(id string) {
	if r.set[id] {
		return
	}
	r.set[id] = true
	r.order = append(r.order, id)
	if len(r.order) > r.max {
		delete(r.set, r.order[0])
		r.order = r.order[1:]
	}
}

func (r *recentIDs) has(id string) bool { return r.set[id] }

// randomWriter is a writer id for a process that was given none: unique,
// but new at every start, so a batch a crash leaves unsealed is not
// healed by the next process (verify then reports it).
func randomWriter() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "tmp-" + hex.EncodeToString(b)
}

// sealedEvents is an EventLog that seals what it appends: each call is
// one batch of the writer's events stream.
type sealedEvents struct {
	EventLog
	c       *chain
	inserts *prometheus.CounterVec
}

// SealedEvents returns events as an EventLog whose AppendEvents stamps
// each event with its hash and batch id and seals each call's events in
// this pipeline writer's events stream. Pass it to the Delivery.
//
// AppendEvents then returns nil only once the events and their seal are
// stored. After an error the caller appends the same events again, as
// before: events that reached the archive without their seal are sealed
// by the next call (or by the pipeline's periodic check) and not
// archived a second time.
func (p *Pipeline) SealedEvents(events EventLog) EventLog {
	return &sealedEvents{EventLog: events, c: p.seals.events, inserts: p.d.Metrics.inserts}
}

func (s *sealedEvents) AppendEvents(ctx context.Context, evs []DeliveryEvent) error {
	if len(evs) == 0 {
		return nil
	}
	c := s.c
	if err := c.acquire(ctx); err != nil {
		return fmt.Errorf("waiting to seal delivery events: %w", err)
	}
	defer c.release()
	if err := c.heal(ctx); err != nil {
		return fmt.Errorf("sealing delivery events: %w", err)
	}
	// An id is one event: one copy per batch, and none of a batch that
	// heal sealed already.
	seen := map[string]bool{}
	evs = slices.DeleteFunc(slices.Clone(evs), func(e DeliveryEvent) bool {
		drop := seen[e.ID] || c.healed.has(e.ID)
		seen[e.ID] = true
		return drop
	})
	if len(evs) == 0 {
		return nil
	}
	batch := c.begin()
	leaves := make([]Leaf, len(evs))
	var first, last time.Time
	for i := range evs {
		evs[i].BatchID = batch
		evs[i].Hash = EventHash(evs[i])
		leaves[i] = Leaf{ID: evs[i].ID, Conv: evs[i].Conv, Hash: evs[i].Hash}
		if i == 0 || evs[i].At.Before(first) {
			first = evs[i].At
		}
		if i == 0 || evs[i].At.After(last) {
			last = evs[i].At
		}
	}
	s.inserts.WithLabelValues("events").Inc()
	if err := s.EventLog.AppendEvents(ctx, evs); err != nil {
		return err
	}
	c.stored(leaves, first, last)
	if err := c.writeSeal(ctx); err != nil {
		return fmt.Errorf("sealing delivery events: %w", err)
	}
	return nil
}
