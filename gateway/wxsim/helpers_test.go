package wxsim

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/silenceper/wechat/v2/officialaccount/message"
	"github.com/silenceper/wechat/v2/util"
)

// epoch is where test ManualClocks start: a Tuesday noon in Beijing.
var epoch = time.Date(2026, 3, 3, 12, 0, 0, 0, beijing)

// env is a private simulator with a ManualClock behind its own HTTP
// server, for tests that move time or count quotas.
type env struct {
	t     testing.TB
	sim   *Sim
	clock *ManualClock
	srv   *httptest.Server
}

func newEnv(t testing.TB, cfg Config) *env {
	t.Helper()
	clock := NewManualClock(epoch)
	if cfg.Clock == nil {
		cfg.Clock = clock
	}
	sim := New(cfg)
	srv := httptest.NewServer(NewServer(sim))
	sim.SetPublicURL(srv.URL)
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := sim.Close(ctx); err != nil {
			t.Errorf("close sim: %v", err)
		}
	})
	return &env{t: t, sim: sim, clock: clock, srv: srv}
}

// apiResult is a decoded JSON answer.
type apiResult map[string]any

func (r apiResult) code() int {
	c, _ := r["errcode"].(float64)
	return int(c)
}

func (r apiResult) str(k string) string { s, _ := r[k].(string); return s }

// call sends one API request and decodes the JSON answer.
func (e *env) call(method, path string, q url.Values, body any) apiResult {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	u := e.srv.URL + path
	if q != nil {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out apiResult
	if err := json.Unmarshal(raw, &out); err != nil {
		e.t.Fatalf("%s %s: answer %q is not JSON: %v", method, path, raw, err)
	}
	return out
}

// post sends a JSON body to an API path with an access token.
func (e *env) post(path, tok string, body any) apiResult {
	e.t.Helper()
	return e.call(http.MethodPost, path, url.Values{"access_token": {tok}}, body)
}

// token fetches a cgi-bin/token token, failing the test on error.
func (e *env) token(a Account) string {
	e.t.Helper()
	r := e.call(http.MethodGet, "/cgi-bin/token", url.Values{
		"grant_type": {"client_credential"}, "appid": {a.AppID}, "secret": {a.AppSecret}}, nil)
	tok := r.str("access_token")
	if tok == "" {
		e.t.Fatalf("token: %v", r)
	}
	return tok
}

// stable fetches a stable_token token (no force), failing the test on
// error.
func (e *env) stable(a Account) string {
	e.t.Helper()
	r := e.call(http.MethodPost, "/cgi-bin/stable_token", nil, map[string]any{
		"grant_type": "client_credential", "appid": a.AppID, "secret": a.AppSecret})
	tok := r.str("access_token")
	if tok == "" {
		e.t.Fatalf("stable_token: %v", r)
	}
	return tok
}

// ping calls getcallbackip, the cheapest token check.
func (e *env) ping(tok string) int {
	e.t.Helper()
	return e.call(http.MethodGet, "/cgi-bin/getcallbackip", url.Values{"access_token": {tok}}, nil).code()
}

func text(openid, content string) map[string]any {
	return map[string]any{"touser": openid, "msgtype": "text", "text": map[string]any{"content": content}}
}

// received is one callback as the fake relay saw it.
type received struct {
	query url.Values
	body  []byte // as sent
	plain []byte // verified plaintext XML
	msg   message.MixMessage
}

// fakeRelay is a stand-in for the relay's callback endpoint: it verifies
// signatures and decrypts with silenceper's primitives, exactly as the
// real gateway must, records what it got, and answers as told.
type fakeRelay struct {
	t    testing.TB
	acct Account
	srv  *httptest.Server

	mu     sync.Mutex
	got    []received
	errs   []string
	answer func(n int, rec received) (status int, body []byte, delay time.Duration)
}

// newRelay starts a fake relay for acct and points the account at it.
// answer may be nil (always "success").
func newRelay(t testing.TB, sim *Sim, acct Account, answer func(n int, rec received) (int, []byte, time.Duration)) *fakeRelay {
	t.Helper()
	f := &fakeRelay{t: t, acct: acct, answer: answer}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	if err := sim.SetCallbackURL(acct.AppID, f.srv.URL+"/wechat/"+acct.AppID); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fakeRelay) fail(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs = append(f.errs, fmt.Sprintf(format, args...))
	f.t.Errorf(format, args...)
}

func (f *fakeRelay) serve(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	body, _ := io.ReadAll(r.Body)
	ts, nonce := q.Get("timestamp"), q.Get("nonce")
	if q.Get("signature") != util.Signature(f.acct.Token, ts, nonce) {
		f.fail("bad signature")
		http.Error(w, "bad signature", http.StatusForbidden)
		return
	}
	if r.Method == http.MethodGet {
		_, _ = io.WriteString(w, q.Get("echostr"))
		return
	}
	plain := body
	if q.Get("encrypt_type") == "aes" {
		var env struct {
			ToUserName string `xml:"ToUserName"`
			Encrypt    string `xml:"Encrypt"`
		}
		if err := xml.Unmarshal(body, &env); err != nil {
			f.fail("envelope: %v", err)
			return
		}
		if q.Get("msg_signature") != util.Signature(f.acct.Token, ts, nonce, env.Encrypt) {
			f.fail("bad msg_signature")
			return
		}
		_, p, err := util.DecryptMsg(f.acct.AppID, env.Encrypt, f.acct.EncodingAESKey)
		if err != nil {
			f.fail("decrypt: %v", err)
			return
		}
		plain = p
	}
	rec := received{query: q, body: body, plain: plain}
	if err := xml.Unmarshal(plain, &rec.msg); err != nil {
		// Raw control characters make encoding/xml refuse; that is for the
		// relay's sanitiser to handle. Keep the bytes.
		rec.msg = message.MixMessage{}
	}
	f.mu.Lock()
	f.got = append(f.got, rec)
	n := len(f.got)
	answer := f.answer
	f.mu.Unlock()
	status, out, delay := http.StatusOK, []byte("success"), time.Duration(0)
	if answer != nil {
		status, out, delay = answer(n, rec)
	}
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	w.WriteHeader(status)
	_, _ = w.Write(out)
}

func (f *fakeRelay) received() []received {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]received(nil), f.got...)
}

// textReply builds a passive text reply for rec, encrypted when the
// callback was.
func (f *fakeRelay) textReply(rec received, content string) []byte {
	plain := newXML().cdata("ToUserName", string(rec.msg.FromUserName)).
		cdata("FromUserName", string(rec.msg.ToUserName)).int("CreateTime", 1).
		cdata("MsgType", "text").cdata("Content", content).done()
	if rec.query.Get("encrypt_type") != "aes" {
		return plain
	}
	return f.encrypt(plain, true)
}

// encrypt wraps plain in a reply envelope, with a good or bad signature.
func (f *fakeRelay) encrypt(plain []byte, goodSig bool) []byte {
	enc, err := util.EncryptMsg([]byte("0123456789abcdef"), plain, f.acct.AppID, f.acct.EncodingAESKey)
	if err != nil {
		f.t.Fatal(err)
	}
	ts, nonce := "1700000000", "12345"
	sig := util.Signature(f.acct.Token, ts, nonce, string(enc))
	if !goodSig {
		sig = strings.Repeat("0", 40)
	}
	return newXML().cdata("Encrypt", string(enc)).cdata("MsgSignature", sig).num("TimeStamp", ts).cdata("Nonce", nonce).done()
}
