package gateway

import (
	"bytes"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/silenceper/wechat/v2/util"

	"github.com/wechat-relay/wechat-relay/relay"
)

// TestTencentVector checks the published vector against the code path
// the handler uses: signature, decryption and (deterministic) encryption.
func TestTencentVector(t *testing.T) {
	t.Parallel()
	if !signatureOK(vecMsgSig, vecToken, vecTimestamp, vecNonce, vecEncrypt) {
		t.Errorf("msg_signature of the vector does not verify")
	}
	if got := util.Signature(vecToken, vecTimestamp, vecNonce, vecEncrypt); got != vecMsgSig {
		t.Errorf("signature = %s, want %s", got, vecMsgSig)
	}
	if signatureOK(strings.Replace(vecMsgSig, "8", "9", 1), vecToken, vecTimestamp, vecNonce, vecEncrypt) {
		t.Errorf("altered signature verifies")
	}
	if !signatureOK(strings.ToUpper(vecMsgSig), vecToken, vecTimestamp, vecNonce, vecEncrypt) {
		t.Errorf("upper-case hex signature refused")
	}
	key, err := decodeAESKey(vecKey)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := decryptMessage(key, vecAppID, vecEncrypt)
	if err != nil {
		t.Fatalf("decrypt vector: %v", err)
	}
	if string(plain) != vecPlain {
		t.Errorf("plaintext = %q, want %q", plain, vecPlain)
	}
	if _, err := decryptMessage(key, "wx0000000000000000", vecEncrypt); !errors.Is(err, errWrongAppID) {
		t.Errorf("foreign AppID: err = %v, want errWrongAppID", err)
	}
	enc, err := util.EncryptMsg([]byte(vecRandom), []byte(vecPlain), vecAppID, vecKey)
	if err != nil {
		t.Fatal(err)
	}
	if string(enc) != vecEncrypt {
		t.Errorf("encrypt vector = %s, want %s", enc, vecEncrypt)
	}
}

// TestTencentVectorThroughHandler verifies an encrypted echostr made of
// the vector: the handler must check msg_signature and answer the
// plaintext.
func TestTencentVectorThroughHandler(t *testing.T) {
	t.Parallel()
	ts, _ := strconv.ParseInt(vecTimestamp, 10, 64)
	acc := &fakeAcceptor{}
	h := NewCallbackHandler(Config{Accounts: []Account{vecAccount}}, acc, CallbackOptions{
		Now: func() time.Time { return time.Unix(ts+30, 0) },
	})
	q := url.Values{"msg_signature": {vecMsgSig}, "timestamp": {vecTimestamp}, "nonce": {vecNonce}, "echostr": {vecEncrypt}}
	hs := &harness{h: h}
	rec := hs.do(http.MethodGet, "/wechat/tencent?"+q.Encode(), nil)
	if rec.Code != http.StatusOK || rec.Body.String() != vecPlain {
		t.Fatalf("got %d %q, want 200 %q", rec.Code, rec.Body.String(), vecPlain)
	}
	// The same with '+' sent unescaped, which the query decodes to ' '.
	raw := "/wechat/tencent?msg_signature=" + vecMsgSig + "&timestamp=" + vecTimestamp + "&nonce=" + vecNonce + "&echostr=" + vecEncrypt
	rec = hs.do(http.MethodGet, raw, nil)
	if rec.Code != http.StatusOK || rec.Body.String() != vecPlain {
		t.Fatalf("unescaped '+': got %d %q", rec.Code, rec.Body.String())
	}
}

