package spool

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

const (
	segmentExt    = ".wal"
	segmentDigits = 20 // wide enough for any uint64, so names sort as numbers
	headerLen     = int64(len(segmentMagic))
	frameLen      = 8 // uint32 payload length, uint32 CRC-32C
	// maxPayload bounds one record, so a corrupt length can neither make
	// replay allocate gigabytes nor be mistaken for a plausible record.
	// A message is a callback body plus metadata; media live elsewhere.
	maxPayload = 16 << 20
)

// segmentMagic opens every segment file; the last byte is the format
// version.
const segmentMagic = "WRSPOOL\x01"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func segmentName(n uint64) string {
	return fmt.Sprintf("%0*d%s", segmentDigits, n, segmentExt)
}

func parseSegmentName(name string) (uint64, bool) {
	digits, ok := strings.CutSuffix(name, segmentExt)
	if !ok || len(digits) != segmentDigits {
		return 0, false
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	return n, err == nil
}

// listSegments returns the segment numbers in dir, ascending. Other files
// are ignored.
func listSegments(dir string) ([]uint64, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("spool: listing segments in %s: %w", dir, err)
	}
	var nums []uint64
	for _, de := range des {
		if n, ok := parseSegmentName(de.Name()); ok && de.Type().IsRegular() {
			nums = append(nums, n)
		}
	}
	slices.Sort(nums)
	return nums, nil
}

// appendFrame appends payload to b with its frame: the little-endian
// length, then the CRC-32C of length and payload together, so a damaged
// length is caught as surely as a damaged payload.
func appendFrame(b, payload []byte) []byte {
	var h [frameLen]byte
	binary.LittleEndian.PutUint32(h[0:4], uint32(len(payload)))
	crc := crc32.Update(0, castagnoli, h[0:4])
	crc = crc32.Update(crc, castagnoli, payload)
	binary.LittleEndian.PutUint32(h[4:8], crc)
	b = append(b, h[:]...)
	return append(b, payload...)
}

// tornError reports a record that is cut short or fails its checksum:
// what a crash in the middle of a write leaves behind, or damage. At the
// end of the last segment, with no valid record after it
// (nextValidFrame), it is a torn tail and truncated away; anywhere else
// it is corruption.
type tornError struct {
	Offset int64
	Reason string
}

func (e *tornError) Error() string {
	return fmt.Sprintf("torn or corrupt record at offset %d: %s", e.Offset, e.Reason)
}

// readSegment decodes the segment of size bytes read from r and calls fn
// for each record in order. It returns the length of the valid prefix:
// the whole size when err is nil; the offset of the first bad record
// when err is a *tornError. A record whose checksum holds but whose
// payload does not decode is reported as errDecode, never as torn: it was
// written that way, so truncating it would drop acknowledged data.
//
// An empty file is a valid, empty segment (what a crash between creating
// a segment and writing its header leaves once replay has truncated it).
func readSegment(r io.Reader, size int64, fn func(off int64, rec record) error) (int64, error) {
	if size == 0 {
		return 0, nil
	}
	if size < headerLen {
		return 0, &tornError{Offset: 0, Reason: fmt.Sprintf("file of %d bytes is shorter than the segment header", size)}
	}
	var hdr [len(segmentMagic)]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, fmt.Errorf("reading segment header: %w", err)
	}
	if string(hdr[:]) != segmentMagic {
		if size == headerLen {
			// A header that never made it to disk; nothing can follow it.
			return 0, &tornError{Offset: 0, Reason: "incomplete segment header"}
		}
		return 0, fmt.Errorf("not a spool segment: header at offset 0 is %q, want %q", hdr[:], segmentMagic)
	}
	off := headerLen
	var frame [frameLen]byte
	var payload []byte
	for off < size {
		if size-off < frameLen {
			return off, &tornError{Offset: off, Reason: fmt.Sprintf("%d bytes left, short of a record frame", size-off)}
		}
		if _, err := io.ReadFull(r, frame[:]); err != nil {
			return off, fmt.Errorf("reading record frame at offset %d: %w", off, err)
		}
		n := int64(binary.LittleEndian.Uint32(frame[0:4]))
		if err := checkLength(off, n, size); err != nil {
			return off, err
		}
		if int64(cap(payload)) < n {
			payload = make([]byte, n)
		}
		payload = payload[:n]
		if _, err := io.ReadFull(r, payload); err != nil {
			return off, fmt.Errorf("reading record at offset %d: %w", off, err)
		}
		if err := checkSum(off, frame[:], payload); err != nil {
			return off, err
		}
		rec, err := decodeRecord(payload)
		if err != nil {
			return off, fmt.Errorf("record at offset %d: %w", off, err)
		}
		if err := fn(off, rec); err != nil {
			return off, err
		}
		off += frameLen + n
	}
	return off, nil
}

// checkLength checks the length n read from the frame at off of a
// segment of size bytes, as readSegment does.
func checkLength(off, n, size int64) error {
	switch {
	case n == 0:
		return &tornError{Offset: off, Reason: "zero record length"}
	case n > maxPayload:
		return &tornError{Offset: off, Reason: fmt.Sprintf("record length %d exceeds the limit of %d", n, maxPayload)}
	case n > size-off-frameLen:
		return &tornError{Offset: off, Reason: fmt.Sprintf("record of %d bytes runs past the end of the file", n)}
	}
	return nil
}

