package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/storage/testenv/promtest"
)

// These tests run the Sender against small fake API servers, with tokens
// from the package's fakeWeChat (TestMain): they pin down the request
// shapes and the error contract, transport failures included. The
// behaviour against the full simulator is tested in gateway/sendtest.

// sentRequest is one API request a fake server received.
type sentRequest struct {
	path, token, contentType string
	query                    map[string]string
	body                     []byte
}

// sendHarness is a Sender for one account whose API calls go to a fake
// server answering with answer.
type sendHarness struct {
	t      *testing.T
	appID  string
	sender *Sender
	reg    *prometheus.Registry
	log    *bytes.Buffer
	logMu  *sync.Mutex
	srv    *httptest.Server

	mu   sync.Mutex
	reqs []sentRequest
}

// answerFunc answers one recorded request.
type answerFunc func(w http.ResponseWriter, r *http.Request, req sentRequest)

func answerOK(w http.ResponseWriter, _ *http.Request, _ sentRequest) {
	writeJSON(w, map[string]any{"errcode": 0, "errmsg": "ok"})
}

func newSendHarness(t *testing.T, appID string, answer answerFunc) *sendHarness {
	t.Helper()
	h := &sendHarness{t: t, appID: appID, reg: prometheus.NewRegistry(), log: &bytes.Buffer{}, logMu: &sync.Mutex{}}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		q := map[string]string{}
		for k := range r.URL.Query() {
			if k != "access_token" {
				q[k] = r.URL.Query().Get(k)
			}
		}
		req := sentRequest{path: r.URL.Path, token: r.URL.Query().Get("access_token"),
			contentType: r.Header.Get("Content-Type"), query: q, body: body}
		h.mu.Lock()
		h.reqs = append(h.reqs, req)
		h.mu.Unlock()
		answer(w, r, req)
	}))
	t.Cleanup(h.srv.Close)
	h.sender = h.newSender(h.srv.URL, 5*time.Second)
	return h
}

// newSender builds a Sender for the harness's account against baseURL.
func (h *sendHarness) newSender(baseURL string, timeout time.Duration) *Sender {
	h.t.Helper()
	log := slog.New(slog.NewTextHandler(lockedWriter{h.logMu, h.log}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := Config{
		Accounts:   []Account{{ID: "acct", AppID: h.appID, AppSecret: "secret-" + h.appID, Token: "t", Mode: ModePlain}},
		APIBaseURL: baseURL,
		APITimeout: timeout,
	}
	api, err := NewAPI(cfg, NewMemoryCache(), log)
	if err != nil {
		h.t.Fatal(err)
	}
	s, err := NewSender(api, h.reg, log)
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

func (h *sendHarness) requests() []sentRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]sentRequest(nil), h.reqs...)
}

func (h *sendHarness) logText() string {
	h.logMu.Lock()
	defer h.logMu.Unlock()
	return h.log.String()
}

// currentToken is the token fakeWeChat considers valid for the account.
func (h *sendHarness) currentToken() string {
	wx.mu.Lock()
	defer wx.mu.Unlock()
	return fmt.Sprintf("%s.%d", h.appID, wx.gen[h.appID])
}

// rotateBehindOurBack makes fakeWeChat issue a new token generation
// without the Sender's cache knowing, as another relay instance or an
// operator's tool would.
func (h *sendHarness) rotateBehindOurBack() {
	wx.mu.Lock()
	defer wx.mu.Unlock()
	wx.gen[h.appID]++
}

// counter returns wechat_relay_sends_total{account,api,result}.
func (h *sendHarness) counter(account, api, result string) float64 {
	h.t.Helper()
	return promtest.Counter(h.t, h.reg, "wechat_relay_sends_total", map[string]string{"account": account, "api": api, "result": result})
}

// noSecrets fails if err or the log quotes any token of the account.
func (h *sendHarness) noSecrets(err error) {
	h.t.Helper()
	prefix := h.appID + "."
	if err != nil && strings.Contains(err.Error(), prefix) {
		h.t.Errorf("error quotes an access token: %v", err)
	}
	if lt := h.logText(); strings.Contains(lt, prefix) {
		h.t.Errorf("log quotes an access token:\n%s", lt)
	}
}

