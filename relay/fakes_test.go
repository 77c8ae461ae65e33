package relay

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"
)

// In-memory stand-ins for the storage the pipeline needs. The real ones
// live in storage/ and run the same pipeline in the integration tests.

type memSpool struct {
	mu      sync.Mutex
	pending []Message
	notify  chan struct{}
	doneLog []string
}

func newMemSpool() *memSpool { return &memSpool{notify: make(chan struct{}, 1)} }

func (s *memSpool) Append(_ context.Context, m Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.pending {
		if p.ID == m.ID {
			return ErrDuplicate
		}
	}
	s.pending = append(s.pending, m)
	select {
	case s.notify <- struct{}{}:
	default:
	}
	return nil
}

func (s *memSpool) Pending(max int) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := min(max, len(s.pending))
	return slices.Clone(s.pending[:n])
}

func (s *memSpool) Notify() <-chan struct{} { return s.notify }

func (s *memSpool) Assign(_ context.Context, seqs map[string]uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.pending {
		if q, ok := seqs[s.pending[i].ID]; ok {
			s.pending[i].Seq = q
		}
	}
	return nil
}

func (s *memSpool) Done(_ context.Context, ids []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending = slices.DeleteFunc(s.pending, func(m Message) bool { return slices.Contains(ids, m.ID) })
	s.doneLog = append(s.doneLog, ids...)
	return nil
}

func (s *memSpool) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pending)
}

var errDown = errors.New("archive down")

type memArchive struct {
	mu      sync.Mutex
	rows    []Message // every insert, duplicates included
	down    bool
	inserts int
	// Sealing: seals and event rows as stored (copies included).
	seals    []Seal
	evRows   []DeliveryEvent
	sealDown bool // InsertSeal fails
	// lostAck makes Insert and AppendEvents store the rows, then fail,
	// as when an acknowledgement is lost.
	lostAck bool
	// lateInsert makes the next Insert or AppendEvents store nothing and
	// fail, while its rows land right after the next read (Existing or
	// BatchRows) unless SettleInserts of their batch comes first: an
	// insert whose answer was lost and that is still running.
	lateInsert bool
	late       map[string]func() // by batch id: lands the rows
}

// deferLocked keeps land for after the next read, as lateInsert says.
func (a *memArchive) deferLocked(batch string, land func()) {
	a.lateInsert = false
	if a.late == nil {
		a.late = map[string]func(){}
	}
	a.late[batch] = land
}

// landLocked lands every insert still running: called after a read, so
// the read missed them.
func (a *memArchive) landLocked() {
	for batch, land := range a.late {
		land()
		delete(a.late, batch)
	}
}

func (a *memArchive) SettleInserts(_ context.Context, batch string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.down {
		return errDown
	}
	delete(a.late, batch)
	return nil
}

func (a *memArchive) setDown(d bool) {
	a.mu.Lock()
	a.down = d
	a.mu.Unlock()
}

func (a *memArchive) Insert(_ context.Context, msgs []Message) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.down {
		return errDown
	}
	a.inserts++
	if a.lateInsert {
		rows := slices.Clone(msgs)
		a.deferLocked(msgs[0].BatchID, func() { a.rows = append(a.rows, rows...) })
		return errDown
	}
	a.rows = append(a.rows, msgs...)
	if a.lostAck {
		return errDown
	}
	return nil
}

func (a *memArchive) InsertSeal(_ context.Context, s Seal) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.down || a.sealDown {
		return errDown
	}
	a.seals = append(a.seals, s)
	return nil
}

func (a *memArchive) LatestSeal(_ context.Context, writer, stream string) (Seal, bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.down {
		return Seal{}, false, errDown
	}
	var (
		best Seal
		ok   bool
	)
	for _, s := range a.seals {
		if s.Writer == writer && s.Stream == stream && (!ok || s.Number > best.Number) {
			best, ok = s, true
		}
	}
	return best, ok, nil
}

func (a *memArchive) BatchRows(_ context.Context, batch string) ([]StoredRow, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.down {
		return nil, errDown
	}
	var out []StoredRow
	a.scanLocked(func(r StoredRow) bool { return r.BatchID() == batch }, func(r StoredRow) error {
		out = append(out, r)
		return nil
	})
	a.landLocked()
	return out, nil
}

