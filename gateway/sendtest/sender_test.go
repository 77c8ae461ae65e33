package sendtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/gateway"
	"github.com/wechat-relay/wechat-relay/gateway/wxsim"
	"github.com/wechat-relay/wechat-relay/relay"
)

// The tests run one after another (no t.Parallel): the simulator's clock
// and faults are shared.

func TestEveryKindReachesThePhone(t *testing.T) {
	const kf = "kf2001@gh_relay"
	e := newEnv(t, nil, []string{kf})
	c := e.client()
	ctx := context.Background()

	// The relay's callback handler saw the client's subscribe and text.
	if in := e.inbox.got(); len(in) != 2 || in[0].Event != "subscribe" || in[1].Text != "在吗？" {
		t.Fatalf("inbound = %+v", in)
	}

	text := "您好，张先生 👋🏽 — 报价 <见附件> & 细节 ✅"
	if err := e.sender.SendCustom(ctx, e.msg(c, relay.KindText, text, "", nil)); err != nil {
		t.Fatalf("text: %v", err)
	}

	png := wxsim.GeneratePNG(7)
	imgID, err := e.sender.UploadMedia(ctx, e.id, relay.KindImage, "图表.png", png)
	if err != nil {
		t.Fatalf("upload image: %v", err)
	}
	if err := e.sender.SendCustom(ctx, e.msg(c, relay.KindImage, "", imgID, nil)); err != nil {
		t.Fatalf("image: %v", err)
	}

	voiceID, err := e.sender.UploadMedia(ctx, e.id, relay.KindVoice, "memo.amr", wxsim.GenerateAMR(3))
	if err != nil {
		t.Fatalf("upload voice: %v", err)
	}
	if err := e.sender.SendCustom(ctx, e.msg(c, relay.KindVoice, "", voiceID, nil)); err != nil {
		t.Fatalf("voice: %v", err)
	}

	videoID, err := e.sender.UploadMedia(ctx, e.id, relay.KindVideo, "demo.mp4", wxsim.GenerateMP4(7))
	if err != nil {
		t.Fatalf("upload video: %v", err)
	}
	thumbID, err := e.sender.UploadMedia(ctx, e.id, gateway.KindThumb, "demo.jpg", wxsim.GenerateJPEG(7))
	if err != nil {
		t.Fatalf("upload thumb: %v", err)
	}
	if err := e.sender.SendCustom(ctx, e.msg(c, relay.KindVideo, "", videoID, map[string]string{
		"thumb_media_id": thumbID, "title": "产品演示", "description": "两分钟",
	})); err != nil {
		t.Fatalf("video: %v", err)
	}

	if err := e.sender.SendCustom(ctx, e.msg(c, relay.KindLink, "", "", map[string]string{
		"title": "季度报告", "description": "第三季度", "url": "https://example.com/r?q=3&y=2026", "pic_url": "https://example.com/r.png",
	})); err != nil {
		t.Fatalf("link: %v", err)
	}

	// Five sends use up the interaction; the client writes again.
	e.interact(c)
	if err := e.sender.SendCustom(ctx, e.msg(c, relay.KindText, "我是您的客户经理", "", map[string]string{"kf_account": kf})); err != nil {
		t.Fatalf("kf text: %v", err)
	}
	err = e.sender.SendCustom(ctx, e.msg(c, relay.KindText, "x", "", map[string]string{"kf_account": "nobody@gh_relay"}))
	if se := sendError(err); se == nil || se.Code != 65401 {
		t.Errorf("unknown kf_account: err = %v, want errcode 65401", err)
	}

	d := e.delivered(c)
	if len(d) != 6 {
		t.Fatalf("delivered %d messages, want 6: %+v", len(d), d)
	}
	for _, x := range d {
		if x.Source != wxsim.SourceCustom {
			t.Errorf("entry %d source %q", x.Seq, x.Source)
		}
	}
	if d[0].MsgType != "text" || d[0].Content != text {
		t.Errorf("text arrived as %q %q", d[0].MsgType, d[0].Content)
	}
	if d[1].MsgType != "image" || d[1].MediaID != imgID {
		t.Errorf("image arrived as %q %q", d[1].MsgType, d[1].MediaID)
	}
	if d[2].MsgType != "voice" || d[2].MediaID != voiceID {
		t.Errorf("voice arrived as %q %q", d[2].MsgType, d[2].MediaID)
	}
	if d[3].MsgType != "video" || d[3].MediaID != videoID || d[3].Content != "[video] 产品演示" {
		t.Errorf("video arrived as %q %q %q", d[3].MsgType, d[3].MediaID, d[3].Content)
	}
	if !strings.Contains(d[3].Raw, thumbID) {
		t.Errorf("video body lacks the thumb: %s", d[3].Raw)
	}
	if d[4].MsgType != "news" || d[4].Content != "[news] 季度报告" {
		t.Errorf("link arrived as %q %q", d[4].MsgType, d[4].Content)
	}
	var news struct {
		News struct {
			Articles []map[string]string `json:"articles"`
		} `json:"news"`
	}
	if err := json.Unmarshal([]byte(d[4].Raw), &news); err != nil || len(news.News.Articles) != 1 ||
		news.News.Articles[0]["url"] != "https://example.com/r?q=3&y=2026" || news.News.Articles[0]["picurl"] != "https://example.com/r.png" {
		t.Errorf("news body: %v %s", err, d[4].Raw)
	}
	if d[5].KFAccount != kf || d[5].Content != "我是您的客户经理" {
		t.Errorf("kf message arrived as %q from %q", d[5].Content, d[5].KFAccount)
	}

	// The uploaded bytes are what WeChat holds: fetch the image back.
	m, err := e.api.FetchMedia(ctx, e.id, imgID)
	if err != nil || !bytes.Equal(m.Data, png) {
		t.Errorf("media/get of the uploaded image: %v, %d bytes (want %d)", err, len(m.Data), len(png))
	}

	if got := e.counter("message/custom/send", "ok"); got != 6 {
		t.Errorf("sends_total custom ok = %v, want 6", got)
	}
	if got := e.counter("media/upload", "ok"); got != 4 {
		t.Errorf("sends_total upload ok = %v, want 4", got)
	}
	e.noSecret(err)
}

