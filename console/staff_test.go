package console

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
)

func (e *consoleEnv) post(t *testing.T, path, token, body string) (int, map[string]any) {
	t.Helper()
	return e.do(t, "POST", path, token, "application/json", []byte(body))
}

func TestTransfer(t *testing.T) {
	e := newConsoleEnv(t, Config{})
	ctx := context.Background()
	e.history.add(at("acct:c-alice", 1, "alice", relay.Inbound, time.Now()))
	alice, bob, sup := e.dial(t, aliceTok), e.dial(t, bobTok), e.dial(t, supTok)

	status, body := e.post(t, "/api/conversations/acct:c-alice/transfer", aliceTok, `{"to":"bob","note":"我休假，请跟进"}`)
	if status != http.StatusAccepted || body["message_id"] == "" {
		t.Fatalf("transfer: %d %v", status, body)
	}
	id := body["message_id"].(string)
	if got, _ := e.assign.Get(ctx, "acct:c-alice"); got != "bob" {
		t.Fatalf("assigned to %q after the transfer", got)
	}
	// The transfer message reaches the old assignee, the new one and the
	// supervisors, as an internal message.
	for _, c := range []struct {
		name string
		f    Frame
	}{{"alice", read(t, alice)}, {"bob", read(t, bob)}, {"sup", read(t, sup)}} {
		m := c.f.Message
		if c.f.Type != FrameMessage || m == nil || m.ID != id || m.Direction != "internal" || m.Kind != "transfer" ||
			m.Attrs["from"] != "alice" || m.Attrs["to"] != "bob" || m.Attrs["by"] != "alice" || m.Text != "我休假，请跟进" || m.Employee != "bob" || m.Seq != 2 {
			t.Fatalf("%s got %+v / %+v", c.name, c.f, m)
		}
	}
	// From now on the conversation is bob's: alice can neither read nor
	// write it, over REST or the socket.
	const msgs = "/api/conversations/acct:c-alice/messages"
	if status, _ := e.do(t, "GET", msgs, aliceTok, "", nil); status != http.StatusForbidden {
		t.Fatalf("alice reading after the transfer: %d", status)
	}
	if status, body := e.do(t, "GET", msgs, bobTok, "", nil); status != http.StatusOK || len(body["messages"].([]any)) != 2 {
		t.Fatalf("bob reading after the transfer: %d %v", status, body)
	}
	if status, _ := e.post(t, msgs, aliceTok, `{"key":"x","kind":"text","text":"hi"}`); status != http.StatusForbidden {
		t.Fatalf("alice sending after the transfer: %d", status)
	}
	if status, _ := e.post(t, msgs, bobTok, `{"key":"x","kind":"text","text":"hi"}`); status != http.StatusAccepted {
		t.Fatalf("bob sending after the transfer: %d", status)
	}
	e.publish(at("acct:c-alice", 3, "bob", relay.Inbound, time.Now()))
	if f := read(t, bob); f.Seq != 3 {
		t.Fatalf("bob got %+v", f)
	}
	alice.WriteJSON(Frame{Type: FrameResume, Conv: "acct:c-alice"})
	if f := read(t, alice); f.Type != FrameError || !strings.Contains(f.Error, "forbidden") {
		t.Fatalf("alice after the transfer got %+v, want only the refusal of her resume", f)
	}

	// Refusals.
	for name, tc := range map[string]struct {
		path, tok, body string
		want            int
	}{
		"not the assignee":   {"/api/conversations/acct:c-bob/transfer", aliceTok, `{"to":"alice"}`, http.StatusForbidden},
		"to a supervisor":    {"/api/conversations/acct:c-bob/transfer", bobTok, `{"to":"sup"}`, http.StatusBadRequest},
		"to nobody":          {"/api/conversations/acct:c-bob/transfer", bobTok, `{"to":"mallory"}`, http.StatusBadRequest},
		"without to":         {"/api/conversations/acct:c-bob/transfer", bobTok, `{"note":"x"}`, http.StatusBadRequest},
		"to the assignee":    {"/api/conversations/acct:c-bob/transfer", bobTok, `{"to":"bob"}`, http.StatusConflict},
		"bad key":            {"/api/conversations/acct:c-bob/transfer", bobTok, `{"to":"alice","key":"a b"}`, http.StatusBadRequest},
		"long note":          {"/api/conversations/acct:c-bob/transfer", bobTok, `{"to":"alice","note":"` + strings.Repeat("x", 5000) + `"}`, http.StatusBadRequest},
		"unauthenticated":    {"/api/conversations/acct:c-bob/transfer", "", `{"to":"alice"}`, http.StatusUnauthorized},
		"malformed":          {"/api/conversations/acct:c-bob/transfer", bobTok, `{"to":`, http.StatusBadRequest},
		"supervisor, bad to": {"/api/conversations/acct:c-bob/transfer", supTok, `{"to":"tokenonly2"}`, http.StatusBadRequest},
	} {
		if status, body := e.post(t, tc.path, tc.tok, tc.body); status != tc.want || body["error"] == "" {
			t.Errorf("%s: %d %v, want %d", name, status, body, tc.want)
		}
	}
	if got, _ := e.assign.Get(ctx, "acct:c-bob"); got != "bob" {
		t.Fatalf("a refused transfer moved acct:c-bob to %q", got)
	}

	// A supervisor reassigns; a key makes a retry harmless.
	const back = `{"to":"alice","key":"sup-back-1"}`
	s1, b1 := e.post(t, "/api/conversations/acct:c-alice/transfer", supTok, back)
	s2, b2 := e.post(t, "/api/conversations/acct:c-alice/transfer", supTok, back)
	if s1 != http.StatusAccepted || s2 != http.StatusAccepted || b1["message_id"] != b2["message_id"] {
		t.Fatalf("supervisor transfer and its retry: %d %v, %d %v", s1, b1, s2, b2)
	}
	if n, _ := e.history.MaxSeq(ctx, "acct:c-alice"); n != 4 {
		t.Fatalf("after a transfer and its retry the conversation ends at %d, want 4", n)
	}
	if got, _ := e.assign.Get(ctx, "acct:c-alice"); got != "alice" {
		t.Fatalf("assigned to %q after the supervisor's transfer", got)
	}
}

