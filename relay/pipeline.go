package relay

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Config tunes the pipeline. The zero value of each field selects the
// default given in its comment.
type Config struct {
	// BatchSize caps the messages archived in one insert (500).
	BatchSize int `yaml:"batch_size"`
	// Linger is how long the writer waits for a batch to fill before
	// inserting what it has (20ms). Longer means fewer, larger inserts.
	Linger time.Duration `yaml:"linger"`
	// DedupeTTL is how long a message id is remembered to drop WeChat's
	// retries (24h; WeChat retries within about 15 seconds).
	DedupeTTL time.Duration `yaml:"dedupe_ttl"`
	// ClaimLease is how long one attempt to accept a callback holds its
	// message id while it makes the message durable (2s): a retry that
	// finds the id held waits, and takes it over once the lease ends (the
	// attempt died). ClaimWait bounds that wait (3s) before the retry is
	// answered 503. Both must stay well inside WeChat's 5-second limit.
	ClaimLease time.Duration `yaml:"claim_lease"`
	ClaimWait  time.Duration `yaml:"claim_wait"`
	// RetryMin and RetryMax bound the backoff while the archive or the
	// bus is failing (100ms, 5s).
	RetryMin time.Duration `yaml:"retry_min"`
	RetryMax time.Duration `yaml:"retry_max"`
	// PublishAttempts bounds the tries to publish an archived message on
	// the bus before moving on (5). Consoles catch up from the archive by
	// sequence number, so a lost publication delays a frame, never loses
	// a message.
	PublishAttempts int `yaml:"publish_attempts"`
	// DrainTimeout bounds the final flush when the pipeline stops (10s).
	// Whatever is left stays in the spool for the next start.
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	// Writer names this instance's seal chains (see seal.go): 1 to 64
	// letters, digits, '.', '_' or '-'. It must stay the same across
	// restarts, so that a batch a crash left unsealed is sealed by the
	// next start, and must differ between instances sharing an archive.
	// Empty: the process is given a new random id at every start (serve
	// fills it from the spool directory instead; see writer_id.go).
	Writer string `yaml:"writer"`
	// SealLogInterval is how often the latest seals are written to the
	// log, for an outside witness to keep (1m; and always at shutdown).
	SealLogInterval time.Duration `yaml:"seal_log_interval"`
	// SealKeyFile is the Ed25519 private key (PEM, PKCS #8) this writer
	// signs its seals with (seal_sign.go), and its audit records
	// (Pipeline.Signer, AuditLog.SignWith); kept outside the archive.
	// Empty: seals are not signed (one warning at start). An unreadable
	// or invalid file: NewPipeline fails.
	SealKeyFile string `yaml:"seal_key_file"`
	// TrustedKeysFile holds the Ed25519 public keys (PEM "PUBLIC KEY",
	// several allowed) of the other instances whose directory records
	// this one accepts (directory_trust.go), besides its own key's.
	// Empty: only its own key's.
	TrustedKeysFile string `yaml:"trusted_keys_file"`
	// OrderWait bounds how long the writer holds a message back for an
	// earlier one of its conversation accepted on another instance and
	// not yet numbered there (10s; see AcceptOrder). Past it, that
	// instance is taken to be dead or hung and order against it is given
	// up.
	OrderWait time.Duration `yaml:"order_wait"`
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 500
	}
	if c.PublishAttempts <= 0 {
		c.PublishAttempts = 5
	}
	def(&c.Linger, 20*time.Millisecond)
	def(&c.DedupeTTL, 24*time.Hour)
	def(&c.ClaimLease, defaultClaimLease)
	def(&c.ClaimWait, defaultClaimWait)
	def(&c.RetryMin, 100*time.Millisecond)
	def(&c.RetryMax, 5*time.Second)
	def(&c.DrainTimeout, 10*time.Second)
	def(&c.SealLogInterval, time.Minute)
	def(&c.OrderWait, defaultOrderWait)
	return c
}

