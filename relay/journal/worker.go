package journal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wechat-relay/wechat-relay/relay"
)

// Store is the archive as the journal reads it: what is not journaled
// yet, the ledger, and the media to attach.
type Store interface {
	relay.JournalStore
	relay.MediaReader
}

// Turns is how instances take turns journaling: relay.Dedupe's claim,
// used as a lease that every round releases.
type Turns interface {
	Claim(ctx context.Context, key, owner string, lease time.Duration) (relay.ClaimState, error)
	Release(ctx context.Context, key, owner string) error
}

const (
	// turnKey is the lease one instance holds while it journals a round.
	turnKey = "journal:turn"
	// turnLease bounds a round: a round starts no new email after half
	// of it, so that another instance takes over only from a dead one.
	turnLease = 2 * time.Minute
	// fullScanEvery: how often the archive is searched from Since for
	// what is not journaled; in between, from the oldest message the
	// last full search found (or a day back), which keeps the anti-join
	// to recent partitions. A message archived long after it was
	// accepted (a spool drained after a long outage) is found by the
	// next full search.
	fullScanEvery = 10 * time.Minute
	recentWindow  = 24 * time.Hour
	// lagEvery: how often the lag is measured for the metric.
	lagEvery = 30 * time.Second
	// recordTimeout bounds recording what was sent once the worker is
	// stopping: the server took it, the ledger should say so.
	recordTimeout = 10 * time.Second
)

// Worker journals the archive; Run it as a long-running worker.
type Worker struct {
	cfg     Config
	store   Store
	turns   Turns
	owner   string
	tr      *transport
	log     *slog.Logger
	metrics *metrics
	now     func() time.Time

	// Owned by Run's goroutine.
	fullAt  time.Time // the last full search for messages
	mark    time.Time // where searches start until the next full one
	tFullAt time.Time // the same for transcripts
	tMark   time.Time
	lagAt   time.Time

	mu     sync.Mutex
	status relay.JournalStatus
}

// New returns a worker for cfg (Enabled) that reads store, takes turns
// with other instances through turns (nil: alone) under owner (the
// instance's writer id), and registers its metrics with reg (nil: none).
func New(cfg Config, store Store, turns Turns, owner string, log *slog.Logger, reg prometheus.Registerer) (*Worker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	if err := cfg.LoadPassword(); err != nil {
		return nil, err
	}
	tr, err := newTransport(cfg)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Worker{
		cfg: cfg, store: store, turns: turns, owner: owner, tr: tr, log: log,
		metrics: newMetrics(reg), now: time.Now,
		status: relay.JournalStatus{Enabled: true, Server: fmt.Sprintf("%s:%d", cfg.Host, cfg.Port), JournalAddress: cfg.To},
	}, nil
}

// Run journals until ctx ends: a round, then the next at once if the
// round was full, after PollInterval if it found nothing, after a
// backoff doubling up to MaxBackoff if it failed.
func (w *Worker) Run(ctx context.Context) error {
	w.log.Info("journal: started", "server", w.status.Server, "journal_address", w.cfg.To, "transcripts", w.cfg.Transcripts)
	backoff := time.Duration(0)
	for {
		w.measureLag(ctx)
		n, err := w.round(ctx)
		if ctx.Err() != nil {
			return nil
		}
		w.setStatus(func(s *relay.JournalStatus) { s.LastRound = w.now() })
		wait := w.cfg.PollInterval
		switch {
		case err != nil:
			backoff = min(max(2*backoff, w.cfg.PollInterval), w.cfg.MaxBackoff)
			wait = backoff
			w.log.Warn("journal: round failed; retrying", "err", err, "sent", n, "retry_in", wait)
		case n >= w.cfg.BatchSize:
			backoff, wait = 0, 0
		default:
			backoff = 0
		}
		if wait > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
		}
	}
}

// round takes the turn, sends one batch (messages, or transcripts once
// every message is journaled), records what the server took, and gives
// the turn back. It returns how many emails it sent.
func (w *Worker) round(ctx context.Context) (int, error) {
	if w.turns != nil {
		st, err := w.turns.Claim(ctx, turnKey, w.owner, turnLease)
		switch {
		case err != nil:
			// Without Redis the instances cannot take turns: journal
			// anyway; the receiver drops copies by Message-ID.
			w.log.Warn("journal: cannot take the turn; journaling without it", "err", err)
		case st != relay.ClaimWon:
			w.setStatus(func(s *relay.JournalStatus) { s.Turn = false })
			return 0, nil
		default:
			defer func() {
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
				defer cancel()
				if err := w.turns.Release(rctx, turnKey, w.owner); err != nil {
					w.log.Warn("journal: giving the turn back", "err", err)
				}
			}()
		}
	}
	w.setStatus(func(s *relay.JournalStatus) { s.Turn = true })
	until := w.now().Add(turnLease / 2)

	emails, err := w.messages(ctx)
	if err == nil && len(emails) == 0 && w.cfg.Transcripts {
		emails, err = w.transcripts(ctx)
	}
	if err != nil {
		if ctx.Err() == nil {
			w.failed(err, "archive")
		}
		return 0, err
	}
	if len(emails) == 0 {
		return 0, nil
	}
	return w.send(ctx, emails, until)
}

