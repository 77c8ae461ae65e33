package spool

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// snapshot returns the content of every file in dir but LOCK.
func snapshot(tb testing.TB, dir string) map[string][]byte {
	tb.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	out := make(map[string][]byte)
	for _, de := range des {
		if de.Name() == "LOCK" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, de.Name()))
		if err != nil {
			tb.Fatal(err)
		}
		out[de.Name()] = b
	}
	return out
}

// sameFiles fails the test unless dir holds exactly the files of before,
// byte for byte.
func sameFiles(tb testing.TB, dir string, before map[string][]byte) {
	tb.Helper()
	after := snapshot(tb, dir)
	for name, b := range before {
		a, ok := after[name]
		switch {
		case !ok:
			tb.Fatalf("%s is gone", name)
		case !bytes.Equal(a, b):
			tb.Fatalf("%s changed: %d bytes before, %d after", name, len(b), len(a))
		}
	}
	for name := range after {
		if _, ok := before[name]; !ok {
			tb.Fatalf("new file %s", name)
		}
	}
}

// recordOffsets returns the offset of each of the n Accept records that
// appendN(0, n) wrote into a fresh segment, and the offset after them.
func recordOffsets(n int) []int64 {
	offs := make([]int64, n+1)
	offs[0] = headerLen
	for i := range n {
		offs[i+1] = offs[i] + int64(len(msgFrame(i)))
	}
	return offs
}

// spool100 writes 100 acknowledged messages (fsync on) into a new spool
// in a temporary directory, closes it and returns the directory and its
// only segment with records.
func spool100(t *testing.T) (dir, path string) {
	t.Helper()
	dir = t.TempDir()
	s := open(t, Options{Dir: dir})
	appendN(t, s, 0, 100)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	path = lastSegmentWithRecords(t, dir)
	if st, _ := os.Stat(path); st.Size() != recordOffsets(100)[100] {
		t.Fatalf("segment holds %d bytes, want %d", st.Size(), recordOffsets(100)[100])
	}
	return dir, path
}

// TestCorruptRecordRefusesOpen is issue 11 item 2: one flipped byte in
// the first of 100 acknowledged records of the last segment used to be
// taken for a torn tail, truncated away with the 99 good records after
// it, and the emptied segment deleted. Open must refuse instead, say
// where, and leave every file as it was.
func TestCorruptRecordRefusesOpen(t *testing.T) {
	t.Parallel()
	dir, path := spool100(t)
	offs := recordOffsets(100)
	corrupt(t, path, offs[0]+frameLen+5) // inside the first payload
	before := snapshot(t, dir)

	for range 2 { // and again: the refusal changed nothing
		var logs logBuffer
		s, err := Open(Options{Dir: dir, Logger: logs.logger()})
		if err == nil {
			n := s.Len()
			s.Close()
			t.Fatalf("Open succeeded on a segment whose first record is damaged, %d of 100 pending", n)
		}
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("error is not ErrCorrupt: %v", err)
		}
		msg := err.Error()
		for _, want := range []string{
			path,
			fmt.Sprintf("offset %d", offs[0]),
			fmt.Sprintf("valid record follows at offset %d", offs[1]),
			"spool-salvage -dir " + dir,
		} {
			if !strings.Contains(msg, want) {
				t.Fatalf("error does not say %q:\n%s", want, msg)
			}
		}
		if strings.Contains(logs.String(), "truncating") {
			t.Fatalf("Open truncated: %s", logs.String())
		}
		sameFiles(t, dir, before)
	}
	t.Log(ErrCorrupt, "example:", func() error { _, err := Open(Options{Dir: dir}); return err }())
}

// TestCorruptionInLastSegment: any damage with a valid record after it in
// the last segment is refused, whatever the damage and whatever record
// follows; the files stay as they were.
func TestCorruptionInLastSegment(t *testing.T) {
	t.Parallel()
	offs := recordOffsets(100)
	tests := []struct {
		name      string
		damage    func(t *testing.T, dir, path string)
		bad, next int64
	}{
		{"flipped length byte", func(t *testing.T, dir, path string) {
			corrupt(t, path, offs[50])
		}, offs[50], offs[51]},
		{"flipped checksum byte", func(t *testing.T, dir, path string) {
			corrupt(t, path, offs[98]+6)
		}, offs[98], offs[99]},
		{"zeroed across three records", func(t *testing.T, dir, path string) {
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			from, to := offs[10]+20, offs[13]-3
			if _, err := f.WriteAt(make([]byte, to-from), from); err != nil {
				t.Fatal(err)
			}
		}, offs[10], offs[13]},
		{"huge length in the middle", func(t *testing.T, dir, path string) {
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt([]byte{0xff, 0xff, 0xff, 0x7f}, offs[3]); err != nil {
				t.Fatal(err)
			}
		}, offs[3], offs[4]},
		{"last record damaged, a Done after it", func(t *testing.T, dir, path string) {
			s := open(t, Options{Dir: dir})
			if err := s.Done(context.Background(), []string{msg(0).ID}); err != nil {
				t.Fatal(err)
			}
			s.Close()
			// Open started a new segment for the Done; bring it back
			// into the old one, as a spool that never restarted would
			// have written it.
			last := lastSegmentWithRecords(t, dir)
			b, err := os.ReadFile(last)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(last); err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.Write(b[headerLen:]); err != nil {
				t.Fatal(err)
			}
			corrupt(t, path, offs[99]+frameLen+1)
		}, offs[99], offs[100]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir, path := spool100(t)
			tt.damage(t, dir, path)
			if got := lastSegmentWithRecords(t, dir); got != path {
				t.Fatalf("last segment is %s, not the damaged %s", got, path)
			}
			before := snapshot(t, dir)
			s, err := Open(Options{Dir: dir})
			if err == nil {
				n := s.Len()
				s.Close()
				t.Fatalf("Open succeeded, %d pending", n)
			}
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) ||
				!strings.Contains(err.Error(), fmt.Sprintf("offset %d", tt.bad)) ||
				!strings.Contains(err.Error(), fmt.Sprintf("valid record follows at offset %d", tt.next)) {
				t.Fatalf("want ErrCorrupt naming %s, offset %d and next offset %d; got %v", path, tt.bad, tt.next, err)
			}
			sameFiles(t, dir, before)
		})
	}
}