func TestUploadRefusedByWeChat(t *testing.T) {
	e := newEnv(t, nil, nil)
	ctx := context.Background()
	// A PNG is no voice: WeChat answers its errcode.
	_, err := e.sender.UploadMedia(ctx, e.id, relay.KindVoice, "x.amr", wxsim.GeneratePNG(1))
	if se := sendError(err); se == nil {
		t.Errorf("PNG as voice: err = %v, want a SendError", err)
	}
	// A thumb over 64 KB.
	_, err = e.sender.UploadMedia(ctx, e.id, gateway.KindThumb, "big.jpg", append(wxsim.GenerateJPEG(1), make([]byte, 70<<10)...))
	if se := sendError(err); se == nil || se.Code != wxsim.CodeInvalidThumbSize {
		t.Errorf("big thumb: err = %v, want errcode %d", err, wxsim.CodeInvalidThumbSize)
	}
	e.noSecret(err)
}

func TestOutsideTheWindowIs45015(t *testing.T) {
	e := newEnv(t, nil, nil)
	c := e.client()
	ctx := context.Background()
	if err := e.sender.SendCustom(ctx, e.msg(c, relay.KindText, "within the window", "", nil)); err != nil {
		t.Fatal(err)
	}
	e.noteToken()

	// 48 hours after the client's last message. The cached token has
	// expired on the simulator too (42001): the sender renews it and
	// then meets the window.
	clock.Advance(48*time.Hour + time.Minute)
	err := e.sender.SendCustom(ctx, e.msg(c, relay.KindText, "too late", "", nil))
	se := sendError(err)
	if se == nil || se.Code != relay.ErrCodeOutOfWindow || se.Retryable() {
		t.Fatalf("after 48 h: err = %v, want errcode 45015, not retryable", err)
	}
	if err := e.sender.Typing(ctx, e.id, c.OpenID, true); sendError(err) == nil || sendError(err).Code != 45015 {
		t.Errorf("typing after 48 h: err = %v, want 45015", err)
	}
	if d := e.delivered(c); len(d) != 1 {
		t.Errorf("delivered %d, want 1", len(d))
	}
	if got := e.counter("message/custom/send", "45015"); got != 1 {
		t.Errorf("sends_total 45015 = %v", got)
	}
	e.noSecret(err)

	// The client writes again: the window reopens.
	e.interact(c)
	if err := e.sender.SendCustom(ctx, e.msg(c, relay.KindText, "welcome back", "", nil)); err != nil {
		t.Errorf("after the client wrote again: %v", err)
	}
}

