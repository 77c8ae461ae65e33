package relay

import (
	"context"
	"errors"
	"time"

	"golang.org/x/sync/errgroup"
)

// The sending half of the Outbox: workers that take archived outbound
// messages, call WeChat at most once per message, and archive the
// outcome; and the scan that settles what a crash left unsettled.

// archived is called by the pipeline as soon as m is inserted: from then
// on the archive counts it for the window, so the outbox stops.
func (o *Outbox) archived(m Message) { o.unspool(m) }

// unspool forgets a send counted as spooled.
func (o *Outbox) unspool(m Message) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.spooled[m.Conv][m.ID] {
		o.unspooled++
	}
	delete(o.spooled[m.Conv], m.ID)
	if len(o.spooled[m.Conv]) == 0 {
		delete(o.spooled, m.Conv)
	}
}

// enqueue is called by the pipeline for each archived outbound message.
func (o *Outbox) enqueue(m Message) {
	o.unspool(m) // the archive counts it from now on
	o.mu.Lock()
	if o.inFlight[m.ID] {
		o.mu.Unlock()
		return
	}
	o.inFlight[m.ID] = true
	o.mu.Unlock()
	q := o.queues[int(convHash(m.Conv)%uint32(len(o.queues)))]
	select {
	case q <- m:
	default:
		// Full: the next scan of the archive finds it.
		o.done(m.ID)
	}
}

func (o *Outbox) done(id string) {
	o.mu.Lock()
	delete(o.inFlight, id)
	o.mu.Unlock()
}

