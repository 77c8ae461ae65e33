package spool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
)

// logBuffer collects log output for assertions; safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// open opens a spool in dir and closes it when the test ends.
func open(tb testing.TB, opts Options) *Spool {
	tb.Helper()
	s, err := Open(opts)
	if err != nil {
		tb.Fatalf("Open(%s): %v", opts.Dir, err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}

// msg returns a realistic message with every kind of field set.
func msg(i int) relay.Message {
	created := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC).Add(time.Duration(i) * time.Second)
	return relay.Message{
		ID:         fmt.Sprintf("in:acct:%d", 100000+i),
		Account:    "acct",
		Client:     fmt.Sprintf("oOPENID%03d", i%7),
		Conv:       relay.Conversation("acct", fmt.Sprintf("oOPENID%03d", i%7)),
		Direction:  relay.Inbound,
		Kind:       relay.KindText,
		WxMsgID:    fmt.Sprint(100000 + i),
		Text:       fmt.Sprintf("你好 %d", i),
		Attrs:      map[string]string{"n": fmt.Sprint(i)},
		Raw:        fmt.Appendf(nil, "<xml><Content><![CDATA[你好 %d]]></Content></xml>", i),
		CreatedAt:  created,
		AcceptedAt: created.Add(123456789 * time.Nanosecond),
	}
}

func appendN(tb testing.TB, s *Spool, from, to int) {
	tb.Helper()
	for i := from; i < to; i++ {
		if err := s.Append(context.Background(), msg(i)); err != nil {
			tb.Fatalf("Append(%d): %v", i, err)
		}
	}
}

func ids(ms []relay.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

func segmentFiles(tb testing.TB, dir string) []string {
	tb.Helper()
	nums, err := listSegments(dir)
	if err != nil {
		tb.Fatal(err)
	}
	out := make([]string, len(nums))
	for i, n := range nums {
		out[i] = filepath.Join(dir, segmentName(n))
	}
	return out
}

// crashCopy copies the segment files of a live spool into a new
// directory: what the disk holds if the process died right now. The
// spool writes with no user-space buffer, so after a call returns the
// kernel has every byte; the fsync tests check the disk has them too.
func crashCopy(tb testing.TB, dir string) string {
	tb.Helper()
	dst := tb.TempDir()
	for _, src := range segmentFiles(tb, dir) {
		b, err := os.ReadFile(src)
		if err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, filepath.Base(src)), b, 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	return dst
}

func TestAppendPendingDone(t *testing.T) {
	t.Parallel()
	s := open(t, Options{Dir: t.TempDir()})
	ctx := context.Background()
	if got := s.Pending(10); len(got) != 0 || s.Len() != 0 {
		t.Fatalf("new spool: Pending %v, Len %d", got, s.Len())
	}
	appendN(t, s, 0, 5)
	if got := s.Pending(10); !reflect.DeepEqual(got, []relay.Message{msg(0), msg(1), msg(2), msg(3), msg(4)}) {
		t.Fatalf("Pending after appends:\n%#v", got)
	}
	if err := s.Assign(ctx, map[string]uint64{msg(1).ID: 7, msg(3).ID: 9, "unknown": 1}); err != nil {
		t.Fatal(err)
	}
	if err := s.Done(ctx, []string{msg(0).ID, msg(2).ID, "unknown", msg(0).ID}); err != nil {
		t.Fatal(err)
	}
	want1, want3 := msg(1), msg(3)
	want1.Seq, want3.Seq = 7, 9
	tests := []struct {
		max  int
		want []relay.Message
	}{
		{0, nil},
		{-1, nil},
		{1, []relay.Message{want1}},
		{2, []relay.Message{want1, want3}},
		{100, []relay.Message{want1, want3, msg(4)}},
	}
	for _, tt := range tests {
		got := s.Pending(tt.max)
		if len(got) == 0 && len(tt.want) == 0 {
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Pending(%d) = %v, want %v", tt.max, ids(got), ids(tt.want))
		}
	}
	if s.Len() != 3 {
		t.Errorf("Len = %d, want 3", s.Len())
	}
	// Empty and all-unknown calls write nothing and succeed.
	if err := s.Done(ctx, nil); err != nil {
		t.Error(err)
	}
	if err := s.Assign(ctx, map[string]uint64{"nope": 1}); err != nil {
		t.Error(err)
	}
}

func TestPendingReturnsCopies(t *testing.T) {
	t.Parallel()
	s := open(t, Options{Dir: t.TempDir(), NoSync: true})
	m := msg(1)
	if err := s.Append(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	m.Raw[0], m.Attrs["n"] = 'X', "changed by caller"
	got := s.Pending(1)
	got[0].Raw[1], got[0].Attrs["x"] = 'Y', "changed by reader"
	if again := s.Pending(1); !reflect.DeepEqual(again[0], msg(1)) {
		t.Fatalf("spool state changed through shared memory: %#v", again[0])
	}
}

func TestAppendRejects(t *testing.T) {
	t.Parallel()
	s := open(t, Options{Dir: t.TempDir(), NoSync: true})
	ctx := context.Background()
	if err := s.Append(ctx, relay.Message{}); err == nil {
		t.Error("Append of a message without ID succeeded")
	}
	if err := s.Append(ctx, relay.Message{ID: "big", Raw: make([]byte, maxPayload)}); err == nil {
		t.Error("Append of an oversized message succeeded")
	}
	if s.Len() != 0 {
		t.Errorf("Len = %d after rejected appends", s.Len())
	}
}

func TestDuplicate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := open(t, Options{Dir: dir})
	ctx := context.Background()
	appendN(t, s, 0, 2)
	if err := s.Append(ctx, msg(0)); !errors.Is(err, relay.ErrDuplicate) {
		t.Fatalf("second Append = %v, want ErrDuplicate", err)
	}
	// Once done, the same ID may be accepted again (the archive keeps
	// it exact; the spool only guards what is pending).
	if err := s.Done(ctx, []string{msg(0).ID}); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx, msg(0)); err != nil {
		t.Fatalf("Append after Done: %v", err)
	}
	if got, want := ids(s.Pending(10)), []string{msg(1).ID, msg(0).ID}; !slices.Equal(got, want) {
		t.Fatalf("Pending = %v, want %v", got, want)
	}
	// Still a duplicate after a restart.
	s2 := open(t, Options{Dir: crashCopy(t, dir)})
	if err := s2.Append(ctx, msg(1)); !errors.Is(err, relay.ErrDuplicate) {
		t.Fatalf("Append after reopen = %v, want ErrDuplicate", err)
	}
	if got, want := ids(s2.Pending(10)), []string{msg(1).ID, msg(0).ID}; !slices.Equal(got, want) {
		t.Fatalf("Pending after reopen = %v, want %v", got, want)
	}
}

// TestReopenAfterCrash abandons a spool without Close and opens its files
// again: the same messages come back in the same order with their
// sequence numbers, and done ones stay gone.
func TestReopenAfterCrash(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		segBytes int64
	}{
		{"one segment", 0},
		{"many segments", 700},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			ctx := context.Background()
			s := open(t, Options{Dir: dir, SegmentBytes: tt.segBytes})
			appendN(t, s, 0, 30)
			seqs := map[string]uint64{}
			for i := 0; i < 30; i += 3 {
				seqs[msg(i).ID] = uint64(1000 + i)
			}
			if err := s.Assign(ctx, seqs); err != nil {
				t.Fatal(err)
			}
			var done []string
			for i := 0; i < 30; i += 4 {
				done = append(done, msg(i).ID)
			}
			if err := s.Done(ctx, done); err != nil {
				t.Fatal(err)
			}
			want := s.Pending(100)
			if len(want) != 30-len(done) {
				t.Fatalf("%d pending before the crash, want %d", len(want), 30-len(done))
			}
			for _, m := range want {
				if m.Seq != seqs[m.ID] {
					t.Fatalf("%s has seq %d before the crash, want %d", m.ID, m.Seq, seqs[m.ID])
				}
			}

			// The first spool is abandoned, never closed (the cleanup
			// closes it after the test, which writes nothing).
			s2 := open(t, Options{Dir: crashCopy(t, dir), SegmentBytes: tt.segBytes})
			if got := s2.Pending(100); !reflect.DeepEqual(got, want) {
				t.Fatalf("after reopen:\n got %v\nwant %v", ids(got), ids(want))
			}
			if s2.Len() != len(want) {
				t.Fatalf("Len after reopen = %d, want %d", s2.Len(), len(want))
			}
			select {
			case <-s2.Notify():
			default:
				t.Error("Notify did not fire after a replay with pending messages")
			}
		})
	}
}