func TestSendQuotaIs45047(t *testing.T) {
	e := newEnv(t, nil, nil)
	c := e.client()
	ctx := context.Background()
	for i := range 5 {
		if err := e.sender.SendCustom(ctx, e.msg(c, relay.KindText, "part", "", nil)); err != nil {
			t.Fatalf("send %d: %v", i+1, err)
		}
	}
	err := e.sender.SendCustom(ctx, e.msg(c, relay.KindText, "one too many", "", nil))
	if se := sendError(err); se == nil || se.Code != relay.ErrCodeSendQuota || se.Retryable() {
		t.Fatalf("6th send: err = %v, want errcode 45047", err)
	}
	if d := e.delivered(c); len(d) != 5 {
		t.Errorf("delivered %d, want 5", len(d))
	}
	e.interact(c)
	if err := e.sender.SendCustom(ctx, e.msg(c, relay.KindText, "after the reply", "", nil)); err != nil {
		t.Errorf("after the client wrote again: %v", err)
	}
	e.noSecret(err)
}

func TestUnknownOpenIDIs40003(t *testing.T) {
	e := newEnv(t, nil, nil)
	other := newEnv(t, nil, nil)
	stranger := other.client() // a follower of another account
	ctx := context.Background()
	for _, openid := range []string{"oNOBODY_AT_ALL_000000000000", stranger.OpenID} {
		m := relay.Message{ID: "out:x", Account: e.id, Client: openid, Direction: relay.Outbound, Kind: relay.KindText, Text: "hi"}
		err := e.sender.SendCustom(ctx, m)
		if se := sendError(err); se == nil || se.Code != relay.ErrCodeInvalidOpenID || se.Retryable() {
			t.Errorf("openid %s: err = %v, want errcode 40003", openid, err)
		}
		e.noSecret(err)
	}
	if d := other.delivered(stranger); len(d) != 0 {
		t.Errorf("the other account's client received %d messages", len(d))
	}
}

func TestTokenRotatedBetweenSends(t *testing.T) {
	e := newEnv(t, nil, nil)
	c := e.client()
	ctx := context.Background()
	if err := e.sender.SendCustom(ctx, e.msg(c, relay.KindText, "one", "", nil)); err != nil {
		t.Fatal(err)
	}
	fresh := e.forceRotate()
	before, _ := sim.QuotaUsed(e.acct.AppID, "stable_token")
	if err := e.sender.SendCustom(ctx, e.msg(c, relay.KindText, "two", "", nil)); err != nil {
		t.Fatalf("send after rotation: %v", err)
	}
	after, _ := sim.QuotaUsed(e.acct.AppID, "stable_token")
	if after-before != 1 {
		t.Errorf("stable_token calls = %d, want 1 forced refresh", after-before)
	}
	if n := strings.Count(e.log.String(), "rejected the access token"); n != 1 {
		t.Errorf("token rejections logged = %d, want 1", n)
	}
	d := e.delivered(c)
	if len(d) != 2 || d[1].Content != "two" {
		t.Fatalf("delivered %+v, want exactly one copy of the second message", d)
	}
	e.noteToken()
	if e.tokens[fresh] && len(e.tokens) < 3 {
		t.Errorf("saw %d tokens, want the first, the rotated one and the sender's own", len(e.tokens))
	}
}

