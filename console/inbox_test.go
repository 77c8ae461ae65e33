package console

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
)

// at returns an archived message of conv with seq, filed under emp and
// accepted at t, from the direction given.
func at(conv string, seq uint64, emp string, dir relay.Direction, t time.Time) relay.Message {
	m := msg(conv, seq, emp)
	m.Direction = dir
	m.AcceptedAt = t
	m.Account, m.Client = splitTestConv(conv)
	if dir == relay.Outbound {
		m.ID = fmt.Sprintf("out:%s:k%d", conv, seq)
	}
	return m
}

func splitTestConv(conv string) (string, string) {
	for i := range conv {
		if conv[i] == ':' {
			return conv[:i], conv[i+1:]
		}
	}
	return conv, ""
}

// raw sends a request with a bearer token and returns the response with
// its body read.
func (e *consoleEnv) raw(t *testing.T, method, path, token string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

// inboxFixture archives:
//
//	acct:c-alice  in 1, in 2, out 3   alice, newest
//	acct:c-bob    in 1                bob
//	acct2:c-bob2  in 1                bob, account acct2
//	acct:c-old    in 1                alice, 100 days ago: beyond the horizon
func inboxFixture(e *consoleEnv) {
	now := time.Now()
	e.assign.Set(context.Background(), "acct2:c-bob2", "bob")
	e.assign.Set(context.Background(), "acct:c-old", "alice")
	for _, m := range []relay.Message{
		at("acct:c-old", 1, "alice", relay.Inbound, now.Add(-100*24*time.Hour)),
		at("acct2:c-bob2", 1, "bob", relay.Inbound, now.Add(-3*time.Minute)),
		at("acct:c-bob", 1, "bob", relay.Inbound, now.Add(-2*time.Minute)),
		at("acct:c-alice", 1, "alice", relay.Inbound, now.Add(-70*time.Second)),
		at("acct:c-alice", 2, "alice", relay.Inbound, now.Add(-60*time.Second)),
		at("acct:c-alice", 3, "alice", relay.Outbound, now.Add(-50*time.Second)),
	} {
		e.history.add(m)
	}
}

func convsOf(t *testing.T, body map[string]any) ([]string, map[string]map[string]any) {
	t.Helper()
	list, _ := body["conversations"].([]any)
	var ids []string
	by := map[string]map[string]any{}
	for _, x := range list {
		c := x.(map[string]any)
		ids = append(ids, c["conv"].(string))
		by[c["conv"].(string)] = c
	}
	return ids, by
}

func TestInboxByRole(t *testing.T) {
	e := newConsoleEnv(t, Config{})
	inboxFixture(e)

	// An agent gets only her own conversations, whatever she asks for.
	for _, q := range []string{"", "?employee=bob", "?status=all&employee=bob"} {
		status, body := e.do(t, "GET", "/api/conversations"+q, aliceTok, "", nil)
		ids, by := convsOf(t, body)
		if status != http.StatusOK || fmt.Sprint(ids) != "[acct:c-alice]" {
			t.Fatalf("alice %q: %d %v", q, status, ids)
		}
		c := by["acct:c-alice"]
		lm := c["last_message"].(map[string]any)
		if c["account"] != "acct" || c["client"] != "c-alice" || c["employee"] != "alice" || c["status"] != "open" ||
			c["last_seq"] != float64(3) || lm["seq"] != float64(3) || lm["direction"] != "out" || c["unread"] != float64(2) {
			t.Fatalf("alice's line: %v", c)
		}
		if w := c["window"].(map[string]any); w["open"] != true || w["sends_left"] != float64(3) {
			t.Fatalf("window %v", w)
		}
	}

	// A supervisor gets everyone's, newest first, filterable.
	for _, tc := range []struct{ q, want string }{
		{"", "[acct:c-alice acct:c-bob acct2:c-bob2]"},
		{"?status=all", "[acct:c-alice acct:c-bob acct2:c-bob2]"},
		{"?employee=bob", "[acct:c-bob acct2:c-bob2]"},
		{"?account=acct2", "[acct2:c-bob2]"},
		{"?employee=bob&account=acct", "[acct:c-bob]"},
		{"?status=resolved", "[]"},
	} {
		status, body := e.do(t, "GET", "/api/conversations"+tc.q, supTok, "", nil)
		if ids, _ := convsOf(t, body); status != http.StatusOK || fmt.Sprint(ids) != tc.want {
			t.Errorf("supervisor %q: %d %v, want %s", tc.q, status, ids, tc.want)
		}
	}
	if status, body := e.do(t, "GET", "/api/conversations?status=closed", supTok, "", nil); status != http.StatusBadRequest || body["error"] == "" {
		t.Errorf("bad status: %d %v", status, body)
	}
	if status, _ := e.do(t, "GET", "/api/conversations", "", "", nil); status != http.StatusUnauthorized {
		t.Errorf("signed out: %d", status)
	}
	// An agent's list follows the assignment store, not the archive
	// alone: a conversation given to bob a moment ago is his at once.
	e.assign.Set(context.Background(), "acct:c-alice", "bob")
	if _, body := e.do(t, "GET", "/api/conversations", aliceTok, "", nil); len(body["conversations"].([]any)) != 0 {
		t.Fatalf("alice still lists a conversation now bob's: %v", body)
	}
}

func TestReadMarksAndUnread(t *testing.T) {
	e := newConsoleEnv(t, Config{})
	inboxFixture(e)
	unread := func(tok, conv string) any {
		t.Helper()
		_, body := e.do(t, "GET", "/api/conversations?status=all", tok, "", nil)
		_, by := convsOf(t, body)
		return by[conv]["unread"]
	}
	read := func(tok, conv, body string) int {
		t.Helper()
		status, _ := e.do(t, "POST", "/api/conversations/"+conv+"/read", tok, "application/json", []byte(body))
		return status
	}
	if u := unread(aliceTok, "acct:c-alice"); u != float64(2) {
		t.Fatalf("unread before any mark: %v", u)
	}
	if s := read(aliceTok, "acct:c-alice", `{"seq":1}`); s != http.StatusNoContent {
		t.Fatalf("read: %d", s)
	}
	if u := unread(aliceTok, "acct:c-alice"); u != float64(1) {
		t.Fatalf("unread after reading 1: %v", u)
	}
	// Marks are per employee.
	if u := unread(supTok, "acct:c-alice"); u != float64(2) {
		t.Fatalf("supervisor's unread moved with alice's mark: %v", u)
	}
	// Beyond the last message: lowered to it. Backwards: ignored.
	read(aliceTok, "acct:c-alice", `{"seq":99}`)
	read(aliceTok, "acct:c-alice", `{"seq":1}`)
	if u := unread(aliceTok, "acct:c-alice"); u != float64(0) {
		t.Fatalf("unread after reading all: %v", u)
	}
	e.history.add(at("acct:c-alice", 4, "alice", relay.Inbound, time.Now()))
	if u := unread(aliceTok, "acct:c-alice"); u != float64(1) {
		t.Fatalf("a new message after a mark beyond the end is not unread: %v", u)
	}
	// Refusals.
	for name, tc := range map[string]struct {
		tok, conv, body string
		want            int
	}{
		"another agent's":   {bobTok, "acct:c-alice", `{"seq":1}`, http.StatusForbidden},
		"without seq":       {aliceTok, "acct:c-alice", `{}`, http.StatusBadRequest},
		"malformed":         {aliceTok, "acct:c-alice", `{"seq":"x"}`, http.StatusBadRequest},
		"unknown field":     {aliceTok, "acct:c-alice", `{"seq":1,"all":true}`, http.StatusBadRequest},
		"supervisor's mark": {supTok, "acct:c-bob", `{"seq":1}`, http.StatusNoContent},
	} {
		if s := read(tc.tok, tc.conv, tc.body); s != tc.want {
			t.Errorf("%s: %d, want %d", name, s, tc.want)
		}
	}
}

func TestHistoryCarriesDeliveryStatus(t *testing.T) {
	e := newConsoleEnv(t, Config{})
	now := time.Now()
	e.history.add(at("acct:c-alice", 1, "alice", relay.Inbound, now))
	e.history.add(at("acct:c-alice", 2, "alice", relay.Outbound, now))
	e.history.add(at("acct:c-alice", 3, "alice", relay.Outbound, now))
	e.outbox.events = map[string]relay.DeliveryEvent{
		"out:acct:c-alice:k2": {MessageID: "out:acct:c-alice:k2", State: relay.DeliveryFailed, ErrCode: relay.ErrCodeOutOfWindow, At: now},
	}
	_, body := e.do(t, "GET", "/api/conversations/acct:c-alice/messages", aliceTok, "", nil)
	msgs := body["messages"].([]any)
	if st := msgs[0].(map[string]any)["status"]; st != nil {
		t.Fatalf("inbound message with a status: %v", st)
	}
	st := msgs[1].(map[string]any)["status"].(map[string]any)
	if st["state"] != "failed" || st["errcode"] != float64(45015) || st["reason"] == "" {
		t.Fatalf("failed message: %v", st)
	}
	if st := msgs[2].(map[string]any)["status"].(map[string]any); st["state"] != "pending" {
		t.Fatalf("message without events: %v", st)
	}
}
