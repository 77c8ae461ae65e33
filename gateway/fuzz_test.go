package gateway

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/silenceper/wechat/v2/util"

	"github.com/wechat-relay/wechat-relay/relay"
)

// FuzzParseMessage: any plaintext either becomes a well-formed inbound
// message or an errMalformed error; never a panic, never a message whose
// Raw differs from the input or whose Text is not clean UTF-8.
func FuzzParseMessage(f *testing.F) {
	seeds := [][]byte{
		fx("text", "<Content><![CDATA[hi]]></Content><MsgId>23845739281937465</MsgId>"),
		fx("text", "<Content><![CDATA[a\x02b\xff]]></Content><MsgId>9223372036854775807</MsgId>"),
		fx("image", "<PicUrl><![CDATA[http://x/y]]></PicUrl><MediaId><![CDATA[M]]></MediaId><MsgId>1</MsgId>"),
		fx("location", "<Location_X>23.1</Location_X><Location_Y>113.3</Location_Y><Scale>20</Scale><Label>L</Label><MsgId>2</MsgId>"),
		fx("event", "<Event><![CDATA[subscribe]]></Event><EventKey><![CDATA[qrscene_1]]></EventKey><Ticket>T</Ticket>"),
		fx("event", "<Event><![CDATA[kf_switch_session]]></Event><FromKfAccount>a@b</FromKfAccount><ToKfAccount>c@d</ToKfAccount>"),
		fx("event", "<Event>TEMPLATESENDJOBFINISH</Event><MsgID>1</MsgID><Status>success</Status>"),
		[]byte("<xml><Content>&#2;</Content></xml>"),
		[]byte("<xml><!-- <![CDATA[ -->&#2;</xml>"),
		[]byte(""),
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		orig := bytes.Clone(raw)
		m, err := parseMessage("acct", raw)
		if !bytes.Equal(raw, orig) {
			t.Fatalf("input modified")
		}
		if err != nil {
			if !errors.Is(err, errMalformed) {
				t.Fatalf("error does not wrap errMalformed: %v", err)
			}
			return
		}
		if m.ID == "" || m.Client == "" || m.Kind == "" || m.Account != "acct" || m.Direction != relay.Inbound {
			t.Fatalf("incomplete message: %+v", m)
		}
		if m.Conv != relay.Conversation("acct", m.Client) {
			t.Fatalf("Conv = %q", m.Conv)
		}
		if !bytes.Equal(m.Raw, orig) {
			t.Fatalf("Raw differs from the input")
		}
		if m.WxMsgID != "" && !isDecimal(m.WxMsgID) {
			t.Fatalf("WxMsgID %q not decimal", m.WxMsgID)
		}
		if m.Kind == relay.KindEvent && m.Event == "" {
			t.Fatalf("event without Event")
		}
		for _, s := range append([]string{m.Text, m.Client, m.Event, m.EventKey, m.MediaID}, valuesOf(m.Attrs)...) {
			if !utf8.ValidString(s) {
				t.Fatalf("invalid UTF-8 in %q", s)
			}
			for _, r := range s {
				if !isXMLChar(r) {
					t.Fatalf("forbidden %U in %q", r, s)
				}
			}
		}
	})
}

func valuesOf(m map[string]string) []string {
	var vs []string
	for _, v := range m {
		vs = append(vs, v)
	}
	return vs
}

// FuzzDecrypt: an arbitrary Encrypt value yields an error, never a panic;
// whatever does decrypt must name the account's AppID (guaranteed by
// decryptMessage) and re-encrypt to a value that decrypts the same.
func FuzzDecrypt(f *testing.F) {
	key, err := decodeAESKey(vecKey)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(vecEncrypt)
	f.Add("")
	f.Add("AAAA")
	f.Add(strings.Repeat("A", 44))
	f.Add(strings.Repeat("/", 64))
	f.Add(vecEncrypt[:len(vecEncrypt)-4])
	f.Add("jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfA==")
	f.Fuzz(func(t *testing.T, enc string) {
		plain, err := decryptMessage(key, vecAppID, enc)
		if err != nil {
			if !errors.Is(err, errBadCiphertext) && !errors.Is(err, errWrongAppID) {
				t.Fatalf("untyped error: %v", err)
			}
			return
		}
		again, err := util.EncryptMsg([]byte(vecRandom), plain, vecAppID, vecKey)
		if err != nil {
			t.Fatal(err)
		}
		back, err := decryptMessage(key, vecAppID, string(again))
		if err != nil || !bytes.Equal(back, plain) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// FuzzCallbackSafe drives the whole handler with an arbitrary body
// under a valid msg_signature: it must answer, never panic, and only
// ever hand well-formed messages to the Acceptor.
func FuzzCallbackSafe(f *testing.F) {
	acc := &fakeAcceptor{}
	h := NewCallbackHandler(testConfig(), acc, CallbackOptions{Now: func() time.Time { return testNow }})
	f.Add(envelopeBody(vecEncrypt))
	f.Add(envelopeBody(encrypt(f, safeAccount, fx("text", "<Content>x</Content><MsgId>1</MsgId>"))))
	f.Add([]byte("<xml><Encrypt>"))
	f.Add([]byte("<xml><ToUserName>gh</ToUserName></xml>"))
	f.Fuzz(func(t *testing.T, body []byte) {
		env, err := parseEnvelope(body)
		target := "/wechat/safe?encrypt_type=aes&timestamp=" + testTS + "&nonce=n"
		if err == nil {
			target += "&msg_signature=" + util.Signature(safeAccount.Token, testTS, "n", env.Encrypt)
		}
		req := httptest.NewRequest(http.MethodPost, target, bytes.NewReader(body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusUnauthorized, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("unexpected status %d %q", rec.Code, rec.Body.String())
		}
		if rec.Code == http.StatusOK && rec.Body.String() != "success" {
			t.Fatalf("200 with body %q", rec.Body.String())
		}
	})
}