// scanLocked calls fn for each stored row that keep accepts.
func (a *memArchive) scanLocked(keep func(StoredRow) bool, fn func(StoredRow) error) error {
	for i := range a.rows {
		m := a.rows[i]
		r := StoredRow{Message: &m, Interaction: m.IsInteraction()}
		if keep(r) {
			if err := fn(r); err != nil {
				return err
			}
		}
	}
	for i := range a.evRows {
		e := a.evRows[i]
		r := StoredRow{Event: &e}
		if keep(r) {
			if err := fn(r); err != nil {
				return err
			}
		}
	}
	return nil
}

// memEventLog stores delivery events among the memory archive's rows,
// so that sealing and verification see them.
type memEventLog struct{ a *memArchive }

func (l memEventLog) AppendEvents(_ context.Context, evs []DeliveryEvent) error {
	l.a.mu.Lock()
	defer l.a.mu.Unlock()
	if l.a.down {
		return errDown
	}
	if l.a.lateInsert {
		rows := slices.Clone(evs)
		l.a.deferLocked(evs[0].BatchID, func() { l.a.evRows = append(l.a.evRows, rows...) })
		return errDown
	}
	l.a.evRows = append(l.a.evRows, evs...)
	if l.a.lostAck {
		return errDown
	}
	return nil
}

func (l memEventLog) LatestEvents(context.Context, []string) (map[string]DeliveryEvent, error) {
	return map[string]DeliveryEvent{}, nil
}

func (l memEventLog) MessageEvents(context.Context, []string) ([]DeliveryEvent, error) {
	return nil, nil
}

func (l memEventLog) Unsettled(context.Context, time.Time, int) ([]Message, error) { return nil, nil }

func (a *memArchive) Existing(_ context.Context, msgs []Message) (map[string]uint64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.down {
		return nil, errDown
	}
	out := map[string]uint64{}
	for _, r := range a.rows {
		if slices.ContainsFunc(msgs, func(m Message) bool { return m.ID == r.ID }) {
			out[r.ID] = r.Seq
		}
	}
	a.landLocked()
	return out, nil
}

func (a *memArchive) Since(_ context.Context, conv ConversationID, after uint64, limit int) ([]Message, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []Message
	for _, r := range a.rows {
		if r.Conv == conv && r.Seq > after && len(out) < limit {
			out = append(out, r)
		}
	}
	return out, nil
}

func (a *memArchive) MaxSeq(_ context.Context, conv ConversationID) (uint64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.down {
		return 0, errDown
	}
	var m uint64
	for _, r := range a.rows {
		if r.Conv == conv {
			m = max(m, r.Seq)
		}
	}
	return m, nil
}

// seqsOf returns the sequence number of every row of id, copies
// included, in insert order.
func (a *memArchive) seqsOf(id string) []uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	var seqs []uint64
	for _, m := range a.rows {
		if m.ID == id {
			seqs = append(seqs, m.Seq)
		}
	}
	return seqs
}

func (a *memArchive) has(id string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.ContainsFunc(a.rows, func(m Message) bool { return m.ID == id })
}

func (a *memArchive) count(id string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, r := range a.rows {
		if r.ID == id {
			n++
		}
	}
	return n
}

// memBus records publications and checks, at the moment of each one,
// that the message is already archived.
type memBus struct {
	mu         sync.Mutex
	archive    *memArchive
	events     []Event
	unarchived []string
	ch         chan Event
}

func newMemBus(a *memArchive) *memBus { return &memBus{archive: a, ch: make(chan Event, 1000)} }

func (b *memBus) Publish(_ context.Context, e Event) error {
	if e.Message != nil && !b.archive.has(e.Message.ID) {
		b.mu.Lock()
		b.unarchived = append(b.unarchived, e.Message.ID)
		b.mu.Unlock()
	}
	b.mu.Lock()
	b.events = append(b.events, e)
	b.mu.Unlock()
	b.ch <- e
	return nil
}

func (b *memBus) Subscribe(ctx context.Context) (<-chan Event, error) { return b.ch, nil }

func (b *memBus) published() []Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.events)
}

// memDedupe is a Dedupe in memory: a key is held by an owner until its
// lease ends, or done.
type memDedupe struct {
	mu   sync.Mutex
	keys map[string]memClaim
	fail bool
}

type memClaim struct {
	owner   string // "" once done
	expires time.Time
}

