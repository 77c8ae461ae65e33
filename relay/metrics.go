package relay

import "github.com/prometheus/client_golang/prometheus"

// Metrics counts what the pipeline does. Build it once per process with
// the registerer the metrics endpoint serves.
type Metrics struct {
	accepted     *prometheus.CounterVec
	archived     prometheus.Counter
	delivered    *prometheus.CounterVec
	retries      *prometheus.CounterVec
	spoolDepth   prometheus.Gauge
	batchSize    prometheus.Histogram
	batchSeconds prometheus.Histogram
	orderHeld    prometheus.Counter
	copiesHeld   prometheus.Counter
}

// NewMetrics creates the pipeline metrics and registers them with reg,
// if reg is not nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wechat_relay_accepted_total",
			Help: "Messages offered to the pipeline, by result (accepted, duplicate, duplicate_archived, error).",
		}, []string{"result"}),
		archived: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wechat_relay_archived_total",
			Help: "Messages committed to the archive.",
		}),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wechat_relay_published_total",
			Help: "Archived messages published to the consoles, by result.",
		}, []string{"result"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wechat_relay_pipeline_retries_total",
			Help: "Failed pipeline steps that were retried, by step.",
		}, []string{"step"}),
		spoolDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wechat_relay_spool_pending",
			Help: "Messages accepted but not yet archived and delivered.",
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "wechat_relay_archive_batch_size",
			Help:    "Messages per archive insert.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 7),
		}),
		batchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "wechat_relay_archive_batch_seconds",
			Help:    "Latency of archive inserts.",
			Buckets: prometheus.DefBuckets,
		}),
		orderHeld: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wechat_relay_order_held_total",
			Help: "Times a message was held back because an earlier one of its conversation, accepted on another instance, was not numbered yet.",
		}),
		copiesHeld: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wechat_relay_copies_held_total",
			Help: "Times a message was held back because another instance, alive, numbered its own copy of it (a retry both accepted) and has not archived it yet.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.accepted, m.archived, m.delivered, m.retries, m.spoolDepth, m.batchSize, m.batchSeconds, m.orderHeld, m.copiesHeld)
	}
	return m
}