func outboundMsg(kind relay.Kind, text, mediaID string, attrs map[string]string) relay.Message {
	return relay.Message{ID: "out:1", Account: "acct", Client: "oClient1", Direction: relay.Outbound,
		Kind: kind, Text: text, MediaID: mediaID, Attrs: attrs}
}

func TestSendCustomBodies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		msg  relay.Message
		want string // JSON of the body
	}{
		{"text", outboundMsg(relay.KindText, "你好 😀 <b>&</b>", "", nil),
			`{"touser":"oClient1","msgtype":"text","text":{"content":"你好 😀 <b>&</b>"}}`},
		{"image", outboundMsg(relay.KindImage, "", "MEDIA_I", nil),
			`{"touser":"oClient1","msgtype":"image","image":{"media_id":"MEDIA_I"}}`},
		{"voice", outboundMsg(relay.KindVoice, "", "MEDIA_V", nil),
			`{"touser":"oClient1","msgtype":"voice","voice":{"media_id":"MEDIA_V"}}`},
		{"video", outboundMsg(relay.KindVideo, "", "MEDIA_M", map[string]string{"thumb_media_id": "THUMB", "title": "标题", "description": "d"}),
			`{"touser":"oClient1","msgtype":"video","video":{"media_id":"MEDIA_M","thumb_media_id":"THUMB","title":"标题","description":"d"}}`},
		{"link", outboundMsg(relay.KindLink, "", "", map[string]string{"title": "T", "description": "D", "url": "https://example.com/a?b=1&c=2", "pic_url": "https://example.com/p.png"}),
			`{"touser":"oClient1","msgtype":"news","news":{"articles":[{"title":"T","description":"D","url":"https://example.com/a?b=1&c=2","picurl":"https://example.com/p.png"}]}}`},
		{"link with picurl spelling", outboundMsg(relay.KindLink, "", "", map[string]string{"title": "T", "url": "https://e.com", "picurl": "https://e.com/p"}),
			`{"touser":"oClient1","msgtype":"news","news":{"articles":[{"title":"T","description":"","url":"https://e.com","picurl":"https://e.com/p"}]}}`},
		{"kf_account", outboundMsg(relay.KindText, "hi", "", map[string]string{"kf_account": "kf2001@gh_test"}),
			`{"touser":"oClient1","msgtype":"text","text":{"content":"hi"},"customservice":{"kf_account":"kf2001@gh_test"}}`},
	}
	h := newSendHarness(t, "wxsendbodies", answerOK)
	for i, tt := range tests {
		if err := h.sender.SendCustom(context.Background(), tt.msg); err != nil {
			t.Fatalf("%s: SendCustom: %v", tt.name, err)
		}
		reqs := h.requests()
		if len(reqs) != i+1 {
			t.Fatalf("%s: %d requests, want %d", tt.name, len(reqs), i+1)
		}
		r := reqs[i]
		if r.path != "/cgi-bin/message/custom/send" || r.token != h.currentToken() || !strings.HasPrefix(r.contentType, "application/json") {
			t.Errorf("%s: path %q token ok=%v content type %q", tt.name, r.path, r.token == h.currentToken(), r.contentType)
		}
		assertJSONEqual(t, tt.name, r.body, tt.want)
	}
	// '&' and '<' go out as themselves, not as \u0026 and \u003c.
	if b := h.requests()[0].body; !bytes.Contains(b, []byte("<b>&</b>")) {
		t.Errorf("text body escaped: %s", b)
	}
	if got := h.counter("acct", apiCustomSend, resultOK); got != float64(len(tests)) {
		t.Errorf("sends_total ok = %v, want %d", got, len(tests))
	}
	h.noSecrets(nil)
}

func assertJSONEqual(t *testing.T, name string, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: body is not JSON: %v: %s", name, err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if !bytes.Equal(gb, wb) {
		t.Errorf("%s: body\n got %s\nwant %s", name, gb, wb)
	}
}

