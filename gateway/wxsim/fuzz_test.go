package wxsim

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/silenceper/wechat/v2/util"
)

// FuzzJudgeAnswer feeds arbitrary relay answers to the answer checker: it
// must never panic, and must accept only success/empty or a reply it could
// parse.
func FuzzJudgeAnswer(f *testing.F) {
	sim := New(Config{})
	acct, err := sim.AddAccount(Account{Mode: ModeCompatible})
	if err != nil {
		f.Fatal(err)
	}
	c, _ := sim.NewClient(acct.AppID)
	reply := newXML().cdata("ToUserName", c.OpenID).cdata("FromUserName", acct.OriginalID).int("CreateTime", 1).
		cdata("MsgType", "text").cdata("Content", "hi").done()
	enc, _ := util.EncryptMsg([]byte("0123456789abcdef"), reply, acct.AppID, acct.EncodingAESKey)
	sig := util.Signature(acct.Token, "1", "2", string(enc))
	f.Add([]byte("success"))
	f.Add([]byte(""))
	f.Add(reply)
	f.Add(newXML().cdata("Encrypt", string(enc)).cdata("MsgSignature", sig).num("TimeStamp", "1").cdata("Nonce", "2").done())
	f.Add([]byte("<xml><MsgType>news</MsgType><ArticleCount>3</ArticleCount></xml>"))
	av, _ := sim.acctView(acct.AppID)
	p := push{appID: acct.AppID, openID: c.OpenID, msgType: "text"}
	f.Fuzz(func(t *testing.T, body []byte) {
		var res CallbackResult
		err := sim.judgeAnswer(av, p, http.StatusOK, body, &res)
		switch res.Status {
		case CallbackSuccess:
			if err != nil || len(bytes.TrimSpace(body)) != 0 && string(bytes.TrimSpace(body)) != "success" {
				t.Fatalf("success for %q (%v)", body, err)
			}
		case CallbackReply:
			if err != nil || res.Reply == "" {
				t.Fatalf("reply status without reply for %q (%v)", body, err)
			}
		case CallbackError:
			if err == nil {
				t.Fatalf("error status without error for %q", body)
			}
		default:
			t.Fatalf("status %q", res.Status)
		}
	})
}

// FuzzAPIBodies posts arbitrary bodies to the JSON APIs: every answer must
// be WeChat-shaped JSON.
func FuzzAPIBodies(f *testing.F) {
	sim := New(Config{})
	acct, err := sim.AddAccount(Account{Templates: []string{"T"}})
	if err != nil {
		f.Fatal(err)
	}
	h := NewServer(sim)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, pathToken+"?"+url.Values{
		"grant_type": {"client_credential"}, "appid": {acct.AppID}, "secret": {acct.AppSecret}}.Encode(), nil))
	var tok tokenResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &tok); err != nil || tok.AccessToken == "" {
		f.Fatalf("token: %s", rec.Body)
	}
	paths := []string{pathCustomSend, pathCustomTyping, pathTemplateSend, pathQRCodeCreate, pathStableToken, pathUserRemark, pathClearQuota}
	for i := range paths {
		f.Add(uint8(i), []byte(`{"touser":"x","msgtype":"text","text":{"content":"hi"}}`))
	}
	f.Add(uint8(0), []byte(`{"touser":"x","msgtype":"news","news":{"articles":[{}]}}`))
	f.Add(uint8(3), []byte(`{"action_name":"QR_SCENE","action_info":{"scene":{"scene_id":-1}}}`))
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		path := paths[int(which)%len(paths)]
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path+"?access_token="+url.QueryEscape(tok.AccessToken), bytes.NewReader(body)))
		var out map[string]any
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &out) != nil {
			t.Fatalf("%s %q: HTTP %d %s", path, body, rec.Code, rec.Body)
		}
	})
}
