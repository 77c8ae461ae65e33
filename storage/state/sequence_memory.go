package state

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
)

var _ relay.Sequencer = (*MemorySequencer)(nil)

// MemorySequencer is a relay.Sequencer for a single process, with the
// same contract as RedisSequencer: Number never creates a counter, Seed
// never changes one, an id keeps its number until released. Counters
// live as long as the process; after a restart they are unseeded and the
// caller seeds them from the archive.
type MemorySequencer struct {
	mu       sync.Mutex
	counters map[relay.ConversationID]uint64
	held     map[string]holder    // numbered, not released
	done     map[string]time.Time // released (archived): until when Number says so
	releases int
	now      func() time.Time
}

type holder struct {
	num    uint64
	writer string
}

// NewMemorySequencer returns a Sequencer with no counters.
func NewMemorySequencer() *MemorySequencer {
	return &MemorySequencer{counters: make(map[relay.ConversationID]uint64), held: make(map[string]holder),
		done: make(map[string]time.Time), now: time.Now}
}

// Number implements relay.Sequencer.
func (s *MemorySequencer) Number(ctx context.Context, writer string, ids map[relay.ConversationID][]string, abandoned map[string]string) (relay.Numbering, error) {
	if err := ctx.Err(); err != nil {
		return relay.Numbering{}, fmt.Errorf("state: numbering messages: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := relay.Numbering{Nums: map[string]uint64{}, Held: map[string]string{}}
	for conv, list := range ids {
		if len(list) == 0 {
			continue
		}
		v, ok := s.counters[conv]
		if !ok {
			out.Unseeded = append(out.Unseeded, conv)
			continue
		}
		for _, id := range list {
			if until, ok := s.done[id]; ok && until.After(s.now()) {
				out.Held[id] = relay.HeldArchived
				continue
			}
			h, ok := s.held[id]
			switch {
			case ok && h.writer != writer && h.writer != abandoned[id]:
				out.Held[id] = h.writer
				continue
			case !ok:
				if v == math.MaxInt64 {
					// The Redis version fails here too (INCR overflow).
					return relay.Numbering{}, fmt.Errorf("state: numbering messages of %s: counter would overflow", conv)
				}
				v++
				h.num = v
			}
			h.writer = writer
			s.held[id] = h
			out.Nums[id] = h.num
		}
		s.counters[conv] = v
	}
	return out, nil
}

// Release implements relay.Sequencer.
func (s *MemorySequencer) Release(ctx context.Context, ids map[relay.ConversationID][]string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for _, list := range ids {
		for _, id := range list {
			delete(s.held, id)
			s.done[id] = now.Add(relay.ArchivedGrace)
		}
	}
	if s.releases++; s.releases%100 == 0 {
		for id, until := range s.done {
			if !until.After(now) {
				delete(s.done, id)
			}
		}
	}
	return nil
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