func TestSafeModeEndToEnd(t *testing.T) {
	t.Parallel()
	hs := newHarness(t, testConfig())
	plain := fx("text", `<Content><![CDATA[请帮我看一下账户]]></Content>
<MsgId>23845739281937465</MsgId>`)
	target, body := safeRequest(t, safeAccount, testTS, "n0nce", plain)
	rec := hs.do(http.MethodPost, target, body)
	if rec.Code != http.StatusOK || rec.Body.String() != "success" {
		t.Fatalf("got %d %q, want 200 success", rec.Code, rec.Body.String())
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type = %q", ct)
	}
	got := hs.acc.got()
	if len(got) != 1 {
		t.Fatalf("accepted %d messages, want 1", len(got))
	}
	m := got[0]
	want := relay.Message{
		ID:        "in:safe:23845739281937465",
		Account:   "safe",
		Client:    fxOpenID,
		Conv:      relay.Conversation("safe", fxOpenID),
		Direction: relay.Inbound,
		Kind:      relay.KindText,
		WxMsgID:   "23845739281937465",
		Text:      "请帮我看一下账户",
	}
	if m.ID != want.ID || m.Account != want.Account || m.Client != want.Client || m.Conv != want.Conv ||
		m.Direction != want.Direction || m.Kind != want.Kind || m.WxMsgID != want.WxMsgID || m.Text != want.Text {
		t.Errorf("message = %+v\nwant %+v", m, want)
	}
	if !bytes.Equal(m.Raw, plain) {
		t.Errorf("Raw is not the decrypted plaintext")
	}
	if !m.CreatedAt.Equal(time.Unix(fxCreate, 0)) {
		t.Errorf("CreatedAt = %v", m.CreatedAt)
	}
	if n := hs.counter(t, "safe", resultAccepted); n != 1 {
		t.Errorf("accepted counter = %v", n)
	}
	// The handler logs no body, even at debug level.
	if strings.Contains(hs.logText(), "请帮我看一下账户") || strings.Contains(hs.logText(), safeAccount.Token) {
		t.Errorf("log leaks body or token: %s", hs.logText())
	}
}

func TestModes(t *testing.T) {
	t.Parallel()
	textMsg := func(id string) []byte {
		return fx("text", "<Content><![CDATA[hi]]></Content><MsgId>"+id+"</MsgId>")
	}
	tests := []struct {
		name      string
		build     func(t *testing.T) (string, []byte)
		status    int
		result    string
		accountID string
	}{
		{"plain account, plain callback", func(t *testing.T) (string, []byte) {
			return plainTarget(plainAccount, testTS, "n1", nil), textMsg("101")
		}, http.StatusOK, resultAccepted, "plain"},
		{"plain callback with encrypt_type=raw", func(t *testing.T) (string, []byte) {
			return plainTarget(plainAccount, testTS, "n1", url.Values{"encrypt_type": {"raw"}}), textMsg("102")
		}, http.StatusOK, resultAccepted, "plain"},
		{"compatible account, plain callback", func(t *testing.T) (string, []byte) {
			return plainTarget(compatAccount, testTS, "n2", nil), textMsg("103")
		}, http.StatusOK, resultAccepted, "compat"},
		{"compatible account, encrypted callback with plaintext fields too", func(t *testing.T) (string, []byte) {
			plain := textMsg("104")
			enc := encrypt(t, compatAccount, plain)
			body := bytes.Replace(plain, []byte("</xml>"), []byte("<Encrypt><![CDATA["+enc+"]]></Encrypt></xml>"), 1)
			return safeTarget(compatAccount, testTS, "n3", enc), body
		}, http.StatusOK, resultAccepted, "compat"},
		{"safe account, encrypted callback", func(t *testing.T) (string, []byte) {
			return safeRequest(t, safeAccount, testTS, "n4", textMsg("105"))
		}, http.StatusOK, resultAccepted, "safe"},
		{"safe account refuses plain callback", func(t *testing.T) (string, []byte) {
			return plainTarget(safeAccount, testTS, "n5", nil), textMsg("106")
		}, http.StatusForbidden, resultModeMismatch, "safe"},
		{"plain account refuses encrypted callback", func(t *testing.T) (string, []byte) {
			return "/wechat/plain?encrypt_type=aes&timestamp=" + testTS, envelopeBody("AAAA")
		}, http.StatusForbidden, resultModeMismatch, "plain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			hs := newHarness(t, testConfig())
			target, body := tt.build(t)
			rec := hs.do(http.MethodPost, target, body)
			if rec.Code != tt.status {
				t.Fatalf("status = %d (%q), want %d", rec.Code, rec.Body.String(), tt.status)
			}
			if n := hs.counter(t, tt.accountID, tt.result); n != 1 {
				t.Errorf("counter{%s,%s} = %v, want 1", tt.accountID, tt.result, n)
			}
			got := hs.acc.got()
			if tt.status == http.StatusOK {
				if len(got) != 1 || got[0].Account != tt.accountID || got[0].Text != "hi" {
					t.Fatalf("accepted %+v", got)
				}
				if !bytes.HasPrefix(got[0].Raw, []byte("<xml>")) || bytes.Contains(got[0].Raw, []byte("<Encrypt>")) {
					t.Errorf("Raw is not the message plaintext: %q", got[0].Raw)
				}
			} else if len(got) != 0 {
				t.Fatalf("refused callback reached the Acceptor")
			}
		})
	}
}

