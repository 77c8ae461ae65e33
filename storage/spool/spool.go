package spool

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/wechat-relay/wechat-relay/relay"
)

// DefaultSegmentBytes is the segment size used when Options.SegmentBytes
// is zero.
const DefaultSegmentBytes = 64 << 20

var (
	// ErrClosed is returned by Append, Assign and Done after Close.
	ErrClosed = errors.New("spool: closed")
	// ErrLocked is returned by Open when another Spool, in this process
	// or another, has the directory open.
	ErrLocked = errors.New("spool: directory is in use by another spool")
	// ErrCorrupt is returned by Open, wrapped with the file and the
	// offsets, when a segment holds damage that a crash during a write
	// cannot explain: a bad record followed by a valid one, a bad record
	// in a segment that is not the last, or a record whose checksum holds
	// but which does not decode. Acknowledged records may lie beyond the
	// damage, so Open refuses to start and changes nothing; Salvage (the
	// spool-salvage command) keeps the valid records.
	ErrCorrupt = errors.New("spool: corrupt segment")
)

// Options configures a Spool. The zero value of every field but Dir is a
// usable default.
type Options struct {
	// Dir holds the segment files; it is created if missing. It must be
	// on a local file system that honours fsync, and belong to one spool.
	Dir string
	// SegmentBytes is the size past which the writer starts a new
	// segment file. Zero means DefaultSegmentBytes. Smaller segments are
	// reclaimed sooner; each roll costs two extra fsyncs.
	SegmentBytes int64
	// NoSync skips every fsync. UNSAFE: an operating-system crash or power
	// loss then loses or tears acknowledged records. For tests and
	// benchmarks only.
	NoSync bool
	// Logger receives warnings about truncated tails and compaction
	// problems. Nil discards them.
	Logger *slog.Logger

	// syncFile replaces (*os.File).Sync in tests, to observe or fail
	// fsyncs. Nil means the real thing (or nothing when NoSync).
	syncFile func(*os.File) error
}

// Spool is a relay.Spool backed by a write-ahead log on local disk. See
// the package documentation for the file format and the guarantees.
type Spool struct {
	dir      string
	segBytes int64
	log      *slog.Logger
	sync     func(*os.File) error
	lock     *dirLock
	notify   chan struct{}
	kick     chan struct{} // wakes the writer; buffered 1
	stopped  chan struct{} // closed when the writer has returned
	broken   chan struct{} // closed when a write or fsync failed

	closeOnce sync.Once
	closeErr  error

	// mu guards the fields below it. It is never held during I/O.
	mu      sync.Mutex
	pending *pendingSet
	queue   []*request // waiting for the writer, in the order they were made
	closing bool
	failed  error // sticky: set when a write or fsync failed

	// Owned by the writer goroutine (and by Open before it starts).
	segs        segTable
	active      uint64   // number of the segment being written
	file        *os.File // the active segment
	size        int64    // bytes in the active segment
	buf         []byte   // reused batch buffer
	compactStop bool     // a directory fsync failed; deleting is unsafe

	// Counters for tests and benchmarks.
	syncs   atomic.Uint64 // batch fsyncs
	records atomic.Uint64 // records written
}

var _ relay.Spool = (*Spool)(nil)

// request is one record waiting for the writer, and its caller.
type request struct {
	typ     byte
	frame   []byte   // the framed record
	entries []*entry // the pending messages it applies to
	done    chan error
}