func TestSendCustomUnsupportedKind(t *testing.T) {
	t.Parallel()
	h := newSendHarness(t, "wxsendkind", answerOK)
	for _, k := range []relay.Kind{relay.KindLocation, relay.KindFile, relay.KindShortVideo, relay.KindEvent, "music"} {
		err := h.sender.SendCustom(context.Background(), outboundMsg(k, "x", "M", nil))
		var se *relay.SendError
		if !errors.Is(err, ErrUnsupportedKind) || errors.As(err, &se) || errors.Is(err, relay.ErrOutcomeUnknown) {
			t.Errorf("kind %q: err = %v, want ErrUnsupportedKind only", k, err)
		}
	}
	if n := len(h.requests()); n != 0 {
		t.Errorf("%d requests sent for unsupported kinds", n)
	}
	if got := h.counter("acct", apiCustomSend, resultError); got != 5 {
		t.Errorf("sends_total error = %v, want 5", got)
	}
}

func TestSendCustomUnknownAccount(t *testing.T) {
	t.Parallel()
	h := newSendHarness(t, "wxsendnoacct", answerOK)
	m := outboundMsg(relay.KindText, "x", "", nil)
	m.Account = "nope"
	err := h.sender.SendCustom(context.Background(), m)
	if !errors.Is(err, ErrUnknownAccount) || errors.Is(err, relay.ErrOutcomeUnknown) {
		t.Errorf("err = %v, want ErrUnknownAccount", err)
	}
	if got := h.counter(unknownAccountLabel, apiCustomSend, resultError); got != 1 {
		t.Errorf("sends_total{account=_unknown} = %v, want 1", got)
	}
}

func TestSenderErrcodes(t *testing.T) {
	t.Parallel()
	for _, code := range []int{-1, 40003, 45015, 45047, 45009, 48001, 65401} {
		h := newSendHarness(t, fmt.Sprintf("wxsendcode%d", code), func(w http.ResponseWriter, _ *http.Request, _ sentRequest) {
			writeJSON(w, map[string]any{"errcode": code, "errmsg": "refused rid: 1"})
		})
		err := h.sender.SendCustom(context.Background(), outboundMsg(relay.KindText, "x", "", nil))
		var se *relay.SendError
		if !errors.As(err, &se) || se.Code != code || se.Msg != "refused rid: 1" {
			t.Errorf("errcode %d: err = %v, want *relay.SendError", code, err)
			continue
		}
		if se.Retryable() != (code == -1) {
			t.Errorf("errcode %d: Retryable = %v", code, se.Retryable())
		}
		if errors.Is(err, relay.ErrOutcomeUnknown) {
			t.Errorf("errcode %d: a refusal reported as unknown outcome", code)
		}
		if n := len(h.requests()); n != 1 {
			t.Errorf("errcode %d: %d requests, want 1 (never retried by the sender)", code, n)
		}
		if got := h.counter("acct", apiCustomSend, fmt.Sprint(code)); got != 1 {
			t.Errorf("errcode %d: sends_total = %v", code, got)
		}
		h.noSecrets(err)
	}
}

// rejectStale answers 40001 (or code) to a token that is not fakeWeChat's
// current one, and ok otherwise.
func rejectStale(h **sendHarness, code int) answerFunc {
	return func(w http.ResponseWriter, _ *http.Request, req sentRequest) {
		if req.token != (*h).currentToken() {
			writeJSON(w, map[string]any{"errcode": code, "errmsg": "invalid credential, access_token is invalid or not latest rid: 2"})
			return
		}
		answerOK(w, nil, req)
	}
}

