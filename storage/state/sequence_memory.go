package state

import (
	"context"
	"fmt"
	"math"
	"sync"

	"github.com/wechat-relay/wechat-relay/relay"
)

var _ relay.Sequencer = (*MemorySequencer)(nil)

// MemorySequencer is a relay.Sequencer for a single process, with the
// same contract as RedisSequencer: Next never creates a counter, Seed
// never changes one. Counters live as long as the process; after a
// restart they are unseeded and the caller seeds them from the archive.
type MemorySequencer struct {
	mu       sync.Mutex
	counters map[relay.ConversationID]uint64
}

// NewMemorySequencer returns a Sequencer with no counters.
func NewMemorySequencer() *MemorySequencer {
	return &MemorySequencer{counters: make(map[relay.ConversationID]uint64)}
}

// Next reserves n numbers and returns the last, or relay.ErrUnseeded.
func (s *MemorySequencer) Next(ctx context.Context, conv relay.ConversationID, n int) (uint64, error) {
	if n < 1 {
		return 0, fmt.Errorf("state: next sequence of %s: n = %d, want at least 1", conv, n)
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("state: next sequence of %s: %w", conv, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.counters[conv]
	if !ok {
		return 0, relay.ErrUnseeded
	}
	if v > math.MaxInt64-uint64(n) {
		// The Redis version fails here too (INCRBY overflow).
		return 0, fmt.Errorf("state: next sequence of %s: counter would overflow", conv)
	}
	v += uint64(n)
	s.counters[conv] = v
	return v, nil
}

// Seed creates the counter at floor unless it exists.
func (s *MemorySequencer) Seed(ctx context.Context, conv relay.ConversationID, floor uint64) error {
	if floor > math.MaxInt64 {
		return fmt.Errorf("state: seed sequence of %s: floor %d exceeds the integer range", conv, floor)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("state: seed sequence of %s: %w", conv, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.counters[conv]; !ok {
		s.counters[conv] = floor
	}
	return nil
}