func (d *memDedupe) Claim(_ context.Context, key, owner string, lease time.Duration) (ClaimState, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fail {
		return 0, errors.New("dedupe down")
	}
	if d.keys == nil {
		d.keys = map[string]memClaim{}
	}
	if c, ok := d.keys[key]; ok && time.Now().Before(c.expires) {
		if c.owner == "" {
			return ClaimDone, nil
		}
		return ClaimHeld, nil
	}
	d.keys[key] = memClaim{owner: owner, expires: time.Now().Add(lease)}
	return ClaimWon, nil
}

func (d *memDedupe) Finish(_ context.Context, key string, ttl time.Duration) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fail {
		return errors.New("dedupe down")
	}
	if d.keys == nil {
		d.keys = map[string]memClaim{}
	}
	d.keys[key] = memClaim{expires: time.Now().Add(ttl)}
	return nil
}

func (d *memDedupe) Release(_ context.Context, key, owner string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c, ok := d.keys[key]; ok && c.owner == owner && owner != "" {
		delete(d.keys, key)
	}
	return nil
}

// hold makes key held by another attempt, as if it were in flight on
// another instance, for lease.
func (d *memDedupe) hold(key string, lease time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.keys == nil {
		d.keys = map[string]memClaim{}
	}
	d.keys[key] = memClaim{owner: "elsewhere", expires: time.Now().Add(lease)}
}

type memSeq struct {
	mu    sync.Mutex
	n     map[ConversationID]uint64
	held  map[string]memHolder
	done  map[string]time.Time
	calls int // of Number
}

type memHolder struct {
	num    uint64
	writer string
}

func (s *memSeq) Number(_ context.Context, writer string, ids map[ConversationID][]string, abandoned map[string]string) (Numbering, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.held == nil {
		s.held = map[string]memHolder{}
	}
	out := Numbering{Nums: map[string]uint64{}, Held: map[string]string{}}
	for conv, list := range ids {
		if _, ok := s.n[conv]; !ok {
			out.Unseeded = append(out.Unseeded, conv)
			continue
		}
		for _, id := range list {
			if until, ok := s.done[id]; ok && until.After(time.Now()) {
				out.Held[id] = HeldArchived
				continue
			}
			h, ok := s.held[id]
			switch {
			case ok && h.writer != writer && h.writer != abandoned[id]:
				out.Held[id] = h.writer
				continue
			case !ok:
				s.n[conv]++
				h.num = s.n[conv]
			}
			h.writer = writer
			s.held[id] = h
			out.Nums[id] = h.num
		}
	}
	return out, nil
}

func (s *memSeq) Release(_ context.Context, ids map[ConversationID][]string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done == nil {
		s.done = map[string]time.Time{}
	}
	for _, list := range ids {
		for _, id := range list {
			delete(s.held, id)
			s.done[id] = time.Now().Add(ArchivedGrace)
		}
	}
	return nil
}

func (s *memSeq) Seed(_ context.Context, conv ConversationID, floor uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == nil {
		s.n = map[ConversationID]uint64{}
	}
	if _, ok := s.n[conv]; !ok {
		s.n[conv] = floor
	}
	return nil
}

// wipe forgets everything, as Redis restarted without its data.
func (s *memSeq) wipe() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n, s.held, s.done = nil, nil, nil
}

type memAssign struct {
	mu sync.Mutex
	m  map[ConversationID]string
}

func (a *memAssign) Get(_ context.Context, conv ConversationID) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.m[conv], nil
}

func (a *memAssign) Set(_ context.Context, conv ConversationID, emp string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.m == nil {
		a.m = map[ConversationID]string{}
	}
	a.m[conv] = emp
	return nil
}

func (a *memAssign) SetIfAbsent(_ context.Context, conv ConversationID, emp string) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.m == nil {
		a.m = map[ConversationID]string{}
	}
	if cur, ok := a.m[conv]; ok {
		return cur, nil
	}
	a.m[conv] = emp
	return emp, nil
}

// memOrder is an AcceptOrder in memory, shared by the pipelines of a
// test as Redis is by instances, with the same tickets and epoch.
type memOrder struct {
	mu     sync.Mutex
	last   map[ConversationID]uint64
	places []Place
	alive  map[string]time.Time
	epoch  int
	down   bool // every call fails, as Redis killed
	// failLeaves makes that many calls of Leave fail (a timeout).
	failLeaves int
	// readLimit, if set, is how many places of a line Lines reads.
	readLimit int
	// frozenTakes makes that many calls of Take last over a second and
	// fail as if the caller's deadline passed while its process was
	// frozen.
	frozenTakes int
}

