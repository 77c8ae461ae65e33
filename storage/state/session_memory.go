package state

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
)

// The console's state: sign-in sessions, the throttle on failed sign-ins,
// and how far each employee has read each conversation. The values are
// opaque here (the console encodes its sessions itself), so this package
// knows nothing of the console.
//
// Keys in Redis (see RedisSessions):
//
//	<prefix>session:<id>          string, the session, expires after the idle time
//	<prefix>login:{<id>}:fail     integer, failed sign-ins, expires at the end of the window
//	<prefix>login:{<id>}:lock     string "1", expires when the lockout ends
//	<prefix>read:<employee>       hash conv -> highest sequence read
//
// Session ids should be hashes of the secret the browser holds, so that
// reading Redis does not hand out usable sessions.

// MemorySessions keeps the console's sessions, sign-in throttle and read
// marks in one process: the single-instance mode. Sessions and throttles
// are lost on restart (employees sign in again); so are read marks
// (conversations show as unread again). Expired entries are swept
// lazily, as in MemoryDedupe.
type MemorySessions struct {
	mu        sync.Mutex
	now       func() time.Time
	sessions  map[string]memSession
	fails     map[string]memCounter
	locks     map[string]time.Time // id -> end of the lockout
	marks     map[string]map[relay.ConversationID]uint64
	nextSweep int
}

type memSession struct {
	data    []byte
	expires time.Time
}

type memCounter struct {
	n       int
	expires time.Time
}

// NewMemorySessions returns empty in-process console state.
func NewMemorySessions() *MemorySessions {
	return &MemorySessions{
		now: time.Now, sessions: map[string]memSession{}, fails: map[string]memCounter{},
		locks: map[string]time.Time{}, marks: map[string]map[relay.ConversationID]uint64{}, nextSweep: minSweep,
	}
}

// PutSession stores data under id until it has been idle for idle.
func (s *MemorySessions) PutSession(ctx context.Context, id string, data []byte, idle time.Duration) error {
	if err := checkTTL(idle); err != nil {
		return fmt.Errorf("state: put session: %w", err)
	}
	if id == "" {
		return errors.New("state: put session: empty id")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.sessions[id] = memSession{data: slices.Clone(data), expires: now.Add(idle)}
	s.maybeSweep(now)
	return nil
}

// GetSession returns the session stored under id, nil if there is none
// (never stored, deleted or expired), and keeps it for another idle.
func (s *MemorySessions) GetSession(ctx context.Context, id string, idle time.Duration) ([]byte, error) {
	if err := checkTTL(max(idle, time.Millisecond)); err != nil {
		return nil, fmt.Errorf("state: get session: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	ses, ok := s.sessions[id]
	if !ok || !now.Before(ses.expires) {
		delete(s.sessions, id)
		return nil, nil
	}
	if idle == 0 {
		return slices.Clone(ses.data), nil
	}
	ses.expires = now.Add(idle)
	s.sessions[id] = ses
	return slices.Clone(ses.data), nil
}

// DeleteSession forgets the session stored under id, if any.
func (s *MemorySessions) DeleteSession(ctx context.Context, id string) error {
	s.mu.Lock()
	delete(s.sessions, id)
	s.mu.Unlock()
	return nil
}

// LoginLocked returns how long sign-ins as id stay locked, 0 if they are
// not.
func (s *MemorySessions) LoginLocked(ctx context.Context, id string) (time.Duration, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lockedLocked(id, s.now()), nil
}

func (s *MemorySessions) lockedLocked(id string, now time.Time) time.Duration {
	until, ok := s.locks[id]
	if !ok {
		return 0
	}
	if !now.Before(until) {
		delete(s.locks, id)
		return 0
	}
	return until.Sub(now)
}

// LoginFailed counts a failed sign-in as id. The count starts with the
// first failure and is forgotten window later; the failure that brings it
// to limit locks id for lockout and resets the count. It returns how long
// id is locked now, 0 if it is not.
func (s *MemorySessions) LoginFailed(ctx context.Context, id string, limit int, window, lockout time.Duration) (time.Duration, error) {
	if err := checkThrottle(limit, window, lockout); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if d := s.lockedLocked(id, now); d > 0 {
		return d, nil
	}
	c, ok := s.fails[id]
	if !ok || !now.Before(c.expires) {
		c = memCounter{expires: now.Add(window)}
	}
	c.n++
	if c.n >= limit {
		delete(s.fails, id)
		s.locks[id] = now.Add(lockout)
		return lockout, nil
	}
	s.fails[id] = c
	s.maybeSweep(now)
	return 0, nil
}

// LoginSucceeded forgets the failed sign-ins as id.
func (s *MemorySessions) LoginSucceeded(ctx context.Context, id string) error {
	s.mu.Lock()
	delete(s.fails, id)
	s.mu.Unlock()
	return nil
}

// MarkRead records that employee has read conv up to seq. Marks only
// move forward: a lower seq than recorded changes nothing.
func (s *MemorySessions) MarkRead(ctx context.Context, employee string, conv relay.ConversationID, seq uint64) error {
	if err := checkMark(seq); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.marks[employee]
	if m == nil {
		m = map[relay.ConversationID]uint64{}
		s.marks[employee] = m
	}
	if seq > m[conv] {
		m[conv] = seq
	}
	return nil
}

// ReadMarks returns employee's marks of convs; conversations never
// marked are absent.
func (s *MemorySessions) ReadMarks(ctx context.Context, employee string, convs []relay.ConversationID) (map[relay.ConversationID]uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[relay.ConversationID]uint64, len(convs))
	for _, c := range convs {
		if seq, ok := s.marks[employee][c]; ok {
			out[c] = seq
		}
	}
	return out, nil
}

// maybeSweep drops expired sessions, counters and locks once the maps
// have grown enough since the last sweep; s.mu must be held.
func (s *MemorySessions) maybeSweep(now time.Time) {
	if len(s.sessions)+len(s.fails)+len(s.locks) < s.nextSweep {
		return
	}
	for k, v := range s.sessions {
		if !now.Before(v.expires) {
			delete(s.sessions, k)
		}
	}
	for k, v := range s.fails {
		if !now.Before(v.expires) {
			delete(s.fails, k)
		}
	}
	for k, v := range s.locks {
		if !now.Before(v) {
			delete(s.locks, k)
		}
	}
	s.nextSweep = max(2*(len(s.sessions)+len(s.fails)+len(s.locks)), minSweep)
}

func checkThrottle(limit int, window, lockout time.Duration) error {
	if limit < 1 {
		return fmt.Errorf("state: login throttle: limit %d, want at least 1", limit)
	}
	if err := checkTTL(window); err != nil {
		return fmt.Errorf("state: login throttle window: %w", err)
	}
	if err := checkTTL(lockout); err != nil {
		return fmt.Errorf("state: login throttle lockout: %w", err)
	}
	return nil
}

// checkMark refuses sequences a Redis hash (through Lua's doubles)
// cannot keep exactly.
func checkMark(seq uint64) error {
	if seq > 1<<53 || seq > math.MaxInt64 {
		return fmt.Errorf("state: read mark %d is beyond 2^53", seq)
	}
	return nil
}