// searchFrom is where the search for unjournaled messages starts.
func (w *Worker) searchFrom() (from time.Time, full bool) {
	from = w.cfg.Start()
	if w.fullAt.IsZero() || w.now().Sub(w.fullAt) >= fullScanEvery {
		return from, true
	}
	if w.mark.After(from) {
		from = w.mark
	}
	return from, false
}

// messages returns the next batch of archived messages to journal,
// rendered: oldest first, each conversation's in sequence order, cut
// before a message whose media is still being fetched.
func (w *Worker) messages(ctx context.Context) ([]email, error) {
	from, full := w.searchFrom()
	msgs, err := w.store.Unjournaled(ctx, from, w.cfg.BatchSize)
	if err != nil {
		return nil, fmt.Errorf("journal: reading what is not journaled: %w", err)
	}
	if full {
		w.fullAt = w.now()
		w.mark = w.now().Add(-recentWindow)
		if len(msgs) > 0 && msgs[0].AcceptedAt.Before(w.mark) {
			w.mark = msgs[0].AcceptedAt.Add(-time.Millisecond)
		}
	}
	inSequence(msgs)
	var out []email
	for _, m := range msgs {
		var media *relay.Media
		if m.Kind.HasMedia() && m.MediaID != "" {
			_, md, ok, err := w.store.MessageMedia(ctx, m.ID)
			if err != nil {
				return nil, fmt.Errorf("journal: reading the media of %s: %w", m.ID, err)
			}
			if ok {
				media = &md
			} else if w.now().Sub(m.AcceptedAt) < w.cfg.MediaWait {
				break // its media is on its way; it and what follows wait
			}
		}
		e, err := renderMessage(m, media, w.cfg.Domain)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// inSequence reorders msgs (oldest first by acceptance) so that each
// conversation's messages are in sequence order, each conversation
// keeping the places its messages had.
func inSequence(msgs []relay.Message) {
	byConv := map[relay.ConversationID][]int{}
	for i, m := range msgs {
		byConv[m.Conv] = append(byConv[m.Conv], i)
	}
	for _, idx := range byConv {
		conv := make([]relay.Message, len(idx))
		for j, i := range idx {
			conv[j] = msgs[i]
		}
		sort.SliceStable(conv, func(a, b int) bool { return conv[a].Seq < conv[b].Seq })
		for j, i := range idx {
			msgs[i] = conv[j]
		}
	}
}

// send sends emails in order over one connection, stopping at the first
// failure (what follows waits: order), and records what the server took.
func (w *Worker) send(ctx context.Context, emails []email, until time.Time) (int, error) {
	var sent []relay.JournalEntry
	defer func() {
		if len(sent) == 0 {
			return
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
		defer cancel()
		if err := w.store.RecordJournal(rctx, sent); err != nil {
			// Sent again next round, under the same Message-IDs.
			w.log.Warn("journal: recording what was journaled; it will be sent again", "err", err, "entries", len(sent))
		}
	}()
	s, err := w.tr.open(ctx)
	if err != nil {
		w.failed(err, failure(err))
		return 0, err
	}
	for _, e := range emails {
		if len(sent) > 0 && w.now().After(until) {
			break
		}
		answer, err := s.send(w.cfg.From, w.cfg.To, e.msg)
		if err != nil {
			// The session is in no known state: no QUIT, which a hung
			// server would not answer either.
			s.abort()
			err = fmt.Errorf("journal: sending %s %s: %w", e.entry.Kind, e.entry.Key, err)
			w.failed(err, failure(err))
			return len(sent), err
		}
		e.entry.At, e.entry.Answer = w.now(), answer
		sent = append(sent, e.entry)
		w.metrics.sent.WithLabelValues(e.entry.Kind).Inc()
		w.log.Debug("journal: sent", "kind", e.entry.Kind, "key", e.entry.Key, "message_id", e.entry.MessageID, "answer", answer)
	}
	s.close()
	last := sent[len(sent)-1]
	w.setStatus(func(s *relay.JournalStatus) { s.LastSent, s.LastKey = last.At, last.Key })
	return len(sent), nil
}

// failed counts and remembers a failed round, of kind (see failure, or
// "archive": the archive could not be read).
func (w *Worker) failed(err error, kind string) {
	w.metrics.failures.WithLabelValues(kind).Inc()
	w.setStatus(func(s *relay.JournalStatus) { s.LastError, s.LastErrorAt, s.LastErrorKind = err.Error(), w.now(), kind })
}

// measureLag updates the lag metric and status, every lagEvery.
func (w *Worker) measureLag(ctx context.Context) {
	if !w.lagAt.IsZero() && w.now().Sub(w.lagAt) < lagEvery {
		return
	}
	w.lagAt = w.now()
	lag, err := w.store.UnjournaledLag(ctx, w.cfg.Start())
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			w.log.Warn("journal: measuring the lag", "err", err)
		}
		return
	}
	w.metrics.observe(lag, w.now())
	w.setStatus(func(s *relay.JournalStatus) { s.Lag, s.LagAt = lag, w.now() })
}