func TestTokenRotatedMidFlight(t *testing.T) {
	e := newEnv(t, nil, nil)
	c := e.client()
	ctx := context.Background()
	if err := e.sender.Typing(ctx, e.id, c.OpenID, true); err != nil { // caches a token
		t.Fatal(err)
	}
	// The send is held up before WeChat checks its token; meanwhile
	// the token is replaced.
	if err := sim.SetFault("message/custom/send", wxsim.Fault{Latency: 400 * time.Millisecond, Count: 1}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.ClearFault("message/custom/send") })
	done := make(chan error, 1)
	go func() { done <- e.sender.SendCustom(ctx, e.msg(c, relay.KindText, "在路上", "", nil)) }()
	time.Sleep(100 * time.Millisecond)
	e.forceRotate()
	if err := <-done; err != nil {
		t.Fatalf("send across a rotation: %v", err)
	}
	if d := e.delivered(c); len(d) != 1 || d[0].Content != "在路上" {
		t.Fatalf("delivered %+v, want exactly one message", d)
	}
	if got := e.counter("message/custom/send", "ok"); got != 1 {
		t.Errorf("sends_total ok = %v, want 1", got)
	}
}

func TestBurstAfterRotationRefreshesOnce(t *testing.T) {
	e := newEnv(t, nil, nil)
	clients := make([]*wxsim.Client, 6)
	for i := range clients {
		clients[i] = e.client()
	}
	ctx := context.Background()
	if err := e.sender.Typing(ctx, e.id, clients[0].OpenID, false); err != nil {
		t.Fatal(err)
	}
	e.forceRotate()
	stableBefore, _ := sim.QuotaUsed(e.acct.AppID, "stable_token")
	var wg sync.WaitGroup
	errs := make([]error, len(clients))
	for i, c := range clients {
		wg.Go(func() { errs[i] = e.sender.SendCustom(ctx, e.msg(c, relay.KindText, "通知", "", nil)) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("client %d: %v", i, err)
		}
		if d := e.delivered(clients[i]); len(d) != 1 {
			t.Errorf("client %d received %d messages", i, len(d))
		}
	}
	stableAfter, _ := sim.QuotaUsed(e.acct.AppID, "stable_token")
	if n := stableAfter - stableBefore; n != 1 {
		t.Errorf("stable_token calls during the burst = %d, want 1 forced refresh", n)
	}
}

func TestSystemBusyIsRetryable(t *testing.T) {
	e := newEnv(t, nil, nil)
	c := e.client()
	ctx := context.Background()
	if err := sim.SetFault("message/custom/send", wxsim.Fault{ErrCode: -1, Count: 1}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.ClearFault("message/custom/send") })
	m := e.msg(c, relay.KindText, "busy?", "", nil)
	err := e.sender.SendCustom(ctx, m)
	se := sendError(err)
	if se == nil || se.Code != relay.ErrCodeSystemBusy || !se.Retryable() {
		t.Fatalf("err = %v, want errcode -1, retryable", err)
	}
	if d := e.delivered(c); len(d) != 0 {
		t.Fatalf("delivered %d before the retry", len(d))
	}
	if err := e.sender.SendCustom(ctx, m); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if d := e.delivered(c); len(d) != 1 {
		t.Errorf("delivered %d, want 1", len(d))
	}
	if got := e.counter("message/custom/send", "-1"); got != 1 {
		t.Errorf("sends_total -1 = %v", got)
	}
	e.noSecret(err)
}

