package state

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
)

// consoleState is what both session stores implement: the console
// declares the same methods as its interfaces.
type consoleState interface {
	PutSession(ctx context.Context, id string, data []byte, idle time.Duration) error
	GetSession(ctx context.Context, id string, idle time.Duration) ([]byte, error)
	DeleteSession(ctx context.Context, id string) error
	LoginLocked(ctx context.Context, id string) (time.Duration, error)
	LoginFailed(ctx context.Context, id string, limit int, window, lockout time.Duration) (time.Duration, error)
	LoginSucceeded(ctx context.Context, id string) error
	MarkRead(ctx context.Context, employee string, conv relay.ConversationID, seq uint64) error
	ReadMarks(ctx context.Context, employee string, convs []relay.ConversationID) (map[relay.ConversationID]uint64, error)
}

var (
	_ consoleState = (*MemorySessions)(nil)
	_ consoleState = (*RedisSessions)(nil)
)

func TestSessionsRedis(t *testing.T) {
	t.Parallel()
	testSessions(t, func(t *testing.T) consoleState {
		rdb, prefix := testRedis(t)
		return NewRedisSessions(rdb, prefix)
	})
}

func TestSessionsMemory(t *testing.T) {
	t.Parallel()
	testSessions(t, func(*testing.T) consoleState { return NewMemorySessions() })
}