// Open opens the spool in opts.Dir: it replays every segment in order,
// rebuilding the pending messages with their sequence numbers, truncates
// a torn tail off the last segment, starts a fresh segment, deletes the
// segments nothing needs any more, and starts the writer goroutine.
//
// A bad record is a torn tail, truncated with a warning, only when it is
// in the last segment and no valid record follows it. Any other damage is
// an error wrapping ErrCorrupt that names the file and the offsets, and
// Open leaves the files as they are: acknowledged records may lie beyond
// the damage, and dropping them silently would break the spool's
// promise. Salvage recovers what is intact.
func Open(opts Options) (*Spool, error) {
	if opts.Dir == "" {
		return nil, errors.New("spool: Options.Dir is required")
	}
	if opts.SegmentBytes < 0 {
		return nil, fmt.Errorf("spool: negative SegmentBytes %d", opts.SegmentBytes)
	}
	s := &Spool{
		dir:      opts.Dir,
		segBytes: opts.SegmentBytes,
		log:      opts.Logger,
		sync:     opts.syncFile,
		notify:   make(chan struct{}, 1),
		kick:     make(chan struct{}, 1),
		stopped:  make(chan struct{}),
		broken:   make(chan struct{}),
	}
	if s.segBytes == 0 {
		s.segBytes = DefaultSegmentBytes
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("spool", s.dir)
	switch {
	case s.sync != nil:
	case opts.NoSync:
		s.sync = func(*os.File) error { return nil }
	default:
		s.sync = (*os.File).Sync
	}

	if err := os.MkdirAll(s.dir, 0o750); err != nil {
		return nil, fmt.Errorf("spool: creating directory: %w", err)
	}
	lock, err := lockDir(s.dir)
	if err != nil {
		return nil, err
	}
	s.lock = lock
	if err := s.recover(); err != nil {
		if s.file != nil {
			s.file.Close()
		}
		lock.release()
		return nil, err
	}
	go s.run()
	return s, nil
}

// recover replays the segments and starts a fresh one.
func (s *Spool) recover() error {
	nums, err := listSegments(s.dir)
	if err != nil {
		return err
	}
	rp := newReplayer()
	for i, n := range nums {
		rp.segs.add(n)
		if err := s.replaySegment(rp, n, i == len(nums)-1); err != nil {
			return err
		}
	}
	if rp.dupes > 0 {
		s.log.Warn("spool held accept records for messages already pending; kept the first of each", "count", rp.dupes)
	}
	s.pending, s.segs = rp.pending, rp.segs

	// Always start a new segment: the last one may have been truncated,
	// and appending to a file a crash left behind is not worth the doubt.
	s.active = 1
	if len(nums) > 0 {
		s.active = nums[len(nums)-1] + 1
	}
	f, err := createSegment(s.dir, s.active, s.sync)
	if err != nil {
		return err
	}
	s.file, s.size = f, headerLen
	s.segs.add(s.active)
	s.compact()
	if n := s.pending.durable; n > 0 {
		s.log.Info("spool replayed", "pending", n, "segments", len(s.segs))
		s.signal()
	}
	return nil
}

// replaySegment applies the records of segment n to rp.
func (s *Spool) replaySegment(rp *replayer, n uint64, last bool) error {
	path := filepath.Join(s.dir, segmentName(n))
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("spool: opening segment for replay: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("spool: replaying %s: %w", path, err)
	}
	valid, err := readSegment(bufio.NewReaderSize(f, 1<<20), st.Size(), func(_ int64, rec record) error {
		rp.apply(n, rec)
		return nil
	})
	var torn *tornError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &torn):
		next, found, serr := nextValidFrame(f, torn.Offset+1, st.Size())
		if serr != nil {
			return fmt.Errorf("spool: %s: %w (after %v)", path, serr, err)
		}
		if last && !found {
			s.log.Warn("truncating torn tail of the last segment (a crash interrupted a write that was never acknowledged; no valid record follows)",
				"file", path, "offset", torn.Offset, "dropped_bytes", st.Size()-valid, "reason", torn.Reason)
			return truncateSegment(path, valid, s.sync)
		}
		var where string
		if found {
			where = fmt.Sprintf("a valid record follows at offset %d (%d bytes unreadable)", next, next-torn.Offset)
		} else {
			where = fmt.Sprintf("no valid record follows (%d bytes unreadable to the end)", st.Size()-torn.Offset)
		}
		why := "so this is damage, not a torn tail: the records after it were acknowledged"
		if !last {
			why = "and it is not the last segment, so records acknowledged after the damage would be lost"
		}
		return fmt.Errorf("%w: %s: %v; %s, %s. Refusing to start; the file is left as it is. %s",
			ErrCorrupt, path, err, where, why, salvageHint(s.dir, path))
	case errors.Is(err, errDecode):
		return fmt.Errorf("%w: %s: %v; its checksum holds, so it was written that way. Refusing to start; the file is "+
			"left as it is. If a newer wechat-relay wrote this spool, run that version instead. Otherwise: %s",
			ErrCorrupt, path, err, salvageHint(s.dir, path))
	default:
		return fmt.Errorf("spool: replaying %s: %w", path, err)
	}
}

// salvageHint tells the operator how to recover the valid records of
// the damaged segment path in dir.
func salvageHint(dir, path string) string {
	return fmt.Sprintf("To keep the valid records and drop the damaged bytes, stop every relay using the spool and run "+
		"\"wechat-relay spool-salvage -dir %s\" (it keeps the damaged file as %s%s)", dir, filepath.Base(path), damagedSuffix)
}

// Close stops the writer after it has written everything already
// submitted, and closes the files. Calls that were waiting get their
// answer; later calls get ErrClosed. Close is idempotent.
func (s *Spool) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closing = true
		s.mu.Unlock()
		s.wake()
		<-s.stopped
		if s.file == nil {
			// A failed roll left no active segment.
		} else if err := s.file.Close(); err != nil {
			s.closeErr = fmt.Errorf("spool: closing active segment: %w", err)
		}
		if err := s.lock.release(); err != nil && s.closeErr == nil {
			s.closeErr = fmt.Errorf("spool: releasing directory lock: %w", err)
		}
	})
	return s.closeErr
}

