package relay

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

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
	// stageSeconds times each stage of a writer round (see stage*).
	stageSeconds *prometheus.HistogramVec
	// publishLag is, per message published, the time since WeChat (or
	// the employee) was answered: what the consoles see of the writer.
	publishLag prometheus.Histogram
	inserts    *prometheus.CounterVec
}

// The stages of a writer round, in order (wechat_relay_writer_stage_seconds).
const (
	stageOrder   = "order"   // reading the lines (holdBack)
	stageCheck   = "check"   // asking the archive which ids it holds
	stageRoute   = "route"   // assigning fresh messages
	stageNumber  = "number"  // sequence numbers, recorded in the spool
	stageArchive = "archive" // the insert and its seal
	stagePublish = "publish" // onto the bus
	stageDone    = "done"    // marking the spool records done
)

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
		stageSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "wechat_relay_writer_stage_seconds",
			Help:    "Time the archive writer spends per round in each stage: order, check, route, number, archive, publish, done.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 12),
		}, []string{"stage"}),
		publishLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "wechat_relay_publish_lag_seconds",
			Help:    "Time from a message's acceptance (WeChat answered) to its publication to the consoles.",
			Buckets: prometheus.ExponentialBuckets(0.002, 2.5, 14),
		}),
		inserts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wechat_relay_archive_inserts_total",
			Help: "INSERT statements the writer sent to the archive, by table (messages, seals, events), retries included.",
		}, []string{"table"}),
	}
	if reg != nil {
		reg.MustRegister(m.accepted, m.archived, m.delivered, m.retries, m.spoolDepth, m.batchSize, m.batchSeconds, m.orderHeld, m.copiesHeld,
			m.stageSeconds, m.publishLag, m.inserts)
	}
	return m
}

// stage starts timing a stage; the returned function ends it.
func (m *Metrics) stage(name string) func() {
	start := time.Now()
	return func() { m.stageSeconds.WithLabelValues(name).Observe(time.Since(start).Seconds()) }
}

// countingArchive counts the inserts the writer makes.
type countingArchive struct {
	Archive
	inserts *prometheus.CounterVec
}

func (a countingArchive) Insert(ctx context.Context, msgs []Message) error {
	a.inserts.WithLabelValues("messages").Inc()
	return a.Archive.Insert(ctx, msgs)
}

func (a countingArchive) InsertSeal(ctx context.Context, s Seal) error {
	a.inserts.WithLabelValues("seals").Inc()
	return a.Archive.InsertSeal(ctx, s)
}
