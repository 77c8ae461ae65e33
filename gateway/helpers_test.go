package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/silenceper/wechat/v2/util"

	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/storage/testenv/promtest"
)

// Tencent's published test vector (Java sample), see WECHAT.md.
const (
	vecKey       = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
	vecToken     = "pamtest"
	vecTimestamp = "1409304348"
	vecNonce     = "xxxxxx"
	vecAppID     = "wxb11529c136998cb6"
	vecRandom    = "aaaabbbbccccdddd"
	vecPlain     = "我是中文abcd123"
	vecEncrypt   = "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg=="
	vecMsgSig    = "82c962d39941aa48552f90ef55aa323dc620cc10"
)

// testNow is the fixed clock of handler tests; testTS is its timestamp.
var testNow = time.Unix(1700000000, 0)

const testTS = "1700000000"

// Test accounts, one per mode.
var (
	plainAccount  = Account{ID: "plain", AppID: "wxplain0000000001", AppSecret: "s1", Token: "plaintoken", Mode: ModePlain}
	compatAccount = Account{ID: "compat", AppID: "wxcompat000000002", AppSecret: "s2", Token: "compattoken",
		EncodingAESKey: "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG", Mode: ModeCompatible}
	safeAccount = Account{ID: "safe", AppID: "wxsafe00000000003", AppSecret: "s3", Token: "safetoken",
		EncodingAESKey: "ZYXWVUTSRQPONMLKJIHGFEDCBAzyxwvutsrqponmlkj", Mode: ModeSafe}
	vecAccount = Account{ID: "tencent", AppID: vecAppID, AppSecret: "s4", Token: vecToken, EncodingAESKey: vecKey, Mode: ModeSafe}
)

func testConfig() Config {
	return Config{Accounts: []Account{plainAccount, compatAccount, safeAccount, vecAccount}}
}

// fakeAcceptor records accepted messages, or fails with err.
type fakeAcceptor struct {
	mu   sync.Mutex
	msgs []relay.Message
	err  error
}

func (f *fakeAcceptor) Accept(_ context.Context, m relay.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.msgs = append(f.msgs, m)
	return nil
}

func (f *fakeAcceptor) got() []relay.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]relay.Message(nil), f.msgs...)
}

// harness is a callback handler with a fake Acceptor, a private
// registry and a captured log.
type harness struct {
	h   http.Handler
	acc *fakeAcceptor
	reg *prometheus.Registry
	log *bytes.Buffer
	mu  *sync.Mutex
}

type lockedWriter struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func newHarness(tb testing.TB, cfg Config) *harness {
	tb.Helper()
	if err := cfg.Validate(); err != nil {
		tb.Fatalf("test config invalid: %v", err)
	}
	hs := &harness{acc: &fakeAcceptor{}, reg: prometheus.NewRegistry(), log: &bytes.Buffer{}, mu: &sync.Mutex{}}
	logger := slog.New(slog.NewJSONHandler(lockedWriter{hs.mu, hs.log}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	hs.h = NewCallbackHandler(cfg, hs.acc, CallbackOptions{
		Logger:     logger,
		Now:        func() time.Time { return testNow },
		Registerer: hs.reg,
	})
	return hs
}

func (hs *harness) logText() string {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	return hs.log.String()
}

// do serves one request and returns the recorder.
func (hs *harness) do(method, target string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, bytes.NewReader(body))
	req.RemoteAddr = "203.0.113.7:4321"
	rec := httptest.NewRecorder()
	hs.h.ServeHTTP(rec, req)
	return rec
}

// counter returns wechat_relay_callbacks_total{account,result}.
func (hs *harness) counter(tb testing.TB, account, result string) float64 {
	tb.Helper()
	return promtest.Counter(tb, hs.reg, "wechat_relay_callbacks_total", map[string]string{"account": account, "result": result})
}

// plainTarget returns a POST/GET target signed for a plain callback.
func plainTarget(a Account, ts, nonce string, extra url.Values) string {
	q := url.Values{
		"signature": {util.Signature(a.Token, ts, nonce)},
		"timestamp": {ts},
		"nonce":     {nonce},
		"openid":    {"oUser"},
	}
	for k, v := range extra {
		q[k] = v
	}
	return "/wechat/" + a.ID + "?" + q.Encode()
}

// encrypt seals plaintext for a as WeChat does, with random bytes.
func encrypt(tb testing.TB, a Account, plaintext []byte) string {
	tb.Helper()
	random := make([]byte, 16)
	_, _ = rand.Read(random)
	enc, err := util.EncryptMsg(random, plaintext, a.AppID, a.EncodingAESKey)
	if err != nil {
		tb.Fatal(err)
	}
	return string(enc)
}

// safeRequest returns target and body of an encrypted callback of a
// carrying plaintext, signed as WeChat signs it.
func safeRequest(tb testing.TB, a Account, ts, nonce string, plaintext []byte) (string, []byte) {
	tb.Helper()
	enc := encrypt(tb, a, plaintext)
	return safeTarget(a, ts, nonce, enc), envelopeBody(enc)
}

func safeTarget(a Account, ts, nonce, enc string) string {
	q := url.Values{
		"signature":     {util.Signature(a.Token, ts, nonce)},
		"timestamp":     {ts},
		"nonce":         {nonce},
		"openid":        {"oUser"},
		"encrypt_type":  {"aes"},
		"msg_signature": {util.Signature(a.Token, ts, nonce, enc)},
	}
	return "/wechat/" + a.ID + "?" + q.Encode()
}

func envelopeBody(enc string) []byte {
	return []byte("<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName><Encrypt><![CDATA[" + enc + "]]></Encrypt></xml>")
}