func TestVerifyEchostr(t *testing.T) {
	t.Parallel()
	encEcho := encrypt(t, safeAccount, []byte("1234567890123456789"))
	tests := []struct {
		name   string
		target string
		status int
		body   string
		result string
	}{
		{"plain", plainTarget(plainAccount, testTS, "n", url.Values{"echostr": {"5837397520946536129"}}),
			http.StatusOK, "5837397520946536129", resultVerified},
		{"safe account, plain echostr", plainTarget(safeAccount, testTS, "n", url.Values{"echostr": {"42"}}),
			http.StatusOK, "42", resultVerified},
		{"safe, encrypted echostr", "/wechat/safe?" + url.Values{
			"msg_signature": {util.Signature(safeAccount.Token, testTS, "n", encEcho)},
			"timestamp":     {testTS}, "nonce": {"n"}, "echostr": {encEcho},
		}.Encode(), http.StatusOK, "1234567890123456789", resultVerified},
		{"bad signature", "/wechat/plain?signature=0000&timestamp=" + testTS + "&nonce=n&echostr=1",
			http.StatusUnauthorized, "", resultBadSignature},
		{"missing signature", "/wechat/plain?timestamp=" + testTS + "&nonce=n&echostr=1",
			http.StatusUnauthorized, "", resultBadSignature},
		{"bad msg_signature", "/wechat/safe?" + url.Values{
			"msg_signature": {util.Signature(safeAccount.Token, testTS, "n", encEcho+"x")},
			"timestamp":     {testTS}, "nonce": {"n"}, "echostr": {encEcho},
		}.Encode(), http.StatusUnauthorized, "", resultBadSignature},
		{"stale", plainTarget(plainAccount, "1699990000", "n", url.Values{"echostr": {"1"}}),
			http.StatusForbidden, "", resultBadTimestamp},
		{"no echostr", plainTarget(plainAccount, testTS, "n", nil),
			http.StatusBadRequest, "", resultMalformed},
		{"unknown account", "/wechat/nobody?echostr=1", http.StatusNotFound, "", resultUnknownAccount},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			hs := newHarness(t, testConfig())
			rec := hs.do(http.MethodGet, tt.target, nil)
			if rec.Code != tt.status {
				t.Fatalf("status = %d (%q), want %d", rec.Code, rec.Body.String(), tt.status)
			}
			if tt.status == http.StatusOK && rec.Body.String() != tt.body {
				t.Errorf("body = %q, want %q", rec.Body.String(), tt.body)
			}
			var total float64
			for _, a := range []string{"plain", "safe", unknownAccountLabel} {
				total += hs.counter(t, a, tt.result)
			}
			if total != 1 {
				t.Errorf("counter{result=%s} = %v, want 1", tt.result, total)
			}
		})
	}
}