func TestSenderRefreshesRejectedTokenOnce(t *testing.T) {
	t.Parallel()
	for _, code := range []int{40001, 40014, 42001} {
		var h *sendHarness
		appID := fmt.Sprintf("wxsendrefresh%d", code)
		h = newSendHarness(t, appID, rejectStale(&h, code))
		ctx := context.Background()
		if err := h.sender.SendCustom(ctx, outboundMsg(relay.KindText, "first", "", nil)); err != nil {
			t.Fatalf("%d: first send: %v", code, err)
		}
		h.rotateBehindOurBack()
		if err := h.sender.SendCustom(ctx, outboundMsg(relay.KindText, "second", "", nil)); err != nil {
			t.Fatalf("%d: send after rotation: %v", code, err)
		}
		reqs := h.requests()
		if len(reqs) != 3 || reqs[1].token == reqs[2].token || reqs[2].token != h.currentToken() {
			t.Errorf("%d: requests %d, want 3: one refused, one retried with the new token", code, len(reqs))
		}
		if forced, _ := wx.counts(appID); forced != 1 {
			t.Errorf("%d: forced refreshes = %d, want 1", code, forced)
		}
		if got := h.counter("acct", apiCustomSend, resultOK); got != 2 {
			t.Errorf("%d: ok = %v, want 2", code, got)
		}
		h.noSecrets(nil)
	}
}

func TestSenderRejectedTokenTwiceIsSendError(t *testing.T) {
	t.Parallel()
	h := newSendHarness(t, "wxsendalways40001", func(w http.ResponseWriter, _ *http.Request, _ sentRequest) {
		writeJSON(w, map[string]any{"errcode": 40001, "errmsg": "invalid credential"})
	})
	err := h.sender.SendCustom(context.Background(), outboundMsg(relay.KindText, "x", "", nil))
	var se *relay.SendError
	if !errors.As(err, &se) || se.Code != 40001 {
		t.Fatalf("err = %v, want SendError 40001", err)
	}
	if n := len(h.requests()); n != 2 {
		t.Errorf("requests = %d, want 2 (one retry only)", n)
	}
	if forced, _ := wx.counts("wxsendalways40001"); forced != 1 {
		t.Errorf("forced refreshes = %d, want 1", forced)
	}
	h.noSecrets(err)
}

func TestSenderConcurrentRejectionsRefreshOnce(t *testing.T) {
	t.Parallel()
	var h *sendHarness
	h = newSendHarness(t, "wxsendconc", rejectStale(&h, 40001))
	ctx := context.Background()
	if err := h.sender.Typing(ctx, "acct", "oClient1", true); err != nil {
		t.Fatal(err)
	}
	h.rotateBehindOurBack()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() {
			errs <- h.sender.SendCustom(ctx, outboundMsg(relay.KindText, fmt.Sprint("m", i), "", nil))
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if forced, _ := wx.counts("wxsendconc"); forced != 1 {
		t.Errorf("forced refreshes = %d, want 1 for a burst of rejections", forced)
	}
}

// isPlain reports whether err is the "certainly not sent" kind.
func isPlain(err error) bool {
	var se *relay.SendError
	return err != nil && !errors.As(err, &se) && !errors.Is(err, relay.ErrOutcomeUnknown)
}

func TestSenderClosedPortIsNotSent(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	h := newSendHarness(t, "wxsendclosed", answerOK)
	s := h.newSender("http://"+addr, 5*time.Second)
	err = s.SendCustom(context.Background(), outboundMsg(relay.KindText, "x", "", nil))
	if !isPlain(err) {
		t.Fatalf("connection refused: err = %v, want a plain error", err)
	}
	if !strings.Contains(err.Error(), "not sent") {
		t.Errorf("err does not say the request was not sent: %v", err)
	}
	if got := h.counter("acct", apiCustomSend, resultError); got != 1 {
		t.Errorf("sends_total error = %v", got)
	}
	h.noSecrets(err)
}

func TestSenderCancelledBeforeSendingIsNotSent(t *testing.T) {
	t.Parallel()
	h := newSendHarness(t, "wxsendcancelled", answerOK)
	// Fetch the token first, so the cancelled context meets the send.
	if err := h.sender.Typing(context.Background(), "acct", "o", true); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := h.sender.SendCustom(ctx, outboundMsg(relay.KindText, "x", "", nil))
	if !isPlain(err) || !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want a plain error wrapping context.Canceled", err)
	}
	if n := len(h.requests()); n != 1 {
		t.Errorf("requests = %d, want 1 (the typing call only)", n)
	}
}

