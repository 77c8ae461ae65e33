package wxsim

import (
	"context"
	"net/http"
	"testing"
	"time"
)

func TestLoad(t *testing.T) {
	t.Parallel()
	for _, mode := range []Mode{ModePlain, ModeSafe} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, Config{CallbackTimeout: 2 * time.Second})
			acct, err := e.sim.AddAccount(Account{Mode: mode})
			if err != nil {
				t.Fatal(err)
			}
			relay := newRelay(t, e.sim, acct, func(n int, _ received) (int, []byte, time.Duration) {
				if n%10 == 0 {
					return http.StatusInternalServerError, nil, 0
				}
				return http.StatusOK, []byte("success"), 2 * time.Millisecond
			})
			rep, err := e.sim.Load(context.Background(), LoadConfig{AppID: acct.AppID, Clients: 4, Rate: 200, Duration: 300 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			// 200/s for 300 ms is at most 60; a busy machine sends fewer
			// in the time, and every tenth callback is refused.
			if rep.Sent < 20 || rep.Sent > 60 || rep.Accepted+rep.Failed+rep.Timeouts != rep.Sent || rep.Failed < 1 || rep.Accepted < rep.Sent/2 {
				t.Errorf("report: %v", rep)
			}
			if rep.P50 <= 0 || rep.P50 > rep.P99 || rep.P99 > rep.Max || rep.AcceptedPS <= 0 {
				t.Errorf("latencies: %v", rep)
			}
			if got, want := len(relay.received()), 4+rep.Sent; got != want { // 4 subscribes and the messages
				t.Errorf("relay got %d callbacks, want %d", got, want)
			}
		})
	}
}

func TestLoadCancelled(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	acct, _ := e.ruleAccount(Account{})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	rep, err := e.sim.Load(ctx, LoadConfig{AppID: acct.AppID, Clients: 2, Rate: 50, Duration: time.Hour})
	if err == nil || rep.Sent == 0 || rep.Sent > 10 {
		t.Errorf("cancelled run: %v, %v", rep, err)
	}
}

// BenchmarkCallback measures one signed (and, in safe mode, encrypted)
// push round trip to a relay that answers success at once.
func BenchmarkCallback(b *testing.B) {
	for _, mode := range []Mode{ModePlain, ModeSafe} {
		b.Run(string(mode), func(b *testing.B) {
			e := newEnv(b, Config{})
			acct, err := e.sim.AddAccount(Account{Mode: mode})
			if err != nil {
				b.Fatal(err)
			}
			newRelay(b, e.sim, acct, nil)
			c, _ := e.sim.NewClient(acct.AppID)
			ctx := context.Background()
			if _, err := c.Subscribe(ctx); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := c.SendText(ctx, "benchmark"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
