package system

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// A worker that stops on its own is reported, by name, so that serve
// shuts the process down; the others run until Stop, which waits for
// them.
func TestWorkersReportAnUnexpectedExit(t *testing.T) {
	w := newWorkers(slog.New(slog.DiscardHandler))
	stopped := make(chan struct{})
	w.Go("steady", func(ctx context.Context) error {
		<-ctx.Done()
		close(stopped)
		return nil
	})
	w.Go("lexicon", func(context.Context) error { return errors.New("subscribing to the bus: connection refused") })
	var err error
	select {
	case err = <-w.Failed():
	case <-time.After(time.Minute):
		t.Fatal("the early exit was not reported")
	}
	if !strings.Contains(err.Error(), "lexicon") || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("reported %v; want the worker's name and its error", err)
	}
	select {
	case <-stopped:
		t.Fatal("the other worker was stopped before Stop")
	default:
	}
	if err := w.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	select {
	case <-stopped:
	default:
		t.Fatal("Stop returned before the other worker ended")
	}
}

// A worker that returns nil before Stop has stopped too early as well.
func TestWorkersReportANilExit(t *testing.T) {
	w := newWorkers(slog.New(slog.DiscardHandler))
	w.Go("bot", func(context.Context) error { return nil })
	if err := <-w.Failed(); !strings.Contains(err.Error(), "bot") {
		t.Fatalf("reported %v", err)
	}
	w.Stop()
}

// Errors of workers stopped by Stop are Stop's result; a clean stop is
// not reported as a failure.
func TestWorkersStopCollectsErrors(t *testing.T) {
	w := newWorkers(slog.New(slog.DiscardHandler))
	w.Go("pipeline", func(ctx context.Context) error { <-ctx.Done(); return errors.New("drain failed") })
	w.Go("outbox", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	err := w.Stop()
	if err == nil || !strings.Contains(err.Error(), "pipeline: drain failed") {
		t.Fatalf("Stop: %v", err)
	}
	select {
	case err := <-w.Failed():
		t.Fatalf("a stop reported as a failure: %v", err)
	default:
	}
}
