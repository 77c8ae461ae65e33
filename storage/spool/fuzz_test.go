package spool

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/wechat-relay/wechat-relay/relay"
)

// seedSegment returns a valid segment holding every record type.
func seedSegment() []byte {
	b := []byte(segmentMagic)
	for i := range 3 {
		m := msg(i)
		b = appendFrame(b, encodeAccept(&m))
	}
	b = appendFrame(b, encodeAssign([]idSeq{{msg(1).ID, 7}, {"unknown", 1}}))
	b = appendFrame(b, encodeDone([]string{msg(0).ID, "unknown"}))
	empty := relay.Message{ID: "e"}
	return appendFrame(b, encodeAccept(&empty))
}

// FuzzReplay feeds arbitrary bytes to the segment reader and the replay
// rules, as the content of a last segment: they must report an error or
// recover a valid prefix, never panic, and the prefix they keep must
// read back cleanly to the same records. It stays in memory so the
// fuzzer runs fast; TestOpenMutatedSegment takes the same kind of input
// through Open and the files.
func FuzzReplay(f *testing.F) {
	seg := seedSegment()
	f.Add(seg)
	f.Add(seg[:len(seg)-3])
	f.Add(append(bytes.Clone(seg), "garbage"...))
	f.Add([]byte(segmentMagic))
	f.Add([]byte(segmentMagic[:3]))
	f.Add([]byte{})
	f.Add(append([]byte(segmentMagic), 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0))
	f.Add(appendFrame([]byte(segmentMagic), []byte{recDone, 0xff, 0xff, 0xff, 0xff, 0x0f}))
	f.Add(appendFrame([]byte(segmentMagic), []byte{recAccept, 3, 'a'}))

	f.Fuzz(func(t *testing.T, data []byte) {
		replay := func(b []byte) (*replayer, int, int64, error) {
			rp := newReplayer()
			rp.segs.add(1)
			n := 0
			valid, err := readSegment(bytes.NewReader(b), int64(len(b)), func(_ int64, rec record) error {
				rp.apply(1, rec)
				n++
				return nil
			})
			return rp, n, valid, err
		}
		rp, n, valid, err := replay(data)
		if valid < 0 || valid > int64(len(data)) {
			t.Fatalf("valid prefix %d of %d bytes", valid, len(data))
		}
		if err == nil && valid != int64(len(data)) {
			t.Fatalf("no error but only %d of %d bytes valid", valid, len(data))
		}
		if got := rp.pending.order.Len(); got != rp.pending.durable || got != rp.segs[1].accepts {
			t.Fatalf("replay state inconsistent: %d pending, %d counted, %d accepts", got, rp.pending.durable, rp.segs[1].accepts)
		}
		var torn *tornError
		if errors.As(err, &torn) {
			if torn.Offset != valid {
				t.Fatalf("torn at %d but valid prefix %d", torn.Offset, valid)
			}
			_, n2, valid2, err2 := replay(data[:valid])
			if err2 != nil || valid2 != valid || n2 != n {
				t.Fatalf("kept prefix does not read back: %d records/%d bytes then, %d/%d now, %v", n, valid, n2, valid2, err2)
			}
			// What decides between a torn tail and damage: a valid
			// record after it, which must really be one.
			next, found, err := nextValidFrame(bytes.NewReader(data), torn.Offset+1, int64(len(data)))
			if err != nil {
				t.Fatal(err)
			}
			if found {
				var buf []byte
				if next <= torn.Offset {
					t.Fatalf("valid record at %d, not after the damage at %d", next, torn.Offset)
				}
				if _, _, err := readFrameAt(bytes.NewReader(data), next, int64(len(data)), &buf); err != nil {
					t.Fatalf("record found at %d does not read: %v", next, err)
				}
			}
		}

	})
}

// TestOpenMutatedSegment writes damaged copies of a segment as the last
// segment and opens them: Open recovers or fails with an error, never
// panics, and whatever it recovered reopens identically.
func TestOpenMutatedSegment(t *testing.T) {
	t.Parallel()
	seg := seedSegment()
	r := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		data := bytes.Clone(seg)
		for range 1 + r.IntN(3) {
			switch i := r.IntN(len(data) + 1); r.IntN(3) {
			case 0:
				if i < len(data) {
					data[i] ^= byte(1 + r.IntN(255))
				}
			case 1:
				data = data[:i]
			default:
				data = append(data[:i:i], append([]byte{byte(r.IntN(256))}, data[i:]...)...)
			}
		}
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, segmentName(1)), data, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(Options{Dir: dir, NoSync: true})
		if err != nil {
			continue
		}
		want := s.Pending(100)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = open(t, Options{Dir: dir, NoSync: true})
		if got := s.Pending(100); len(got) != len(want) || (len(got) > 0 && !reflect.DeepEqual(got, want)) {
			t.Fatalf("input %q: %d pending after recovery, %d after reopen", data, len(want), len(got))
		}
	}
}