// testSessions is the contract of the console's state, run against every
// backend. Expiry is tested with real time and short durations, which
// Redis keeps to the millisecond.
func testSessions(t *testing.T, open func(t *testing.T) consoleState) {
	ctx := context.Background()

	t.Run("sessions", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		const idle = time.Hour
		if got, err := s.GetSession(ctx, "nope", idle); err != nil || got != nil {
			t.Fatalf("GetSession of an unknown id = %q, %v; want nil", got, err)
		}
		data := []byte(`{"employee":"alice","csrf":"x"}`)
		if err := s.PutSession(ctx, "s1", data, idle); err != nil {
			t.Fatal(err)
		}
		data[2] = 'X' // the store keeps its own copy
		if got, err := s.GetSession(ctx, "s1", idle); err != nil || string(got) != `{"employee":"alice","csrf":"x"}` {
			t.Fatalf("GetSession = %q, %v", got, err)
		}
		if got, _ := s.GetSession(ctx, "s2", idle); got != nil {
			t.Fatalf("another id sees %q", got)
		}
		if err := s.DeleteSession(ctx, "s1"); err != nil {
			t.Fatal(err)
		}
		if got, err := s.GetSession(ctx, "s1", idle); err != nil || got != nil {
			t.Fatalf("GetSession after delete = %q, %v", got, err)
		}
		if err := s.DeleteSession(ctx, "s1"); err != nil {
			t.Fatalf("deleting twice: %v", err)
		}
		if err := s.PutSession(ctx, "", data, idle); err == nil {
			t.Fatal("PutSession with an empty id: no error")
		}
		if err := s.PutSession(ctx, "s3", data, 0); err == nil {
			t.Fatal("PutSession without an idle time: no error")
		}
	})

	// Read with idle 0 (an open socket checking its session), a session
	// is not kept alive: it expires idle after its last real use.
	t.Run("a peek does not slide", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		const idle = 2 * time.Second
		if err := s.PutSession(ctx, "s", []byte("v"), idle); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			time.Sleep(200 * time.Millisecond)
			if got, err := s.GetSession(ctx, "s", 0); err != nil || string(got) != "v" {
				t.Fatalf("peek = %q, %v", got, err)
			}
		}
		waitPast(idle - 600*time.Millisecond)
		if got, err := s.GetSession(ctx, "s", 0); err != nil || got != nil {
			t.Fatalf("peeked at, the session outlived its idle time: %q, %v", got, err)
		}
	})

	t.Run("idle expiry slides", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		const idle = 400 * time.Millisecond
		if err := s.PutSession(ctx, "s", []byte("v"), idle); err != nil {
			t.Fatal(err)
		}
		// Used every 250ms, it outlives its idle time several times over.
		for range 4 {
			time.Sleep(250 * time.Millisecond)
			if got, err := s.GetSession(ctx, "s", idle); err != nil || string(got) != "v" {
				t.Fatalf("session in use expired: %q, %v", got, err)
			}
		}
		waitPast(idle)
		if got, err := s.GetSession(ctx, "s", idle); err != nil || got != nil {
			t.Fatalf("idle session = %q, %v; want expired", got, err)
		}
	})

	t.Run("lockout", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		const (
			limit   = 3
			window  = time.Minute
			lockout = 500 * time.Millisecond
		)
		for i := 1; i < limit; i++ {
			if d, err := s.LoginFailed(ctx, "alice", limit, window, lockout); err != nil || d != 0 {
				t.Fatalf("failure %d: locked %v, %v", i, d, err)
			}
		}
		if d, _ := s.LoginLocked(ctx, "alice"); d != 0 {
			t.Fatalf("locked after %d failures: %v", limit-1, d)
		}
		d, err := s.LoginFailed(ctx, "alice", limit, window, lockout)
		if err != nil || d <= 0 || d > lockout {
			t.Fatalf("failure %d: locked %v, %v; want up to %v", limit, d, err, lockout)
		}
		if d, _ := s.LoginLocked(ctx, "alice"); d <= 0 || d > lockout {
			t.Fatalf("LoginLocked = %v", d)
		}
		// Other ids are not affected.
		if d, _ := s.LoginLocked(ctx, "bob"); d != 0 {
			t.Fatalf("bob locked %v", d)
		}
		// Failures while locked neither extend nor count.
		if d, _ := s.LoginFailed(ctx, "alice", limit, window, lockout); d <= 0 || d > lockout {
			t.Fatalf("failure while locked: %v", d)
		}
		waitPast(lockout)
		if d, _ := s.LoginLocked(ctx, "alice"); d != 0 {
			t.Fatalf("still locked after the lockout: %v", d)
		}
		// The lock reset the count: limit-1 failures do not lock again.
		for i := 1; i < limit; i++ {
			if d, _ := s.LoginFailed(ctx, "alice", limit, window, lockout); d != 0 {
				t.Fatalf("failure %d after the lockout locked again (%v)", i, d)
			}
		}
	})

	t.Run("success resets and window expires", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		const limit, lockout = 3, time.Minute
		s.LoginFailed(ctx, "alice", limit, time.Minute, lockout)
		s.LoginFailed(ctx, "alice", limit, time.Minute, lockout)
		if err := s.LoginSucceeded(ctx, "alice"); err != nil {
			t.Fatal(err)
		}
		if d, _ := s.LoginFailed(ctx, "alice", limit, time.Minute, lockout); d != 0 {
			t.Fatalf("locked after a success and one failure: %v", d)
		}
		// A short window: failures older than it are forgotten.
		const window = 300 * time.Millisecond
		s.LoginFailed(ctx, "bob", limit, window, lockout)
		s.LoginFailed(ctx, "bob", limit, window, lockout)
		waitPast(window)
		if d, _ := s.LoginFailed(ctx, "bob", limit, window, lockout); d != 0 {
			t.Fatalf("failures outside the window counted: locked %v", d)
		}
		if _, err := s.LoginFailed(ctx, "x", 0, window, lockout); err == nil {
			t.Fatal("limit 0: no error")
		}
	})

	t.Run("concurrent failures lock exactly once", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		const limit = 5
		var (
			wg     sync.WaitGroup
			mu     sync.Mutex
			locked int
		)
		for range 3 * limit {
			wg.Go(func() {
				d, err := s.LoginFailed(ctx, "carol", limit, time.Minute, time.Minute)
				if err != nil {
					t.Error(err)
				}
				if d > 0 {
					mu.Lock()
					locked++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		// The limit-th failure locks; every later one finds the lock.
		if locked != 2*limit+1 {
			t.Fatalf("%d of %d failures saw the lock, want %d", locked, 3*limit, 2*limit+1)
		}
	})

	t.Run("read marks", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		a, b, c := relay.Conversation("acct", "a"), relay.Conversation("acct", "b"), relay.Conversation("acct", "c")
		got, err := s.ReadMarks(ctx, "alice", []relay.ConversationID{a, b})
		if err != nil || len(got) != 0 {
			t.Fatalf("marks before any = %v, %v", got, err)
		}
		for _, m := range []struct {
			conv relay.ConversationID
			seq  uint64
		}{{a, 5}, {a, 3}, {b, 1}, {a, 7}, {b, 0}} {
			if err := s.MarkRead(ctx, "alice", m.conv, m.seq); err != nil {
				t.Fatal(err)
			}
		}
		s.MarkRead(ctx, "bob", a, 100)
		got, err = s.ReadMarks(ctx, "alice", []relay.ConversationID{a, b, c})
		if err != nil || len(got) != 2 || got[a] != 7 || got[b] != 1 {
			t.Fatalf("alice's marks = %v, %v; want a:7 b:1", got, err)
		}
		if got, _ := s.ReadMarks(ctx, "bob", []relay.ConversationID{a}); got[a] != 100 {
			t.Fatalf("bob's marks = %v", got)
		}
		if got, err := s.ReadMarks(ctx, "alice", nil); err != nil || len(got) != 0 {
			t.Fatalf("marks of nothing = %v, %v", got, err)
		}
		if err := s.MarkRead(ctx, "alice", a, 1<<60); err == nil {
			t.Fatal("a mark beyond 2^53: no error")
		}
		// Many at once.
		var many []relay.ConversationID
		for i := range 300 {
			cv := relay.Conversation("acct", fmt.Sprint("m", i))
			many = append(many, cv)
			s.MarkRead(ctx, "dave", cv, uint64(i+1))
		}
		got, _ = s.ReadMarks(ctx, "dave", many)
		for i, cv := range many {
			if got[cv] != uint64(i+1) {
				t.Fatalf("mark of %s = %d, want %d", cv, got[cv], i+1)
			}
		}
	})
}
