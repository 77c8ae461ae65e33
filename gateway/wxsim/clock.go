package wxsim

import (
	"sync"
	"time"
)

// Clock tells the simulator what time it is. Every platform rule (token
// expiry, the 48-hour window, media expiry, daily quotas, QR expiry,
// CreateTime of callbacks) reads it, so a ManualClock makes those rules
// testable without waiting.
type Clock interface {
	Now() time.Time
}

// SystemClock is the real wall clock; it is the default.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// ManualClock is a clock that moves only when told to. It is safe for
// concurrent use. The zero value reads the zero time; use NewManualClock.
type ManualClock struct {
	mu  sync.Mutex
	now time.Time
}

// NewManualClock returns a clock stopped at start.
func NewManualClock(start time.Time) *ManualClock {
	return &ManualClock{now: start}
}

// Now returns the clock's current time.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Set moves the clock to t (backwards too, for tests that need it).
func (c *ManualClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// Advance moves the clock forward by d and returns the new time.
func (c *ManualClock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return c.now
}

var (
	_ Clock = SystemClock{}
	_ Clock = (*ManualClock)(nil)
)

// beijing is the zone WeChat's daily quotas reset in (midnight UTC+8).
var beijing = time.FixedZone("CST", 8*60*60)

// quotaDay names the quota day t falls in.
func quotaDay(t time.Time) string { return t.In(beijing).Format("2006-01-02") }
