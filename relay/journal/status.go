package journal

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wechat-relay/wechat-relay/relay"
)

func (w *Worker) setStatus(f func(s *relay.JournalStatus)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	f(&w.status)
}

// Status returns what this instance knows of the journal, the lag
// measured afresh when ctx allows (or as last measured).
func (w *Worker) Status(ctx context.Context) relay.JournalStatus {
	if lag, err := w.store.UnjournaledLag(ctx, w.cfg.Start()); err == nil {
		w.setStatus(func(s *relay.JournalStatus) { s.Lag, s.LagAt = lag, w.now() })
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.status
}

// metrics are the journal's: its lag, what it sent, how it failed.
type metrics struct {
	lagMessages prometheus.Gauge
	lagSeconds  prometheus.Gauge
	sent        *prometheus.CounterVec
	failures    *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		lagMessages: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wechat_relay_journal_lag_messages",
			Help: "Archived messages not journaled to the firm's archive yet, as last measured.",
		}),
		lagSeconds: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wechat_relay_journal_lag_seconds",
			Help: "Age of the oldest archived message not journaled yet (0 when none), as last measured.",
		}),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wechat_relay_journal_sent_total",
			Help: "Journal emails the SMTP server accepted, by kind (message, transcript).",
		}, []string{"kind"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wechat_relay_journal_failures_total",
			Help: "Failed journal rounds, by kind: refused (5xx), deferred (4xx), connection (no answer, TLS, timeout), archive (the archive could not be read).",
		}, []string{"kind"}),
	}
	if reg != nil {
		reg.MustRegister(m.lagMessages, m.lagSeconds, m.sent, m.failures)
	}
	return m
}

func (m *metrics) observe(lag relay.JournalLag, now time.Time) {
	m.lagMessages.Set(float64(lag.Count))
	age := 0.0
	if lag.Count > 0 {
		age = max(now.Sub(lag.Oldest).Seconds(), 0)
	}
	m.lagSeconds.Set(age)
}
