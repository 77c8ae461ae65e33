package relay

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// MediaConfig tunes the media fetcher. Zero values select the defaults
// in the comments.
type MediaConfig struct {
	// Workers is the number of concurrent downloads (4).
	Workers int `yaml:"workers"`
	// Attempts per download before leaving it to the next scan (5).
	Attempts int `yaml:"attempts"`
	// ScanInterval is how often the archive is searched for messages whose
	// media is still missing (1m): that search is what makes fetching
	// survive restarts and outages.
	ScanInterval time.Duration `yaml:"scan_interval"`
	// Window is how far back the scan looks: WeChat keeps temporary media
	// for three days (72h).
	Window time.Duration `yaml:"window"`
}

func (c MediaConfig) withDefaults() MediaConfig {
	if c.Workers <= 0 {
		c.Workers = 4
	}
	if c.Attempts <= 0 {
		c.Attempts = 5
	}
	if c.ScanInterval <= 0 {
		c.ScanInterval = time.Minute
	}
	if c.Window <= 0 {
		c.Window = 72 * time.Hour
	}
	return c
}

// MediaWorker fetches the temporary media clients send and stores it
// content-addressed, soon after the message is archived.
type MediaWorker struct {
	cfg    MediaConfig
	store  MediaStore
	fetch  MediaFetcher
	log    *slog.Logger
	now    func() time.Time
	queue  chan Message
	mu     sync.Mutex
	busy   map[string]bool // message ids queued or being fetched
	gone   map[string]bool // WeChat no longer has them: do not rescan
	retryK time.Duration
}

// NewMediaWorker returns a worker; call Run to start it.
func NewMediaWorker(cfg MediaConfig, store MediaStore, fetch MediaFetcher, log *slog.Logger) *MediaWorker {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &MediaWorker{
		cfg: cfg.withDefaults(), store: store, fetch: fetch, log: log, now: time.Now,
		queue: make(chan Message, 1024), busy: map[string]bool{}, gone: map[string]bool{},
		retryK: 200 * time.Millisecond,
	}
}

// Enqueue asks for m's media to be fetched. It never blocks: when the
// queue is full the next scan of the archive finds the message instead.
func (w *MediaWorker) Enqueue(m Message) {
	w.mu.Lock()
	if w.busy[m.ID] || w.gone[m.ID] {
		w.mu.Unlock()
		return
	}
	w.busy[m.ID] = true
	w.mu.Unlock()
	select {
	case w.queue <- m:
	default:
		w.release(m.ID)
	}
}

func (w *MediaWorker) release(id string) {
	w.mu.Lock()
	delete(w.busy, id)
	w.mu.Unlock()
}

// Run fetches until ctx is done.
func (w *MediaWorker) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	for range w.cfg.Workers {
		g.Go(func() error {
			for {
				select {
				case <-ctx.Done():
					return nil
				case m := <-w.queue:
					w.fetchOne(ctx, m)
					w.release(m.ID)
				}
			}
		})
	}
	g.Go(func() error {
		t := time.NewTicker(w.cfg.ScanInterval)
		defer t.Stop()
		for {
			w.scan(ctx)
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
		}
	})
	return g.Wait()
}

func (w *MediaWorker) scan(ctx context.Context) {
	missing, err := w.store.MissingMedia(ctx, w.now().Add(-w.cfg.Window), 1000)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("scanning the archive for missing media", "err", err)
		}
		return
	}
	for _, m := range missing {
		w.Enqueue(m)
	}
}

func (w *MediaWorker) fetchOne(ctx context.Context, m Message) {
	wait := w.retryK
	for attempt := 1; attempt <= w.cfg.Attempts; attempt++ {
		err := w.fetchAndStore(ctx, m)
		if err == nil {
			return
		}
		if errors.Is(err, ErrMediaGone) {
			w.mu.Lock()
			w.gone[m.ID] = true
			w.mu.Unlock()
			w.log.Error("media no longer available from WeChat", "msg_id", m.ID, "conv", m.Conv, "err", err)
			return
		}
		if ctx.Err() != nil {
			return
		}
		w.log.Warn("fetching media", "msg_id", m.ID, "attempt", attempt, "err", err)
		if sleep(ctx, wait) != nil {
			return
		}
		wait *= 2
	}
}

func (w *MediaWorker) fetchAndStore(ctx context.Context, m Message) error {
	media, err := w.fetch.FetchMedia(ctx, m.Account, m.MediaID)
	if err != nil {
		return err
	}
	media.SHA256 = ContentHash(media.Data)
	media.MessageID = m.ID
	media.MediaID = m.MediaID
	if media.FileName == "" {
		media.FileName = m.Attrs["file_name"]
	}
	media.FetchedAt = w.now()
	return w.store.PutMedia(ctx, media)
}