func TestRefusals(t *testing.T) {
	t.Parallel()
	okText := fx("text", "<Content><![CDATA[secret body text]]></Content><MsgId>900</MsgId>")
	other := Account{ID: "other", AppID: "wxother0000000009", AppSecret: "x", Token: safeAccount.Token,
		EncodingAESKey: safeAccount.EncodingAESKey, Mode: ModeSafe}
	tests := []struct {
		name    string
		cfg     func(c *Config)
		build   func(t *testing.T) (method, target string, body []byte)
		status  int
		result  string
		account string
		text    string // substring of the answer
	}{
		{"unknown account", nil, func(t *testing.T) (string, string, []byte) {
			return http.MethodPost, plainTarget(Account{ID: "ghost", Token: "t"}, testTS, "n", nil), okText
		}, http.StatusNotFound, resultUnknownAccount, unknownAccountLabel, "unknown account"},
		{"bad signature", nil, func(t *testing.T) (string, string, []byte) {
			bad := plainAccount
			bad.Token = "wrong"
			return http.MethodPost, plainTarget(bad, testTS, "n", nil), okText
		}, http.StatusUnauthorized, resultBadSignature, "plain", "signature"},
		{"missing signature", nil, func(t *testing.T) (string, string, []byte) {
			return http.MethodPost, "/wechat/plain?timestamp=" + testTS + "&nonce=n", okText
		}, http.StatusUnauthorized, resultBadSignature, "plain", "signature"},
		{"signature of another nonce", nil, func(t *testing.T) (string, string, []byte) {
			target := plainTarget(plainAccount, testTS, "n", nil)
			return http.MethodPost, strings.Replace(target, "nonce=n", "nonce=m", 1), okText
		}, http.StatusUnauthorized, resultBadSignature, "plain", "signature"},
		{"bad msg_signature", nil, func(t *testing.T) (string, string, []byte) {
			enc := encrypt(t, safeAccount, okText)
			target := safeTarget(safeAccount, testTS, "n", enc)
			return http.MethodPost, target, envelopeBody(encrypt(t, safeAccount, okText)) // another ciphertext
		}, http.StatusUnauthorized, resultBadSignature, "safe", "msg_signature"},
		{"missing msg_signature", nil, func(t *testing.T) (string, string, []byte) {
			return http.MethodPost, "/wechat/safe?encrypt_type=aes&timestamp=" + testTS + "&nonce=n",
				envelopeBody(encrypt(t, safeAccount, okText))
		}, http.StatusUnauthorized, resultBadSignature, "safe", "msg_signature"},
		{"stale timestamp (plain)", nil, func(t *testing.T) (string, string, []byte) {
			return http.MethodPost, plainTarget(plainAccount, "1699999000", "n", nil), okText
		}, http.StatusForbidden, resultBadTimestamp, "plain", "stale timestamp"},
		{"future timestamp (safe)", nil, func(t *testing.T) (string, string, []byte) {
			target, body := safeRequest(t, safeAccount, "1700000400", "n", okText)
			return http.MethodPost, target, body
		}, http.StatusForbidden, resultBadTimestamp, "safe", "stale timestamp"},
		{"missing timestamp", nil, func(t *testing.T) (string, string, []byte) {
			return http.MethodPost, plainTarget(plainAccount, "", "n", nil), okText
		}, http.StatusForbidden, resultBadTimestamp, "plain", "timestamp"},
		{"oversized body", func(c *Config) { c.MaxBodyBytes = 512 }, func(t *testing.T) (string, string, []byte) {
			big := fx("text", "<Content><![CDATA["+strings.Repeat("x", 1000)+"]]></Content><MsgId>1</MsgId>")
			return http.MethodPost, plainTarget(plainAccount, testTS, "n", nil), big
		}, http.StatusRequestEntityTooLarge, resultTooLarge, "plain", "larger than 512"},
		{"oversized encrypted body", func(c *Config) { c.MaxBodyBytes = 512 }, func(t *testing.T) (string, string, []byte) {
			big := fx("text", "<Content><![CDATA["+strings.Repeat("x", 1000)+"]]></Content><MsgId>1</MsgId>")
			target, body := safeRequest(t, safeAccount, testTS, "n", big)
			return http.MethodPost, target, body
		}, http.StatusRequestEntityTooLarge, resultTooLarge, "safe", "larger than"},
		{"malformed XML (plain)", nil, func(t *testing.T) (string, string, []byte) {
			return http.MethodPost, plainTarget(plainAccount, testTS, "n", nil), []byte("<xml><FromUserName>oops")
		}, http.StatusBadRequest, resultMalformed, "plain", "malformed"},
		{"malformed XML inside ciphertext", nil, func(t *testing.T) (string, string, []byte) {
			target, body := safeRequest(t, safeAccount, testTS, "n", []byte("<xml><MsgType>text"))
			return http.MethodPost, target, body
		}, http.StatusBadRequest, resultMalformed, "safe", "malformed"},
		{"malformed envelope", nil, func(t *testing.T) (string, string, []byte) {
			return http.MethodPost, safeTarget(safeAccount, testTS, "n", ""), []byte("<xml><Encrypt>")
		}, http.StatusBadRequest, resultMalformed, "safe", "envelope"},
		{"envelope without Encrypt", nil, func(t *testing.T) (string, string, []byte) {
			return http.MethodPost, safeTarget(safeAccount, testTS, "n", ""), []byte("<xml><ToUserName>gh</ToUserName></xml>")
		}, http.StatusBadRequest, resultMalformed, "safe", "envelope"},
		{"ciphertext not base64", nil, func(t *testing.T) (string, string, []byte) {
			return http.MethodPost, safeTarget(safeAccount, testTS, "n", "!!notbase64!!"), envelopeBody("!!notbase64!!")
		}, http.StatusBadRequest, resultBadCiphertext, "safe", "does not decrypt"},
		{"ciphertext under another key", nil, func(t *testing.T) (string, string, []byte) {
			enc := encrypt(t, compatAccount, okText)
			return http.MethodPost, safeTarget(safeAccount, testTS, "n", enc), envelopeBody(enc)
		}, http.StatusBadRequest, resultBadCiphertext, "safe", "does not decrypt"},
		{"wrong AppID in ciphertext", func(c *Config) { c.Accounts = append(c.Accounts, other) }, func(t *testing.T) (string, string, []byte) {
			// Same key and token as "safe", but sealed for other's AppID.
			target, body := safeRequest(t, other, testTS, "n", okText)
			return http.MethodPost, strings.Replace(target, "/wechat/other", "/wechat/safe", 1), body
		}, http.StatusBadRequest, resultWrongAppID, "safe", "AppID"},
		{"unknown encrypt_type", nil, func(t *testing.T) (string, string, []byte) {
			return http.MethodPost, plainTarget(plainAccount, testTS, "n", url.Values{"encrypt_type": {"des"}}), okText
		}, http.StatusBadRequest, resultMalformed, "plain", "encrypt_type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig()
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			hs := newHarness(t, cfg)
			method, target, body := tt.build(t)
			rec := hs.do(method, target, body)
			if rec.Code != tt.status {
				t.Fatalf("status = %d (%q), want %d", rec.Code, rec.Body.String(), tt.status)
			}
			if !strings.Contains(rec.Body.String(), tt.text) {
				t.Errorf("answer %q does not mention %q", rec.Body.String(), tt.text)
			}
			if got := hs.acc.got(); len(got) != 0 {
				t.Fatalf("refused callback reached the Acceptor: %+v", got)
			}
			if n := hs.counter(t, tt.account, tt.result); n != 1 {
				t.Errorf("counter{%s,%s} = %v, want 1", tt.account, tt.result, n)
			}
			log := hs.logText()
			for _, want := range []string{`"reason":"` + tt.result + `"`, `"account":"` + tt.account + `"`, `"remote":"203.0.113.7:4321"`} {
				if !strings.Contains(log, want) {
					t.Errorf("log line lacks %s: %s", want, log)
				}
			}
			for _, secret := range []string{"secret body text", plainAccount.Token, safeAccount.Token, safeAccount.EncodingAESKey, compatAccount.EncodingAESKey} {
				if strings.Contains(log, secret) {
					t.Errorf("log leaks %q: %s", secret, log)
				}
			}
		})
	}
}

