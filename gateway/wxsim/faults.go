package wxsim

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
)

// FaultAll is the path key of a fault that applies to every API path not
// covered by a fault of its own.
const FaultAll = "*"

// Fault makes an API endpoint misbehave, so the relay's handling of a slow,
// busy or dead WeChat can be tested. Latency applies to every call the
// fault covers; then the call fails (by ErrorRate's dice, or always when
// ErrorRate is zero), and a failing call hangs if Hang, else answers the
// error.
type Fault struct {
	// Latency delays the answer (real time).
	Latency time.Duration
	// ErrorRate is the probability (0..1) that a call fails. Zero means
	// every call fails if ErrCode, HTTPStatus or Hang is set.
	ErrorRate float64
	// ErrCode is the errcode answered; zero with ErrorRate > 0 means -1
	// (system busy).
	ErrCode int
	// ErrMsg overrides WeChat's message for ErrCode.
	ErrMsg string
	// HTTPStatus, when set, answers this HTTP status with an empty body
	// instead of a JSON error (a broken proxy or gateway).
	HTTPStatus int
	// Hang makes failing calls never answer: the request waits until the
	// caller gives up (its context ends) or the simulator closes.
	Hang bool
	// Count limits the fault to the next Count calls of the path; zero
	// means until cleared.
	Count int
}

// faultWire is Fault on the wire, with the latency as a Go duration
// string ("250ms").
type faultWire struct {
	Latency    string  `json:"latency,omitempty"`
	ErrorRate  float64 `json:"error_rate,omitempty"`
	ErrCode    int     `json:"errcode,omitempty"`
	ErrMsg     string  `json:"errmsg,omitempty"`
	HTTPStatus int     `json:"http_status,omitempty"`
	Hang       bool    `json:"hang,omitempty"`
	Count      int     `json:"count,omitempty"`
}

// MarshalJSON writes the latency as a duration string.
func (f Fault) MarshalJSON() ([]byte, error) {
	w := faultWire{ErrorRate: f.ErrorRate, ErrCode: f.ErrCode, ErrMsg: f.ErrMsg, HTTPStatus: f.HTTPStatus, Hang: f.Hang, Count: f.Count}
	if f.Latency != 0 {
		w.Latency = f.Latency.String()
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads the latency as a duration string ("250ms").
func (f *Fault) UnmarshalJSON(b []byte) error {
	var w faultWire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*f = Fault{ErrorRate: w.ErrorRate, ErrCode: w.ErrCode, ErrMsg: w.ErrMsg, HTTPStatus: w.HTTPStatus, Hang: w.Hang, Count: w.Count}
	if w.Latency != "" {
		d, err := time.ParseDuration(w.Latency)
		if err != nil {
			return fmt.Errorf("fault latency: %w", err)
		}
		f.Latency = d
	}
	return nil
}

// FaultStatus reports a configured fault and what it has done.
type FaultStatus struct {
	Path  string `json:"path"`
	Fault Fault  `json:"fault"`
	// Remaining is how many calls are left for a count-limited fault.
	Remaining int `json:"remaining,omitempty"`
	// Calls is how many calls the fault has seen; Errors how many it
	// failed (errors, statuses and hangs).
	Calls  int `json:"calls"`
	Errors int `json:"errors"`
}

// faultState is a configured fault and its counters.
type faultState struct {
	fault     Fault
	remaining int
	calls     int
	errors    int
}

// faultAction is what one call must suffer.
type faultAction struct {
	latency    time.Duration
	hang       bool
	errCode    int
	errMsg     string
	httpStatus int
	fail       bool
}

// normalizePath turns "message/custom/send", "cgi-bin/token" or
// "/cgi-bin/token" into the request path "/cgi-bin/…".
func normalizePath(p string) string {
	p = strings.TrimSpace(p)
	if p == FaultAll || p == "" {
		return FaultAll
	}
	p = "/" + strings.TrimLeft(p, "/")
	if !strings.HasPrefix(p, "/cgi-bin/") {
		p = "/cgi-bin" + p
	}
	return p
}

// SetFault makes calls of the API path misbehave as f says, replacing any
// fault on that path. path may omit "/cgi-bin/"; FaultAll ("*", or "")
// covers every path without a fault of its own.
func (s *Sim) SetFault(path string, f Fault) error {
	if f.ErrorRate < 0 || f.ErrorRate > 1 {
		return fmt.Errorf("wxsim: fault error rate %v outside 0..1", f.ErrorRate)
	}
	if f.Count < 0 || f.Latency < 0 {
		return fmt.Errorf("wxsim: fault count and latency must not be negative")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[normalizePath(path)] = &faultState{fault: f, remaining: f.Count}
	return nil
}

// ClearFault removes the fault on path.
func (s *Sim) ClearFault(path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.faults, normalizePath(path))
}

// ClearFaults removes every fault.
func (s *Sim) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = map[string]*faultState{}
}

// Faults lists the configured faults, by path.
func (s *Sim) Faults() []FaultStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]FaultStatus, 0, len(s.faults))
	for p, st := range s.faults {
		out = append(out, FaultStatus{Path: p, Fault: st.fault, Remaining: st.remaining, Calls: st.calls, Errors: st.errors})
	}
	slices.SortFunc(out, func(a, b FaultStatus) int { return strings.Compare(a.Path, b.Path) })
	return out
}

// takeFault decides what the call of path suffers and counts it; a
// count-limited fault is removed after its last call.
func (s *Sim) takeFault(path string) (faultAction, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := path
	st, ok := s.faults[key]
	if !ok {
		key = FaultAll
		if st, ok = s.faults[key]; !ok {
			return faultAction{}, false
		}
	}
	f := st.fault
	st.calls++
	if f.Count > 0 {
		st.remaining--
		if st.remaining <= 0 {
			delete(s.faults, key)
		}
	}
	act := faultAction{latency: f.Latency, errCode: f.ErrCode, errMsg: f.ErrMsg, httpStatus: f.HTTPStatus}
	switch {
	case f.ErrorRate > 0:
		act.fail = s.rng.Float64() < f.ErrorRate
	default:
		act.fail = f.ErrCode != 0 || f.HTTPStatus != 0 || f.Hang
	}
	if act.fail {
		st.errors++
		act.hang = f.Hang
		if act.errCode == 0 {
			act.errCode = CodeSystemBusy
		}
	}
	return act, true
}

// applyFault makes the request suffer the fault configured for its path and
// reports whether it answered (so the handler must not).
func (s *Sim) applyFault(w http.ResponseWriter, r *http.Request) bool {
	act, ok := s.takeFault(r.URL.Path)
	if !ok {
		return false
	}
	ctx := r.Context()
	if act.latency > 0 {
		t := time.NewTimer(act.latency)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return true
		case <-s.ctx.Done():
			t.Stop()
			return true
		}
	}
	if act.hang {
		// Read the body first: net/http notices a client that gave up
		// (and ends ctx) only once the body has been consumed.
		if r.Body != nil {
			io.Copy(io.Discard, r.Body)
		}
		s.hang(ctx)
		return true
	}
	if !act.fail {
		return false
	}
	if act.httpStatus != 0 {
		w.WriteHeader(act.httpStatus)
		return true
	}
	e := apiErr(act.errCode, "")
	if act.errMsg != "" {
		e.Msg = act.errMsg
	}
	s.writeAPIError(w, e)
	return true
}

// hang blocks until the request's context ends or the simulator closes.
func (s *Sim) hang(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-s.ctx.Done():
	}
}
