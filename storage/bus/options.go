package bus

import (
	"log/slog"
	"time"
)

// Defaults for zero Options fields.
const (
	// DefaultPrefix is the key prefix used when none is given; it is the
	// same as the one of package storage/state.
	DefaultPrefix = "wr:"
	// DefaultBuffer is the number of events a subscription holds for a
	// consumer that is behind.
	DefaultBuffer = 1024
	// SubscribeTimeout bounds how long RedisBus.Subscribe waits for Redis
	// to confirm the subscription when ctx has no earlier deadline.
	SubscribeTimeout = 5 * time.Second
)

// Options configures a bus. The zero value is usable.
type Options struct {
	// Buffer is the number of events each subscription holds for a
	// consumer that is behind; beyond it, events are dropped. Zero means
	// DefaultBuffer.
	Buffer int
	// Logger receives drops and undecodable events. Nil means
	// slog.Default().
	Logger *slog.Logger
}

func (o Options) buffer() int {
	if o.Buffer <= 0 {
		return DefaultBuffer
	}
	return o.Buffer
}

func (o Options) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.Default()
	}
	return o.Logger
}