func TestResolveReopen(t *testing.T) {
	e := newConsoleEnv(t, Config{})
	e.history.add(at("acct:c-alice", 1, "alice", relay.Inbound, time.Now()))
	status := func() string {
		t.Helper()
		_, body := e.do(t, "GET", "/api/conversations?status=all", aliceTok, "", nil)
		_, by := convsOf(t, body)
		s, _ := by["acct:c-alice"]["status"].(string)
		return s
	}
	const base = "/api/conversations/acct:c-alice/"
	if s, body := e.post(t, base+"resolve", aliceTok, `{}`); s != http.StatusAccepted || body["message_id"] == "" {
		t.Fatalf("resolve: %d %v", s, body)
	}
	if st := status(); st != "resolved" {
		t.Fatalf("status after resolve: %q", st)
	}
	if s, body := e.post(t, base+"resolve", aliceTok, ``); s != http.StatusConflict || !strings.Contains(body["error"].(string), "already resolved") {
		t.Fatalf("resolve again: %d %v", s, body)
	}
	if s, _ := e.post(t, base+"reopen", bobTok, `{}`); s != http.StatusForbidden {
		t.Fatalf("another agent reopening: %d", s)
	}
	if s, _ := e.post(t, base+"reopen", supTok, `{}`); s != http.StatusAccepted {
		t.Fatalf("supervisor reopening: %d", s)
	}
	if st := status(); st != "open" {
		t.Fatalf("status after reopen: %q", st)
	}
	if s, _ := e.post(t, base+"reopen", aliceTok, `{}`); s != http.StatusConflict {
		t.Fatalf("reopen an open conversation: %d", s)
	}
	// With a key, a retry is the same message.
	s1, b1 := e.post(t, base+"resolve", aliceTok, `{"key":"r-1"}`)
	s2, b2 := e.post(t, base+"resolve", aliceTok, `{"key":"r-1"}`)
	if s1 != http.StatusAccepted || s2 != http.StatusAccepted || b1["message_id"] != b2["message_id"] || b1["message_id"] != relay.StaffID("acct:c-alice", relay.KindResolve, "r-1") {
		t.Fatalf("resolve with a key, twice: %v %v", b1, b2)
	}
	// The client writing again reopens it.
	e.history.add(at("acct:c-alice", 5, "alice", relay.Inbound, time.Now()))
	if st := status(); st != "open" {
		t.Fatalf("status after the client wrote: %q", st)
	}
	if n := len(e.outbox.reqs); n != 0 {
		t.Fatalf("staff actions reached the outbox: %d", n)
	}
}

func TestNotes(t *testing.T) {
	e := newConsoleEnv(t, Config{})
	e.history.add(at("acct:c-alice", 1, "alice", relay.Inbound, time.Now()))
	alice, bob := e.dial(t, aliceTok), e.dial(t, bobTok)
	const path = "/api/conversations/acct:c-alice/notes"
	if s, body := e.post(t, path, supTok, `{"key":"n-1","text":"请尽快回电"}`); s != http.StatusAccepted {
		t.Fatalf("supervisor's note: %d %v", s, body)
	}
	f := read(t, alice)
	if m := f.Message; m == nil || m.Kind != "note" || m.Direction != "internal" || m.Text != "请尽快回电" || m.Attrs["by"] != "sup" {
		t.Fatalf("alice got %+v", f)
	}
	if s, _ := e.post(t, path, aliceTok, `{"key":"n-2","text":"已回电"}`); s != http.StatusAccepted {
		t.Fatalf("assignee's note: %d", s)
	}
	for name, tc := range map[string]struct {
		tok, body string
		want      int
	}{
		"another agent": {bobTok, `{"key":"n-3","text":"x"}`, http.StatusForbidden},
		"without key":   {aliceTok, `{"text":"x"}`, http.StatusBadRequest},
		"empty text":    {aliceTok, `{"key":"n-4","text":""}`, http.StatusBadRequest},
		"no body":       {aliceTok, ``, http.StatusBadRequest},
	} {
		if s, body := e.post(t, path, tc.tok, tc.body); s != tc.want || body["error"] == "" {
			t.Errorf("%s: %d %v, want %d", name, s, body, tc.want)
		}
	}
	expectNothing(t, bob)
	if n := len(e.outbox.reqs); n != 0 {
		t.Fatalf("notes reached the outbox: %d", n)
	}
}