// TestReopenSameDirAfterAbandon is the same crash on the very directory:
// the abandoned spool only loses its lock, as a dead process would.
func TestReopenSameDirAfterAbandon(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := open(t, Options{Dir: dir})
	appendN(t, s, 0, 3)
	if err := s.Assign(context.Background(), map[string]uint64{msg(2).ID: 5}); err != nil {
		t.Fatal(err)
	}
	want := s.Pending(10)
	if err := s.lock.release(); err != nil { // what process death does
		t.Fatal(err)
	}
	s2 := open(t, Options{Dir: dir})
	if got := s2.Pending(10); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", ids(got), ids(want))
	}
}

func TestLocked(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := open(t, Options{Dir: dir})
	if s2, err := Open(Options{Dir: dir}); !errors.Is(err, ErrLocked) {
		if s2 != nil {
			s2.Close()
		}
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	open(t, Options{Dir: dir})
}

func TestCloseStopsWriter(t *testing.T) {
	t.Parallel()
	s, err := Open(Options{Dir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, s, 0, 3)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.stopped:
	default:
		t.Fatal("writer goroutine still running after Close")
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	ctx := context.Background()
	for name, err := range map[string]error{
		"Append": s.Append(ctx, msg(9)),
		"Assign": s.Assign(ctx, map[string]uint64{msg(0).ID: 1}),
		"Done":   s.Done(ctx, []string{msg(0).ID}),
	} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
}

func TestNotify(t *testing.T) {
	t.Parallel()
	s := open(t, Options{Dir: t.TempDir(), NoSync: true})
	if cap(s.Notify()) != 1 {
		t.Fatalf("Notify capacity %d, want 1", cap(s.Notify()))
	}
	select {
	case <-s.Notify():
		t.Fatal("Notify fired on an empty spool")
	default:
	}
	appendN(t, s, 0, 3) // three appends, nobody listening: must not block
	select {
	case <-s.Notify():
	default:
		t.Fatal("Notify did not fire after Append")
	}
}

// syncGate is a sync hook that tests can hold shut or make fail.
type syncGate struct {
	mu      sync.Mutex
	hold    chan struct{} // while non-nil, syncs block until it is closed
	entered chan struct{} // receives when a sync starts blocking
	err     error
}

func newSyncGate() *syncGate { return &syncGate{entered: make(chan struct{}, 100)} }

func (g *syncGate) sync(f *os.File) error {
	g.mu.Lock()
	hold, err := g.hold, g.err
	g.mu.Unlock()
	if hold != nil {
		g.entered <- struct{}{}
		<-hold
	}
	if err != nil {
		return err
	}
	return f.Sync()
}

func (g *syncGate) close() chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.hold = make(chan struct{})
	return g.hold
}

func (g *syncGate) open(hold chan struct{}) {
	g.mu.Lock()
	g.hold = nil
	g.mu.Unlock()
	close(hold)
}

// TestAppendWaitsForFsync holds the fsync and checks that Append has not
// returned, and that the message is not visible, until it completes.
func TestAppendWaitsForFsync(t *testing.T) {
	t.Parallel()
	g := newSyncGate()
	s := open(t, Options{Dir: t.TempDir(), syncFile: g.sync})
	hold := g.close()
	errc := make(chan error, 1)
	go func() { errc <- s.Append(context.Background(), msg(1)) }()
	<-g.entered
	select {
	case err := <-errc:
		t.Fatalf("Append returned (%v) while its fsync was still running", err)
	case <-time.After(50 * time.Millisecond):
	}
	if s.Len() != 0 || len(s.Pending(10)) != 0 {
		t.Fatal("message visible before its record was synced")
	}
	g.open(hold)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if s.Len() != 1 {
		t.Fatalf("Len = %d after Append, want 1", s.Len())
	}
}

// TestContextCancel: a cancelled wait returns ctx.Err(), and the record
// still becomes durable, so a retry is a duplicate.
func TestContextCancel(t *testing.T) {
	t.Parallel()
	g := newSyncGate()
	dir := t.TempDir()
	s := open(t, Options{Dir: dir, syncFile: g.sync})

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Append(ctx, msg(0)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Append with a cancelled ctx = %v", err)
	}
	if err := s.Done(ctx, []string{msg(0).ID}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Done with a cancelled ctx = %v", err)
	}

	hold := g.close()
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := s.Append(ctx, msg(1)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Append while fsync hangs = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Append took %v to notice its deadline", d)
	}
	// Its retry is answered only once the first copy is durable.
	retry := make(chan error, 1)
	go func() { retry <- s.Append(context.Background(), msg(1)) }()
	select {
	case err := <-retry:
		t.Fatalf("retry of a cancelled Append answered %v while its fsync hangs", err)
	case <-time.After(50 * time.Millisecond):
	}
	g.open(hold)
	if err := <-retry; !errors.Is(err, relay.ErrDuplicate) {
		t.Fatalf("retry of a cancelled Append = %v, want ErrDuplicate once durable", err)
	}
	// The next call is queued behind the cancelled one: when it returns,
	// the cancelled record is durable too.
	if err := s.Append(context.Background(), msg(2)); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, Options{Dir: crashCopy(t, dir)})
	if got, want := ids(s2.Pending(10)), []string{msg(1).ID, msg(2).ID}; !slices.Equal(got, want) {
		t.Fatalf("after reopen: %v, want %v", got, want)
	}
}