func TestSenderTokenUnavailableIsNotSent(t *testing.T) {
	t.Parallel()
	h := newSendHarness(t, "wxtokendown", answerOK)
	err := h.sender.SendCustom(context.Background(), outboundMsg(relay.KindText, "x", "", nil))
	if !isPlain(err) {
		t.Errorf("err = %v, want a plain error", err)
	}
	if n := len(h.requests()); n != 0 {
		t.Errorf("requests = %d, want 0", n)
	}
}

func TestSenderHungIsUnknown(t *testing.T) {
	t.Parallel()
	h := newSendHarness(t, "wxsendhung", func(w http.ResponseWriter, r *http.Request, _ sentRequest) {
		<-r.Context().Done()
	})
	// The caller's deadline: long enough that, on a loaded machine, the
	// token and the request are surely written before it ends (a request
	// not written in time is rightly "not sent", another test's case).
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	err := h.sender.SendCustom(ctx, outboundMsg(relay.KindText, "x", "", nil))
	if !errors.Is(err, relay.ErrOutcomeUnknown) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("hung, ctx deadline: err = %v, want ErrOutcomeUnknown and DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("returned after %v; the caller's deadline was 2s", d)
	}
	h.noSecrets(err)
	if got := h.counter("acct", apiCustomSend, resultUnknown); got != 1 {
		t.Errorf("sends_total unknown = %v", got)
	}

	// The API timeout, with a patient caller.
	s := h.newSender(h.srv.URL, 300*time.Millisecond)
	err = s.SendCustom(context.Background(), outboundMsg(relay.KindText, "x", "", nil))
	if !errors.Is(err, relay.ErrOutcomeUnknown) {
		t.Fatalf("hung, API timeout: err = %v, want ErrOutcomeUnknown", err)
	}
	h.noSecrets(err)
}

func TestSenderConnectionDroppedIsUnknown(t *testing.T) {
	t.Parallel()
	h := newSendHarness(t, "wxsenddrop", func(w http.ResponseWriter, _ *http.Request, _ sentRequest) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			_ = conn.Close()
		}
	})
	err := h.sender.SendCustom(context.Background(), outboundMsg(relay.KindText, "x", "", nil))
	if !errors.Is(err, relay.ErrOutcomeUnknown) {
		t.Fatalf("dropped after reading: err = %v, want ErrOutcomeUnknown", err)
	}
	if n := len(h.requests()); n != 1 {
		t.Errorf("requests = %d, want 1 (never repeated by the transport)", n)
	}
	h.noSecrets(err)
}

func TestSenderHTTPAnswers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		answer answerFunc
		check  func(error) bool
		want   string
	}{
		{"502 empty", statusAnswer(502, ""), isUnknown, "unknown"},
		{"503 text", statusAnswer(503, "Service Unavailable"), isUnknown, "unknown"},
		{"500 with WeChat errcode", func(w http.ResponseWriter, _ *http.Request, _ sentRequest) {
			w.WriteHeader(500)
			_, _ = w.Write([]byte(`{"errcode":-1,"errmsg":"system error"}`))
		}, isCode(-1), "SendError -1"},
		{"200 not JSON", statusAnswer(200, "<html>proxy</html>"), isUnknown, "unknown"},
		{"200 truncated JSON", statusAnswer(200, `{"errcode":0,"errm`), isUnknown, "unknown"},
		{"200 JSON array", statusAnswer(200, `[]`), isUnknown, "unknown"},
		{"404", statusAnswer(404, "not found"), isPlain, "plain"},
		{"407 proxy", statusAnswer(407, ""), isPlain, "plain"},
		{"302 redirect not followed", func(w http.ResponseWriter, r *http.Request, _ sentRequest) {
			http.Redirect(w, r, "/cgi-bin/message/custom/send?again=1", http.StatusFound)
		}, isPlain, "plain"},
		{"200 JSON without errcode", statusAnswer(200, `{"errmsg":"ok"}`), func(err error) bool { return err == nil }, "nil"},
	}
	for i, tt := range tests {
		h := newSendHarness(t, fmt.Sprintf("wxsendhttp%d", i), tt.answer)
		err := h.sender.SendCustom(context.Background(), outboundMsg(relay.KindText, "x", "", nil))
		if !tt.check(err) {
			t.Errorf("%s: err = %v, want %s", tt.name, err, tt.want)
		}
		if n := len(h.requests()); n != 1 {
			t.Errorf("%s: requests = %d, want 1", tt.name, n)
		}
		h.noSecrets(err)
	}
}

