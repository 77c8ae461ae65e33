package archive

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// timed runs f and fails the test if it takes longer than limit.
func timed(tb testing.TB, what string, limit time.Duration, f func() error) error {
	tb.Helper()
	start := time.Now()
	err := f()
	if d := time.Since(start); d > limit {
		tb.Errorf("%s took %v, want at most %v (err: %v)", what, d, limit, err)
	} else {
		tb.Logf("%s: %v after %v", what, err, d.Round(time.Millisecond))
	}
	return err
}

// TestServerDownAndBack pauses, stops and restarts a private ClickHouse:
// every call fails promptly while it is unavailable, none hangs, and the
// same Archive works again once the server is back.
func TestServerDownAndBack(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and restarts its own ClickHouse server")
	}
	t.Parallel()
	ch := testenv.StartClickHouse(t)
	ctx := testCtx(t)
	a, err := Open(ctx, Config{Addr: ch.Addr, DialTimeout: time.Second, ReadTimeout: 2 * time.Second}, testenv.Logger(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer a.Close()
	conv := relay.Conversation("acc", "o_fault")
	now := time.Now()
	batch := func(from, to uint64) []relay.Message {
		var out []relay.Message
		for s := from; s <= to; s++ {
			out = append(out, testMessage(conv, s, now))
		}
		return out
	}
	if err := a.Insert(ctx, batch(1, 3)); err != nil {
		t.Fatalf("Insert: %v", err)
	}

	// A hung server (accepts TCP, answers nothing). On the pooled
	// connection, ReadTimeout ends a wait that has no deadline; on a new
	// one, the handshake gives up after DialTimeout; the context's
	// deadline ends any wait earlier.
	ch.Pause()
	if err := timed(t, "MaxSeq while paused (pooled conn, no deadline, ReadTimeout 2s)", 5*time.Second, func() error {
		_, err := a.MaxSeq(context.Background(), conv)
		return err
	}); err == nil {
		t.Error("MaxSeq succeeded against a paused server")
	}
	if err := timed(t, "Since while paused (new conn, no deadline, DialTimeout 1s)", 5*time.Second, func() error {
		_, err := a.Since(context.Background(), conv, 0, 0)
		return err
	}); err == nil {
		t.Error("Since succeeded against a paused server")
	}
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	if err := timed(t, "Insert while paused (500ms deadline)", 3*time.Second, func() error {
		return a.Insert(short, batch(4, 6))
	}); err == nil {
		t.Error("Insert succeeded against a paused server")
	}
	cancel()
	ch.Resume()
	// The Insert cut short may or may not have been committed by the
	// resumed server: the pipeline inserts it again, and it must count once.
	if err := a.Insert(ctx, batch(4, 6)); err != nil {
		t.Fatalf("Insert after resume: %v", err)
	}

	// A stopped server: connection refused, at once.
	ch.Stop()
	if err := timed(t, "Insert while stopped", 3*time.Second, func() error {
		return a.Insert(ctx, batch(7, 9))
	}); err == nil {
		t.Error("Insert succeeded against a stopped server")
	}
	if err := timed(t, "Ping while stopped", 3*time.Second, func() error { return a.Ping(ctx) }); err == nil {
		t.Error("Ping succeeded against a stopped server")
	}
	if err := timed(t, "Open while stopped", 3*time.Second, func() error {
		b, err := Open(ctx, Config{Addr: ch.Addr, DialTimeout: time.Second}, testenv.Logger(t))
		if err == nil {
			b.Close()
		}
		return err
	}); err == nil {
		t.Error("Open succeeded against a stopped server")
	}

	// Back: the first call on the same Archive works (the pool dials anew).
	ch.Start()
	if err := a.Insert(ctx, batch(7, 9)); err != nil {
		t.Fatalf("first Insert after restart: %v", err)
	}
	got, err := a.Since(ctx, conv, 0, 0)
	if err != nil {
		t.Fatalf("Since after restart: %v", err)
	}
	sameMessages(t, "after restart", got, batch(1, 9))

	// A crash of the server process (SIGKILL) right after an
	// acknowledged Insert: the rows are in the page cache, which outlives
	// the process, so they are there after the restart. (A crash of the
	// machine is another matter: see doc.go.)
	if err := a.Insert(ctx, batch(10, 12)); err != nil {
		t.Fatalf("Insert before kill: %v", err)
	}
	ch.Kill()
	if err := timed(t, "Since while killed", 3*time.Second, func() error {
		_, err := a.Since(ctx, conv, 0, 0)
		return err
	}); err == nil {
		t.Error("Since succeeded against a killed server")
	}
	ch.Start()
	got, err = a.Since(ctx, conv, 0, 0)
	if err != nil {
		t.Fatalf("Since after crash restart: %v", err)
	}
	sameMessages(t, "after crash restart", got, batch(1, 12))
	if seq, err := a.MaxSeq(ctx, conv); err != nil || seq != 12 {
		t.Errorf("MaxSeq after crash restart = %d, %v; want 12", seq, err)
	}
}

// An address nobody listens on fails Open at once; an address that
// swallows packets fails it within DialTimeout.
func TestOpenUnreachable(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	closed := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	for _, tc := range []struct{ addr, what string }{
		{closed, "closed port"},
		{"10.255.255.1:9000", "unroutable address"},
	} {
		_ = timed(t, "Open on a "+tc.what, 3*time.Second, func() error {
			a, err := Open(ctx, Config{Addr: tc.addr, DialTimeout: 500 * time.Millisecond}, testenv.Logger(t))
			if err == nil {
				a.Close()
				t.Errorf("Open(%s) succeeded", tc.addr)
			}
			return err
		})
	}
}
