package wxsim

import (
	"bytes"
	"context"
	"image/png"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/silenceper/wechat/v2/cache"
	"github.com/silenceper/wechat/v2/credential"
	"github.com/silenceper/wechat/v2/officialaccount/basic"
	"github.com/silenceper/wechat/v2/officialaccount/config"
	oacontext "github.com/silenceper/wechat/v2/officialaccount/context"
	"github.com/silenceper/wechat/v2/officialaccount/material"
	"github.com/silenceper/wechat/v2/officialaccount/message"
)

var _ cache.Cache = (*syncCache)(nil)

// sharedAccount adds a fresh account to the shared simulator, with a fake
// relay behind its callback URL.
func sharedAccount(t *testing.T, a Account) (Account, *fakeRelay) {
	t.Helper()
	acct, err := shared.sim.AddAccount(a)
	if err != nil {
		t.Fatal(err)
	}
	return acct, newRelay(t, shared.sim, acct, nil)
}

// oaContext builds silenceper's officialaccount context the way the
// gateway does, without the root package.
func oaContext(a Account, stable bool) *oacontext.Context {
	cfg := &config.Config{AppID: a.AppID, AppSecret: a.AppSecret, Token: a.Token, EncodingAESKey: a.EncodingAESKey,
		Cache: newSyncCache(), UseStableAK: stable}
	var h credential.AccessTokenContextHandle
	if stable {
		h = credential.NewStableAccessToken(a.AppID, a.AppSecret, credential.CacheKeyOfficialAccountPrefix, cfg.Cache)
	} else {
		h = credential.NewDefaultAccessToken(a.AppID, a.AppSecret, credential.CacheKeyOfficialAccountPrefix, cfg.Cache)
	}
	return &oacontext.Context{Config: cfg, AccessTokenHandle: h}
}

