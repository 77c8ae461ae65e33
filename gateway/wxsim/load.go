package wxsim

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"
)

// LoadConfig describes a load run: Clients followers of one account send
// text messages at Rate per second in all, for Duration. The account's
// mode (plain, compatible, safe) decides what the relay must verify and
// decrypt.
type LoadConfig struct {
	// AppID is the account to load; it must have a callback URL.
	AppID string `json:"appid"`
	// Clients is how many simulated clients take turns. Default 10.
	Clients int `json:"clients"`
	// Rate is messages per second across all clients. Default 100.
	Rate float64 `json:"rate"`
	// Duration is how long messages are started. Default 10 s.
	Duration time.Duration `json:"duration"`
	// MaxInFlight bounds concurrent callbacks; when the relay is slower
	// than Rate, sending falls behind (the achieved rate shows it) rather
	// than piling up goroutines. Default 256.
	MaxInFlight int `json:"max_in_flight"`
	// Text makes the text of message k, called just before it is sent
	// (a benchmark stamps the time in it to measure delivery). Default
	// "load message k".
	Text func(k int) string `json:"-"`
}

// LoadReport is the outcome of a load run.
type LoadReport struct {
	Sent     int `json:"sent"`
	Accepted int `json:"accepted"` // answered success or a valid reply
	Timeouts int `json:"timeouts"` // every try unanswered
	Failed   int `json:"failed"`   // refused answers, unreachable, …
	// Elapsed runs from the first message to the last answer.
	Elapsed     time.Duration `json:"elapsed"`
	AcceptedPS  float64       `json:"accepted_per_second"`
	RequestedPS float64       `json:"requested_per_second"`
	// Latency percentiles of accepted messages, all tries included.
	P50 time.Duration `json:"p50"`
	P90 time.Duration `json:"p90"`
	P99 time.Duration `json:"p99"`
	Max time.Duration `json:"max"`
	// Errors counts failures by message (first 20 distinct).
	Errors map[string]int `json:"errors,omitempty"`
}

// String renders the report on one line, for benchmarks and the CLI.
func (r LoadReport) String() string {
	return fmt.Sprintf("sent=%d accepted=%d timeouts=%d failed=%d elapsed=%v accepted/s=%.1f (requested %.1f) p50=%v p90=%v p99=%v max=%v",
		r.Sent, r.Accepted, r.Timeouts, r.Failed, r.Elapsed.Round(time.Millisecond), r.AcceptedPS, r.RequestedPS,
		r.P50, r.P90, r.P99, r.Max)
}

// Load runs a load test against the account's relay: it creates and
// subscribes the clients (not measured), then starts messages on an
// open-loop schedule and waits for every one to finish. Each message goes
// through the normal callback path (signing, encryption, retries, answer
// checks). Cancelling ctx stops the run early; the report covers what
// was sent.
func (s *Sim) Load(ctx context.Context, cfg LoadConfig) (LoadReport, error) {
	if cfg.Clients <= 0 {
		cfg.Clients = 10
	}
	if cfg.Rate <= 0 {
		cfg.Rate = 100
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 10 * time.Second
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 256
	}
	av, err := s.acctView(cfg.AppID)
	if err != nil {
		return LoadReport{}, err
	}
	if av.callbackURL == "" {
		return LoadReport{}, fmt.Errorf("%w: %s", ErrNoCallbackURL, cfg.AppID)
	}
	clients := make([]*Client, cfg.Clients)
	for i := range clients {
		c, err := s.NewClient(cfg.AppID)
		if err != nil {
			return LoadReport{}, fmt.Errorf("wxsim: load: %w", err)
		}
		if _, err := c.Subscribe(ctx); err != nil {
			return LoadReport{}, fmt.Errorf("wxsim: load: subscribe client %d: %w", i, err)
		}
		clients[i] = c
	}

	var (
		mu        sync.Mutex
		rep       = LoadReport{RequestedPS: cfg.Rate, Errors: map[string]int{}}
		latencies []time.Duration
		wg        sync.WaitGroup
		sem       = make(chan struct{}, cfg.MaxInFlight)
	)
	interval := time.Duration(float64(time.Second) / cfg.Rate)
	start := time.Now()
	total := int(cfg.Duration.Seconds() * cfg.Rate)
	timer := time.NewTimer(0)
	defer timer.Stop()
schedule:
	for k := 0; k < total; k++ {
		// A relay slower than Rate makes sending fall behind; it still
		// stops when Duration is over.
		if time.Since(start) >= cfg.Duration {
			break
		}
		timer.Reset(time.Until(start.Add(time.Duration(k) * interval)))
		select {
		case <-timer.C:
		case <-ctx.Done():
			break schedule
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			break schedule
		}
		rep.Sent++
		wg.Add(1)
		go func(c *Client, k int) {
			defer wg.Done()
			defer func() { <-sem }()
			text := "load message " + strconv.Itoa(k)
			if cfg.Text != nil {
				text = cfg.Text(k)
			}
			res, err := c.SendText(ctx, text)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				rep.Accepted++
				latencies = append(latencies, res.Total)
			case errors.Is(err, ErrCallbackTimeout):
				rep.Timeouts++
			default:
				rep.Failed++
			}
			if err != nil {
				if _, ok := rep.Errors[err.Error()]; ok || len(rep.Errors) < 20 {
					rep.Errors[err.Error()]++
				}
			}
		}(clients[k%len(clients)], k)
	}
	wg.Wait()
	rep.Elapsed = time.Since(start)
	if rep.Elapsed > 0 {
		rep.AcceptedPS = float64(rep.Accepted) / rep.Elapsed.Seconds()
	}
	slices.Sort(latencies)
	if n := len(latencies); n > 0 {
		at := func(p float64) time.Duration { return latencies[min(n-1, int(p*float64(n)))] }
		rep.P50, rep.P90, rep.P99, rep.Max = at(0.50), at(0.90), at(0.99), latencies[n-1]
	}
	if len(rep.Errors) == 0 {
		rep.Errors = nil
	}
	s.log.Info("wxsim: load run finished", "account", cfg.AppID, "report", rep.String())
	return rep, ctx.Err()
}
