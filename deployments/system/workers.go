package system

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
)

// workers owns the long-running goroutines of one process: each runs
// until Stop. One that returns before Stop (with an error or without) is
// a failure of the whole process: Failed delivers it, so that serve stops
// accepting, drains and exits non-zero, and systemd or Kubernetes
// restarts it, instead of an instance that looks alive but no longer
// archives, delivers or alerts.
type workers struct {
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	failed chan error // the first unexpected exit

	mu   sync.Mutex
	errs []error // errors of workers that failed while stopping
}

func newWorkers(log *slog.Logger) *workers {
	// The workers outlive the request that started the process (a
	// signal): they stop when Stop says, after the HTTP server, so that
	// what was accepted during shutdown is drained.
	ctx, cancel := context.WithCancel(context.Background())
	return &workers{log: log, ctx: ctx, cancel: cancel, failed: make(chan error, 1)}
}

// Go starts run as the worker name.
func (w *workers) Go(name string, run func(context.Context) error) {
	w.wg.Go(func() {
		err := run(w.ctx)
		if w.ctx.Err() != nil {
			if err != nil && !errors.Is(err, context.Canceled) {
				w.mu.Lock()
				w.errs = append(w.errs, fmt.Errorf("%s: %w", name, err))
				w.mu.Unlock()
			}
			return
		}
		if err == nil {
			err = errors.New("returned")
		}
		err = fmt.Errorf("worker %s stopped unexpectedly: %w", name, err)
		w.log.Error("a worker stopped: shutting the process down so that it is restarted", "worker", name, "err", err)
		select {
		case w.failed <- err:
		default:
		}
	})
}

// Failed delivers the first unexpected exit of a worker.
func (w *workers) Failed() <-chan error { return w.failed }

// Stop cancels every worker, waits for all of them, and returns what
// they reported while stopping.
func (w *workers) Stop() error {
	w.cancel()
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return errors.Join(w.errs...)
}

// startWorkers starts every long-running part of s: the archive writer,
// the media fetcher, the delivery of replies, the bot, the console hub, the directory
// reload, with lexicon rules the lexicon watcher and, with a journal,
// the journal. Start runs them,
// for serve and for the end-to-end tests alike.
func (s *Relay) startWorkers() *workers {
	w := newWorkers(s.log)
	// A spool that failed a write refuses everything until it is
	// reopened: stop, so that the supervisor restarts the process.
	w.Go("spool", func(ctx context.Context) error {
		select {
		case <-ctx.Done():
			return nil
		case <-s.spool.Broken():
			return s.spool.Err()
		}
	})
	w.Go("pipeline", s.pipeline.Run)
	w.Go("media", s.media.Run)
	w.Go("delivery", s.delivery.Run)
	w.Go("bot", func(ctx context.Context) error { return s.bot.Run(ctx, s.bus) })
	w.Go("console", s.console.Run)
	w.Go("directory", func(ctx context.Context) error { return s.dir.Run(ctx, s.cfg.Console.DirectoryRefresh) })
	if s.lexicon != nil {
		w.Go("lexicon", s.lexicon.Run)
	}
	if s.journal != nil {
		w.Go("journal", s.journal.Run)
	}
	return w
}