// TestSyncFailureFailsSpool: after a failed fsync nothing more is
// acknowledged, and a reopen recovers what reached the disk.
func TestSyncFailureFailsSpool(t *testing.T) {
	t.Parallel()
	g := newSyncGate()
	dir := t.TempDir()
	var logs logBuffer
	s := open(t, Options{Dir: dir, syncFile: g.sync, Logger: logs.logger()})
	appendN(t, s, 0, 2)
	g.mu.Lock()
	g.err = errors.New("EIO")
	g.mu.Unlock()
	select {
	case <-s.Broken():
		t.Fatal("Broken before any failure")
	default:
	}
	if err := s.Append(context.Background(), msg(2)); err == nil || !strings.Contains(err.Error(), "EIO") {
		t.Fatalf("Append with failing fsync = %v", err)
	}
	select {
	case <-s.Broken():
	default:
		t.Fatal("Broken not closed after a failed fsync")
	}
	if err := s.Err(); err == nil || !strings.Contains(err.Error(), "EIO") {
		t.Fatalf("Err after a failed fsync = %v", err)
	}
	g.mu.Lock()
	g.err = nil
	g.mu.Unlock()
	if err := s.Append(context.Background(), msg(3)); err == nil {
		t.Fatal("Append succeeded on a failed spool")
	}
	if err := s.Done(context.Background(), []string{msg(0).ID}); err == nil {
		t.Fatal("Done succeeded on a failed spool")
	}
	if got := ids(s.Pending(10)); !slices.Equal(got, []string{msg(0).ID, msg(1).ID}) {
		t.Fatalf("Pending on the failed spool = %v", got)
	}
	if !strings.Contains(logs.String(), "spool write failed") {
		t.Errorf("failure not logged: %s", logs.String())
	}
	s.Close()
	s2 := open(t, Options{Dir: dir})
	got := ids(s2.Pending(10))
	// msg(2) was written but its fsync "failed": it may come back.
	if !slices.Equal(got, []string{msg(0).ID, msg(1).ID}) && !slices.Equal(got, []string{msg(0).ID, msg(1).ID, msg(2).ID}) {
		t.Fatalf("after reopen: %v", got)
	}
}