func TestHungWeChatIsUnknown(t *testing.T) {
	e := newEnv(t, nil, nil)
	c := e.client()
	t.Cleanup(func() { sim.ClearFault("message/custom/send") })
	faults := []struct {
		name  string
		fault wxsim.Fault
	}{
		{"hang", wxsim.Fault{Hang: true, Count: 1}},
		{"slow", wxsim.Fault{Latency: 3 * time.Second, Count: 1}},
	}
	for _, f := range faults {
		if err := sim.SetFault("message/custom/send", f.fault); err != nil {
			t.Fatal(err)
		}
		// Long enough for the request to be written even on a loaded
		// machine, shorter than the slow fault's latency.
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		start := time.Now()
		err := e.sender.SendCustom(ctx, e.msg(c, relay.KindText, f.name, "", nil))
		cancel()
		if !errors.Is(err, relay.ErrOutcomeUnknown) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: err = %v, want ErrOutcomeUnknown (deadline)", f.name, err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("%s: returned after %v, past the caller's deadline", f.name, d)
		}
		e.noSecret(err)
	}
	// Whether WeChat acted on such a request is what nobody knows; this
	// simulator happens not to have.
	t.Logf("delivered after the hung sends: %d", len(e.delivered(c)))
	if got := e.counter("message/custom/send", "unknown"); got != 2 {
		t.Errorf("sends_total unknown = %v, want 2", got)
	}
	if err := e.sender.SendCustom(context.Background(), e.msg(c, relay.KindText, "healthy again", "", nil)); err != nil {
		t.Errorf("after the fault: %v", err)
	}
}

func TestBadGatewayIsUnknown(t *testing.T) {
	e := newEnv(t, nil, nil)
	c := e.client()
	if err := sim.SetFault("message/custom/send", wxsim.Fault{HTTPStatus: 502, Count: 1}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.ClearFault("message/custom/send") })
	err := e.sender.SendCustom(context.Background(), e.msg(c, relay.KindText, "via a proxy", "", nil))
	if !errors.Is(err, relay.ErrOutcomeUnknown) {
		t.Errorf("502: err = %v, want ErrOutcomeUnknown", err)
	}
	e.noSecret(err)
}

func TestClosedPortIsNotSent(t *testing.T) {
	e := newEnv(t, nil, nil)
	c := e.client()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	// Tokens still come from the simulator (ConfigureAPI); the send
	// itself goes to a port nobody listens on.
	s := e.senderAt("http://" + addr)
	err = s.SendCustom(context.Background(), e.msg(c, relay.KindText, "nowhere", "", nil))
	if !isPlain(err) {
		t.Fatalf("closed port: err = %v, want a plain error (not sent, retryable)", err)
	}
	_, err = s.UploadMedia(context.Background(), e.id, relay.KindImage, "a.png", wxsim.GeneratePNG(1))
	if !isPlain(err) {
		t.Errorf("closed port upload: err = %v, want a plain error", err)
	}
	if d := e.delivered(c); len(d) != 0 {
		t.Errorf("delivered %d", len(d))
	}
	e.noSecret(err)
}

func TestTyping(t *testing.T) {
	e := newEnv(t, nil, nil)
	c := e.client()
	ctx := context.Background()
	if err := e.sender.Typing(ctx, e.id, c.OpenID, true); err != nil {
		t.Fatal(err)
	}
	if info, _ := c.Info(); !info.Typing {
		t.Error("typing indicator not shown")
	}
	if err := e.sender.Typing(ctx, e.id, c.OpenID, false); err != nil {
		t.Fatal(err)
	}
	if info, _ := c.Info(); info.Typing {
		t.Error("typing indicator not hidden")
	}
	if info, _ := c.Info(); info.SendsLeft != 5 {
		t.Errorf("typing used up sends: %d left", info.SendsLeft)
	}
	err := e.sender.Typing(ctx, e.id, "oNOBODY_AT_ALL_000000000000", true)
	if se := sendError(err); se == nil || se.Code != 40003 {
		t.Errorf("unknown openid: %v", err)
	}
	if got := e.counter("message/custom/typing", "ok"); got != 2 {
		t.Errorf("sends_total typing ok = %v", got)
	}
}