// Append makes m durable and pending. It returns only after the fsync
// that covers m's record, or with an error.
//
// If ctx is done first, Append returns ctx.Err() but m stays pending and
// will normally become durable: a retry then gets relay.ErrDuplicate,
// which callers treat as accepted.
func (s *Spool) Append(ctx context.Context, m relay.Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if m.ID == "" {
		return errors.New("spool: message without ID")
	}
	m = cloneMessage(m)
	payload := encodeAccept(&m)
	if len(payload) > maxPayload {
		return fmt.Errorf("spool: message %s encodes to %d bytes, over the limit of %d", m.ID, len(payload), maxPayload)
	}
	e := &entry{msg: m, settled: make(chan struct{})}
	r := &request{typ: recAccept, frame: appendFrame(nil, payload), entries: []*entry{e}, done: make(chan error, 1)}

	s.mu.Lock()
	if err := s.usableLocked(); err != nil {
		s.mu.Unlock()
		return err
	}
	if have := s.pending.get(m.ID); have != nil {
		s.mu.Unlock()
		return s.duplicate(ctx, have)
	}
	s.pending.add(e)
	s.enqueueLocked(r)
	s.mu.Unlock()
	return s.wait(ctx, r)
}

// duplicate answers an Append of an id already pending as have: with
// relay.ErrDuplicate once have's record is durable, which may mean
// waiting for the write in flight. Answering before that would let a
// retry be told "accepted" on the strength of a write that may yet fail.
func (s *Spool) duplicate(ctx context.Context, have *entry) error {
	if have.settled != nil {
		select {
		case <-have.settled:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if have.durable {
		return relay.ErrDuplicate
	}
	if s.failed != nil {
		return s.failed
	}
	return fmt.Errorf("spool: the earlier copy of %s was not written", have.msg.ID)
}

// Assign records the sequence numbers of pending messages durably; IDs
// that are not pending are ignored. Pending shows the new numbers at
// once. On ctx cancellation it behaves like Append.
func (s *Spool) Assign(ctx context.Context, seqs map[string]uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	if err := s.usableLocked(); err != nil {
		s.mu.Unlock()
		return err
	}
	var items []idSeq
	var entries []*entry
	for _, id := range slices.Sorted(maps.Keys(seqs)) {
		if e := s.pending.get(id); e != nil {
			e.msg.Seq = seqs[id]
			items = append(items, idSeq{id: id, seq: seqs[id]})
			entries = append(entries, e)
		}
	}
	if len(items) == 0 {
		s.mu.Unlock()
		return nil
	}
	r := &request{typ: recAssign, frame: appendFrame(nil, encodeAssign(items)), entries: entries, done: make(chan error, 1)}
	s.enqueueLocked(r)
	s.mu.Unlock()
	return s.wait(ctx, r)
}

// Done removes messages from the pending set and records that durably;
// IDs that are not pending are ignored. On ctx cancellation it behaves
// like Append: the messages are gone from Pending either way, and come
// back after a restart only if the record did not reach the disk.
func (s *Spool) Done(ctx context.Context, ids []string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	if err := s.usableLocked(); err != nil {
		s.mu.Unlock()
		return err
	}
	var done []string
	var entries []*entry
	for _, id := range ids {
		if e := s.pending.remove(id); e != nil {
			done = append(done, id)
			entries = append(entries, e)
		}
	}
	if len(done) == 0 {
		s.mu.Unlock()
		return nil
	}
	r := &request{typ: recDone, frame: appendFrame(nil, encodeDone(done)), entries: entries, done: make(chan error, 1)}
	s.enqueueLocked(r)
	s.mu.Unlock()
	return s.wait(ctx, r)
}

// Pending returns copies of up to max durable pending messages, oldest
// first, with the sequence numbers given by Assign. max <= 0 returns nil.
// A message whose Append has not returned yet is not included.
func (s *Spool) Pending(max int) []relay.Message {
	if max <= 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]relay.Message, 0, min(max, s.pending.durable))
	for el := s.pending.order.Front(); el != nil && len(out) < max; el = el.Next() {
		if e := el.Value.(*entry); e.durable {
			out = append(out, cloneMessage(e.msg))
		}
	}
	return out
}

// Notify returns a channel, buffered 1, that receives a value after
// appends become durable (and after Open, if anything is pending). Sends
// never block, so one value may stand for several appends.
func (s *Spool) Notify() <-chan struct{} { return s.notify }

// Len returns the number of messages Pending can return.
func (s *Spool) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pending.durable
}

func (s *Spool) usableLocked() error {
	if s.closing {
		return ErrClosed
	}
	return s.failed
}

func (s *Spool) enqueueLocked(r *request) {
	s.queue = append(s.queue, r)
	s.wake()
}

func (s *Spool) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *Spool) signal() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// wait blocks until r is written and synced, or ctx is done.
func (s *Spool) wait(ctx context.Context, r *request) error {
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		select {
		case err := <-r.done: // finished meanwhile: report the truth
			return err
		default:
			return ctx.Err()
		}
	}
}

// cloneMessage copies m deeply enough that the caller and the spool
// share nothing mutable.
func cloneMessage(m relay.Message) relay.Message {
	m.Attrs = maps.Clone(m.Attrs)
	if m.Raw != nil {
		m.Raw = append(make([]byte, 0, len(m.Raw)), m.Raw...)
	}
	return m
}

var _ io.Closer = (*Spool)(nil)
