package relay

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"golang.org/x/sync/errgroup"
)

// Delivery is the sending half of the outbound path: workers that take
// archived outbound messages off the OutboundQueue, call WeChat at most
// once per message, and archive the outcome; and the scan that settles
// what a crash left unsettled. Run must run once.
type Delivery struct {
	cfg OutboxConfig
	d   DeliveryDeps
	log *slog.Logger
	// claims keep two instances from settling one send twice.
	claims *claims
}

// DeliveryDeps are the parts a Delivery uses.
type DeliveryDeps struct {
	// Queue is what the pipeline hands archived outbound messages to.
	Queue *OutboundQueue
	// Writer is this instance's writer id (Pipeline.Writer): its
	// "sending" events carry it.
	Writer string
	// Events is the event log, sealed (Pipeline.SealedEvents).
	Events EventLog
	Sender Sender
	Bus    Bus
	Dedupe Dedupe
	Logger *slog.Logger
	Now    func() time.Time
}

// NewDelivery returns a Delivery; cfg is the outbox's configuration.
func NewDelivery(cfg OutboxConfig, d DeliveryDeps) (*Delivery, error) {
	if d.Queue == nil || d.Writer == "" || d.Events == nil || d.Sender == nil || d.Bus == nil || d.Dedupe == nil {
		return nil, errors.New("relay: delivery needs a queue, a writer id, events, sender, bus and dedupe")
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	return &Delivery{cfg: cfg.withDefaults(), d: d, log: d.Logger,
		claims: &claims{d: d.Dedupe, lease: defaultClaimLease, wait: defaultClaimWait, log: d.Logger}}, nil
}

// Run sends until ctx is done.
func (dl *Delivery) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, q := range dl.d.Queue.shares {
		g.Go(func() error {
			for {
				select {
				case <-ctx.Done():
					return nil
				case m := <-q:
					dl.deliver(ctx, m)
					dl.d.Queue.done(m.ID)
				}
			}
		})
	}
	g.Go(func() error {
		t := time.NewTicker(dl.cfg.ScanInterval)
		defer t.Stop()
		for {
			dl.scan(ctx)
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
		}
	})
	return g.Wait()
}

// scan settles outbound messages that a crash left behind: never tried
// ones are sent, ones whose attempt was cut short are marked unknown —
// they may have reached the client, and WeChat has no idempotency key.
func (dl *Delivery) scan(ctx context.Context) {
	msgs, err := dl.d.Events.Unsettled(ctx, dl.d.Now().Add(-dl.cfg.Window), 500)
	if err != nil {
		if ctx.Err() == nil {
			dl.log.Warn("scanning for unsettled outbound messages", "err", err)
		}
		return
	}
	cutoff := dl.d.Now().Add(-dl.cfg.SettleAfter)
	var ids []string
	for _, m := range msgs {
		if m.AcceptedAt.Before(cutoff) {
			ids = append(ids, m.ID)
		}
	}
	if len(ids) == 0 {
		return
	}
	latest, err := dl.d.Events.LatestEvents(ctx, ids)
	if err != nil {
		dl.log.Warn("reading events of unsettled messages", "err", err)
		return
	}
	for _, m := range msgs {
		if !m.AcceptedAt.Before(cutoff) {
			continue
		}
		if dl.d.Queue.busy(m.ID) {
			continue
		}
		if e, ok := latest[m.ID]; ok && e.State == DeliverySending && e.At.Before(cutoff) {
			// Every instance scans: one settles (two would archive two
			// different "unknown" events under one id).
			if st, err := dl.d.Dedupe.Claim(ctx, "dispatch:"+m.ID, newOwner(), dl.cfg.SettleAfter); err == nil && st != ClaimWon {
				continue
			}
			dl.log.Warn("send interrupted before its outcome was known; marked unknown, not resent", "msg_id", m.ID, "conv", m.Conv)
			// Under an id of this writer's: the send's own attempt (on
			// another instance, or frozen past settle_after) may still
			// settle it, and with Redis down nothing tells the two apart;
			// two different rows under one id would fail verify.
			dl.settleAs(ctx, m, DeliveryUnknown, dl.d.Writer, "the relay stopped while WeChat was being called; the client may or may not have received it")
			continue
		} else if ok {
			continue
		}
		dl.d.Queue.Deliver(m)
	}
}

