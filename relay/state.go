package relay

import (
	"context"
	"errors"
	"time"
)

// Dedupe remembers recently seen message IDs so WeChat's retries are
// dropped before they reach the spool.
type Dedupe interface {
	// Claim marks key as seen for ttl and reports whether this call was
	// the first to see it.
	Claim(ctx context.Context, key string, ttl time.Duration) (bool, error)
	// Release forgets key, so a message that failed to be accepted can be
	// retried.
	Release(ctx context.Context, key string) error
}

// ErrUnseeded is returned by Sequencer.Next when the counter of a
// conversation does not exist (new, or forgotten by its store).
var ErrUnseeded = errors.New("relay: sequence counter not seeded")

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
