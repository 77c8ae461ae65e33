package spool

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// maxKeptBuf caps the batch buffer kept between batches, so one burst of
// large messages does not pin its memory for good.
const maxKeptBuf = 4 << 20

// run is the writer goroutine: the only code that writes, syncs, rolls or
// deletes segment files. Each turn it takes everything queued, writes it
// with one write and one fsync (group commit), and only then answers the
// callers. It returns when Close has been called and the queue is empty.
func (s *Spool) run() {
	defer close(s.stopped)
	var batch []*request
	for {
		s.mu.Lock()
		batch, s.queue = s.queue, batch[:0]
		closing, failed := s.closing, s.failed
		s.mu.Unlock()

		if len(batch) == 0 {
			if closing {
				return
			}
			<-s.kick
			continue
		}
		if failed == nil {
			failed = s.commit(batch)
		}
		for _, r := range batch {
			r.done <- failed
			if r.typ == recAccept {
				for _, e := range r.entries {
					close(e.settled)
				}
			}
		}
		clear(batch)
	}
}

// commit writes and syncs batch, then makes its Accepts visible and
// deletes what compaction allows. A write or sync error leaves the file
// in an unknown state (after a failed fsync the kernel may have dropped
// the dirty pages), so it fails the spool for good: a restart replays
// what actually reached the disk.
func (s *Spool) commit(batch []*request) error {
	err := s.writeBatch(batch)
	if err != nil {
		err = fmt.Errorf("spool: unusable after a failed write, reopen to recover: %w", err)
		s.log.Error("spool write failed", "err", err)
		s.mu.Lock()
		s.failed = err
		s.mu.Unlock()
		close(s.broken)
		return err
	}

	accepted, done := false, false
	s.mu.Lock()
	for _, r := range batch {
		switch r.typ {
		case recAccept:
			accepted = true
			for _, e := range r.entries {
				s.pending.markDurable(e)
			}
		case recDone:
			done = true
		}
	}
	s.mu.Unlock()
	if accepted {
		s.signal()
	}
	if done {
		s.compact()
	}
	return nil
}

// writeBatch appends the records of batch to the active segment, rolling
// to a new segment whenever the next record would take the active one
// past segBytes (a segment always takes at least one record, however
// large). Every byte is synced before it returns nil.
func (s *Spool) writeBatch(batch []*request) error {
	buf := s.buf[:0]
	for _, r := range batch {
		used := s.size + int64(len(buf))
		if used > headerLen && used+int64(len(r.frame)) > s.segBytes {
			if err := s.writeSync(buf); err != nil {
				return err
			}
			buf = buf[:0]
			if err := s.roll(); err != nil {
				return err
			}
		}
		s.account(r)
		buf = append(buf, r.frame...)
	}
	err := s.writeSync(buf)
	if cap(buf) <= maxKeptBuf {
		s.buf = buf[:0]
	} else {
		s.buf = nil
	}
	s.records.Add(uint64(len(batch)))
	return err
}

// account updates the segment table for r, about to be written to the
// active segment.
func (s *Spool) account(r *request) {
	for _, e := range r.entries {
		switch r.typ {
		case recAccept:
			e.seg = s.active
			s.segs.accepted(s.active)
		case recAssign:
			s.segs.ref(s.active, e.seg)
		case recDone:
			s.segs.released(e.seg)
			s.segs.ref(s.active, e.seg)
		}
	}
}

func (s *Spool) writeSync(buf []byte) error {
	if len(buf) == 0 {
		return nil
	}
	name := s.file.Name()
	n, err := s.file.Write(buf)
	s.size += int64(n)
	if err != nil {
		return fmt.Errorf("writing %d bytes to %s at offset %d: %w", len(buf), name, s.size-int64(n), err)
	}
	if err := s.sync(s.file); err != nil {
		return fmt.Errorf("syncing %s: %w", name, err)
	}
	s.syncs.Add(1)
	return nil
}

// roll closes the active segment (already synced) and starts the next.
func (s *Spool) roll() error {
	if err := s.file.Close(); err != nil {
		return fmt.Errorf("closing full segment %s: %w", s.file.Name(), err)
	}
	f, err := createSegment(s.dir, s.active+1, s.sync)
	if err != nil {
		s.file = nil // the spool is failed: nothing writes again
		return err
	}
	s.active++
	s.file, s.size = f, headerLen
	s.segs.add(s.active)
	// The segment just closed may hold only done messages.
	s.compact()
	return nil
}

// compact deletes, oldest first, every segment the table says nothing
// needs, syncing the directory after each deletion so that a segment is
// never gone from the disk while an older one it refers to is still
// there.
func (s *Spool) compact() {
	if s.compactStop {
		return
	}
	for _, n := range s.segs.sorted() {
		if !s.segs.deletable(n, s.active) {
			continue
		}
		path := filepath.Join(s.dir, segmentName(n))
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			// Keeping the segment is always safe; try again next time.
			s.log.Error("deleting spent segment", "file", path, "err", err)
			return
		}
		delete(s.segs, n)
		if err := syncDir(s.dir, s.sync); err != nil {
			// Later deletions could reach the disk before this one:
			// stop deleting until the next Open.
			s.compactStop = true
			s.log.Error("stopping segment deletion until restart", "err", err)
			return
		}
		s.log.Debug("deleted spent segment", "file", path)
	}
}