// Deps are the parts a Pipeline is built from. All are required except
// Media, Logger and Now.
type Deps struct {
	Spool     Spool
	Archive   Archive
	Bus       Bus
	Dedupe    Dedupe
	Sequencer Sequencer
	Router    *Router
	// Media receives archived messages that carry a temporary media id,
	// to be fetched before WeChat forgets it. Optional.
	Media interface{ Enqueue(Message) }
	// Outbound, if set, receives archived outbound messages to send.
	Outbound OutboundSink
	Logger   *slog.Logger
	Now      func() time.Time
	// Metrics, when set, counts what the pipeline does.
	Metrics *Metrics
	// Order, when set, keeps conversations in acceptance order across
	// the instances sharing it (see AcceptOrder). Without it, order is
	// kept within this instance only.
	Order AcceptOrder
}

// Pipeline accepts messages durably and moves them, in order, from the
// spool into the archive and only then onto the bus.
//
// Accept may be called from any goroutine. Run is the single writer: it
// must run exactly once per Pipeline.
type Pipeline struct {
	cfg Config
	d   Deps
	log *slog.Logger
	// checked and prechecks: archive checks of held messages made ahead
	// of their turn (prechecks.go).
	checked   checkedIDs
	prechecks chan []Message
	// seals seals the batches Run archives and the delivery events
	// appended through SealedEvents, in cfg.Writer's two chains.
	seals *sealer
	// signer signs both chains' seals (cfg.SealKeyFile); nil: unsigned.
	signer *SealSigner
	// claims keeps WeChat's retries of one callback from being accepted
	// twice, or answered before the first attempt is durable.
	claims *claims
	// running is set while Run, the archive writer, runs.
	running atomic.Bool

	// instance names this process in the lines (Place.Writer): the
	// writer id and a random id of the process.
	instance string
	// Order keeping, the writer's own (see holdBack): the lines' epoch
	// last seen, until when nothing is numbered after it changed, and
	// when a failure was last logged.
	lineEpoch     string
	regroupUntil  time.Time
	alive         map[string]time.Time // the writers alive, as the lines last said
	lastOrderWarn time.Time
	// lastPlaceWarn is when Accept last logged that it could not take a
	// place in line (Unix nanoseconds; Accept runs concurrently).
	lastPlaceWarn atomic.Int64
	// unleft are places leave could not take out of their lines, tried
	// again by the heartbeat (Accept and the writer both leave).
	unleftMu sync.Mutex
	unleft   []Place
}

// OutboundSink is what the pipeline hands archived outbound messages to
// (Delivery).
type OutboundSink interface {
	// Archived tells, right after the insert, that m is in the archive
	// (the spool count of its window stops).
	Archived(m Message)
	// Deliver hands over an archived, sealed, published message to send.
	Deliver(m Message)
}

