package relay

import (
	"context"
	"errors"
	"strconv"
	"time"
)

// Dedupe remembers which requests (WeChat's callbacks, employees'
// sends, staff actions) were accepted, so that their retries, on any
// instance, are not accepted twice. A key goes through two states: held
// by one attempt while it makes the request durable (a short lease, so
// that an attempt that dies does not swallow the retries), then done.
// Only done means durable: a retry that finds a key held must not be
// told "accepted" on its strength (see once.go).
type Dedupe interface {
	// Claim takes key for owner for lease, if nobody holds it and it is
	// not done, and says what it found.
	Claim(ctx context.Context, key, owner string, lease time.Duration) (ClaimState, error)
	// Finish marks key done for ttl, whoever holds it: what it stands
	// for is durable.
	Finish(ctx context.Context, key string, ttl time.Duration) error
	// Release frees key if owner still holds it (not after its lease
	// ended and another attempt took it, nor once it is done), so that
	// a request that failed to be accepted can be retried at once.
	Release(ctx context.Context, key, owner string) error
}

// ClaimState is what Dedupe.Claim found.
type ClaimState int

const (
	// ClaimWon: the key was free; the caller holds it now.
	ClaimWon ClaimState = iota + 1
	// ClaimHeld: another attempt holds the key and has not finished;
	// whether its request is durable is not known yet.
	ClaimHeld
	// ClaimDone: an attempt finished; the request is durable.
	ClaimDone
)

func (s ClaimState) String() string {
	switch s {
	case ClaimWon:
		return "won"
	case ClaimHeld:
		return "held"
	case ClaimDone:
		return "done"
	}
	return "ClaimState(" + strconv.Itoa(int(s)) + ")"
}

// ErrUnseeded is returned by Sequencer.Next when the counter of a
// conversation does not exist (new, or forgotten by its store).
var ErrUnseeded = errors.New("relay: sequence counter not seeded")

// BulkSequencer is a Sequencer that reserves numbers for many
// conversations in one round trip (Redis pipelining).
type BulkSequencer interface {
	// NextMany reserves counts[conv] numbers for each conv and returns
	// the last of each. Conversations whose counter does not exist are
	// in unseeded. One in neither failed (err says why); what is in last
	// is reserved and must be used, whatever err says.
	NextMany(ctx context.Context, counts map[ConversationID]int) (last map[ConversationID]uint64, unseeded []ConversationID, err error)
}

// Sequencer hands out per-conversation sequence numbers shared by all
// relay instances.
type Sequencer interface {
	// Next reserves n numbers for conv and returns the last of them.
	Next(ctx context.Context, conv ConversationID, n int) (uint64, error)
	// Seed creates the counter of conv at floor if it does not exist.
	Seed(ctx context.Context, conv ConversationID, floor uint64) error
}

// Assignments records which employee serves which conversation.
type Assignments interface {
	// Get returns the employee assigned to conv, "" if none.
	Get(ctx context.Context, conv ConversationID) (string, error)
	// Set assigns conv to employee.
	Set(ctx context.Context, conv ConversationID, employee string) error
	// SetIfAbsent assigns conv to employee unless it is assigned
	// already, and returns the employee that holds it afterwards.
	SetIfAbsent(ctx context.Context, conv ConversationID, employee string) (string, error)
}