// TestTornTailOfLargeSegment: telling a torn tail from corruption scans
// the bytes after the damage; at the end of a full 64 MiB segment that
// must stay quick, and so must finding the next record after damage at
// its start.
func TestTornTailOfLargeSegment(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(3, 4))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := 0; i < n; i += 8 {
			binary.LittleEndian.PutUint64(b[i:], r.Uint64())
		}
		return b
	}
	// Records with random binary payloads are the worst case: text
	// rarely reads as a plausible record length, random bytes do.
	seg := []byte(segmentMagic)
	var n int
	for len(seg) < DefaultSegmentBytes {
		m := msg(n)
		m.Raw = random(64 << 10)
		seg = appendFrame(seg, encodeAccept(&m))
		n++
	}
	big := msg(n)
	big.Raw = random(8 << 20)
	torn := appendFrame(nil, encodeAccept(&big))
	torn = torn[:len(torn)/2]

	dir := t.TempDir()
	path := filepath.Join(dir, segmentName(1))
	if err := os.WriteFile(path, append(bytes.Clone(seg), torn...), 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	s := open(t, Options{Dir: dir, NoSync: true})
	t.Logf("replayed %d MiB with a %d MiB torn tail in %v", len(seg)>>20, len(torn)>>20, time.Since(start))
	if s.Len() != n {
		t.Fatalf("Len = %d, want %d", s.Len(), n)
	}
	if st, _ := os.Stat(path); st.Size() != int64(len(seg)) {
		t.Fatalf("truncated to %d bytes, want %d", st.Size(), len(seg))
	}
	if time.Since(start) > time.Minute {
		t.Errorf("recovery took %v", time.Since(start))
	}

	dir2 := t.TempDir()
	seg[headerLen+frameLen+1] ^= 1
	if err := os.WriteFile(filepath.Join(dir2, segmentName(1)), seg, 0o600); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if _, err := Open(Options{Dir: dir2, NoSync: true}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("damage at the start of a full segment: %v, want ErrCorrupt", err)
	}
	t.Logf("refused in %v", time.Since(start))
}

// TestNextValidFrame: the scan that tells damage from a torn tail finds a
// valid record at any offset, across the boundaries of what it reads at
// a time, and nothing that merely looks like one.
func TestNextValidFrame(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(9, 10))
	const size = 3*scanChunk + 100
	noise := make([]byte, size)
	for i := range noise {
		noise[i] = byte(r.Uint32())
	}
	copy(noise, segmentMagic)
	frame := msgFrame(1)
	scan := func(b []byte) (int64, bool) {
		t.Helper()
		off, found, err := nextValidFrame(bytes.NewReader(b), headerLen, int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		return off, found
	}
	for _, at := range []int{int(headerLen), int(headerLen) + 1, scanChunk - frameLen, scanChunk - 3, scanChunk,
		2*scanChunk - len(frame)/2, size - len(frame)} {
		b := bytes.Clone(noise)
		copy(b[at:], frame)
		if off, found := scan(b); !found || off != int64(at) {
			t.Errorf("frame at %d: found %v at %d", at, found, off)
		}
	}
	bigMsg := msg(2)
	bigMsg.Raw = noise[:2*scanChunk]
	big := appendFrame(nil, encodeAccept(&bigMsg))
	b := slices.Concat(noise[:scanChunk-5], big, noise[:1000])
	if off, found := scan(b); !found || off != scanChunk-5 {
		t.Errorf("frame of %d bytes across reads: found %v at %d", len(big), found, off)
	}

	for name, b := range map[string][]byte{
		"noise only":        noise,
		"frame cut short":   slices.Concat(noise[:5000], frame[:len(frame)-1]),
		"bad checksum":      slices.Concat(noise[:5000], frame[:4], []byte{frame[4] ^ 1}, frame[5:], noise[:5000]),
		"does not decode":   slices.Concat(noise[:5000], appendFrame(nil, []byte{recDone, 5}), noise[:5000]),
		"unknown type":      slices.Concat(noise[:5000], appendFrame(nil, []byte{9, 0}), noise[:5000]),
		"zeros":             slices.Concat([]byte(segmentMagic), make([]byte, size)),
		"only a frame head": slices.Concat(noise[:5000], frame[:frameLen]),
	} {
		if off, found := scan(b); found {
			t.Errorf("%s: found a valid frame at %d", name, off)
		}
	}
}
