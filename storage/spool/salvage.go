package spool

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
)

const (
	// damagedSuffix is added to the name of a segment Salvage replaced.
	// The spool ignores such files and never deletes them.
	damagedSuffix = ".damaged"
	// salvageSuffix names the new segment while Salvage writes it.
	salvageSuffix = ".salvage"
)

// SalvageReport is what Salvage found and did.
type SalvageReport struct {
	Dir string
	// Segments is the number of segment files checked.
	Segments int
	// Salvaged lists the segments that were damaged and have been
	// rewritten, oldest first. It is empty when the spool was clean, and
	// then Salvage changed nothing.
	Salvaged []SegmentSalvage
	// Pending is the number of messages the spool holds pending now, as
	// Open will find them.
	Pending int
}

// Clean reports whether Salvage found no damage.
func (r SalvageReport) Clean() bool { return len(r.Salvaged) == 0 }

// SegmentSalvage is one damaged segment and what became of it.
type SegmentSalvage struct {
	// File is the segment, which now holds only the valid records.
	File string
	// Damaged is where the original file is kept, untouched.
	Damaged string
	// Kept is the number of valid records kept.
	Kept int
	// Skipped are the byte ranges of the original that held no valid
	// record, in file order.
	Skipped []SkippedRange
}

// SkippedRange is a run of damaged bytes Salvage dropped.
type SkippedRange struct {
	Offset int64  // in the original file
	Length int64  // up to the next valid record, or to the end of the file
	Reason string // why the record at Offset is not valid
}

// Salvage recovers a spool that Open refuses with ErrCorrupt: in every
// segment with damage it keeps the valid records and drops the damaged
// bytes, each run of them up to the next valid record (the rule Open
// uses to tell damage from a torn tail: a frame whose length fits, whose
// checksum matches and whose payload decodes).
//
// It holds the directory lock the whole time, so it refuses with
// ErrLocked while a spool has the directory open. It first reads every
// segment, and changes nothing if one cannot be salvaged (a file that is
// not a spool segment, an I/O error). Then, for each damaged segment, it
// writes the valid records, byte for byte, to a new file after the
// segment header and fsyncs it, reads it back, keeps the original under
// the name <segment>.damaged (never deleted), renames the new file into
// place and fsyncs the directory. At every step the segment's name holds
// either the original or the complete new file.
//
// What the dropped bytes held is lost: an Accept there loses its message,
// an Assign its sequence numbers, a Done brings its messages back as
// pending. On a clean spool Salvage changes nothing and reports Clean.
func Salvage(dir string, log *slog.Logger) (SalvageReport, error) {
	rep := SalvageReport{Dir: dir}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("spool", dir)
	st, err := os.Stat(dir)
	if err != nil {
		return rep, fmt.Errorf("spool: %w", err)
	}
	if !st.IsDir() {
		return rep, fmt.Errorf("spool: %s is not a directory", dir)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return rep, err
	}
	defer lock.release()

	nums, err := listSegments(dir)
	if err != nil {
		return rep, err
	}
	rep.Segments = len(nums)
	var damaged []SegmentSalvage
	for _, n := range nums {
		path := filepath.Join(dir, segmentName(n))
		kept, skipped, err := scanSegment(path)
		if err != nil {
			return rep, fmt.Errorf("spool: %s: %w; nothing was changed", path, err)
		}
		if len(skipped) > 0 {
			damaged = append(damaged, SegmentSalvage{File: path, Kept: kept, Skipped: skipped})
		}
	}
	for _, sv := range damaged {
		for _, sk := range sv.Skipped {
			log.Warn("dropping damaged bytes", "file", sv.File, "offset", sk.Offset, "length", sk.Length, "reason", sk.Reason)
		}
		if sv.Damaged, err = rewriteSegment(dir, sv); err != nil {
			return rep, err
		}
		log.Info("segment salvaged", "file", sv.File, "kept", sv.Kept, "original", sv.Damaged)
		rep.Salvaged = append(rep.Salvaged, sv)
	}

	// Read the spool back as Open will.
	rp := newReplayer()
	for _, n := range nums {
		rp.segs.add(n)
		path := filepath.Join(dir, segmentName(n))
		if err := replayStrict(path, func(rec record) { rp.apply(n, rec) }); err != nil {
			return rep, fmt.Errorf("spool: %s does not read back after salvage: %w", path, err)
		}
	}
	rep.Pending = rp.pending.durable
	return rep, nil
}

