package relay

import (
	"context"
	"errors"
)

// ErrDuplicate is returned by Spool.Append when a message with the same
// ID is already waiting in the spool.
var ErrDuplicate = errors.New("relay: duplicate message")

// Spool is the durable local queue between acceptance and the archive: a
// write-ahead log on disk. A message is on disk (fsynced) when Append
// returns, and stays pending until Done.
type Spool interface {
	// Append makes m durable. It returns ErrDuplicate if a message with
	// m.ID is pending already.
	Append(ctx context.Context, m Message) error
	// Pending returns up to max pending messages, oldest first, with any
	// sequence recorded by Assign.
	Pending(max int) []Message
	// Notify returns a channel that receives a value after appends.
	Notify() <-chan struct{}
	// Assign durably records the sequence numbers given to pending
	// messages, so a replay after a crash reuses them.
	Assign(ctx context.Context, seqs map[string]uint64) error
	// Done durably marks messages as archived and delivered.
	Done(ctx context.Context, ids []string) error
	// Len returns the number of pending messages.
	Len() int
}