// checkSum checks the CRC-32C in frame against its length bytes and
// payload.
func checkSum(off int64, frame, payload []byte) error {
	crc := crc32.Update(0, castagnoli, frame[0:4])
	crc = crc32.Update(crc, castagnoli, payload)
	if want := binary.LittleEndian.Uint32(frame[4:8]); crc != want {
		return &tornError{Offset: off, Reason: fmt.Sprintf("checksum %08x, want %08x", crc, want)}
	}
	return nil
}

// readFrameAt reads and checks the record at off of the segment r of
// size bytes, reusing *buf for the frame. It returns the whole frame
// (header and payload; valid until the next call) and the record, or the
// error readSegment would report for it: a *tornError, an errDecode, or
// an I/O error.
func readFrameAt(r io.ReaderAt, off, size int64, buf *[]byte) ([]byte, record, error) {
	if size-off < frameLen {
		return nil, record{}, &tornError{Offset: off, Reason: fmt.Sprintf("%d bytes left, short of a record frame", size-off)}
	}
	b := grow(*buf, frameLen)
	if err := readAt(r, b, off); err != nil {
		return nil, record{}, fmt.Errorf("reading record frame at offset %d: %w", off, err)
	}
	n := int64(binary.LittleEndian.Uint32(b[0:4]))
	if err := checkLength(off, n, size); err != nil {
		return nil, record{}, err
	}
	b = grow(b, frameLen+int(n))
	*buf = b
	if err := readAt(r, b[frameLen:], off+frameLen); err != nil {
		return nil, record{}, fmt.Errorf("reading record at offset %d: %w", off, err)
	}
	if err := checkSum(off, b[:frameLen], b[frameLen:]); err != nil {
		return nil, record{}, err
	}
	rec, err := decodeRecord(b[frameLen:])
	if err != nil {
		return nil, record{}, fmt.Errorf("record at offset %d: %w", off, err)
	}
	return b, rec, nil
}

// grow returns b resized to n bytes, keeping its content, reallocating
// only when its capacity is short.
func grow(b []byte, n int) []byte {
	if cap(b) < n {
		nb := make([]byte, n)
		copy(nb, b)
		return nb
	}
	return b[:n]
}

// readAt fills b from off of r; a reader may report io.EOF along with a
// full read at the end of the file.
func readAt(r io.ReaderAt, b []byte, off int64) error {
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// scanChunk is how much nextValidFrame reads at a time, unless a
// candidate frame needs more.
const scanChunk = 1 << 20

// nextValidFrame looks for a valid record in the segment r of size bytes
// at any offset from from on, byte by byte: a frame whose length is
// within 1..maxPayload and fits in the file, whose CRC-32C matches, and
// whose payload decodes. It returns the offset of the first one, or
// found false when there is none: then the damage before it is a torn
// tail, since nothing acknowledged can follow.
//
// Only a frame that fits the remaining bytes and starts with a known
// record type is checksummed, and the file is read in chunks from the
// damage on, so the scan stays cheap: random bytes make such a candidate
// at about one offset in 20,000, text and zeros almost never, and at the
// end of a segment only short candidates fit.
func nextValidFrame(r io.ReaderAt, from, size int64) (off int64, found bool, err error) {
	var buf []byte // holds the file from base on
	var base int64
	fill := func(at int64, want int64) error {
		want = min(size-at, max(want, int64(cap(buf)), scanChunk))
		buf = grow(buf, int(want))
		base = at
		if err := readAt(r, buf, at); err != nil {
			return fmt.Errorf("scanning for a valid record at offset %d: %w", at, err)
		}
		return nil
	}
	for off = max(from, headerLen); size-off > frameLen; off++ {
		if off+frameLen+1 > base+int64(len(buf)) {
			if err := fill(off, 0); err != nil {
				return 0, false, err
			}
		}
		h := buf[off-base:]
		n := int64(binary.LittleEndian.Uint32(h[0:4]))
		if n == 0 || n > maxPayload || n > size-off-frameLen || !knownRecordType(h[frameLen]) {
			continue
		}
		if off+frameLen+n > base+int64(len(buf)) {
			if err := fill(off, frameLen+n); err != nil {
				return 0, false, err
			}
			h = buf
		}
		frame, payload := h[:frameLen], h[frameLen:frameLen+n]
		if checkSum(off, frame, payload) != nil {
			continue
		}
		if _, err := decodeRecord(payload); err != nil {
			continue
		}
		return off, true, nil
	}
	return 0, false, nil
}

// createSegment creates segment n in dir with its header, durably: the
// file and its directory entry are synced before it is used, so a crash
// can leave at worst an empty or header-only last segment.
func createSegment(dir string, n uint64, sync func(*os.File) error) (*os.File, error) {
	path := filepath.Join(dir, segmentName(n))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spool: creating segment: %w", err)
	}
	if _, err := f.WriteString(segmentMagic); err != nil {
		f.Close()
		return nil, fmt.Errorf("spool: writing header of %s: %w", path, err)
	}
	if err := sync(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("spool: syncing new segment %s: %w", path, err)
	}
	if err := syncDir(dir, sync); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// syncDir makes creations and removals in dir durable.
func syncDir(dir string, sync func(*os.File) error) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("spool: opening directory %s to sync it: %w", dir, err)
	}
	defer d.Close()
	if err := sync(d); err != nil {
		return fmt.Errorf("spool: syncing directory %s: %w", dir, err)
	}
	return nil
}

// truncateSegment cuts path to size bytes and syncs it.
func truncateSegment(path string, size int64, sync func(*os.File) error) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("spool: opening %s to truncate it: %w", path, err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("spool: truncating %s to %d bytes: %w", path, size, err)
	}
	if err := sync(f); err != nil {
		return fmt.Errorf("spool: syncing %s after truncation: %w", path, err)
	}
	return nil
}