func TestMethodNotAllowed(t *testing.T) {
	t.Parallel()
	hs := newHarness(t, testConfig())
	rec := hs.do(http.MethodPut, plainTarget(plainAccount, testTS, "n", nil), nil)
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("PUT status = %d", rec.Code)
	}
	rec = hs.do(http.MethodPost, "/other/plain", nil)
	if rec.Code != http.StatusNotFound {
		t.Fatalf("other path status = %d", rec.Code)
	}
}

func TestAcceptorErrorAnswers503(t *testing.T) {
	t.Parallel()
	hs := newHarness(t, testConfig())
	hs.acc.err = errors.New("spool: disk full")
	target, body := safeRequest(t, safeAccount, testTS, "n", fx("text", "<Content><![CDATA[x]]></Content><MsgId>7</MsgId>"))
	rec := hs.do(http.MethodPost, target, body)
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("status = %d, want 503", rec.Code)
	}
	if rec.Body.String() == "success" {
		t.Fatalf("answered success for a message that is not durable")
	}
	if n := hs.counter(t, "safe", resultUnavailable); n != 1 {
		t.Errorf("unavailable counter = %v", n)
	}
	if !strings.Contains(hs.logText(), "disk full") || !strings.Contains(hs.logText(), "in:safe:7") {
		t.Errorf("log lacks the cause or msg id: %s", hs.logText())
	}
}

