package relay

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// ErrInFlight is returned when an earlier attempt of the same request
// (on this instance or another) holds its claim and has not finished in
// the time a caller can wait. Nothing is known about that attempt yet,
// so the caller must not be told "accepted": WeChat is answered 503 and
// retries, an employee's send is answered 503 and may be sent again.
var ErrInFlight = errors.New("relay: an earlier attempt of this request is still in progress; try again")

// Default timings of a claim. The lease outlives an ordinary fsync by
// far, yet ends well inside WeChat's 5-second callback limit, so that a
// retry reaching another instance after the first one died takes the
// claim over and accepts the message itself instead of answering 503.
const (
	defaultClaimLease = 2 * time.Second
	defaultClaimWait  = 3 * time.Second
)

// claims makes one request durable at most once across instances: it
// runs accept under a claim of the request's key, marks the key done
// only after accept has made the request durable, and answers a retry
// from what is known, never from a claim still in flight.
//
// Exactly once is kept by the spool and the archive (both refuse a
// second copy of an id); the claim saves them the work and decides what
// a retry is told.
type claims struct {
	d     Dedupe
	lease time.Duration // how long an attempt holds a claim
	wait  time.Duration // how long a retry waits for an attempt in flight
	log   *slog.Logger
}

// once runs accept unless key is done already. It reports dup when the
// request was accepted before (by this call's caller, an earlier attempt,
// or another instance). An error from accept releases the claim, so a
// retry can try again at once; ErrInFlight means another attempt holds
// the claim and did not finish within c.wait.
func (c *claims) once(ctx context.Context, key string, ttl time.Duration, accept func() error) (dup bool, err error) {
	owner := newOwner()
	pause := 10 * time.Millisecond
	deadline := time.Now().Add(c.wait)
	for {
		st, err := c.d.Claim(ctx, key, owner, c.lease)
		if err != nil {
			// Without the dedupe store the spool and the archive still
			// keep the request unique; accepting beats a refusal.
			c.log.Warn("dedupe unavailable, accepting without it", "key", key, "err", err)
			return false, accept()
		}
		switch st {
		case ClaimDone:
			return true, nil
		case ClaimWon:
			if err := accept(); err != nil {
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
				defer cancel()
				if rerr := c.d.Release(rctx, key, owner); rerr != nil {
					c.log.Error("releasing a claim after a failed attempt (its lease ends it)", "key", key, "err", rerr)
				}
				return false, err
			}
			// Bounded: WeChat waits for the answer, and a retry that finds
			// the claim held only waits for its lease to end.
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			defer cancel()
			if err := c.d.Finish(fctx, key, ttl); err != nil {
				// The request is durable. A retry will find the claim's
				// lease ended and make it again; the spool or the
				// archive drops the copy.
				c.log.Warn("marking a claim done", "key", key, "err", err)
			}
			return false, nil
		case ClaimHeld:
			if !time.Now().Before(deadline) {
				return false, fmt.Errorf("%s: %w", key, ErrInFlight)
			}
			if err := sleep(ctx, pause); err != nil {
				return false, fmt.Errorf("%s: waiting for an earlier attempt: %w", key, err)
			}
			pause = min(2*pause, 200*time.Millisecond)
		default:
			return false, fmt.Errorf("%s: dedupe answered %v", key, st)
		}
	}
}

// newOwner names one attempt, so that its Release cannot free a claim
// another attempt took over after the lease ended.
func newOwner() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
