package wxsim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"
)

func TestFaultLatency(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	acct, _ := e.ruleAccount(Account{})
	tok := e.token(acct)
	if err := e.sim.SetFault("getcallbackip", Fault{Latency: 500 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if code := e.ping(tok); code != 0 {
		t.Errorf("slow call answered %d", code)
	}
	if el := time.Since(start); el < 500*time.Millisecond {
		t.Errorf("call took %v, want at least 500ms", el)
	}
	start = time.Now()
	e.token(acct)
	if el := time.Since(start); el > 400*time.Millisecond {
		t.Errorf("other paths are slowed too: %v", el)
	}
}

func TestFaultBusyCountLimited(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	acct, c := e.ruleAccount(Account{})
	tok := e.token(acct)
	if err := e.sim.SetFault("/cgi-bin/message/custom/send", Fault{ErrCode: CodeSystemBusy, Count: 2}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		r := e.post(pathCustomSend, tok, text(c.OpenID, "x"))
		if r.code() != -1 || len(r.str("errmsg")) < len("system error") || r.str("errmsg")[:12] != "system error" {
			t.Errorf("call %d: %v, want -1 system error", i, r)
		}
	}
	wantCode(t, "third call", e.post(pathCustomSend, tok, text(c.OpenID, "x")), 0)
	if fs := e.sim.Faults(); len(fs) != 0 {
		t.Errorf("spent fault still listed: %+v", fs)
	}
	// The failed calls were not deliveries.
	if got, _ := c.Delivered(); len(got) != 1 {
		t.Errorf("delivered %d, want 1", len(got))
	}
}

func TestFaultHang(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	acct, _ := e.ruleAccount(Account{})
	tok := e.token(acct)
	if err := e.sim.SetFault(pathGetCallbackIP, Fault{Hang: true}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.srv.URL+pathGetCallbackIP+"?access_token="+url.QueryEscape(tok), nil)
	start := time.Now()
	_, err := http.DefaultClient.Do(req)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("hung call: %v, want the caller's deadline", err)
	}
	if el := time.Since(start); el < 200*time.Millisecond {
		t.Errorf("hung call returned after %v", el)
	}
	fs := e.sim.Faults()
	if len(fs) != 1 || fs[0].Calls != 1 || fs[0].Errors != 1 {
		t.Errorf("faults = %+v", fs)
	}
	e.sim.ClearFault(pathGetCallbackIP)
	if code := e.ping(tok); code != 0 {
		t.Errorf("after clearing: %d", code)
	}
}

func TestFaultHangReleasedByClose(t *testing.T) {
	t.Parallel()
	sim := New(Config{})
	srv := NewServer(sim)
	if err := sim.SetFault(FaultAll, Fault{Hang: true}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		rec := &discardWriter{h: http.Header{}}
		srv.ServeHTTP(rec, httpRequest(t, http.MethodGet, "/cgi-bin/token"))
	}()
	time.Sleep(20 * time.Millisecond)
	if err := sim.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("hung request outlived Close")
	}
}

func TestFaultErrorRateAndStatus(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{Seed: 3})
	acct, _ := e.ruleAccount(Account{})
	tok := e.token(acct)
	if err := e.sim.SetFault("*", Fault{ErrorRate: 0.5}); err != nil {
		t.Fatal(err)
	}
	fails := 0
	for i := 0; i < 200; i++ {
		switch code := e.ping(tok); code {
		case -1:
			fails++
		case 0:
		default:
			t.Fatalf("code %d", code)
		}
	}
	if fails < 60 || fails > 140 {
		t.Errorf("%d of 200 failed at rate 0.5", fails)
	}
	if err := e.sim.SetFault(pathGetCallbackIP, Fault{HTTPStatus: http.StatusBadGateway, Count: 1}); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(e.srv.URL + pathGetCallbackIP + "?access_token=" + url.QueryEscape(tok))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("HTTP status fault: %d", resp.StatusCode)
	}
	// A rate applies to hangs too: about half the calls hang.
	if err := e.sim.SetFault(pathGetCallbackIP, Fault{Hang: true, ErrorRate: 0.5}); err != nil {
		t.Fatal(err)
	}
	hung := 0
	for i := 0; i < 20; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.srv.URL+pathGetCallbackIP+"?access_token="+url.QueryEscape(tok), nil)
		resp, err := http.DefaultClient.Do(req)
		cancel()
		if err != nil {
			hung++
			continue
		}
		resp.Body.Close()
	}
	if hung < 3 || hung > 17 {
		t.Errorf("%d of 20 calls hung at rate 0.5", hung)
	}
	if err := e.sim.SetFault("x", Fault{ErrorRate: 2}); err == nil {
		t.Error("error rate 2 accepted")
	}
}

func TestFaultAdminAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	acct, _ := e.ruleAccount(Account{})
	tok := e.token(acct)
	admin := func(method, path, body string) (int, []byte) {
		req, _ := http.NewRequest(method, e.srv.URL+path, bytes.NewBufferString(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	status, body := admin(http.MethodPut, "/sim/api/faults", `{"path":"getcallbackip","fault":{"errcode":45009,"count":1,"latency":"50ms"}}`)
	if status != 200 {
		t.Fatalf("PUT fault: %d %s", status, body)
	}
	var list []FaultStatus
	if err := json.Unmarshal(body, &list); err != nil || len(list) != 1 || list[0].Path != pathGetCallbackIP ||
		list[0].Fault.Latency != 50*time.Millisecond || list[0].Remaining != 1 {
		t.Fatalf("faults = %s (%v)", body, err)
	}
	if code := e.ping(tok); code != CodeDailyQuota {
		t.Errorf("faulted call: %d, want 45009", code)
	}
	if code := e.ping(tok); code != 0 {
		t.Errorf("after the count: %d", code)
	}
	admin(http.MethodPut, "/sim/api/faults", `{"path":"token","fault":{"errcode":-1}}`)
	if status, _ := admin(http.MethodDelete, "/sim/api/faults", ""); status != 200 || len(e.sim.Faults()) != 0 {
		t.Errorf("DELETE faults: %d, %+v", status, e.sim.Faults())
	}
	if status, body := admin(http.MethodPut, "/sim/api/faults", `{"path":"token","fault":{"latency":"soon"}}`); status != 400 {
		t.Errorf("bad latency: %d %s", status, body)
	}
}

// discardWriter is a minimal ResponseWriter for direct handler calls.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}

func httpRequest(t *testing.T, method, target string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, "http://wxsim"+target, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}
