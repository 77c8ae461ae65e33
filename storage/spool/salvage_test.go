package spool

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// salvage runs Salvage on dir and fails the test on an error.
func salvage(t *testing.T, dir string) SalvageReport {
	t.Helper()
	var logs logBuffer
	rep, err := Salvage(dir, logs.logger())
	if err != nil {
		t.Fatalf("Salvage: %v\n%s", err, logs.String())
	}
	return rep
}

// TestSalvage is issue 11 item 2 to the end: one flipped byte in the
// first of 100 acknowledged records, Open refuses, Salvage keeps the 99
// others (and the Assign records after them), and Open then hands out
// exactly those 99, in order, with their sequence numbers.
func TestSalvage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	s := open(t, Options{Dir: dir})
	appendN(t, s, 0, 100)
	want := msgs(0, 100)
	for from := 0; from < 100; from += 25 {
		seqs := map[string]uint64{}
		for i := from; i < from+25; i++ {
			seqs[msg(i).ID] = uint64(1000 + i)
			want[i].Seq = uint64(1000 + i)
		}
		if err := s.Assign(ctx, seqs); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	path := lastSegmentWithRecords(t, dir)
	offs := recordOffsets(100)
	corrupt(t, path, offs[0]+frameLen+5)
	damagedBytes, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Options{Dir: dir}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open of the damaged spool: %v, want ErrCorrupt", err)
	}

	rep := salvage(t, dir)
	t.Logf("%+v", rep)
	if rep.Clean() || len(rep.Salvaged) != 1 {
		t.Fatalf("report: %+v, want one salvaged segment", rep)
	}
	sv := rep.Salvaged[0]
	if sv.File != path || sv.Kept != 99+4 || sv.Damaged != path+".damaged" {
		t.Fatalf("salvaged %+v, want %s with 99 accepts and 4 assigns kept, original as .damaged", sv, path)
	}
	if len(sv.Skipped) != 1 || sv.Skipped[0].Offset != offs[0] || sv.Skipped[0].Length != offs[1]-offs[0] ||
		!strings.Contains(sv.Skipped[0].Reason, "checksum") {
		t.Fatalf("skipped %+v, want offset %d, %d bytes, a checksum failure", sv.Skipped, offs[0], offs[1]-offs[0])
	}
	if rep.Pending != 99 {
		t.Fatalf("report says %d pending, want 99", rep.Pending)
	}
	if b, err := os.ReadFile(sv.Damaged); err != nil || !bytes.Equal(b, damagedBytes) {
		t.Fatalf("the original is not kept as it was: %v", err)
	}
	if b, _ := os.ReadFile(path); !bytes.Equal(b[headerLen:], damagedBytes[offs[1]:]) || string(b[:headerLen]) != segmentMagic {
		t.Fatal("the salvaged segment is not the header and the valid frames, byte for byte")
	}

	s2 := open(t, Options{Dir: dir})
	if got := s2.Pending(1000); !reflect.DeepEqual(got, want[1:]) {
		t.Fatalf("after salvage %d pending %v\nwant %d %v", len(got), ids(got), 99, ids(want[1:]))
	}
	// The spool works on; Salvage of the now clean spool changes nothing,
	// and the damaged original is never compacted away.
	if err := s2.Done(ctx, ids(want[1:])); err != nil {
		t.Fatal(err)
	}
	s2.Close()
	before := snapshot(t, dir)
	if rep := salvage(t, dir); !rep.Clean() || rep.Pending != 0 {
		t.Fatalf("second salvage: %+v", rep)
	}
	sameFiles(t, dir, before)
	open(t, Options{Dir: dir}).Close()
	if _, err := os.Stat(sv.Damaged); err != nil {
		t.Fatalf("the damaged original went: %v", err)
	}
}

// TestSalvageCleanSpool: on a spool with nothing wrong Salvage says so and
// touches no file.
func TestSalvageCleanSpool(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := open(t, Options{Dir: dir, SegmentBytes: 600})
	appendN(t, s, 0, 20)
	if err := s.Done(context.Background(), ids(msgs(0, 5))); err != nil {
		t.Fatal(err)
	}
	s.Close()
	before := snapshot(t, dir)
	rep := salvage(t, dir)
	if !rep.Clean() || rep.Segments != len(segmentFiles(t, dir)) || rep.Pending != 15 {
		t.Fatalf("report %+v, want clean, %d segments, 15 pending", rep, len(segmentFiles(t, dir)))
	}
	sameFiles(t, dir, before)

	if rep := salvage(t, t.TempDir()); !rep.Clean() || rep.Segments != 0 {
		t.Fatalf("empty directory: %+v", rep)
	}
	if _, err := Salvage(filepath.Join(dir, "missing"), nil); err == nil {
		t.Fatal("Salvage of a missing directory succeeded")
	}
}