// scanSegment reads the segment at path and returns the number of valid
// records and the damaged ranges (none for a clean segment). An error
// means the file cannot be salvaged.
func scanSegment(path string) (kept int, skipped []SkippedRange, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, nil, err
	}
	size := st.Size()
	switch {
	case size == 0:
		return 0, nil, nil // a valid, empty segment
	case size < headerLen:
		return 0, []SkippedRange{{0, size, "file shorter than the segment header"}}, nil
	}
	hdr := make([]byte, headerLen)
	if err := readAt(f, hdr, 0); err != nil {
		return 0, nil, fmt.Errorf("reading segment header: %w", err)
	}
	if string(hdr) != segmentMagic {
		if size == headerLen {
			return 0, []SkippedRange{{0, size, "incomplete segment header"}}, nil
		}
		return 0, nil, fmt.Errorf("not a spool segment: header at offset 0 is %q, want %q; "+
			"salvage leaves it alone (move it out of the directory if it does not belong there)", hdr, segmentMagic)
	}
	var buf []byte
	for off := headerLen; off < size; {
		frame, _, err := readFrameAt(f, off, size, &buf)
		if err == nil {
			kept++
			off += int64(len(frame))
			continue
		}
		var torn *tornError
		reason := err.Error()
		switch {
		case errors.As(err, &torn):
			reason = torn.Reason
		case errors.Is(err, errDecode):
		default:
			return 0, nil, err
		}
		next, found, err := nextValidFrame(f, off+1, size)
		if err != nil {
			return 0, nil, err
		}
		if !found {
			next = size
		}
		skipped = append(skipped, SkippedRange{Offset: off, Length: next - off, Reason: reason})
		off = next
	}
	return kept, skipped, nil
}

// rewriteSegment replaces sv.File by a segment holding only its valid
// records, keeping the original, and returns the original's new name.
func rewriteSegment(dir string, sv SegmentSalvage) (string, error) {
	src, err := os.Open(sv.File)
	if err != nil {
		return "", fmt.Errorf("spool: %w", err)
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		return "", fmt.Errorf("spool: %w", err)
	}

	tmp := sv.File + salvageSuffix
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("spool: removing a salvage left over from before: %w", err)
	}
	if err := writeSalvaged(tmp, src, st.Size(), sv.Skipped); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("spool: writing the salvaged copy of %s: %w", sv.File, err)
	}
	n := 0
	if err := replayStrict(tmp, func(record) { n++ }); err != nil || n != sv.Kept {
		os.Remove(tmp)
		return "", fmt.Errorf("spool: the salvaged copy of %s does not read back (%d records, want %d): %v", sv.File, n, sv.Kept, err)
	}
	damaged, err := linkAside(sv.File)
	if err != nil {
		os.Remove(tmp)
		return "", err
	}
	if err := os.Rename(tmp, sv.File); err != nil {
		return "", fmt.Errorf("spool: putting the salvaged segment in place (the original is kept as %s): %w", damaged, err)
	}
	if err := syncDir(dir, (*os.File).Sync); err != nil {
		return "", err
	}
	return damaged, nil
}

// writeSalvaged writes to path the segment header and the bytes of src
// (size bytes long) after its header that skipped leaves out, and syncs
// it.
func writeSalvaged(path string, src io.ReaderAt, size int64, skipped []SkippedRange) error {
	out, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(out, 1<<20)
	_, err = w.WriteString(segmentMagic)
	keep := func(from, to int64) {
		if err == nil && to > from {
			_, err = io.Copy(w, io.NewSectionReader(src, from, to-from))
		}
	}
	pos := headerLen
	for _, sk := range skipped {
		keep(pos, sk.Offset)
		pos = max(pos, sk.Offset+sk.Length)
	}
	keep(pos, size)
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// linkAside gives the segment at path a second name, <path>.damaged (or
// .damaged.2, ... if taken), never replacing an existing file, and
// returns it. A hard link rather than a rename, so that the segment's
// own name is never missing: a crash there would make Open replay the
// spool without it.
func linkAside(path string) (string, error) {
	for i := 1; i <= 1000; i++ {
		name := path + damagedSuffix
		if i > 1 {
			name += "." + strconv.Itoa(i)
		}
		err := os.Link(path, name)
		if err == nil {
			return name, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("spool: keeping the damaged segment as %s: %w", name, err)
		}
	}
	return "", fmt.Errorf("spool: keeping the damaged segment: %s%s and 999 more names are taken", path, damagedSuffix)
}

// replayStrict reads the segment at path and calls fn for each record;
// any damage is an error.
func replayStrict(path string, fn func(record)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	_, err = readSegment(bufio.NewReaderSize(f, 1<<20), st.Size(), func(_ int64, rec record) error {
		fn(rec)
		return nil
	})
	return err
}