// deliver sends one archived message, at most once.
func (dl *Delivery) deliver(ctx context.Context, m Message) {
	// Only one attempt, in one instance, may send a message: the claim
	// covers the moments before the "sending" event is archived, the
	// event everything after.
	// The claim is a lock that only its lease ends: nothing finishes or
	// releases it.
	st, err := dl.d.Dedupe.Claim(ctx, "dispatch:"+m.ID, newOwner(), dl.cfg.SettleAfter)
	if err == nil && st != ClaimWon {
		return
	}
	if _, settled, err := archivedResult(ctx, dl.d.Events, m.ID); err != nil || settled {
		if err != nil {
			dl.log.Warn("checking a message before sending; the next scan retries", "msg_id", m.ID, "err", err)
		}
		return
	}
	// "sending" carries this writer's id, so that two instances' events
	// stay two rows, and each looks for the other's before calling.
	if !dl.record(ctx, m, DeliverySending, 0, "", dl.d.Writer) || !dl.soleSender(ctx, m) {
		return
	}
	wait := dl.cfg.RetryMin
	for attempt := 1; ; attempt++ {
		sctx, cancel := context.WithTimeout(ctx, dl.cfg.SendTimeout)
		err := dl.d.Sender.SendCustom(sctx, m)
		cancel()
		var se *SendError
		isSendErr := errors.As(err, &se)
		switch {
		case err == nil:
			dl.settle(ctx, m, DeliverySent, 0, "")
			return
		case errors.Is(err, ErrOutcomeUnknown):
			dl.settle(ctx, m, DeliveryUnknown, 0, "WeChat did not answer in time; the client may or may not have received it")
			return
		case isSendErr && !se.Retryable():
			dl.settle(ctx, m, DeliveryFailed, se.Code, se.Msg)
			return
		case attempt >= dl.cfg.Attempts || ctx.Err() != nil:
			code, msg := 0, err.Error()
			if isSendErr {
				code, msg = se.Code, se.Msg
			}
			dl.settle(ctx, m, DeliveryFailed, code, msg)
			return
		}
		dl.log.Warn("send not delivered, retrying", "msg_id", m.ID, "attempt", attempt, "err", err)
		if sleep(ctx, wait) != nil {
			return
		}
		wait = min(2*wait, dl.cfg.RetryMax)
	}
}

// soleSender reports whether this instance may call WeChat for m: its
// own "sending" is archived and no other instance's is. The dispatch
// claim usually keeps two instances apart, but not when Redis is down or
// forgot the claim, nor when its lease ran out while this one was still
// archiving "sending"; then both may have found no event before either
// archived one. Archiving first and looking second, at most one of
// them finds only its own: if each finds the other's, neither sends,
// and the scan marks the message unknown after SettleAfter.
func (dl *Delivery) soleSender(ctx context.Context, m Message) bool {
	wait := dl.cfg.RetryMin
	for {
		evs, err := dl.d.Events.MessageEvents(ctx, []string{m.ID})
		if err == nil {
			mine := m.ID + "/" + string(DeliverySending) + "/" + dl.d.Writer
			for _, e := range evs {
				if e.State == DeliverySending && e.ID != mine {
					dl.log.Warn("another instance is sending this message too; leaving it to it", "msg_id", m.ID, "conv", m.Conv, "other", e.ID)
					return false
				}
			}
			return true
		}
		dl.log.Warn("checking for another instance's send, retrying", "msg_id", m.ID, "err", err)
		if sleep(ctx, wait) != nil {
			return false
		}
		wait = min(2*wait, dl.cfg.RetryMax)
	}
}

// settle archives the outcome and announces it.
func (dl *Delivery) settle(ctx context.Context, m Message, state DeliveryState, code int, msg string) {
	if dl.record(ctx, m, state, code, msg, "") {
		dl.log.Info("outbound message settled", "msg_id", m.ID, "conv", m.Conv, "state", state, "errcode", code)
	}
}

// settleAs is settle with the event's id suffixed by who (a writer id):
// for an outcome another instance may record too.
func (dl *Delivery) settleAs(ctx context.Context, m Message, state DeliveryState, who, msg string) {
	if dl.record(ctx, m, state, 0, msg, who) {
		dl.log.Info("outbound message settled", "msg_id", m.ID, "conv", m.Conv, "state", state, "by", who)
	}
}

// record archives one delivery event, retrying while the archive fails,
// and publishes it. It reports false if ctx ended first: a "sending"
// that was not archived must not be followed by the call to WeChat.
func (dl *Delivery) record(ctx context.Context, m Message, state DeliveryState, code int, msg, who string) bool {
	ev := DeliveryEvent{
		ID: m.ID + "/" + string(state), MessageID: m.ID, Account: m.Account, Conv: m.Conv,
		State: state, ErrCode: code, ErrMsg: msg, At: dl.d.Now(),
	}
	if who != "" {
		ev.ID += "/" + who
	}
	wait := dl.cfg.RetryMin
	for {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dl.cfg.SendTimeout)
		// One event id, one row: two instances settling the same send
		// (a scan here, the send's own attempt there, outlasting
		// SettleAfter) would archive two different rows under one id,
		// and the archive would keep one that the other's seal does not
		// list. The first to claim the id writes it.
		// ("sending" is not claimed: the dispatch claim decides who
		// sends, and a duplicate must never let a second one send.)
		appendEvent := func() error { return dl.d.Events.AppendEvents(actx, []DeliveryEvent{ev}) }
		var dup bool
		var err error
		if state == DeliverySending {
			err = appendEvent()
		} else {
			dup, err = dl.claims.once(actx, "event:"+ev.ID, 7*24*time.Hour, appendEvent)
		}
		cancel()
		if err == nil && dup {
			return true // recorded (and announced) by whoever claimed it first
		}
		if err == nil {
			break
		}
		dl.log.Warn("archiving a delivery event, retrying", "msg_id", m.ID, "state", state, "err", err)
		if sleep(ctx, wait) != nil {
			return false
		}
		wait = min(2*wait, dl.cfg.RetryMax)
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := dl.d.Bus.Publish(pctx, Event{Type: EventStatus, Conv: m.Conv, Employee: m.Employee, Status: &ev}); err != nil {
		dl.log.Warn("publishing a delivery status", "msg_id", m.ID, "err", err)
	}
	return true
}