// placeOfID is the index of conv's place for id, or -1.
func (o *memOrder) placeOfID(conv ConversationID, id string) int {
	return slices.IndexFunc(o.places, func(q Place) bool { return q.Conv == conv && q.ID == id })
}

func (o *memOrder) Take(_ context.Context, p Place) (uint64, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.down {
		return 0, errDown
	}
	if o.frozenTakes > 0 {
		o.frozenTakes--
		o.mu.Unlock()
		time.Sleep(1100 * time.Millisecond) // the process frozen past the call's deadline
		o.mu.Lock()
		return 0, fmt.Errorf("taking a place: %w", context.DeadlineExceeded)
	}
	if o.last == nil {
		o.last = map[ConversationID]uint64{}
	}
	p.At = p.At.Truncate(time.Millisecond)
	if i := o.placeOfID(p.Conv, p.ID); i >= 0 { // a copy: the first one's place
		return o.places[i].Ticket, nil
	}
	p.Ticket = max(ticketAt(p.At), o.last[p.Conv]+1)
	o.last[p.Conv] = p.Ticket
	o.places = append(o.places, p)
	return p.Ticket, nil
}

func (o *memOrder) Alive(_ context.Context, writer string, until time.Time) (string, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.down {
		return "", errDown
	}
	if o.alive == nil {
		o.alive = map[string]time.Time{}
	}
	o.alive[writer] = until
	return fmt.Sprint("epoch-", o.epoch), nil
}

func (o *memOrder) Lines(_ context.Context, places []Place) (Lines, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.down {
		return Lines{}, errDown
	}
	upTo := map[ConversationID]uint64{}
	for _, p := range places {
		upTo[p.Conv] = max(upTo[p.Conv], p.Ticket)
	}
	out := Lines{Conv: map[ConversationID][]Place{}, Alive: maps.Clone(o.alive), Epoch: fmt.Sprint("epoch-", o.epoch)}
	for _, p := range o.places {
		if last, ok := upTo[p.Conv]; ok && p.Ticket <= last {
			out.Conv[p.Conv] = append(out.Conv[p.Conv], p)
		}
	}
	for conv, line := range out.Conv {
		slices.SortFunc(line, func(a, b Place) int { return cmp.Compare(a.Ticket, b.Ticket) })
		if o.readLimit > 0 && len(line) > o.readLimit {
			if out.Cut == nil {
				out.Cut = map[ConversationID]uint64{}
			}
			out.Conv[conv], out.Cut[conv] = line[:o.readLimit], line[o.readLimit-1].Ticket
		}
	}
	return out, nil
}

func (o *memOrder) PutBack(_ context.Context, places []Place) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.down {
		return errDown
	}
	for _, p := range places {
		p.At = p.At.Truncate(time.Millisecond)
		if i := o.placeOfID(p.Conv, p.ID); i >= 0 { // taken over
			o.places[i].Writer, o.places[i].At = p.Writer, p.At
		} else {
			o.places = append(o.places, p)
		}
	}
	return nil
}

func (o *memOrder) Leave(_ context.Context, places []Place) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.down {
		return errDown
	}
	if o.failLeaves > 0 {
		o.failLeaves--
		return errDown
	}
	o.places = slices.DeleteFunc(o.places, func(p Place) bool {
		return slices.ContainsFunc(places, func(q Place) bool { return q.Conv == p.Conv && q.ID == p.ID })
	})
	return nil
}

func (o *memOrder) Forget(_ context.Context, places []Place) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.down {
		return errDown
	}
	o.places = slices.DeleteFunc(o.places, func(p Place) bool {
		return slices.ContainsFunc(places, func(q Place) bool {
			return q.Conv == p.Conv && q.ID == p.ID && q.Writer == p.Writer && q.At.UnixMilli() == p.At.UnixMilli()
		})
	})
	return nil
}

// setDown makes every call fail (Redis killed), or work again; coming
// back it has lost everything, as Redis without persistence.
func (o *memOrder) setDown(down bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.down = down
	if !down {
		o.last, o.places, o.alive = nil, nil, nil
		o.epoch++
	}
}

func (o *memOrder) line() []Place {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.places)
}
