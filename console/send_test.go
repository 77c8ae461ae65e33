package console

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/wechat-relay/wechat-relay/relay"
)

type fakeOutbox struct {
	mu     sync.Mutex
	reqs   []relay.SendRequest
	err    error
	dup    bool
	typing int
	events map[string]relay.DeliveryEvent
}

func (o *fakeOutbox) Send(_ context.Context, req relay.SendRequest) (relay.SendResult, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err != nil {
		return relay.SendResult{}, o.err
	}
	o.reqs = append(o.reqs, req)
	return relay.SendResult{MessageID: relay.OutboundID(req.Conv, req.Key), State: relay.DeliveryPending, Duplicate: o.dup}, nil
}

func (o *fakeOutbox) Window(context.Context, relay.ConversationID) (relay.WindowState, error) {
	return relay.WindowState{Open: true, SendsLeft: 3, ClosesAt: time.Unix(1800000000, 0)}, nil
}

func (o *fakeOutbox) Typing(context.Context, relay.ConversationID) (bool, error) {
	o.mu.Lock()
	o.typing++
	o.mu.Unlock()
	return true, nil
}

func (e *consoleEnv) do(t *testing.T, method, path, token, contentType string, body []byte) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func TestSendAPI(t *testing.T) {
	e := newConsoleEnv(t, Config{})
	text := []byte(`{"key":"k-1","kind":"text","text":"您好"}`)
	const path = "/api/conversations/acct:c-alice/messages"

	status, body := e.do(t, "POST", path, aliceTok, "application/json", text)
	if status != http.StatusAccepted || body["state"] != "pending" || body["message_id"] != "out:acct:c-alice:k-1" {
		t.Fatalf("alice sending in her conversation: %d %v", status, body)
	}
	if r := e.outbox.reqs[0]; r.Employee != "alice" || r.Conv != "acct:c-alice" || r.Text != "您好" || r.Kind != relay.KindText {
		t.Fatalf("request reached the outbox as %+v", r)
	}
	for _, who := range []struct{ name, tok string }{{"another agent", bobTok}, {"a supervisor", supTok}} {
		if status, body := e.do(t, "POST", path, who.tok, "application/json", text); status != http.StatusForbidden {
			t.Errorf("%s sending in alice's conversation: %d %v", who.name, status, body)
		}
	}
	if status, _ := e.do(t, "POST", path, "", "application/json", text); status != http.StatusUnauthorized {
		t.Errorf("unauthenticated send: %d", status)
	}
	if n := len(e.outbox.reqs); n != 1 {
		t.Fatalf("outbox got %d requests, want only alice's", n)
	}

	for name, tc := range map[string]struct {
		ct   string
		body string
	}{
		"malformed JSON": {"application/json", `{"key":`},
		"unknown field":  {"application/json", `{"key":"k","kind":"text","text":"x","to":"someone"}`},
		"wrong type":     {"text/plain", `hello`},
	} {
		if status, body := e.do(t, "POST", path, aliceTok, tc.ct, []byte(tc.body)); status != http.StatusBadRequest || body["error"] == "" {
			t.Errorf("%s: %d %v", name, status, body)
		}
	}

	e.outbox.err = &relay.PolicyError{Code: relay.ErrCodeOutOfWindow, Reason: "more than 48h", Template: "tmpl-1"}
	if status, body := e.do(t, "POST", path, aliceTok, "application/json", text); status != http.StatusConflict || body["template"] != "tmpl-1" || body["errcode"] != float64(45015) {
		t.Errorf("policy refusal: %d %v", status, body)
	}
	e.outbox.err = fmt.Errorf("%w: text is empty", relay.ErrBadRequest)
	if status, body := e.do(t, "POST", path, aliceTok, "application/json", text); status != http.StatusBadRequest || body["error"] != "text is empty" {
		t.Errorf("bad request from the outbox: %d %v", status, body)
	}
	e.outbox.err = nil
	e.outbox.dup = true
	if status, body := e.do(t, "POST", path, aliceTok, "application/json", text); status != http.StatusOK || body["duplicate"] != true {
		t.Errorf("repeated key: %d %v", status, body)
	}
}

func TestSendUploadWindowTyping(t *testing.T) {
	e := newConsoleEnv(t, Config{})
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mw.WriteField("key", "img-1")
	mw.WriteField("kind", "image")
	fw, _ := mw.CreateFormFile("file", "chart.png")
	fw.Write([]byte("\x89PNG..."))
	mw.Close()
	status, body := e.do(t, "POST", "/api/conversations/acct:c-alice/messages", aliceTok, mw.FormDataContentType(), buf.Bytes())
	if status != http.StatusAccepted {
		t.Fatalf("upload: %d %v", status, body)
	}
	if r := e.outbox.reqs[0]; r.Kind != relay.KindImage || r.Upload == nil || r.Upload.FileName != "chart.png" || string(r.Upload.Data) != "\x89PNG..." {
		t.Fatalf("upload reached the outbox as %+v", r)
	}

	status, body = e.do(t, "GET", "/api/conversations/acct:c-alice/window", aliceTok, "", nil)
	if status != 200 || body["open"] != true || body["sends_left"] != float64(3) {
		t.Fatalf("window: %d %v", status, body)
	}
	if status, _ := e.do(t, "GET", "/api/conversations/acct:c-alice/window", bobTok, "", nil); status != http.StatusForbidden {
		t.Fatalf("bob reading alice's window: %d", status)
	}
	if status, _ := e.do(t, "POST", "/api/conversations/acct:c-alice/typing", aliceTok, "", nil); status != 200 || e.outbox.typing != 1 {
		t.Fatalf("typing: %d, forwarded %d", status, e.outbox.typing)
	}
}

func TestStatusFramesReachAssigneeAndSupervisors(t *testing.T) {
	e := newConsoleEnv(t, Config{})
	alice, bob, sup := e.dial(t, aliceTok), e.dial(t, bobTok), e.dial(t, supTok)
	ev := relay.DeliveryEvent{MessageID: "out:acct:c-alice:k", Conv: "acct:c-alice", State: relay.DeliveryFailed, ErrCode: relay.ErrCodeOutOfWindow, At: time.Now()}
	e.bus.Publish(context.Background(), relay.Event{Type: relay.EventStatus, Conv: ev.Conv, Employee: "alice", Status: &ev})
	for name, ws := range map[string]*websocket.Conn{"alice": alice, "supervisor": sup} {
		f := read(t, ws)
		if f.Type != FrameStatus || f.Status == nil || f.Status.State != "failed" || f.Status.ErrCode != 45015 || !strings.Contains(f.Status.Reason, "48 hours") {
			t.Fatalf("%s got %+v", name, f)
		}
	}
	expectNothing(t, bob)
}