func statusAnswer(status int, body string) answerFunc {
	return func(w http.ResponseWriter, _ *http.Request, _ sentRequest) {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}
}

func isUnknown(err error) bool { return errors.Is(err, relay.ErrOutcomeUnknown) }

func isCode(code int) func(error) bool {
	return func(err error) bool {
		var se *relay.SendError
		return errors.As(err, &se) && se.Code == code
	}
}

func TestSenderErrmsgQuotingTokenIsScrubbed(t *testing.T) {
	t.Parallel()
	h := newSendHarness(t, "wxsendquote", func(w http.ResponseWriter, _ *http.Request, req sentRequest) {
		writeJSON(w, map[string]any{"errcode": 47001, "errmsg": "bad token " + req.token + " in access_token=" + req.token})
	})
	err := h.sender.SendCustom(context.Background(), outboundMsg(relay.KindText, "x", "", nil))
	if !isCode(47001)(err) {
		t.Fatalf("err = %v", err)
	}
	h.noSecrets(err)
}

func TestTyping(t *testing.T) {
	t.Parallel()
	h := newSendHarness(t, "wxsendtyping", answerOK)
	ctx := context.Background()
	if err := h.sender.Typing(ctx, "acct", "oClient1", true); err != nil {
		t.Fatal(err)
	}
	if err := h.sender.Typing(ctx, "acct", "oClient1", false); err != nil {
		t.Fatal(err)
	}
	reqs := h.requests()
	if len(reqs) != 2 || reqs[0].path != "/cgi-bin/message/custom/typing" {
		t.Fatalf("requests = %+v", reqs)
	}
	assertJSONEqual(t, "typing", reqs[0].body, `{"touser":"oClient1","command":"Typing"}`)
	assertJSONEqual(t, "cancel", reqs[1].body, `{"touser":"oClient1","command":"CancelTyping"}`)
	if got := h.counter("acct", apiCustomTyping, resultOK); got != 2 {
		t.Errorf("typing ok = %v", got)
	}
}