func TestTemplateOutsideTheWindow(t *testing.T) {
	const tpl = "TPL_APPOINTMENT_1"
	e := newEnv(t, []string{tpl}, nil)
	c := e.client()
	ctx := context.Background()
	clock.Advance(72 * time.Hour) // custom/send is long closed
	if err := e.sender.SendCustom(ctx, e.msg(c, relay.KindText, "x", "", nil)); sendError(err) == nil || sendError(err).Code != 45015 {
		t.Fatalf("custom/send after 72 h: %v, want 45015", err)
	}
	msgID, err := e.sender.SendTemplate(ctx, e.id, c.OpenID, relay.Template{
		ID: tpl, URL: "https://example.com/appt?id=7&x=1",
		Data: map[string]string{"first": "您的预约已确认", "time": "周三 10:00", "remark": "如需改期请回复"},
	})
	if err != nil {
		t.Fatalf("template: %v", err)
	}
	if msgID == "" || strings.Trim(msgID, "0123456789") != "" {
		t.Fatalf("msgid = %q, want a decimal number", msgID)
	}
	d := e.delivered(c)
	if len(d) != 1 || d[0].Source != wxsim.SourceTemplate || d[0].MsgID != msgID {
		t.Fatalf("delivered %+v", d)
	}
	if !strings.Contains(d[0].Content, "first=您的预约已确认") || !strings.Contains(d[0].Raw, `"url":"https://example.com/appt?id=7&x=1"`) {
		t.Errorf("template content %q raw %s", d[0].Content, d[0].Raw)
	}

	// The platform reports the job's result to the relay's callback.
	deadline := time.Now().Add(5 * time.Second)
	var job *relay.Message
	for job == nil && time.Now().Before(deadline) {
		for _, m := range e.inbox.got() {
			if m.Event == "TEMPLATESENDJOBFINISH" {
				job = &m
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if job == nil {
		t.Fatal("no TEMPLATESENDJOBFINISH reached the callback handler")
	}
	if job.Attrs["msg_id"] != msgID || job.Attrs["status"] != wxsim.TemplateStatusSuccess || job.Client != c.OpenID {
		t.Errorf("job event: msg_id %q status %q client %q", job.Attrs["msg_id"], job.Attrs["status"], job.Client)
	}

	// A template the account does not have, and a client that left.
	_, err = e.sender.SendTemplate(ctx, e.id, c.OpenID, relay.Template{ID: "TPL_UNKNOWN", Data: map[string]string{"a": "b"}})
	if se := sendError(err); se == nil || se.Code != wxsim.CodeInvalidTemplateID {
		t.Errorf("unknown template: %v", err)
	}
	if _, err := c.Unsubscribe(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = e.sender.SendTemplate(ctx, e.id, c.OpenID, relay.Template{ID: tpl, Data: map[string]string{"a": "b"}})
	if se := sendError(err); se == nil || se.Code != wxsim.CodeRequireSubscribe {
		t.Errorf("unsubscribed client: %v", err)
	}
	if got := e.counter("message/template/send", "ok"); got != 1 {
		t.Errorf("sends_total template ok = %v", got)
	}
	e.noSecret(err)
}

func TestUnsupportedKindSendsNothing(t *testing.T) {
	e := newEnv(t, nil, nil)
	c := e.client()
	before, _ := sim.QuotaUsed(e.acct.AppID, "message/custom/send")
	for _, k := range []relay.Kind{relay.KindLocation, relay.KindFile, relay.KindEvent} {
		err := e.sender.SendCustom(context.Background(), e.msg(c, k, "x", "M", nil))
		if !errors.Is(err, gateway.ErrUnsupportedKind) || sendError(err) != nil {
			t.Errorf("%s: err = %v", k, err)
		}
	}
	if after, _ := sim.QuotaUsed(e.acct.AppID, "message/custom/send"); after != before {
		t.Errorf("%d calls reached the simulator", after-before)
	}
}
