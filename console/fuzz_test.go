package console

import (
	"bytes"
	"encoding/json"
	"maps"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
)

// actionRoutes are the routes that take a JSON body from an employee,
// by the last path segment after /api/conversations/{conv}/.
var actionRoutes = []string{"messages", "notes", "transfer"}

// FuzzActionBodies posts any body to send, notes and transfer, for any
// conversation id, as a supervisor who may act on every conversation
// (so that a body, not a rule of access, decides the answer). Whatever
// comes in: no panic, no 5xx, a JSON answer, and a refusal changes
// nothing — nothing sent, archived or reassigned.
func FuzzActionBodies(f *testing.F) {
	for _, seed := range []struct {
		route uint8
		conv  string
		body  string
	}{
		{0, "acct:c-alice", `{"key":"k1","kind":"text","text":"你好 <b>&</b>"}`},
		{0, "acct:c-alice", `{"key":"k2","kind":"image","attrs":{"media_id":"m"}}`},
		{0, "acct:c-bob", `{"key":"","text":"no key"}`},
		{1, "acct:c-alice", `{"key":"n1","text":"note"}`},
		{1, "acct:c-alice", `{"key":"n1","text":"note","extra":1}`},
		{1, "acct:c-bob", `{"key":"n2","text":"a"}{"key":"n3"}`},
		{2, "acct:c-alice", `{"to":"bob","note":"over to you","key":"t1"}`},
		{2, "acct:c-bob", `{"to":"sup","key":"t2"}`},
		{2, "acct:c-bob", `{"to":"alice"}`},
		{2, "nobody", `{"to":"nobody"}`},
		{0, "acct:c-alice", `[]`},
		{1, "acct:c-alice", `null`},
		{2, "acct:c-alice", "{\"to\":\"bob\",\"note\":\"\xff\xfe\"}"},
	} {
		f.Add(seed.route, seed.conv, []byte(seed.body))
	}
	e := newConsoleEnv(f, Config{})
	h := e.server.Handler()
	initial := maps.Clone(e.assign.m)
	f.Fuzz(func(t *testing.T, route uint8, conv string, body []byte) {
		// A fresh state each time: what one input changed must not decide
		// the next one's answer, and the fakes must not grow without end.
		e.history.mu.Lock()
		e.history.msgs = nil
		e.history.mu.Unlock()
		e.outbox.mu.Lock()
		e.outbox.reqs = nil
		e.outbox.mu.Unlock()
		e.assign.mu.Lock()
		e.assign.m = maps.Clone(initial)
		e.assign.mu.Unlock()
		e.audit.mu.Lock()
		e.audit.records = nil
		e.audit.mu.Unlock()

		path := "/api/conversations/" + url.PathEscape(conv) + "/" + actionRoutes[int(route)%len(actionRoutes)]
		req := httptest.NewRequest("POST", "http://console.test"+path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+supTok)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)

		if rec.Code >= 500 {
			t.Fatalf("POST %s %q: %d %s", path, body, rec.Code, rec.Body)
		}
		// The mux's own answers are plain text: a redirect to the clean
		// path of one with "." or ".." segments, and 404 for a conversation
		// id with a "/" in it. Nothing ran; the check below holds for them.
		fromMux := rec.Code >= 300 && rec.Code < 400 || rec.Body.String() == "404 page not found\n"
		if !fromMux && !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("POST %s %q: %d, the answer is not JSON: %q", path, body, rec.Code, rec.Body)
		}
		if rec.Code < 300 {
			return
		}
		e.history.mu.Lock()
		archived := len(e.history.msgs)
		e.history.mu.Unlock()
		e.outbox.mu.Lock()
		sent := len(e.outbox.reqs)
		e.outbox.mu.Unlock()
		e.assign.mu.Lock()
		moved := !maps.Equal(e.assign.m, initial)
		e.assign.mu.Unlock()
		if archived != 0 || sent != 0 || moved {
			t.Fatalf("POST %s %q was refused (%d %s) but changed something: %d archived, %d sent, assignments moved %v",
				path, body, rec.Code, rec.Body, archived, sent, moved)
		}
	})
}

// FuzzParseSearchQuery reads any query string as a search. A query it
// accepts is one the archive may run: valid, its offset and limit
// within bounds, from before to; and written back as parameters it
// reads as the same query.
func FuzzParseSearchQuery(f *testing.F) {
	for _, seed := range []string{
		"text=%E5%BC%80%E6%88%B7&from=2026-01-01&to=2026-01-31",
		"account=acct&client=c&employee=alice&conv=acct:c&direction=in&kind=text",
		"from=2026-03-01T08:00:00%2B08:00&to=2026-03-01T09:00:00.5Z",
		"limit=1000&offset=10000",
		"limit=1001",
		"offset=10001",
		"offset=9223372036854775807",
		"offset=-1",
		"from=2026-02-01&to=2026-01-01",
		"direction=sideways",
		"cursor=garbage",
		"text=%25_%27%22%5C",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, err := ParseSearchQuery(v)
		if err != nil {
			return
		}
		switch {
		case q.Validate() != nil:
			t.Fatalf("%q accepted but not valid: %v", raw, q.Validate())
		case q.Offset < 0 || q.Offset > relay.MaxSearchOffset:
			t.Fatalf("%q accepted with offset %d", raw, q.Offset)
		case q.Limit < 0 || q.Limit > relay.MaxSearchLimit:
			t.Fatalf("%q accepted with limit %d", raw, q.Limit)
		case !q.From.IsZero() && !q.To.IsZero() && !q.From.Before(q.To):
			t.Fatalf("%q accepted with from %v not before to %v", raw, q.From, q.To)
		}
		_ = q.String() // the audit record's text of it
		back := url.Values{}
		set := func(k, s string) {
			if s != "" {
				back.Set(k, s)
			}
		}
		set("account", q.Account)
		set("client", q.Client)
		set("employee", q.Employee)
		set("conv", string(q.Conv))
		set("direction", string(q.Direction))
		set("kind", string(q.Kind))
		set("text", q.Text)
		set("cursor", q.Cursor)
		if !q.From.IsZero() {
			set("from", q.From.Format(time.RFC3339Nano))
		}
		if !q.To.IsZero() {
			set("to", q.To.Format(time.RFC3339Nano))
		}
		if q.Limit != 0 {
			set("limit", strconv.Itoa(q.Limit))
		}
		if q.Offset != 0 {
			set("offset", strconv.Itoa(q.Offset))
		}
		again, err := ParseSearchQuery(back)
		if err != nil {
			t.Fatalf("%q accepted, but not when written back as %q: %v", raw, back.Encode(), err)
		}
		if !again.From.Equal(q.From) || !again.To.Equal(q.To) {
			t.Fatalf("%q: times %v..%v read back as %v..%v", raw, q.From, q.To, again.From, again.To)
		}
		if again.String() != q.String() || again.Cursor != q.Cursor || again.Limit != q.Limit || again.Offset != q.Offset {
			t.Fatalf("%q read back as another query: %s, want %s", raw, again, q)
		}
	})
}
