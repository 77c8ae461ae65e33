package relay

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// gateSpool is a spool whose Appends wait at a gate, as in a slow fsync,
// and then fail or succeed as the test says.
type gateSpool struct {
	*memSpool
	mu      sync.Mutex
	gate    chan struct{} // nil: Append does not wait
	fail    error         // returned by Appends that waited
	waiting chan struct{} // receives when an Append reaches the gate
}

func (s *gateSpool) Append(ctx context.Context, m Message) error {
	s.mu.Lock()
	gate, fail := s.gate, s.fail
	s.mu.Unlock()
	if gate != nil {
		s.waiting <- struct{}{}
		<-gate
		if fail != nil {
			return fail
		}
	}
	return s.memSpool.Append(ctx, m)
}

func (s *gateSpool) has(id string) bool {
	for _, m := range s.Pending(1 << 20) {
		if m.ID == id {
			return true
		}
	}
	return false
}

func claimPipeline(t *testing.T, sp Spool, d *memDedupe, lease, wait time.Duration) *Pipeline {
	t.Helper()
	archive := &memArchive{}
	p, err := NewPipeline(Config{ClaimLease: lease, ClaimWait: wait}, Deps{
		Spool: sp, Archive: archive, Bus: newMemBus(archive), Dedupe: d, Sequencer: &memSeq{},
		Router: NewRouter(&memAssign{}, map[string][]string{"acct": {"alice"}}),
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// WeChat's retry arrives while the first attempt is still in a slow
// fsync, which then fails: the retry must not have been told "success",
// and the next retry must be accepted for real.
func TestAcceptRetryDuringSlowFsyncIsNotAnsweredSuccess(t *testing.T) {
	gate := make(chan struct{})
	sp := &gateSpool{memSpool: newMemSpool(), gate: gate, fail: errors.New("fsync: input/output error"), waiting: make(chan struct{}, 1)}
	p := claimPipeline(t, sp, &memDedupe{}, time.Minute, 50*time.Millisecond)
	m := text("c1", "1", "hello")
	first := make(chan error, 1)
	go func() { first <- p.Accept(context.Background(), m) }()
	<-sp.waiting // the first attempt is in its fsync

	if err := p.Accept(context.Background(), m); !errors.Is(err, ErrInFlight) {
		t.Fatalf("a retry while the first attempt is in flight: %v, want ErrInFlight (never success)", err)
	}
	sp.mu.Lock()
	sp.gate = nil
	sp.mu.Unlock()
	close(gate)
	if err := <-first; err == nil {
		t.Fatal("the first attempt's failed fsync was reported as accepted")
	}
	// The failure released the claim: the next retry is accepted and
	// really spooled.
	if err := p.Accept(context.Background(), m); err != nil {
		t.Fatalf("the retry after the failure: %v", err)
	}
	if !sp.has(m.ID) {
		t.Fatal("the message was answered success but is not in the spool")
	}
}

// Instance A claimed the message and died before its fsync; WeChat's
// retry reaches instance B, which must accept the message itself once
// A's lease ends, not answer success from A's claim.
func TestAcceptRetryAfterOwnerDiedAcceptsForReal(t *testing.T) {
	d := &memDedupe{}
	sp := &gateSpool{memSpool: newMemSpool()}
	p := claimPipeline(t, sp, d, time.Second, 3*time.Second)
	m := text("c1", "1", "hello")
	d.hold(m.ID, 200*time.Millisecond) // A's claim; A is gone

	if err := p.Accept(context.Background(), m); err != nil {
		t.Fatalf("the retry on B: %v", err)
	}
	if !sp.has(m.ID) {
		t.Fatal("B answered success from A's claim, but the message is in no spool")
	}
	// And a retry after that is a duplicate, answered from the done claim.
	if err := p.Accept(context.Background(), m); err != nil {
		t.Fatalf("a later retry: %v", err)
	}
	if n := len(sp.Pending(100)); n != 1 {
		t.Fatalf("%d messages spooled, want 1", n)
	}
}

// A retry that finds the claim held longer than it can wait is answered
// with an error (WeChat retries), never success.
func TestAcceptHeldClaimAnswersInFlight(t *testing.T) {
	d := &memDedupe{}
	sp := &gateSpool{memSpool: newMemSpool()}
	p := claimPipeline(t, sp, d, time.Second, 50*time.Millisecond)
	m := text("c1", "1", "hello")
	d.hold(m.ID, time.Minute)
	if err := p.Accept(context.Background(), m); !errors.Is(err, ErrInFlight) {
		t.Fatalf("Accept with the id held elsewhere: %v, want ErrInFlight", err)
	}
	if sp.has(m.ID) {
		t.Fatal("spooled although another attempt holds the claim")
	}
}

// An employee's send whose first attempt died after claiming its key is
// accepted by the retry (not "pending" forever and never sent).
func TestSendRetryAfterOwnerDiedIsAccepted(t *testing.T) {
	oh := newOutboxHarness(t)
	oh.ob.claims.wait = 3 * time.Second
	oh.clientWrites(t, "c1", "1")
	req := textReq("c1", "k1", "您好")
	id := OutboundID(req.Conv, req.Key)
	oh.dedupe.hold("send:"+id, 200*time.Millisecond) // the first attempt's instance died

	res, err := oh.ob.Send(context.Background(), req)
	if err != nil {
		t.Fatalf("the retried send: %v", err)
	}
	if res.MessageID != id || res.Duplicate {
		t.Fatalf("the retried send: %+v, want accepted as new", res)
	}
	oh.waitState(t, id, DeliverySent)
}