// TestIllegalCharactersAccepted: user text with characters XML 1.0
// forbids is accepted and answered success, in plain and safe mode.
func TestIllegalCharactersAccepted(t *testing.T) {
	t.Parallel()
	plain := fx("text", "<Content><![CDATA[转账\x02完成\x1b[0m\xff]]></Content><MsgId>23845739281937499</MsgId>")
	wantText := "转账\uFFFD完成\uFFFD[0m\uFFFD"
	tests := []struct {
		name  string
		build func(t *testing.T) (string, []byte)
	}{
		{"plain", func(t *testing.T) (string, []byte) {
			return plainTarget(plainAccount, testTS, "n", nil), bytes.Clone(plain)
		}},
		{"safe", func(t *testing.T) (string, []byte) { return safeRequest(t, safeAccount, testTS, "n", plain) }},
		{"compatible, plaintext in the envelope too", func(t *testing.T) (string, []byte) {
			enc := encrypt(t, compatAccount, plain)
			body := bytes.Replace(plain, []byte("</xml>"), []byte("<Encrypt><![CDATA["+enc+"]]></Encrypt></xml>"), 1)
			return safeTarget(compatAccount, testTS, "n", enc), body
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			hs := newHarness(t, testConfig())
			target, body := tt.build(t)
			rec := hs.do(http.MethodPost, target, body)
			if rec.Code != http.StatusOK || rec.Body.String() != "success" {
				t.Fatalf("got %d %q, want 200 success", rec.Code, rec.Body.String())
			}
			got := hs.acc.got()
			if len(got) != 1 {
				t.Fatalf("accepted %d", len(got))
			}
			if got[0].Text != wantText {
				t.Errorf("Text = %q, want %q", got[0].Text, wantText)
			}
			if !bytes.Equal(got[0].Raw, plain) {
				t.Errorf("Raw = %q, want the exact bytes %q", got[0].Raw, plain)
			}
			if got[0].WxMsgID != "23845739281937499" {
				t.Errorf("WxMsgID = %q", got[0].WxMsgID)
			}
		})
	}
}

// TestMountedOnOuterMux: main mounts the handler on its own mux without
// stripping the prefix.
func TestMountedOnOuterMux(t *testing.T) {
	t.Parallel()
	hs := newHarness(t, testConfig())
	mux := http.NewServeMux()
	mux.Handle("/wechat/", hs.h)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {})
	outer := &harness{h: mux}
	rec := outer.do(http.MethodPost, plainTarget(plainAccount, testTS, "n", nil),
		fx("event", "<Event><![CDATA[subscribe]]></Event><EventKey><![CDATA[qrscene_emp-1]]></EventKey>"))
	if rec.Code != http.StatusOK {
		t.Fatalf("status = %d %q", rec.Code, rec.Body.String())
	}
	got := hs.acc.got()
	if len(got) != 1 || got[0].Event != "subscribe" || got[0].EventKey != "qrscene_emp-1" {
		t.Fatalf("accepted %+v", got)
	}
}

// TestMetricsSharedRegistry: two handlers on one registry share the
// counter instead of panicking.
func TestMetricsSharedRegistry(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	cfg := testConfig()
	h1 := NewCallbackHandler(cfg, &fakeAcceptor{}, CallbackOptions{Registerer: reg, Now: func() time.Time { return testNow }})
	h2 := NewCallbackHandler(cfg, &fakeAcceptor{}, CallbackOptions{Registerer: reg, Now: func() time.Time { return testNow }})
	for _, h := range []http.Handler{h1, h2} {
		(&harness{h: h}).do(http.MethodPost, "/wechat/ghost", nil)
	}
	hs := &harness{reg: reg}
	if n := hs.counter(t, unknownAccountLabel, resultUnknownAccount); n != 2 {
		t.Fatalf("shared counter = %v, want 2", n)
	}
}

// TestNoRegistererNoPanic: metrics are optional.
func TestNoRegistererNoPanic(t *testing.T) {
	t.Parallel()
	h := NewCallbackHandler(testConfig(), &fakeAcceptor{}, CallbackOptions{})
	rec := (&harness{h: h}).do(http.MethodPost, "/wechat/ghost", nil)
	if rec.Code != http.StatusNotFound {
		t.Fatalf("status = %d", rec.Code)
	}
}

// TestMisconfiguredKey: an account whose EncodingAESKey does not decode
// (Validate was skipped) refuses encrypted callbacks with 500 instead of
// panicking or accepting.
func TestMisconfiguredKey(t *testing.T) {
	t.Parallel()
	bad := safeAccount
	bad.EncodingAESKey = "too-short"
	acc := &fakeAcceptor{}
	reg := prometheus.NewRegistry()
	h := NewCallbackHandler(Config{Accounts: []Account{bad}}, acc, CallbackOptions{Registerer: reg, Now: func() time.Time { return testNow }})
	enc := encrypt(t, safeAccount, fx("text", "<Content>x</Content><MsgId>1</MsgId>"))
	rec := (&harness{h: h}).do(http.MethodPost, safeTarget(bad, testTS, "n", enc), envelopeBody(enc))
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("status = %d %q", rec.Code, rec.Body.String())
	}
	if len(acc.got()) != 0 {
		t.Fatal("accepted")
	}
	if n := (&harness{reg: reg}).counter(t, "safe", resultMisconfigured); n != 1 {
		t.Errorf("misconfigured counter = %v", n)
	}
}
