package relay

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// The catch-up scan. The bus (Redis pub/sub) keeps nothing: a message
// published while Redis restarts, or while this relay was down, never
// reaches LexiconWatcher.Run. So the watcher also reads the archive, every
// ScanEvery, for the inbound and outbound messages accepted in a recent
// window, matches them as Run does, archives the hits, and alerts those of
// them that were not archived before: the ones the bus lost. Windows
// overlap by ScanOverlap, so a message archived a while after it was
// accepted (from the spool, after an archive outage) is still seen, and
// end ScanSettle ago, so that the bus, which is faster, usually wins.
//
// A hit is alerted once: the bus path and the scan share the ids of the
// hits this watcher alerted (kept for a little more than a window), and
// the scan asks the AlertStore which hits it has already (after a restart,
// or when another instance's bus delivered the message). So with several
// instances, a hit that another instance archived is alerted by that
// instance, not again by the scan of this one.

// Catch-up scan defaults.
const (
	DefaultLexiconScanEvery   = time.Minute
	DefaultLexiconScanOverlap = 10 * time.Minute
	DefaultLexiconScanSettle  = 5 * time.Second
)

// alertsPage is how many archived hits the scan reads at once to learn
// which of its hits are known (the stores' largest Alerts limit); beyond
// that it asks for each hit (AlertStore.Hit).
const alertsPage = 10000

// scanState is the scan's memory: where the last scan ended and which
// hits this watcher has alerted.
type scanState struct {
	run sync.Mutex // one scan at a time
	// to is the upper bound of the last successful scan; before one,
	// the time the first one started (less the settling).
	to time.Time

	mu sync.Mutex
	// alerted holds the ids of the hits alerted (or found archived) by
	// this watcher, with when; only while Scan is set.
	alerted map[string]time.Time
}

func (w *LexiconWatcher) now() time.Time {
	if w.Now != nil {
		return w.Now()
	}
	return time.Now()
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// claim records that the hit id is about to be alerted, false when it was
// already. Without Scan, everything is claimed and nothing remembered.
func (w *LexiconWatcher) claim(id string) bool {
	if w.Scan == nil {
		return true
	}
	w.scan.mu.Lock()
	defer w.scan.mu.Unlock()
	if _, ok := w.scan.alerted[id]; ok {
		return false
	}
	if w.scan.alerted == nil {
		w.scan.alerted = map[string]time.Time{}
	}
	w.scan.alerted[id] = w.now()
	return true
}

func (w *LexiconWatcher) claimed(id string) bool {
	w.scan.mu.Lock()
	defer w.scan.mu.Unlock()
	_, ok := w.scan.alerted[id]
	return ok
}

// forget drops the ids claimed before cutoff: the scans no longer reach
// their messages (and if a failed scan's wider window does, the store
// still knows them).
func (w *LexiconWatcher) forget(cutoff time.Time) {
	w.scan.mu.Lock()
	defer w.scan.mu.Unlock()
	for id, at := range w.scan.alerted {
		if at.Before(cutoff) {
			delete(w.scan.alerted, id)
		}
	}
}

// scanLoop runs CatchUp at once and then every ScanEvery until ctx ends.
// A failed scan is logged; the next one covers its window.
func (w *LexiconWatcher) scanLoop(ctx context.Context, log *slog.Logger) {
	t := time.NewTicker(orDefault(w.ScanEvery, DefaultLexiconScanEvery))
	defer t.Stop()
	for {
		if _, err := w.CatchUp(ctx); err != nil && ctx.Err() == nil {
			log.Error("lexicon catch-up scan failed; retrying at the next one", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// CatchUp is one scan: it matches the inbound and outbound messages of
// Scan accepted in [the previous scan's upper bound − ScanOverlap, now −
// ScanSettle) (the first scan's lower bound: now − ScanSettle −
// ScanOverlap, kept while scans fail), archives
// their hits, and alerts those neither this watcher alerted nor the store
// had. It returns how many it alerted. On error the window is not
// advanced: the next scan covers it again (nothing is alerted twice).
func (w *LexiconWatcher) CatchUp(ctx context.Context) (caught int, err error) {
	if w.Scan == nil {
		return 0, nil
	}
	w.scan.run.Lock()
	defer w.scan.run.Unlock()
	log := w.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	overlap := orDefault(w.ScanOverlap, DefaultLexiconScanOverlap)
	settle := orDefault(w.ScanSettle, DefaultLexiconScanSettle)
	now := w.now()
	to := millis(now.Add(-settle))
	if w.scan.to.IsZero() {
		// The first scan reaches back overlap, and so do the next ones
		// while it fails.
		w.scan.to = to
	}
	from := millis(w.scan.to.Add(-overlap))
	if !from.Before(to) {
		return 0, nil
	}

	var (
		scanned, matched int
		known            map[string]bool // hits the store has; nil until needed
		complete         bool            // known holds every hit of the window
	)
	q := SearchQuery{From: from, To: to, Limit: MaxSearchLimit}
	for {
		if err := ctx.Err(); err != nil {
			return caught, err
		}
		page, err := w.Scan.Search(ctx, q)
		if err != nil {
			return caught, fmt.Errorf("lexicon: scanning the archive from %s to %s: %w", from.Format(time.RFC3339), to.Format(time.RFC3339), err)
		}
		scanned += len(page.Messages)
		var fresh []LexiconHit // neither alerted here nor archived
		for _, m := range page.Messages {
			for _, h := range w.Hits(m) {
				matched++
				if w.claimed(h.ID) {
					continue
				}
				if known == nil {
					hits, err := w.Store.Alerts(ctx, AlertQuery{From: from, To: to, Limit: alertsPage})
					if err != nil {
						return caught, fmt.Errorf("lexicon: reading the archived hits from %s to %s: %w", from.Format(time.RFC3339), to.Format(time.RFC3339), err)
					}
					known, complete = make(map[string]bool, len(hits)), len(hits) < alertsPage
					for _, k := range hits {
						known[k.ID] = true
					}
				}
				had := known[h.ID]
				if !had && !complete {
					if _, had, err = w.Store.Hit(ctx, h.ID); err != nil {
						return caught, fmt.Errorf("lexicon: reading the archived hit %s: %w", h.ID, err)
					}
				}
				if had {
					w.claim(h.ID) // archived before: alerted by whoever archived it
					continue
				}
				known[h.ID] = true // a message listed twice in the window
				fresh = append(fresh, h)
			}
		}
		if len(fresh) > 0 {
			if err := w.Store.AppendHits(ctx, fresh); err != nil {
				return caught, fmt.Errorf("lexicon: archiving %d caught-up hits: %w", len(fresh), err)
			}
			for _, h := range fresh {
				if !w.claim(h.ID) {
					continue // the bus delivered it meanwhile
				}
				caught++
				log.Info("lexicon hit", "rule", h.Rule, "msg_id", h.MessageID, "conv", h.Conv, "direction", h.Direction, "caught_up", true)
				if w.Alert != nil {
					w.Alert(h)
				}
			}
		}
		if page.Next == "" {
			break
		}
		q.Cursor = page.Next
	}
	w.scan.to = to
	// Claims made before the oldest message the next scans can reach
	// (with room to spare) are dropped.
	w.forget(now.Add(-2*overlap - settle - orDefault(w.ScanEvery, DefaultLexiconScanEvery)))
	level := slog.LevelDebug
	if caught > 0 {
		level = slog.LevelInfo
	}
	log.Log(ctx, level, "lexicon catch-up scan", "from", from, "to", to, "messages", scanned, "hits", matched, "caught_up", caught)
	return caught, nil
}