// TestSalvageLocked: Salvage refuses while a spool has the directory
// open.
func TestSalvageLocked(t *testing.T) {
	t.Parallel()
	dir, path := spool100(t)
	s := open(t, Options{Dir: dir})
	before := snapshot(t, dir)
	if _, err := Salvage(dir, nil); !errors.Is(err, ErrLocked) {
		t.Fatalf("Salvage of a directory an open spool holds: %v, want ErrLocked", err)
	}
	sameFiles(t, dir, before)
	s.Close()

	// Damaged, and locked by another process, as a relay that is
	// starting would hold it.
	corrupt(t, path, headerLen+frameLen+5)
	lock, err := lockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	before = snapshot(t, dir)
	if _, err := Salvage(dir, nil); !errors.Is(err, ErrLocked) {
		t.Fatalf("Salvage of a locked directory: %v, want ErrLocked", err)
	}
	sameFiles(t, dir, before)
	lock.release()
	if rep := salvage(t, dir); rep.Pending != 99 {
		t.Fatalf("after the lock was released: %+v", rep)
	}
}

// segmentIDs returns the message IDs accepted in the segment at path.
func segmentIDs(t *testing.T, path string) []string {
	t.Helper()
	var out []string
	if err := replayStrict(path, func(rec record) {
		if rec.typ == recAccept {
			out = append(out, rec.msg.ID)
		}
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// segmentOffsets returns the offsets of the records in the segment at
// path.
func segmentOffsets(t *testing.T, path string) []int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []int64
	if _, err := readSegment(bytes.NewReader(b), int64(len(b)), func(off int64, _ record) error {
		out = append(out, off)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSalvageDamage: every kind of damage Open refuses, and a torn tail
// too, is salvaged; Open then succeeds with exactly the messages whose
// records were intact.
func TestSalvageDamage(t *testing.T) {
	t.Parallel()
	const total = 21 // 7 segments of 3 records
	rewrite := func(t *testing.T, path string, f func([]byte) []byte) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, f(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		// damage damages the spool in dir, written with 600-byte segments
		// of 3 records each, and returns the IDs it destroyed and how many ranges it spoiled.
		damage func(t *testing.T, files []string) (lost []string, ranges int)
		opens  bool // Open copes without Salvage: a torn tail
	}{
		{"flipped byte in an older segment", func(t *testing.T, files []string) ([]string, int) {
			ids := segmentIDs(t, files[0])
			corrupt(t, files[0], headerLen+frameLen+3)
			return ids[:1], 1
		}, false},
		{"truncated older segment", func(t *testing.T, files []string) ([]string, int) {
			ids := segmentIDs(t, files[0])
			rewrite(t, files[0], func(b []byte) []byte { return b[:len(b)-2] })
			return ids[len(ids)-1:], 1
		}, false},
		{"older segment with a torn header", func(t *testing.T, files []string) ([]string, int) {
			ids := segmentIDs(t, files[1])
			rewrite(t, files[1], func(b []byte) []byte { return b[:3] })
			return ids, 1
		}, false},
		{"two damaged ranges in one segment", func(t *testing.T, files []string) ([]string, int) {
			ids, offs := segmentIDs(t, files[1]), segmentOffsets(t, files[1])
			rewrite(t, files[1], func(b []byte) []byte {
				b[offs[0]+frameLen+2] ^= 0xff
				b[offs[2]+frameLen+2] ^= 0xff
				return b
			})
			return []string{ids[0], ids[2]}, 2
		}, false},
		{"zeroed across records in the last segment", func(t *testing.T, files []string) ([]string, int) {
			last := files[len(files)-1]
			ids, offs := segmentIDs(t, last), segmentOffsets(t, last)
			rewrite(t, last, func(b []byte) []byte {
				copy(b[offs[0]+3:offs[1]+10], make([]byte, offs[1]+7-offs[0]))
				return b
			})
			return ids[:2], 1
		}, false},
		{"valid checksum, undecodable payload", func(t *testing.T, files []string) ([]string, int) {
			rewrite(t, files[0], func(b []byte) []byte {
				return slices.Concat(b[:headerLen], appendFrame(nil, []byte{recDone, 5}), b[headerLen:])
			})
			return nil, 1
		}, false},
		{"torn tail of the last segment", func(t *testing.T, files []string) ([]string, int) {
			last := files[len(files)-1]
			ids := segmentIDs(t, last)
			rewrite(t, last, func(b []byte) []byte { return b[:len(b)-4] })
			return ids[len(ids)-1:], 1
		}, true},
		{"random bytes inside a segment", func(t *testing.T, files []string) ([]string, int) {
			ids := segmentIDs(t, files[2])
			r := rand.New(rand.NewPCG(7, 8))
			garbage := make([]byte, 5000)
			for i := range garbage {
				garbage[i] = byte(r.Uint32())
			}
			rewrite(t, files[2], func(b []byte) []byte {
				return slices.Concat(b[:headerLen+frameLen+1], garbage, b[headerLen+frameLen+1:])
			})
			return ids[:1], 1
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			s := open(t, Options{Dir: dir, SegmentBytes: 600})
			appendN(t, s, 0, total)
			s.Close()
			files := segmentFiles(t, dir)
			if len(files) < 4 {
				t.Fatalf("only %d segments", len(files))
			}
			lost, ranges := tt.damage(t, files)
			var want []string
			for _, id := range ids(msgs(0, total)) {
				if !slices.Contains(lost, id) {
					want = append(want, id)
				}
			}
			if !tt.opens {
				if s, err := Open(Options{Dir: dir}); err == nil {
					s.Close()
					t.Fatal("Open succeeded on a damaged spool")
				} else if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("Open: %v, want ErrCorrupt", err)
				}
			}

			rep := salvage(t, dir)
			if len(rep.Salvaged) != 1 || len(rep.Salvaged[0].Skipped) != ranges || rep.Pending != len(want) {
				t.Fatalf("report %+v, want one segment with %d skipped ranges and %d pending", rep, ranges, len(want))
			}
			if _, err := os.Stat(rep.Salvaged[0].Damaged); err != nil {
				t.Fatalf("original not kept: %v", err)
			}
			s2 := open(t, Options{Dir: dir})
			if got := ids(s2.Pending(100)); !slices.Equal(got, want) {
				t.Fatalf("after salvage pending %v\nwant %v", got, want)
			}
			for _, m := range s2.Pending(100) {
				var i int
				for i = range total {
					if msg(i).ID == m.ID {
						break
					}
				}
				if !reflect.DeepEqual(m, msg(i)) {
					t.Fatalf("message %s differs after salvage", m.ID)
				}
			}
		})
	}
}

// TestSalvageBadMagic: a file that is not a segment stops Salvage before
// it changes anything, even where other segments are damaged.
func TestSalvageBadMagic(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := open(t, Options{Dir: dir, SegmentBytes: 600})
	appendN(t, s, 0, 10)
	s.Close()
	files := segmentFiles(t, dir)
	corrupt(t, files[0], headerLen+frameLen+3)
	corrupt(t, files[1], 0)
	before := snapshot(t, dir)
	rep, err := Salvage(dir, nil)
	if err == nil || !strings.Contains(err.Error(), "not a spool segment") || !strings.Contains(err.Error(), files[1]) {
		t.Fatalf("Salvage: %v, want an error naming %s as not a segment", err, files[1])
	}
	if !rep.Clean() {
		t.Fatalf("report %+v lists changes", rep)
	}
	sameFiles(t, dir, before)
}

// TestSalvageKeepsEveryOriginal: a name already taken by an earlier
// salvage is never overwritten, and a new segment a crashed salvage left
// half written is replaced.
func TestSalvageKeepsEveryOriginal(t *testing.T) {
	t.Parallel()
	dir, path := spool100(t)
	corrupt(t, path, headerLen+frameLen+5)
	if err := os.WriteFile(path+damagedSuffix, []byte("earlier"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+salvageSuffix, []byte("half written"), 0o600); err != nil {
		t.Fatal(err)
	}
	rep := salvage(t, dir)
	if len(rep.Salvaged) != 1 || rep.Salvaged[0].Damaged != path+damagedSuffix+".2" || rep.Pending != 99 {
		t.Fatalf("report %+v, want the original as .damaged.2 and 99 pending", rep)
	}
	if b, _ := os.ReadFile(path + damagedSuffix); string(b) != "earlier" {
		t.Fatal("an earlier .damaged file was overwritten")
	}
	if _, err := os.Stat(path + salvageSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the half-written salvage is still there: %v", err)
	}
	if s := open(t, Options{Dir: dir}); s.Len() != 99 {
		t.Fatalf("Len = %d, want 99", s.Len())
	}
}
