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

// ErrUnseeded is returned by a Sequencer for a conversation whose
// counter does not exist (new, or forgotten by its store).
var ErrUnseeded = errors.New("relay: sequence counter not seeded")

// Sequencer hands out per-conversation sequence numbers shared by all
// relay instances. A number is given to a message id, and held for it by
// the writer that numbered it until that writer has archived the
// message and released it:
//   - asking again for the same id gives the same number, so a writer
//     killed between numbering and recording leaves no gap — its replay
//     gets the numbers back;
//   - another writer asking for the same id (a copy of a retried
//     callback that two instances accepted) is told who holds it, and
//     waits for that writer's insert rather than archiving the message a
//     second time under another number; only a writer known to be dead
//     is taken over (Number's abandoned).
type Sequencer interface {
	// Number gives each id of ids[conv], in order, for writer, the next
	// number of conv, or the number it holds already. An id another
	// writer holds is in Numbering.Held, unless abandoned names that
	// writer for it: then writer takes it over, with its number. The
	// ids of a conversation whose counter does not exist are not
	// numbered; the conversation is in Unseeded.
	Number(ctx context.Context, writer string, ids map[ConversationID][]string, abandoned map[string]string) (Numbering, error)
	// Release forgets who holds ids, once they are archived; for
	// ArchivedGrace, Number answers them as held by HeldArchived. Ids
	// never released are forgotten a day after their conversation was
	// last numbered.
	Release(ctx context.Context, ids map[ConversationID][]string) error
	// Seed creates the counter of conv at floor if it does not exist.
	Seed(ctx context.Context, conv ConversationID, floor uint64) error
}

// HeldArchived is the writer Numbering.Held names for an id archived in
// the last ArchivedGrace: a copy of it archive checks will find, to be
// dropped rather than numbered again. ArchivedGrace is how long a
// released id is remembered so: longer than the time between a writer's
// archive check and its numbering, when another writer's insert and
// release may land (a retry both instances accepted).
const (
	HeldArchived  = "(archived)"
	ArchivedGrace = time.Minute
)

// Numbering is what Sequencer.Number did.
type Numbering struct {
	Nums     map[string]uint64 // numbered for the writer that asked
	Held     map[string]string // held by another writer: id -> writer
	Unseeded []ConversationID
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