// TestConcurrentAppends: 50 concurrent Appends are all durable, all
// pending, share fsyncs, and survive a crash.
func TestConcurrentAppends(t *testing.T) {
	t.Parallel()
	const n = 50
	dir := t.TempDir()
	s := open(t, Options{Dir: dir, SegmentBytes: 4096})
	syncs0 := s.syncs.Load()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() { errs <- s.Append(context.Background(), msg(i)) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if s.Len() != n {
		t.Fatalf("Len = %d, want %d", s.Len(), n)
	}
	syncs := s.syncs.Load() - syncs0
	t.Logf("%d appends, %d batch fsyncs", n, syncs)
	if syncs == 0 || syncs > n {
		t.Fatalf("%d batch fsyncs for %d appends", syncs, n)
	}
	want := s.Pending(n)
	s2 := open(t, Options{Dir: crashCopy(t, dir)})
	if got := s2.Pending(n); !reflect.DeepEqual(got, want) {
		t.Fatalf("after reopen: %v, want %v", ids(got), ids(want))
	}
	slices.SortFunc(want, func(a, b relay.Message) int { return strings.Compare(a.ID, b.ID) })
	for i, m := range want {
		if !reflect.DeepEqual(m, msg(i)) {
			t.Fatalf("message %d came back as %#v", i, m)
		}
	}
}

// TestConcurrentMixed runs appends, assigns, dones and reads at once
// under -race, with small segments so that rolls and deletions happen.
func TestConcurrentMixed(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := open(t, Options{Dir: dir, SegmentBytes: 2048, NoSync: true})
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w * 100; i < w*100+100; i++ {
				if err := s.Append(ctx, msg(i)); err != nil {
					t.Error(err)
					return
				}
				if i%3 == 0 {
					if err := s.Assign(ctx, map[string]uint64{msg(i).ID: uint64(i)}); err != nil {
						t.Error(err)
					}
				}
				if i%2 == 0 {
					if err := s.Done(ctx, []string{msg(i).ID}); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Go(func() {
		for range 200 {
			_ = s.Pending(10)
			_ = s.Len()
		}
	})
	wg.Wait()
	want := s.Pending(1000)
	if len(want) != 200 {
		t.Fatalf("%d pending, want 200", len(want))
	}
	for _, m := range want {
		var i int
		fmt.Sscanf(m.WxMsgID, "%d", &i)
		i -= 100000
		var wantSeq uint64
		if i%3 == 0 {
			wantSeq = uint64(i)
		}
		if m.Seq != wantSeq {
			t.Fatalf("%s has seq %d, want %d", m.ID, m.Seq, wantSeq)
		}
	}
	s2 := open(t, Options{Dir: crashCopy(t, dir)})
	if got := s2.Pending(1000); !reflect.DeepEqual(got, want) {
		t.Fatalf("after reopen: %d pending, differ from the %d before", len(got), len(want))
	}
}

// lastSegmentWithRecords returns the newest segment file holding more
// than a header (Open always starts an empty one).
func lastSegmentWithRecords(tb testing.TB, dir string) string {
	tb.Helper()
	files := segmentFiles(tb, dir)
	for i := len(files) - 1; i >= 0; i-- {
		if st, err := os.Stat(files[i]); err == nil && st.Size() > headerLen {
			return files[i]
		}
	}
	tb.Fatal("no segment with records")
	return ""
}

// TestTornTail damages the end of the last segment the way a crash
// during a write would: the damaged record goes, earlier ones stay, a
// warning names the offset, and the spool works on.
func TestTornTail(t *testing.T) {
	t.Parallel()
	frame := appendFrame(nil, encodeAccept(&relay.Message{ID: "torn"}))
	tests := []struct {
		name     string
		damage   func(b []byte) []byte
		survived int // of the 5 records written
	}{
		{"cut 1 byte", func(b []byte) []byte { return b[:len(b)-1] }, 4},
		{"cut 5 bytes", func(b []byte) []byte { return b[:len(b)-5] }, 4},
		{"cut into frame header", func(b []byte) []byte { return b[:len(b)-len(msgFrame(4))+3] }, 4},
		{"garbage appended", func(b []byte) []byte { return append(b, "\x13\x37garbage that is no record"...) }, 5},
		{"zeros appended", func(b []byte) []byte { return append(b, make([]byte, 4096)...) }, 5},
		{"cut and garbage", func(b []byte) []byte { return append(b[:len(b)-3], 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5) }, 4},
		{"partial valid frame", func(b []byte) []byte { return append(b, frame[:len(frame)-2]...) }, 5},
		{"flipped payload byte", func(b []byte) []byte { b[len(b)-2] ^= 0x40; return b }, 4},
		{"huge length", func(b []byte) []byte { return append(b, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0) }, 5},
		// Nothing valid follows the damage in any of these, however much
		// of it there is: a torn tail (TestCorruptionInLastSegment has
		// the damage that something valid follows).
		{"cut and zeros", func(b []byte) []byte { return append(b[:len(b)-5], make([]byte, 4096)...) }, 4},
		{"random bytes appended", func(b []byte) []byte {
			r := rand.New(rand.NewPCG(5, 6))
			for range 64 << 10 {
				b = append(b, byte(r.Uint32()))
			}
			return b
		}, 5},
		{"zeros then a partial frame", func(b []byte) []byte {
			return append(append(b, make([]byte, 100)...), frame[:len(frame)-1]...)
		}, 5},
		{"first byte of the last record lost", func(b []byte) []byte {
			last := len(b) - len(msgFrame(4))
			return append(b[:last], b[last+1:]...)
		}, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			s := open(t, Options{Dir: dir})
			appendN(t, s, 0, 5)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			path := lastSegmentWithRecords(t, dir)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			b = tt.damage(b)
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}

			var logs logBuffer
			s2 := open(t, Options{Dir: dir, Logger: logs.logger()})
			if got := ids(s2.Pending(10)); !slices.Equal(got, ids(msgs(0, tt.survived))) {
				t.Fatalf("pending after torn tail: %v, want the first %d", got, tt.survived)
			}
			for i, m := range s2.Pending(10) {
				if !reflect.DeepEqual(m, msg(i)) {
					t.Fatalf("record %d damaged: %#v", i, m)
				}
			}
			out := logs.String()
			if !strings.Contains(out, "truncating torn tail") || !strings.Contains(out, "offset=") ||
				!strings.Contains(out, filepath.Base(path)) {
				t.Fatalf("no warning with file and offset: %s", out)
			}
			// The spool goes on, and the next start is clean.
			appendN(t, s2, 10, 12)
			if err := s2.Close(); err != nil {
				t.Fatal(err)
			}
			var logs3 logBuffer
			s3 := open(t, Options{Dir: dir, Logger: logs3.logger()})
			if s3.Len() != tt.survived+2 {
				t.Fatalf("Len after second reopen = %d, want %d", s3.Len(), tt.survived+2)
			}
			if strings.Contains(logs3.String(), "level=WARN") {
				t.Fatalf("second reopen warned again: %s", logs3.String())
			}
		})
	}
}

func msgs(from, to int) []relay.Message {
	var out []relay.Message
	for i := from; i < to; i++ {
		out = append(out, msg(i))
	}
	return out
}

func msgFrame(i int) []byte {
	m := msg(i)
	return appendFrame(nil, encodeAccept(&m))
}

// TestTornSegmentHeader: a crash while creating a segment leaves it
// empty or with part of its header; that is not an error.
func TestTornSegmentHeader(t *testing.T) {
	t.Parallel()
	for _, content := range []string{"", "WRS", "\x00\x00\x00\x00\x00\x00\x00\x00"} {
		dir := t.TempDir()
		s := open(t, Options{Dir: dir})
		appendN(t, s, 0, 3)
		s.Close()
		files := segmentFiles(t, dir)
		next, _ := parseSegmentName(filepath.Base(files[len(files)-1]))
		if err := os.WriteFile(filepath.Join(dir, segmentName(next+1)), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		s2 := open(t, Options{Dir: dir})
		if s2.Len() != 3 {
			t.Fatalf("header %q: Len = %d, want 3", content, s2.Len())
		}
		s2.Close()
		open(t, Options{Dir: dir}) // and again, with the truncated file no longer last
	}
}

// TestCorruptionIsAnError: damage that a crash cannot explain must stop
// Open, naming the file and the offset.
func TestCorruptionIsAnError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		damage func(t *testing.T, dir string)
		want   string
	}{
		{"flipped byte in an older segment", func(t *testing.T, dir string) {
			files := segmentFiles(t, dir)
			corrupt(t, files[0], headerLen+frameLen+3)
		}, "not the last segment"},
		{"truncated older segment", func(t *testing.T, dir string) {
			files := segmentFiles(t, dir)
			st, _ := os.Stat(files[0])
			if err := os.Truncate(files[0], st.Size()-2); err != nil {
				t.Fatal(err)
			}
		}, "not the last segment"},
		{"bad magic", func(t *testing.T, dir string) {
			corrupt(t, segmentFiles(t, dir)[0], 0)
		}, "not a spool segment"},
		{"valid checksum, undecodable payload", func(t *testing.T, dir string) {
			path := lastSegmentWithRecords(t, dir)
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.Write(appendFrame(nil, []byte{recDone, 5})); err != nil {
				t.Fatal(err)
			}
		}, "undecodable record"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			s := open(t, Options{Dir: dir, SegmentBytes: 600})
			appendN(t, s, 0, 10)
			s.Close()
			if n := len(segmentFiles(t, dir)); n < 3 {
				t.Fatalf("only %d segments", n)
			}
			tt.damage(t, dir)
			s2, err := Open(Options{Dir: dir})
			if err == nil {
				s2.Close()
				t.Fatal("Open succeeded on a corrupt spool")
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), ".wal") ||
				!strings.Contains(err.Error(), "offset") {
				t.Fatalf("error %q does not say %q with file and offset", err, tt.want)
			}
			t.Log(err)
		})
	}
}

