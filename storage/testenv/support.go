package testenv

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// The small helpers every package's tests share: a log that goes to the
// test's output, a buffer the test reads while others write, and waiting
// on a condition (never on a guessed sleep).

// Logger returns a logger writing into the test's output (and into each
// of also), at the level WR_TEST_LOG names (debug when unset).
func Logger(tb testing.TB, also ...io.Writer) *slog.Logger {
	return LoggerAt(tb, slog.LevelDebug, also...)
}

// LoggerAt is Logger with another level than debug when WR_TEST_LOG is
// unset: a whole relay logs too much at debug to keep in a test's output.
func LoggerAt(tb testing.TB, level slog.Level, also ...io.Writer) *slog.Logger {
	if s := os.Getenv("WR_TEST_LOG"); s != "" {
		level.UnmarshalText([]byte(s))
	}
	return slog.New(slog.NewTextHandler(tbWriter{tb, also}, &slog.HandlerOptions{Level: level}))
}

type tbWriter struct {
	tb   testing.TB
	also []io.Writer
}

func (w tbWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimSuffix(string(p), "\n"))
	for _, a := range w.also {
		a.Write(p)
	}
	return len(p), nil
}

// SyncBuffer is a bytes.Buffer that many goroutines may write while the
// test reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Wait bounds every wait of Until and Eventually. It is generous on
// purpose: it only decides how long a broken test takes to fail, and the
// suite runs under -race on two busy cores.
const Wait = time.Minute

// Until fails the test unless ok becomes true within Wait.
func Until(tb testing.TB, what string, ok func() bool) {
	tb.Helper()
	deadline := time.Now().Add(Wait)
	for !ok() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Eventually fails the test unless f returns nil within Wait, with f's
// last error.
func Eventually(tb testing.TB, what string, f func() error) {
	tb.Helper()
	deadline := time.Now().Add(Wait)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not within %v: %v", what, Wait, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