// NewPipeline checks deps and returns a pipeline.
func NewPipeline(cfg Config, d Deps) (*Pipeline, error) {
	switch {
	case d.Spool == nil:
		return nil, errors.New("relay: pipeline needs a spool")
	case d.Archive == nil:
		return nil, errors.New("relay: pipeline needs an archive")
	case d.Bus == nil:
		return nil, errors.New("relay: pipeline needs a bus")
	case d.Dedupe == nil:
		return nil, errors.New("relay: pipeline needs a dedupe store")
	case d.Sequencer == nil:
		return nil, errors.New("relay: pipeline needs a sequencer")
	case d.Router == nil:
		return nil, errors.New("relay: pipeline needs a router")
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Metrics == nil {
		d.Metrics = NewMetrics(nil)
	}
	cfg = cfg.withDefaults()
	switch {
	case cfg.Writer == "":
		cfg.Writer = randomWriter()
		d.Logger.Warn("no writer id configured: sealing under a new one for this process only; a batch left unsealed by a crash will not be healed",
			"writer", cfg.Writer)
	case !ValidWriter(cfg.Writer):
		return nil, fmt.Errorf("relay: writer id %q: use 1 to 64 letters, digits, '.', '_' or '-'", cfg.Writer)
	}
	signer, err := sealSignerFor(cfg, d.Logger)
	if err != nil {
		return nil, err
	}
	p := &Pipeline{cfg: cfg, d: d, log: d.Logger, signer: signer, instance: cfg.Writer + "/" + randomWriter()[len("tmp-"):],
		prechecks: make(chan []Message, 1),
		claims:    &claims{d: d.Dedupe, lease: cfg.ClaimLease, wait: cfg.ClaimWait, log: d.Logger}}
	p.seals = newSealer(cfg.Writer, countingArchive{d.Archive, d.Metrics.inserts}, d.Logger.With("component", "seal"), d.Now, signer, p.retry)
	return p, nil
}

// Writer returns the writer id this pipeline seals under.
func (p *Pipeline) Writer() string { return p.cfg.Writer }

// Signer returns the key this pipeline signs its seals with, loaded once
// from Config.SealKeyFile, for the writer's audit log to sign with too
// (AuditLog.SignWith); nil when seals are not signed.
func (p *Pipeline) Signer() *SealSigner { return p.signer }

// Accept makes m durable. It returns nil when m is in the spool (its
// record fsynced), or when it is a retry of a message that is; only then
// may WeChat be answered. An error means nothing is known to be accepted
// and WeChat should retry: ErrInFlight when an earlier attempt of the
// same message is still making it durable.
func (p *Pipeline) Accept(ctx context.Context, m Message) error {
	if err := p.stamp(&m); err != nil {
		return err
	}
	var spooled bool // an earlier attempt's copy is in the spool
	dup, err := p.claims.once(ctx, m.ID, p.cfg.DedupeTTL, func() (err error) {
		spooled, err = p.spool(ctx, m)
		return err
	})
	return p.accepted(m, dup || spooled, err)
}

// acceptClaimed is Accept for a caller that holds a claim on m of its
// own (the outbox, under its send's claim): the id is not claimed again.
func (p *Pipeline) acceptClaimed(ctx context.Context, m Message) error {
	if err := p.stamp(&m); err != nil {
		return err
	}
	spooled, err := p.spool(ctx, m)
	return p.accepted(m, spooled, err)
}

// stamp checks m and readies it for the spool.
func (p *Pipeline) stamp(m *Message) error {
	if m.ID == "" || m.Conv == "" {
		return errors.New("relay: message without id or conversation")
	}
	if m.AcceptedAt.IsZero() {
		m.AcceptedAt = p.d.Now()
	}
	m.Seq, m.Ticket = 0, 0
	return nil
}

// spool takes m's place in line and appends it to the spool. It reports
// whether an earlier attempt's copy is in the spool already: durable, as
// if this attempt had written it.
func (p *Pipeline) spool(ctx context.Context, m Message) (spooled bool, err error) {
	p.takePlace(ctx, &m)
	err = p.d.Spool.Append(ctx, m)
	switch {
	case errors.Is(err, ErrDuplicate):
		// The spool answers a pending id only once its record is
		// fsynced. Its place is the earlier copy's (Take left it to
		// it), and stays.
		return true, nil
	case err != nil:
		// Nothing was accepted: the place this attempt took is not
		// needed.
		p.forgetOwn(ctx, m)
	}
	return false, err
}

// accepted counts and words the outcome of an acceptance.
func (p *Pipeline) accepted(m Message, dup bool, err error) error {
	switch {
	case errors.Is(err, ErrInFlight):
		p.d.Metrics.accepted.WithLabelValues("in_flight").Inc()
		return err
	case err != nil:
		p.d.Metrics.accepted.WithLabelValues("error").Inc()
		return fmt.Errorf("spooling message %s: %w", m.ID, err)
	case dup:
		p.d.Metrics.accepted.WithLabelValues("duplicate").Inc()
		return nil
	}
	p.d.Metrics.accepted.WithLabelValues("accepted").Inc()
	p.d.Metrics.spoolDepth.Set(float64(p.d.Spool.Len()))
	return nil
}

// errWriterStopped is what Running says when the writer is not running.
var errWriterStopped = errors.New("the archive writer is not running")

// Running returns nil while Run, the archive writer, runs (a readiness
// check: without it nothing accepted is archived or delivered).
func (p *Pipeline) Running() error {
	if p.running.Load() {
		return nil
	}
	return errWriterStopped
}

// Run is the archive writer: it drains the spool into the archive in
// batches and publishes each archived message. It returns when ctx is
// done, after one bounded attempt to flush what is pending.
//
// Before anything else it heals the writer's seal chains: a batch a
// crash left archived without its seal is sealed from the archive.
func (p *Pipeline) Run(ctx context.Context) error {
	p.running.Store(true)
	defer p.running.Store(false)
	if p.d.Order != nil {
		hctx, stop := context.WithCancel(ctx)
		beating, checking := make(chan struct{}), make(chan struct{})
		go func() { defer close(beating); p.heartbeat(hctx) }()
		go func() { defer close(checking); p.prechecker(hctx) }()
		defer func() { stop(); <-beating; <-checking }()
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	if err := p.seals.heal(ctx); err != nil {
		return p.drain()
	}
	lastLog := time.Now()
	// again fires while messages are held back for order: their turn
	// comes when another instance numbers the earlier ones, which no
	// local event announces, so the line is looked at again shortly (a
	// look costs one Redis round trip, no archive query).
	var again <-chan time.Time
	wait := p.cfg.Linger
	for {
		select {
		case <-ctx.Done():
			return p.drain()
		case <-p.d.Spool.Notify():
		case <-again:
		case <-tick.C:
			logSeals := time.Since(lastLog) >= p.cfg.SealLogInterval
			if logSeals {
				lastLog = time.Now()
			}
			p.seals.tend(ctx, logSeals)
		}
		held, err := p.flush(ctx, true)
		if err != nil && ctx.Err() == nil {
			return err
		}
		again = nil
		if !held {
			wait = p.cfg.Linger
			continue
		}
		again = time.After(wait)
		wait = min(2*wait, max(p.cfg.Linger, 50*time.Millisecond))
	}
}

func (p *Pipeline) drain() error {
	defer p.seals.checkpoint()
	if p.d.Spool.Len() == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.DrainTimeout)
	defer cancel()
	if _, err := p.flush(ctx, false); err != nil {
		p.log.Warn("stopping with messages still spooled; they are archived on the next start",
			"pending", p.d.Spool.Len(), "err", err)
	}
	return nil
}

// flush commits batches until the spool is empty or ctx is done, or
// until what is left is held back for order (see holdBack): then held
// is true and the caller tries again shortly.
func (p *Pipeline) flush(ctx context.Context, linger bool) (held bool, err error) {
	for p.d.Spool.Len() > 0 {
		if linger && p.d.Spool.Len() < p.cfg.BatchSize {
			if err := sleep(ctx, p.cfg.Linger); err != nil {
				return false, err
			}
			linger = false
		}
		batch := p.d.Spool.Pending(p.window())
		if len(batch) == 0 {
			return false, nil
		}
		done, err := p.commit(ctx, batch)
		if err != nil {
			return false, err
		}
		p.d.Metrics.spoolDepth.Set(float64(p.d.Spool.Len()))
		if done == 0 {
			return true, nil
		}
	}
	return false, nil
}

// commit archives one batch, then publishes it, then marks it done, and
// returns how many of its messages it finished: all but those held back
// for order (holdBack), which stay in the spool. Archive failures are
// retried until ctx ends: the messages are safe in the spool meanwhile.
func (p *Pipeline) commit(ctx context.Context, batch []Message) (int, error) {
	// A batch this writer archived without its seal (the seal's write
	// failed as the pipeline was stopping) is sealed before anything of
	// it is delivered.
	if err := p.seals.healMessages(ctx); err != nil {
		return 0, err
	}
	// Messages behind an earlier place in their conversation's line wait
	// in the spool. Asked before the archive, so that waiting costs
	// ClickHouse nothing; the window is wider than a batch so that a
	// writer whose first messages wait finds others to go on with.
	end := p.d.Metrics.stage(stageOrder)
	batch, held := p.holdBack(ctx, batch)
	end()
	if len(held) > 0 {
		p.d.Metrics.orderHeld.Add(float64(len(held)))
		p.precheck(held)
	}
	if len(batch) > p.cfg.BatchSize {
		batch = batch[:p.cfg.BatchSize] // a prefix: each conversation's messages stay in order
	}
	if len(batch) == 0 {
		return 0, nil
	}
	var existing map[string]uint64
	end = p.d.Metrics.stage(stageCheck)
	if err := p.retry(ctx, "checking archived ids", func() (err error) {
		existing, err = p.existing(ctx, batch)
		return err
	}); err != nil {
		return 0, err
	}
	end()

	// Three cases per message: archived before with no sequence from
	// this spool — a retry that slipped past dedupe: drop it; archived
	// with our sequence — we crashed after inserting: deliver again;
	// not archived — insert, then deliver.
	var fresh, deliver, dropped []Message
	for _, m := range batch {
		seq, archived := existing[m.ID]
		switch {
		case archived && m.Seq == 0:
			p.d.Metrics.accepted.WithLabelValues("duplicate_archived").Inc()
			dropped = append(dropped, m)
		case archived:
			m.Seq = seq
			deliver = append(deliver, m)
		default:
			fresh = append(fresh, m)
		}
	}
	p.leave(ctx, dropped)

	if len(fresh) > 0 {
		end := p.d.Metrics.stage(stageRoute)
		var emps []string
		if err := p.retry(ctx, "routing", func() (err error) {
			emps, err = p.d.Router.RouteBatch(ctx, fresh)
			return err
		}); err != nil {
			return 0, err
		}
		for i := range fresh {
			fresh[i].Employee = emps[i]
		}
		end()
	}
	// The lines read before the archive check may have been lost since
	// (Redis restarted empty while the archive answered): then nothing
	// is numbered, and the next attempt reads them again.
	if !p.linesStill(ctx) {
		return 0, nil
	}
	end = p.d.Metrics.stage(stageNumber)
	fresh, copies, err := p.number(ctx, fresh)
	end()
	if err != nil {
		if ctx.Err() != nil {
			return 0, err
		}
		// Not retried here: the next attempt reads the lines again,
		// which may have been lost meanwhile (Redis restarted empty).
		p.warnOrder("numbering a batch; trying it again", err)
		return 0, nil
	}
	if len(copies) > 0 {
		p.d.Metrics.copiesHeld.Add(float64(len(copies)))
		// Another instance numbered its own copy: the archive is asked
		// again when their turn comes.
		p.checked.forget(idsOf(copies))
	}
	// Numbered and the numbers recorded: the next of each conversation,
	// wherever it was accepted, may be numbered now.
	p.leave(ctx, fresh)
	if len(fresh) > 0 {
		start := time.Now()
		if err := p.seals.archive(ctx, fresh, p.inserted); err != nil {
			return 0, err
		}
		p.d.Metrics.batchSize.Observe(float64(len(fresh)))
		p.d.Metrics.batchSeconds.Observe(time.Since(start).Seconds())
		p.d.Metrics.stageSeconds.WithLabelValues(stageArchive).Observe(time.Since(start).Seconds())
		p.d.Metrics.archived.Add(float64(len(fresh)))
	}
	p.release(ctx, fresh, deliver)

	for i := range deliver {
		if deliver[i].Employee == "" {
			emp, err := p.routeWithRetry(ctx, deliver[i])
			if err != nil {
				return 0, err
			}
			deliver[i].Employee = emp
		}
	}
	// Once the batch is archived, finish it even if the pipeline is being
	// stopped: publishing and marking done are quick, and a batch cut in
	// half here would only be delivered a second time after a restart.
	// Each step has its own budget: a bus that is down must not use up
	// the time the spool needs (that once stopped the writer for good).
	deliver = mergeBySeq(deliver, fresh)
	pub, cancelPub := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.DrainTimeout)
	defer cancelPub()
	end = p.d.Metrics.stage(stagePublish)
	p.publishAll(pub, deliver)
	end()
	for _, m := range fresh {
		p.d.Metrics.publishLag.Observe(p.d.Now().Sub(m.AcceptedAt).Seconds())
	}
	finished := make([]string, 0, len(batch))
	for _, list := range [][]Message{deliver, dropped} {
		for _, m := range list {
			finished = append(finished, m.ID)
		}
	}
	if len(finished) == 0 {
		return 0, nil
	}
	done, cancelDone := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.DrainTimeout)
	defer cancelDone()
	end = p.d.Metrics.stage(stageDone)
	if err := p.retry(done, "marking spool records done", func() error {
		return p.d.Spool.Done(done, finished)
	}); err != nil {
		return 0, err
	}
	p.checked.forget(finished)
	end()
	for _, m := range deliver {
		switch {
		case m.Direction == Outbound && p.d.Outbound != nil:
			p.d.Outbound.Deliver(m)
		case m.Direction == Inbound && p.d.Media != nil && m.Kind.HasMedia() && m.MediaID != "":
			p.d.Media.Enqueue(m)
		}
	}
	return len(finished), nil
}