func follower(t *testing.T, appID string) *Client {
	t.Helper()
	c, err := shared.sim.NewClient(appID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscribe(context.Background()); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSilenceperAccessToken(t *testing.T) {
	t.Parallel()
	acct, _ := sharedAccount(t, Account{})
	h := credential.NewDefaultAccessToken(acct.AppID, acct.AppSecret, "t_", newSyncCache())
	tok, err := h.GetAccessToken()
	if err != nil || tok == "" {
		t.Fatalf("GetAccessToken = %q, %v", tok, err)
	}
	again, err := h.GetAccessToken()
	if err != nil || again != tok {
		t.Fatalf("cached token = %q, %v; want %q", again, err, tok)
	}
	if n, _ := shared.sim.QuotaUsed(acct.AppID, "token"); n != 1 {
		t.Errorf("token calls = %d, want 1 (the second came from the cache)", n)
	}

	bad := credential.NewDefaultAccessToken(acct.AppID, "wrong", "t_", newSyncCache())
	if _, err := bad.GetAccessToken(); err == nil || !strings.Contains(err.Error(), "errcode=40125") {
		t.Errorf("wrong secret: %v, want 40125", err)
	}
	unknown := credential.NewDefaultAccessToken("wx0000000000000000", "x", "t_", newSyncCache())
	if _, err := unknown.GetAccessToken(); err == nil || !strings.Contains(err.Error(), "errcode=40013") {
		t.Errorf("unknown appid: %v, want 40013", err)
	}
}

func TestSilenceperStableToken(t *testing.T) {
	t.Parallel()
	acct, _ := sharedAccount(t, Account{})
	h := credential.NewStableAccessToken(acct.AppID, acct.AppSecret, "t_", newSyncCache()).(*credential.StableAccessToken)
	tok, err := h.GetAccessToken()
	if err != nil || tok == "" {
		t.Fatalf("GetAccessToken = %q, %v", tok, err)
	}
	ctx := context.Background()
	same, err := h.GetAccessTokenDirectly(ctx, false)
	if err != nil || same.AccessToken != tok {
		t.Fatalf("stable token without force = %q, %v; want the same %q", same.AccessToken, err, tok)
	}
	if same.ExpiresIn <= 0 || same.ExpiresIn > 7200 {
		t.Errorf("expires_in = %d", same.ExpiresIn)
	}
	fresh, err := h.GetAccessTokenDirectly(ctx, true)
	if err != nil || fresh.AccessToken == tok {
		t.Fatalf("force_refresh = %q, %v; want a new token", fresh.AccessToken, err)
	}
	// The forced refresh killed the old token at once.
	c := follower(t, acct.AppID)
	mgr := message.NewMessageManager(&oacontext.Context{Config: &config.Config{AppID: acct.AppID},
		AccessTokenHandle: fixedToken(tok)})
	if err := mgr.Send(message.NewCustomerTextMessage(c.OpenID, "hi")); err == nil || !strings.Contains(err.Error(), "errcode=40001") {
		t.Errorf("old stable token after force_refresh: %v, want 40001", err)
	}
	mgr = message.NewMessageManager(&oacontext.Context{Config: &config.Config{AppID: acct.AppID},
		AccessTokenHandle: fixedToken(fresh.AccessToken)})
	if err := mgr.Send(message.NewCustomerTextMessage(c.OpenID, "hi")); err != nil {
		t.Errorf("new stable token: %v", err)
	}
}

// fixedToken is an AccessTokenHandle that always answers one token.
type fixedToken string

func (f fixedToken) GetAccessToken() (string, error) { return string(f), nil }

func TestSilenceperCustomSend(t *testing.T) {
	t.Parallel()
	acct, _ := sharedAccount(t, Account{KFAccounts: []string{"kf2001@" + "gh_test"}})
	mgr := message.NewMessageManager(oaContext(acct, false))
	c, err := shared.sim.NewClient(acct.AppID)
	if err != nil {
		t.Fatal(err)
	}
	if err := mgr.Send(message.NewCustomerTextMessage(c.OpenID, "too early")); err == nil || !strings.Contains(err.Error(), "errcode=45015") {
		t.Fatalf("send to a non-follower: %v, want 45015", err)
	}
	if _, err := c.Subscribe(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := mgr.Send(message.NewCustomerTextMessage(c.OpenID, "你好 hello")); err != nil {
		t.Fatalf("send: %v", err)
	}
	if err := mgr.Send(message.NewCustomerTextMessage("o_not_a_client_of_this_account", "x")); err == nil || !strings.Contains(err.Error(), "errcode=40003") {
		t.Errorf("unknown openid: %v, want 40003", err)
	}
	got, err := c.Delivered()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Content != "你好 hello" || got[0].Source != SourceCustom || got[0].MsgType != "text" {
		t.Fatalf("delivered = %+v", got)
	}
}

func TestSilenceperTemplateSend(t *testing.T) {
	t.Parallel()
	acct, relay := sharedAccount(t, Account{Templates: []string{"tpl-reminder"}})
	c := follower(t, acct.AppID)
	tpl := message.NewTemplate(oaContext(acct, true))
	id, err := tpl.Send(&message.TemplateMessage{ToUser: c.OpenID, TemplateID: "tpl-reminder",
		Data: map[string]*message.TemplateDataItem{"first": {Value: "Your appointment"}, "time": {Value: "10:00"}}})
	if err != nil || id <= 0 {
		t.Fatalf("template send = %d, %v", id, err)
	}
	if _, err := tpl.Send(&message.TemplateMessage{ToUser: c.OpenID, TemplateID: "nope"}); err == nil || !strings.Contains(err.Error(), "errcode=40037") {
		t.Errorf("unknown template: %v, want 40037", err)
	}
	// TEMPLATESENDJOBFINISH reaches the relay with the same msgid.
	deadline := time.Now().Add(5 * time.Second)
	for {
		var found bool
		for _, r := range relay.received() {
			if r.msg.Event == message.EventTemplateSendJobFinish {
				found = true
				if r.msg.TemplateMsgID != id || r.msg.Status != TemplateStatusSuccess || string(r.msg.FromUserName) != c.OpenID {
					t.Errorf("job finish = msgid %d status %q from %q; want %d success %s", r.msg.TemplateMsgID, r.msg.Status, r.msg.FromUserName, id, c.OpenID)
				}
			}
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no TEMPLATESENDJOBFINISH callback")
		}
		time.Sleep(10 * time.Millisecond)
	}
	got, _ := c.Delivered()
	if len(got) != 1 || got[0].Source != SourceTemplate || !strings.Contains(got[0].Content, "time=10:00") {
		t.Errorf("delivered = %+v", got)
	}
}

func TestSilenceperMediaUpload(t *testing.T) {
	t.Parallel()
	acct, _ := sharedAccount(t, Account{})
	c := follower(t, acct.AppID)
	oa := oaContext(acct, false)
	mat := material.NewMaterial(oa)
	pic := GeneratePNG(42)
	media, err := mat.MediaUploadFromReader(material.MediaTypeImage, "pic.png", bytes.NewReader(pic))
	if err != nil || media.MediaID == "" || media.Type != material.MediaTypeImage || media.CreatedAt == 0 {
		t.Fatalf("upload = %+v, %v", media, err)
	}
	if _, err := mat.MediaUploadFromReader(material.MediaTypeImage, "x.txt", strings.NewReader("not a picture")); err == nil || !strings.Contains(err.Error(), "errcode=40005") {
		t.Errorf("text as image: %v, want 40005", err)
	}
	thumb, err := mat.MediaUploadFromReader(material.MediaTypeThumb, "t.jpg", bytes.NewReader(GenerateJPEG(1)))
	if err != nil || thumb.ThumbMediaID == "" || thumb.MediaID != "" {
		t.Errorf("thumb upload = %+v, %v (WeChat answers thumb_media_id)", thumb, err)
	}

	u, err := mat.GetMediaURL(media.MediaID)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(shared.srv.URL + strings.TrimPrefix(u, "https://api.weixin.qq.com"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(body, pic) || resp.Header.Get("Content-Type") != "image/png" ||
		!strings.Contains(resp.Header.Get("Content-Disposition"), media.MediaID+".png") {
		t.Errorf("media/get: %d bytes, headers %v", len(body), resp.Header)
	}

	mgr := message.NewMessageManager(oa)
	if err := mgr.Send(message.NewCustomerImgMessage(c.OpenID, media.MediaID)); err != nil {
		t.Errorf("send image: %v", err)
	}
	if err := mgr.Send(message.NewCustomerVoiceMessage(c.OpenID, media.MediaID)); err == nil || !strings.Contains(err.Error(), "errcode=40007") {
		t.Errorf("image id as voice: %v, want 40007", err)
	}
}

func TestSilenceperQRCode(t *testing.T) {
	t.Parallel()
	acct, relay := sharedAccount(t, Account{})
	oa := oaContext(acct, false)
	b := basic.NewBasic(oa)
	tk, err := b.GetQRTicket(basic.NewTmpQrRequest(time.Hour, "emp-42"))
	if err != nil || tk.Ticket == "" || tk.ExpireSeconds != 3600 || !strings.HasPrefix(tk.URL, "http://weixin.qq.com/q/") {
		t.Fatalf("temporary QR = %+v, %v", tk, err)
	}
	perm, err := b.GetQRTicket(basic.NewLimitQrRequest(7))
	if err != nil || perm.ExpireSeconds != 0 {
		t.Fatalf("permanent QR = %+v, %v", perm, err)
	}

	// showqrcode serves a real PNG; the ticket must be URL-escaped.
	resp, err := http.Get(shared.srv.URL + "/cgi-bin/showqrcode?ticket=" + url.QueryEscape(tk.Ticket))
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(resp.Body)
	resp.Body.Close()
	if err != nil || img.Bounds().Dx() != qrImageSize {
		t.Fatalf("showqrcode: %v (%v)", err, resp.Header)
	}

	ctx := context.Background()
	c, err := shared.sim.NewClient(acct.AppID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ScanQR(ctx, tk.URL); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ScanQR(ctx, perm.Ticket); err != nil {
		t.Fatal(err)
	}
	got := relay.received()
	if len(got) != 2 {
		t.Fatalf("callbacks = %d, want 2", len(got))
	}
	if m := got[0].msg; m.Event != message.EventSubscribe || m.EventKey != "qrscene_emp-42" || m.Ticket != tk.Ticket {
		t.Errorf("first scan = %s %q %q", m.Event, m.EventKey, m.Ticket)
	}
	if m := got[1].msg; m.Event != message.EventScan || m.EventKey != "7" || m.Ticket != perm.Ticket {
		t.Errorf("second scan = %s %q %q", m.Event, m.EventKey, m.Ticket)
	}
	info, _ := c.Info()
	if info.SubscribeScene != SceneQRCode || info.QRSceneStr != "emp-42" {
		t.Errorf("info = %+v", info)
	}
}