func corrupt(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b [1]byte
	if _, err := f.ReadAt(b[:], off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x01
	if _, err := f.WriteAt(b[:], off); err != nil {
		t.Fatal(err)
	}
}

// TestCompaction: segments whose messages are all done are deleted, and
// the deletions never bring a done message back or lose a sequence.
func TestCompaction(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	opts := Options{Dir: dir, SegmentBytes: 1024}
	s := open(t, opts)
	appendN(t, s, 0, 60)
	before := len(segmentFiles(t, dir))
	if before < 10 {
		t.Fatalf("only %d segments for 60 messages", before)
	}
	// msg(0) pins the first segment. Its neighbours are done, and their
	// Done records go into later segments that must then be kept too.
	if err := s.Assign(ctx, map[string]uint64{msg(0).ID: 42}); err != nil {
		t.Fatal(err)
	}
	var done []string
	for i := 1; i < 55; i++ {
		done = append(done, msg(i).ID)
	}
	// Several Done records, so they spread over several segments.
	for c := range slices.Chunk(done, 5) {
		if err := s.Done(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	// Push those Done and Assign records out of the active segment, into
	// segments with no pending message of their own.
	appendN(t, s, 100, 160)
	for i := 100; i < 160; i += 6 {
		if err := s.Done(ctx, ids(msgs(i, i+6))); err != nil {
			t.Fatal(err)
		}
	}
	after := len(segmentFiles(t, dir))
	t.Logf("%d segments before, %d after", before, after)
	if after >= before {
		t.Fatalf("no segment deleted: %d before, %d after", before, after)
	}
	want := s.Pending(100)
	if got := ids(want); !slices.Equal(got, ids(append([]relay.Message{msg(0)}, msgs(55, 60)...))) {
		t.Fatalf("pending %v", got)
	}
	s2 := open(t, Options{Dir: crashCopy(t, dir), SegmentBytes: 1024})
	if got := s2.Pending(100); !reflect.DeepEqual(got, want) {
		t.Fatalf("after reopen: %v, want %v", ids(got), ids(want))
	}
	if got := s2.Pending(1)[0].Seq; got != 42 {
		t.Fatalf("pinned message lost its sequence: %d", got)
	}

	// Once everything is done, only the active segment is left.
	if err := s.Done(ctx, ids(want)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s3 := open(t, opts)
	if s3.Len() != 0 {
		t.Fatalf("Len = %d after all done", s3.Len())
	}
	if files := segmentFiles(t, dir); len(files) != 1 {
		t.Fatalf("segments left after everything was done: %v", files)
	}
}

func TestRollOnOpen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var names [][]string
	for i := range 3 {
		s := open(t, Options{Dir: dir})
		appendN(t, s, i, i+1)
		s.Close()
		names = append(names, segmentFiles(t, dir))
	}
	for i := 1; i < len(names); i++ {
		if len(names[i]) != len(names[i-1])+1 {
			t.Fatalf("open %d: segments %v, previous %v", i, names[i], names[i-1])
		}
	}
}

// TestModel runs random operations against the spool and a simple model,
// reopening (cleanly or after a "crash") now and then, with tiny segments
// so that rolls and deletions happen all the time.
func TestModel(t *testing.T) {
	t.Parallel()
	for seed := range 8 {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			t.Parallel()
			runModel(t, uint64(seed))
		})
	}
}

type rng uint64

func (r *rng) intn(n int) int {
	*r ^= *r << 13
	*r ^= *r >> 7
	*r ^= *r << 17
	return int(uint64(*r) % uint64(n))
}

func runModel(t *testing.T, seed uint64) {
	ctx := context.Background()
	r := rng(seed*2654435761 + 1)
	dir := t.TempDir()
	opts := Options{Dir: dir, SegmentBytes: 300 + int64(r.intn(900)), NoSync: true}
	s := open(t, opts)
	var model []relay.Message // pending, in order
	next := 0
	find := func(id string) int {
		return slices.IndexFunc(model, func(m relay.Message) bool { return m.ID == id })
	}
	check := func(when string) {
		t.Helper()
		got := s.Pending(1 << 20)
		if len(got) != len(model) || (len(got) > 0 && !reflect.DeepEqual(got, model)) {
			t.Fatalf("%s: pending %v\nwant %v", when, ids(got), ids(model))
		}
	}
	for step := range 600 {
		switch op := r.intn(100); {
		case op < 40: // new message, or an old ID that is done
			i := next
			if r.intn(5) == 0 && next > 0 {
				i = r.intn(next)
			}
			if i == next {
				next++
			}
			m := msg(i)
			m.Raw = bytes.Repeat([]byte{'r'}, r.intn(400))
			err := s.Append(ctx, m)
			if find(m.ID) >= 0 {
				if !errors.Is(err, relay.ErrDuplicate) {
					t.Fatalf("step %d: Append of pending %s = %v", step, m.ID, err)
				}
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			model = append(model, m)
		case op < 60 && len(model) > 0:
			seqs := map[string]uint64{}
			for range 1 + r.intn(4) {
				k := r.intn(len(model))
				seqs[model[k].ID] = uint64(step)
				model[k].Seq = uint64(step)
			}
			if err := s.Assign(ctx, seqs); err != nil {
				t.Fatal(err)
			}
		case op < 90 && len(model) > 0:
			var done []string
			for range 1 + r.intn(5) {
				k := r.intn(min(len(model), 3+r.intn(len(model)))) // mostly old ones
				done = append(done, model[k].ID)
				model = slices.Delete(model, k, k+1)
				if len(model) == 0 {
					break
				}
			}
			if err := s.Done(ctx, done); err != nil {
				t.Fatal(err)
			}
		case op < 95:
			s.Close()
			s = open(t, opts)
			check(fmt.Sprintf("step %d, after reopen", step))
		default:
			opts.Dir = crashCopy(t, opts.Dir)
			s = open(t, opts) // the old one is abandoned
			check(fmt.Sprintf("step %d, after crash", step))
		}
		check(fmt.Sprintf("step %d", step))
	}
	if err := s.Done(ctx, ids(model)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, opts)
	if s.Len() != 0 {
		t.Fatalf("%d pending after all done", s.Len())
	}
	if files := segmentFiles(t, opts.Dir); len(files) != 1 {
		t.Fatalf("segments left: %v", files)
	}
}

var _ io.Closer = (*Spool)(nil)

// TestDuplicateOfFailedAppend: a retry that arrives while the first
// copy's fsync is in flight is not told "duplicate" (accepted) on its
// strength: it waits, and when that fsync fails it gets the error, so
// WeChat retries again instead of the message vanishing.
func TestDuplicateOfFailedAppend(t *testing.T) {
	t.Parallel()
	g := newSyncGate()
	s := open(t, Options{Dir: t.TempDir(), syncFile: g.sync})
	g.mu.Lock()
	g.err = errors.New("EIO") // the fsync in flight will fail
	g.mu.Unlock()
	hold := g.close()
	first := make(chan error, 1)
	go func() { first <- s.Append(context.Background(), msg(1)) }()
	<-g.entered
	retry := make(chan error, 1)
	go func() { retry <- s.Append(context.Background(), msg(1)) }()
	select {
	case err := <-retry:
		t.Fatalf("the retry was answered %v while the first copy's fsync is in flight", err)
	case <-time.After(50 * time.Millisecond):
	}
	g.open(hold)
	if err := <-first; err == nil {
		t.Fatal("the first Append succeeded with a failed fsync")
	}
	if err := <-retry; err == nil || errors.Is(err, relay.ErrDuplicate) {
		t.Fatalf("the retry of a failed Append = %v, want the failure", err)
	}
	// A retry with a deadline gives up waiting instead of answering.
	g.mu.Lock()
	g.err = nil
	g.mu.Unlock()
	s2 := open(t, Options{Dir: t.TempDir(), syncFile: g.sync})
	hold = g.close()
	go s2.Append(context.Background(), msg(2))
	<-g.entered
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := s2.Append(ctx, msg(2)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a retry whose deadline passed while the first copy is in flight = %v", err)
	}
	g.open(hold)
}