// inserted tells the outbox, right after the insert, which outbound
// messages are in the archive (it stops counting them as spooled).
func (p *Pipeline) inserted(fresh []Message) {
	if p.d.Outbound == nil {
		return
	}
	for _, m := range fresh {
		if m.Direction == Outbound {
			p.d.Outbound.Archived(m)
		}
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func (p *Pipeline) routeWithRetry(ctx context.Context, m Message) (emp string, err error) {
	err = p.retry(ctx, "routing", func() (err error) {
		emp, err = p.d.Router.Route(ctx, m)
		return err
	})
	return emp, err
}

// publishAll announces the archived messages of a batch, in order: in
// one round trip when the bus can (BatchPublisher), else one by one. Once
// a publication fails every attempt the bus is down, and the rest is not
// tried: consoles catch up from the archive.
func (p *Pipeline) publishAll(ctx context.Context, msgs []Message) {
	if len(msgs) == 0 {
		return
	}
	if bp, ok := p.d.Bus.(BatchPublisher); ok {
		events := make([]Event, len(msgs))
		for i := range msgs {
			events[i] = Event{Type: EventMessage, Conv: msgs[i].Conv, Employee: msgs[i].Employee, Message: &msgs[i]}
		}
		err := p.attempts(ctx, func() error { return bp.PublishBatch(ctx, events) })
		if err != nil {
			p.d.Metrics.delivered.WithLabelValues("failed").Add(float64(len(msgs)))
			p.log.Error("publishing an archived batch failed; consoles will catch up from the archive",
				"messages", len(msgs), "err", err)
			return
		}
		p.d.Metrics.delivered.WithLabelValues("published").Add(float64(len(msgs)))
		return
	}
	for i := range msgs {
		if !p.publish(ctx, msgs[i]) {
			if rest := len(msgs) - i - 1; rest > 0 {
				p.d.Metrics.delivered.WithLabelValues("failed").Add(float64(rest))
				p.log.Warn("bus unavailable: the rest of the batch is not published; consoles catch up from the archive", "skipped", rest)
			}
			return
		}
	}
}

// attempts calls f up to PublishAttempts times, backing off between
// tries, and returns its last error.
func (p *Pipeline) attempts(ctx context.Context, f func() error) error {
	wait := p.cfg.RetryMin
	for attempt := 1; ; attempt++ {
		err := f()
		if err == nil || attempt >= p.cfg.PublishAttempts || ctx.Err() != nil {
			return err
		}
		if sleep(ctx, wait) != nil {
			return err
		}
		wait = min(2*wait, p.cfg.RetryMax)
	}
}

// publish announces an archived message, retrying a few times. It
// reports whether the message was published.
func (p *Pipeline) publish(ctx context.Context, m Message) bool {
	e := Event{Type: EventMessage, Conv: m.Conv, Employee: m.Employee, Message: &m}
	if err := p.attempts(ctx, func() error { return p.d.Bus.Publish(ctx, e) }); err != nil {
		p.d.Metrics.delivered.WithLabelValues("failed").Inc()
		p.log.Error("publishing archived message failed; consoles will catch up from the archive",
			"msg_id", m.ID, "conv", m.Conv, "seq", m.Seq, "err", err)
		return false
	}
	p.d.Metrics.delivered.WithLabelValues("published").Inc()
	return true
}

// retry calls f until it succeeds or ctx is done, backing off
// exponentially and logging each failure.
func (p *Pipeline) retry(ctx context.Context, what string, f func() error) error {
	wait := p.cfg.RetryMin
	for attempt := 1; ; attempt++ {
		err := f()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", what, ctx.Err())
		}
		p.d.Metrics.retries.WithLabelValues(what).Inc()
		p.log.Warn("retrying", "what", what, "attempt", attempt, "backoff", wait, "err", err)
		if err := sleep(ctx, wait); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		wait = min(2*wait, p.cfg.RetryMax)
	}
}

// mergeBySeq returns a and b as one list ordered by conversation order:
// messages of a conversation by sequence, conversations in the order
// they first appear.
func mergeBySeq(a, b []Message) []Message {
	if len(a) == 0 {
		return b
	}
	all := append(append([]Message(nil), a...), b...)
	first := map[ConversationID]int{}
	for i, m := range all {
		if _, ok := first[m.Conv]; !ok {
			first[m.Conv] = i
		}
	}
	slices.SortStableFunc(all, func(x, y Message) int {
		if x.Conv != y.Conv {
			return cmp.Compare(first[x.Conv], first[y.Conv])
		}
		return cmp.Compare(x.Seq, y.Seq)
	})
	return all
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