func TestSendTemplate(t *testing.T) {
	t.Parallel()
	h := newSendHarness(t, "wxsendtpl", func(w http.ResponseWriter, _ *http.Request, _ sentRequest) {
		// Beyond float64's exact integers: must survive decoding.
		_, _ = w.Write([]byte(`{"errcode":0,"errmsg":"ok","msgid":1234567890123456789}`))
	})
	id, err := h.sender.SendTemplate(context.Background(), "acct", "oClient1", relay.Template{
		ID: "TPL_1", URL: "https://example.com/x?a=1&b=2", Data: map[string]string{"first": "您好", "remark": "ok"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if id != "1234567890123456789" {
		t.Errorf("msgid = %q", id)
	}
	r := h.requests()[0]
	if r.path != "/cgi-bin/message/template/send" {
		t.Errorf("path = %q", r.path)
	}
	assertJSONEqual(t, "template", r.body,
		`{"touser":"oClient1","template_id":"TPL_1","url":"https://example.com/x?a=1&b=2","data":{"first":{"value":"您好"},"remark":{"value":"ok"}}}`)

	h2 := newSendHarness(t, "wxsendtplerr", func(w http.ResponseWriter, _ *http.Request, _ sentRequest) {
		writeJSON(w, map[string]any{"errcode": 40037, "errmsg": "invalid template_id"})
	})
	id, err = h2.sender.SendTemplate(context.Background(), "acct", "o", relay.Template{ID: "nope"})
	if id != "" || !isCode(40037)(err) {
		t.Errorf("bad template: %q, %v", id, err)
	}
}

func TestUploadMedia(t *testing.T) {
	t.Parallel()
	type part struct{ name, fileName, contentType, data string }
	var (
		mu    sync.Mutex
		parts []part
	)
	h := newSendHarness(t, "wxsendupload", func(w http.ResponseWriter, r *http.Request, req sentRequest) {
		_, params, err := mime.ParseMediaType(req.contentType)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		mr := multipart.NewReader(bytes.NewReader(req.body), params["boundary"])
		for {
			p, err := mr.NextPart()
			if err != nil {
				break
			}
			data, _ := io.ReadAll(p)
			mu.Lock()
			parts = append(parts, part{p.FormName(), p.FileName(), p.Header.Get("Content-Type"), string(data)})
			mu.Unlock()
		}
		typ := req.query["type"]
		if typ == "thumb" {
			writeJSON(w, map[string]any{"type": typ, "thumb_media_id": "THUMB_1", "created_at": 1})
			return
		}
		writeJSON(w, map[string]any{"type": typ, "media_id": "MEDIA_" + typ, "created_at": 1})
	})
	ctx := context.Background()
	png := []byte("\x89PNG\r\n\x1a\n rest")
	tests := []struct {
		kind           relay.Kind
		fileName       string
		wantType, want string
		wantFileName   string
	}{
		{relay.KindImage, "../../etc/图片.png", "image", "MEDIA_image", "图片.png"},
		{relay.KindVoice, "a.amr", "voice", "MEDIA_voice", "a.amr"},
		{relay.KindVideo, `C:\x\v.mp4`, "video", "MEDIA_video", "v.mp4"},
		{KindThumb, `t"h.jpg`, "thumb", "THUMB_1", "t_h.jpg"},
		{relay.KindImage, "", "image", "MEDIA_image", "image"},
	}
	for i, tt := range tests {
		id, err := h.sender.UploadMedia(ctx, "acct", tt.kind, tt.fileName, png)
		if err != nil || id != tt.want {
			t.Errorf("%s: id %q err %v, want %q", tt.kind, id, err, tt.want)
			continue
		}
		r := h.requests()[i]
		if r.path != "/cgi-bin/media/upload" || r.query["type"] != tt.wantType {
			t.Errorf("%s: path %q type %q", tt.kind, r.path, r.query["type"])
		}
		mu.Lock()
		p := parts[len(parts)-1]
		mu.Unlock()
		if p.name != "media" || p.fileName != tt.wantFileName || p.data != string(png) || p.contentType != "image/png" {
			t.Errorf("%s: part %q %q %q %d bytes", tt.kind, p.name, p.fileName, p.contentType, len(p.data))
		}
	}
	if _, err := h.sender.UploadMedia(ctx, "acct", relay.KindFile, "a.pdf", png); !errors.Is(err, ErrUnsupportedKind) {
		t.Errorf("file: err = %v, want ErrUnsupportedKind", err)
	}
	if _, err := h.sender.UploadMedia(ctx, "acct", relay.KindImage, "a.png", nil); !isPlain(err) {
		t.Errorf("empty: err = %v, want a plain error", err)
	}
	if n := len(h.requests()); n != len(tests) {
		t.Errorf("requests = %d, want %d", n, len(tests))
	}
	if got := h.counter("acct", apiMediaUpload, resultOK); got != float64(len(tests)) {
		t.Errorf("upload ok = %v", got)
	}
}

func TestInterpretAnswer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status int
		body   string
		want   string // ok, code:N, unknown, plain
	}{
		{200, `{"errcode":0,"errmsg":"ok"}`, "ok"},
		{200, ` {"media_id":"x"} `, "ok"},
		{200, `{"errcode":45015,"errmsg":"out of time"}`, "code:45015"},
		{200, `{"errcode":"x"}`, "unknown"},
		{200, `null`, "unknown"},
		{200, ``, "unknown"},
		{204, ``, "unknown"},
		{500, ``, "unknown"},
		{504, `{"errmsg":"gateway"}`, "unknown"},
		{503, `{"errcode":-1,"errmsg":"busy"}`, "code:-1"},
		{400, `bad`, "plain"},
		{429, `{"errmsg":"slow down"}`, "plain"},
		{301, ``, "plain"},
	}
	for _, tt := range tests {
		err := interpretAnswer(tt.status, []byte(tt.body), "TOKEN", nil)
		var se *relay.SendError
		got := "plain"
		switch {
		case err == nil:
			got = "ok"
		case errors.As(err, &se):
			got = fmt.Sprint("code:", se.Code)
		case errors.Is(err, relay.ErrOutcomeUnknown):
			got = "unknown"
		}
		if got != tt.want {
			t.Errorf("%d %q: %s (%v), want %s", tt.status, tt.body, got, err, tt.want)
		}
	}
}

func TestBodyGate(t *testing.T) {
	t.Parallel()
	g := &bodyGate{}
	r := g.reader([]byte("abcdef"))
	buf := make([]byte, 4)
	if n, err := r.Read(buf); n != 4 || err != nil {
		t.Fatalf("read = %d, %v", n, err)
	}
	// A second copy (GetBody) shares the gate.
	r2 := g.reader([]byte("abcdef"))
	if _, err := r2.Read(buf); err != nil {
		t.Fatal(err)
	}
	if g.close() {
		t.Fatal("gate reports a body consumed that was not")
	}
	if n, err := r.Read(buf); n != 0 || !errors.Is(err, errGateClosed) {
		t.Fatalf("read after close = %d, %v; want errGateClosed", n, err)
	}

	g = &bodyGate{}
	if _, err := io.ReadAll(g.reader([]byte("abc"))); err != nil {
		t.Fatal(err)
	}
	if !g.close() {
		t.Fatal("gate does not report a consumed body")
	}
}

func TestNewSenderSharedRegistry(t *testing.T) {
	t.Parallel()
	a, _, _ := newTestAPI(t, "wxsendreg")
	reg := prometheus.NewRegistry()
	s1, err := NewSender(a, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := NewSender(a, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s1.metrics.total != s2.metrics.total {
		t.Error("second Sender on the same registry does not share the counter")
	}
	if _, err := NewSender(nil, nil, nil); err == nil {
		t.Error("NewSender(nil API) succeeded")
	}
	s3, err := NewSender(a, nil, nil)
	if err != nil || s3 == nil {
		t.Fatalf("no registerer: %v", err)
	}
	s3.record("acct", "", apiCustomSend, nil) // counts without exporting, no panic
}

func TestSenderTLSHandshakeFailureIsNotSent(t *testing.T) {
	t.Parallel()
	h := newSendHarness(t, "wxsendtls", answerOK)
	// https:// to a server that speaks plain HTTP: the handshake fails.
	s := h.newSender(strings.Replace(h.srv.URL, "http://", "https://", 1), 5*time.Second)
	err := s.SendCustom(context.Background(), outboundMsg(relay.KindText, "x", "", nil))
	if !isPlain(err) {
		t.Fatalf("TLS handshake failure: err = %v, want a plain error", err)
	}
	if n := len(h.requests()); n != 0 {
		t.Errorf("requests = %d, want 0", n)
	}
	h.noSecrets(err)
}

// TestSenderBodyNotWrittenIsNotSent: a server that accepts the
// connection but never reads stalls the upload half-way; the caller's
// deadline then ends a request that certainly did not arrive in full.
func TestSenderBodyNotWrittenIsNotSent(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // held open, never read
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	h := newSendHarness(t, "wxsendstall", answerOK)
	s := h.newSender("http://"+ln.Addr().String(), 5*time.Second)
	// Far more than the socket buffers of both ends can absorb (Linux
	// allows up to 4 MB sending and 32 MB receiving by default).
	data := append([]byte("\x89PNG\r\n\x1a\n"), make([]byte, 64<<20)...)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err = s.UploadMedia(ctx, "acct", relay.KindImage, "big.png", data)
	if !isPlain(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stalled upload: err = %v, want a plain error wrapping the deadline", err)
	}
	h.noSecrets(err)
}