func TestEmployeesAndCannedReplies(t *testing.T) {
	e := newConsoleEnv(t, Config{CannedReplies: []CannedReply{{ID: "hello", Title: "问候", Text: "您好，有什么可以帮您？"}}})
	b := e.signedIn(t, "bob", bobPassword)
	status, body := b.get("/api/employees")
	list, _ := body["employees"].([]any)
	if status != http.StatusOK || len(list) != 4 {
		t.Fatalf("employees: %d %v", status, body)
	}
	first := list[0].(map[string]any)
	if first["id"] != "alice" || first["name"] != "Alice Wang" || first["role"] != "agent" || first["teams"] == nil || len(first) != 4 {
		t.Fatalf("first employee %v: want only id, name, role, teams (never credentials)", first)
	}
	status, body = b.get("/api/canned-replies")
	replies, _ := body["replies"].([]any)
	if status != http.StatusOK || len(replies) != 1 || replies[0].(map[string]any)["text"] != "您好，有什么可以帮您？" {
		t.Fatalf("canned replies: %d %v", status, body)
	}
	e2 := newConsoleEnv(t, Config{})
	if _, body := e2.do(t, "GET", "/api/canned-replies", aliceTok, "", nil); body["replies"] == nil {
		t.Fatalf("no canned replies: %v, want an empty list", body)
	}
}

// Recorded makes the fake pipeline a relay.Recorder: what it archived
// under the id.
func (p *fakePipeline) Recorded(_ context.Context, m relay.Message) (relay.Message, bool, error) {
	got, ok := p.e.history.byID(m.ID)
	return got, ok, nil
}

// A key stands for one request. Reused for a different transfer or note
// it is answered 409, saying so, and nothing moves or is archived; the
// exact retry is answered as the first was.
func TestStaffActionKeyReused(t *testing.T) {
	e := newConsoleEnv(t, Config{})
	ctx := context.Background()
	e.history.add(at("acct:c-alice", 1, "alice", relay.Inbound, time.Now()))
	const transfer = "/api/conversations/acct:c-alice/transfer"
	const first = `{"to":"bob","note":"休假","key":"t-1"}`
	s, b := e.post(t, transfer, supTok, first)
	if s != http.StatusAccepted {
		t.Fatalf("transfer: %d %v", s, b)
	}
	id := b["message_id"]
	for name, body := range map[string]string{
		"another target": `{"to":"tokenonly","note":"休假","key":"t-1"}`,
		"another note":   `{"to":"bob","note":"出差","key":"t-1"}`,
	} {
		s, b := e.post(t, transfer, supTok, body)
		msg, _ := b["error"].(string)
		if s != http.StatusConflict || !strings.Contains(msg, "idempotency key t-1 was already used for a different request") {
			t.Errorf("%s: %d %v, want 409 naming the key", name, s, b)
		}
		if owner, _ := e.assign.Get(ctx, "acct:c-alice"); owner != "bob" {
			t.Fatalf("%s: a refused transfer moved the conversation to %q", name, owner)
		}
	}
	if s, b := e.post(t, transfer, supTok, first); s != http.StatusAccepted || b["message_id"] != id {
		t.Fatalf("exact retry: %d %v, want 202 %v", s, b, id)
	}
	if n, _ := e.history.MaxSeq(ctx, "acct:c-alice"); n != 2 {
		t.Fatalf("the conversation ends at %d, want 2: the client's message and one transfer", n)
	}

	const notes = "/api/conversations/acct:c-alice/notes"
	if s, b := e.post(t, notes, supTok, `{"key":"n-1","text":"请回电"}`); s != http.StatusAccepted {
		t.Fatalf("note: %d %v", s, b)
	}
	s, b = e.post(t, notes, supTok, `{"key":"n-1","text":"不用回电"}`)
	if msg, _ := b["error"].(string); s != http.StatusConflict || !strings.Contains(msg, "idempotency key n-1 was already used for a different request") {
		t.Fatalf("note with a reused key: %d %v, want 409", s, b)
	}
	if n, _ := e.history.MaxSeq(ctx, "acct:c-alice"); n != 3 {
		t.Fatalf("the conversation ends at %d, want 3", n)
	}
	if m, _ := e.history.byID(relay.StaffID("acct:c-alice", relay.KindNote, "n-1")); m.Text != "请回电" {
		t.Fatalf("archived note %+v", m)
	}
}