// Run sends until ctx is done.
func (o *Outbox) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, q := range o.queues {
		g.Go(func() error {
			for {
				select {
				case <-ctx.Done():
					return nil
				case m := <-q:
					o.deliver(ctx, m)
					o.done(m.ID)
				}
			}
		})
	}
	g.Go(func() error {
		t := time.NewTicker(o.cfg.ScanInterval)
		defer t.Stop()
		for {
			o.scan(ctx)
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
func (o *Outbox) scan(ctx context.Context) {
	msgs, err := o.d.Events.Unsettled(ctx, o.d.Now().Add(-o.cfg.Window), 500)
	if err != nil {
		if ctx.Err() == nil {
			o.log.Warn("scanning for unsettled outbound messages", "err", err)
		}
		return
	}
	cutoff := o.d.Now().Add(-o.cfg.SettleAfter)
	var ids []string
	for _, m := range msgs {
		if m.AcceptedAt.Before(cutoff) {
			ids = append(ids, m.ID)
		}
	}
	if len(ids) == 0 {
		return
	}
	latest, err := o.d.Events.LatestEvents(ctx, ids)
	if err != nil {
		o.log.Warn("reading events of unsettled messages", "err", err)
		return
	}
	for _, m := range msgs {
		if !m.AcceptedAt.Before(cutoff) {
			continue
		}
		o.mu.Lock()
		busy := o.inFlight[m.ID]
		o.mu.Unlock()
		if busy {
			continue
		}
		if e, ok := latest[m.ID]; ok && e.State == DeliverySending && e.At.Before(cutoff) {
			// Every instance scans: one settles (two would archive two
			// different "unknown" events under one id).
			if st, err := o.d.Dedupe.Claim(ctx, "dispatch:"+m.ID, newOwner(), o.cfg.SettleAfter); err == nil && st != ClaimWon {
				continue
			}
			o.log.Warn("send interrupted before its outcome was known; marked unknown, not resent", "msg_id", m.ID, "conv", m.Conv)
			// Under an id of this writer's: the send's own attempt (on
			// another instance, or frozen past settle_after) may still
			// settle it, and with Redis down nothing tells the two apart;
			// two different rows under one id would fail verify.
			o.settleAs(ctx, m, DeliveryUnknown, o.d.Pipeline.Writer(), "the relay stopped while WeChat was being called; the client may or may not have received it")
			continue
		} else if ok {
			continue
		}
		o.enqueue(m)
	}
}

// deliver sends one archived message, at most once.
func (o *Outbox) deliver(ctx context.Context, m Message) {
	// Only one attempt, in one instance, may send a message: the claim
	// covers the moments before the "sending" event is archived, the
	// event everything after.
	// The claim is a lock that only its lease ends: nothing finishes or
	// releases it.
	st, err := o.d.Dedupe.Claim(ctx, "dispatch:"+m.ID, newOwner(), o.cfg.SettleAfter)
	if err == nil && st != ClaimWon {
		return
	}
	if _, settled, err := o.archivedResult(ctx, m.ID); err != nil || settled {
		if err != nil {
			o.log.Warn("checking a message before sending; the next scan retries", "msg_id", m.ID, "err", err)
		}
		return
	}
	// "sending" carries this writer's id, so that two instances' events
	// stay two rows, and each looks for the other's before calling.
	if !o.record(ctx, m, DeliverySending, 0, "", o.d.Pipeline.Writer()) || !o.soleSender(ctx, m) {
		return
	}
	wait := o.cfg.RetryMin
	for attempt := 1; ; attempt++ {
		sctx, cancel := context.WithTimeout(ctx, o.cfg.SendTimeout)
		err := o.d.Sender.SendCustom(sctx, m)
		cancel()
		var se *SendError
		isSendErr := errors.As(err, &se)
		switch {
		case err == nil:
			o.settle(ctx, m, DeliverySent, 0, "")
			return
		case errors.Is(err, ErrOutcomeUnknown):
			o.settle(ctx, m, DeliveryUnknown, 0, "WeChat did not answer in time; the client may or may not have received it")
			return
		case isSendErr && !se.Retryable():
			o.settle(ctx, m, DeliveryFailed, se.Code, se.Msg)
			return
		case attempt >= o.cfg.Attempts || ctx.Err() != nil:
			code, msg := 0, err.Error()
			if isSendErr {
				code, msg = se.Code, se.Msg
			}
			o.settle(ctx, m, DeliveryFailed, code, msg)
			return
		}
		o.log.Warn("send not delivered, retrying", "msg_id", m.ID, "attempt", attempt, "err", err)
		if sleep(ctx, wait) != nil {
			return
		}
		wait = min(2*wait, o.cfg.RetryMax)
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
func (o *Outbox) soleSender(ctx context.Context, m Message) bool {
	wait := o.cfg.RetryMin
	for {
		evs, err := o.d.Events.MessageEvents(ctx, []string{m.ID})
		if err == nil {
			mine := m.ID + "/" + string(DeliverySending) + "/" + o.d.Pipeline.Writer()
			for _, e := range evs {
				if e.State == DeliverySending && e.ID != mine {
					o.log.Warn("another instance is sending this message too; leaving it to it", "msg_id", m.ID, "conv", m.Conv, "other", e.ID)
					return false
				}
			}
			return true
		}
		o.log.Warn("checking for another instance's send, retrying", "msg_id", m.ID, "err", err)
		if sleep(ctx, wait) != nil {
			return false
		}
		wait = min(2*wait, o.cfg.RetryMax)
	}
}

// settle archives the outcome and announces it.
func (o *Outbox) settle(ctx context.Context, m Message, state DeliveryState, code int, msg string) {
	if o.record(ctx, m, state, code, msg, "") {
		o.log.Info("outbound message settled", "msg_id", m.ID, "conv", m.Conv, "state", state, "errcode", code)
	}
}

// settleAs is settle with the event's id suffixed by who (a writer id):
// for an outcome another instance may record too.
func (o *Outbox) settleAs(ctx context.Context, m Message, state DeliveryState, who, msg string) {
	if o.record(ctx, m, state, 0, msg, who) {
		o.log.Info("outbound message settled", "msg_id", m.ID, "conv", m.Conv, "state", state, "by", who)
	}
}

// record archives one delivery event, retrying while the archive fails,
// and publishes it. It reports false if ctx ended first: a "sending"
// that was not archived must not be followed by the call to WeChat.
func (o *Outbox) record(ctx context.Context, m Message, state DeliveryState, code int, msg, who string) bool {
	ev := DeliveryEvent{
		ID: m.ID + "/" + string(state), MessageID: m.ID, Account: m.Account, Conv: m.Conv,
		State: state, ErrCode: code, ErrMsg: msg, At: o.d.Now(),
	}
	if who != "" {
		ev.ID += "/" + who
	}
	wait := o.cfg.RetryMin
	for {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.cfg.SendTimeout)
		// One event id, one row: two instances settling the same send
		// (a scan here, the send's own attempt there, outlasting
		// SettleAfter) would archive two different rows under one id,
		// and the archive would keep one that the other's seal does not
		// list. The first to claim the id writes it.
		// ("sending" is not claimed: the dispatch claim decides who
		// sends, and a duplicate must never let a second one send.)
		appendEvent := func() error { return o.d.Events.AppendEvents(actx, []DeliveryEvent{ev}) }
		var dup bool
		var err error
		if state == DeliverySending {
			err = appendEvent()
		} else {
			dup, err = o.claims.once(actx, "event:"+ev.ID, 7*24*time.Hour, appendEvent)
		}
		cancel()
		if err == nil && dup {
			return true // recorded (and announced) by whoever claimed it first
		}
		if err == nil {
			break
		}
		o.log.Warn("archiving a delivery event, retrying", "msg_id", m.ID, "state", state, "err", err)
		if sleep(ctx, wait) != nil {
			return false
		}
		wait = min(2*wait, o.cfg.RetryMax)
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := o.d.Bus.Publish(pctx, Event{Type: EventStatus, Conv: m.Conv, Employee: m.Employee, Status: &ev}); err != nil {
		o.log.Warn("publishing a delivery status", "msg_id", m.ID, "err", err)
	}
	return true
}
