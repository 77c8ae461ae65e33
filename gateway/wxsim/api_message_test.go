package wxsim

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestCustomSendBodies(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	acct, c := e.ruleAccount(Account{KFAccounts: []string{"kf2001@gh_x"}})
	tok := e.token(acct)
	img, _ := e.sim.UploadMedia(acct.AppID, MediaImage, GeneratePNG(1))
	voice, _ := e.sim.UploadMedia(acct.AppID, MediaVoice, GenerateAMR(1))
	video, _ := e.sim.UploadMedia(acct.AppID, MediaVideo, GenerateMP4(1))
	thumb, _ := e.sim.UploadMedia(acct.AppID, MediaThumb, GenerateJPEG(1))
	to := `"touser":"` + c.OpenID + `",`
	cases := []struct {
		name string
		body string
		want int
	}{
		{"text", `{` + to + `"msgtype":"text","text":{"content":"hi"}}`, 0},
		{"text as kf", `{` + to + `"msgtype":"text","text":{"content":"hi"},"customservice":{"kf_account":"kf2001@gh_x"}}`, 0},
		{"unknown kf", `{` + to + `"msgtype":"text","text":{"content":"hi"},"customservice":{"kf_account":"kf9@gh_x"}}`, CodeInvalidKFAccount},
		{"empty body", ``, CodeEmptyPostData},
		{"bad JSON", `{"touser":`, CodeDataFormat},
		{"wrong JSON type", `{"touser":42}`, CodeDataFormat},
		{"no touser", `{"msgtype":"text","text":{"content":"hi"}}`, CodeInvalidOpenID},
		{"unknown msgtype", `{` + to + `"msgtype":"sticker"}`, CodeInvalidMessageType},
		{"empty text", `{` + to + `"msgtype":"text","text":{"content":""}}`, CodeEmptyContent},
		{"missing text", `{` + to + `"msgtype":"text"}`, CodeEmptyContent},
		{"text too long", `{` + to + `"msgtype":"text","text":{"content":"` + strings.Repeat("字", 700) + `"}}`, CodeContentTooLong},
		{"image", `{` + to + `"msgtype":"image","image":{"media_id":"` + img.MediaID + `"}}`, 0},
		{"image unknown", `{` + to + `"msgtype":"image","image":{"media_id":"nope"}}`, CodeInvalidMediaID},
		{"image missing id", `{` + to + `"msgtype":"image","image":{}}`, CodeMissingMediaID},
		{"image with voice id", `{` + to + `"msgtype":"image","image":{"media_id":"` + voice.MediaID + `"}}`, CodeInvalidMediaID},
		{"voice", `{` + to + `"msgtype":"voice","voice":{"media_id":"` + voice.MediaID + `"}}`, 0},
		{"video", `{` + to + `"msgtype":"video","video":{"media_id":"` + video.MediaID + `","thumb_media_id":"` + thumb.MediaID + `","title":"t"}}`, 0},
		{"video bad thumb", `{` + to + `"msgtype":"video","video":{"media_id":"` + video.MediaID + `","thumb_media_id":"x"}}`, CodeInvalidMediaID},
		{"music", `{` + to + `"msgtype":"music","music":{"title":"m","musicurl":"http://x/m.mp3","hqmusicurl":"http://x/m.mp3","thumb_media_id":"` + thumb.MediaID + `"}}`, 0},
		{"music no url", `{` + to + `"msgtype":"music","music":{"thumb_media_id":"` + thumb.MediaID + `"}}`, CodeDataFormat},
		{"news", `{` + to + `"msgtype":"news","news":{"articles":[{"title":"a","url":"http://x/"}]}}`, 0},
		{"news empty", `{` + to + `"msgtype":"news","news":{"articles":[]}}`, CodeEmptyNewsData},
		{"news two articles", `{` + to + `"msgtype":"news","news":{"articles":[{"title":"a"},{"title":"b"}]}}`, CodeTooManyArticles},
		{"mpnews", `{` + to + `"msgtype":"mpnews","mpnews":{"media_id":"PERMANENT"}}`, 0},
		{"mpnewsarticle", `{` + to + `"msgtype":"mpnewsarticle","mpnewsarticle":{"article_id":"A1"}}`, 0},
		{"msgmenu", `{` + to + `"msgtype":"msgmenu","msgmenu":{"head_content":"Rate us","list":[{"id":"101","content":"good"}],"tail_content":"thanks"}}`, 0},
		{"msgmenu empty", `{` + to + `"msgtype":"msgmenu","msgmenu":{"list":[]}}`, CodeDataFormat},
		{"wxcard", `{` + to + `"msgtype":"wxcard","wxcard":{"card_id":"p1"}}`, 0},
		{"wxcard empty", `{` + to + `"msgtype":"wxcard","wxcard":{}}`, CodeInvalidCardID},
		{"miniprogrampage", `{` + to + `"msgtype":"miniprogrampage","miniprogrampage":{"title":"p","appid":"wxa","pagepath":"index","thumb_media_id":"` + thumb.MediaID + `"}}`, 0},
		{"miniprogrampage no appid", `{` + to + `"msgtype":"miniprogrampage","miniprogrampage":{"title":"p","pagepath":"index","thumb_media_id":"` + thumb.MediaID + `"}}`, CodeDataFormat},
	}
	accepted := 0
	for _, tc := range cases {
		if tc.want == 0 {
			// Keep clear of the per-interaction cap: each accepted case
			// follows a client message.
			if _, err := c.SendText(context.Background(), "go on"); err != nil {
				t.Fatal(err)
			}
			accepted++
		}
		wantCode(t, tc.name, e.call(http.MethodPost, pathCustomSend, url.Values{"access_token": {tok}}, tc.body), tc.want)
	}
	wantCode(t, "GET", e.call(http.MethodGet, pathCustomSend, url.Values{"access_token": {tok}}, nil), CodeRequirePost)
	got, _ := c.Delivered()
	if len(got) != accepted {
		t.Fatalf("delivered %d, want %d", len(got), accepted)
	}
	if got[1].KFAccount != "kf2001@gh_x" || got[1].Raw == "" {
		t.Errorf("kf message logged as %+v", got[1])
	}
}

func TestTyping(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	acct, c := e.ruleAccount(Account{})
	tok := e.token(acct)
	typing := func(cmd string) apiResult {
		return e.post(pathCustomTyping, tok, map[string]string{"touser": c.OpenID, "command": cmd})
	}
	wantCode(t, "Typing", typing("Typing"), 0)
	if info, _ := c.Info(); !info.Typing {
		t.Error("not typing after Typing")
	}
	e.clock.Advance(16 * time.Second)
	if info, _ := c.Info(); info.Typing {
		t.Error("still typing after 16 s")
	}
	wantCode(t, "Typing again", typing("Typing"), 0)
	wantCode(t, "CancelTyping", typing("CancelTyping"), 0)
	if info, _ := c.Info(); info.Typing {
		t.Error("typing after CancelTyping")
	}
	wantCode(t, "bad command", typing("Dancing"), CodeDataFormat)
	wantCode(t, "unknown openid", e.post(pathCustomTyping, tok, map[string]string{"touser": "oX", "command": "Typing"}), CodeInvalidOpenID)
}

func TestTemplateRules(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	acct, err := e.sim.AddAccount(Account{Templates: []string{"T1"}})
	if err != nil {
		t.Fatal(err)
	}
	relay := newRelay(t, e.sim, acct, nil)
	c, _ := e.sim.NewClient(acct.AppID)
	tok := e.token(acct)
	send := func(extra string) apiResult {
		return e.post(pathTemplateSend, tok, `{"touser":"`+c.OpenID+`","template_id":"T1","data":{"k":{"value":"v"}}`+extra+`}`)
	}
	wantCode(t, "to a non-follower", send(""), CodeRequireSubscribe)
	if _, err := c.Subscribe(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(30 * 24 * time.Hour) // far outside the 48-hour window
	tok = e.token(acct)
	first := send(`,"client_msg_id":"m1"`)
	if first.code() != 0 || first["msgid"].(float64) <= 0 {
		t.Fatalf("template send = %v", first)
	}
	again := send(`,"client_msg_id":"m1"`)
	if again["msgid"] != first["msgid"] {
		t.Errorf("repeated client_msg_id answered msgid %v, want %v", again["msgid"], first["msgid"])
	}
	other := send(`,"client_msg_id":"m2"`)
	if other["msgid"] == first["msgid"] {
		t.Error("a new client_msg_id reused the msgid")
	}
	wantCode(t, "unknown template", e.post(pathTemplateSend, tok, `{"touser":"`+c.OpenID+`","template_id":"T9"}`), CodeInvalidTemplateID)
	if err := e.sim.SetBlockTemplates(c.OpenID, true); err != nil {
		t.Fatal(err)
	}
	blocked := send("")
	if got, _ := c.Delivered(); len(got) != 2 {
		t.Errorf("delivered %d template messages, want 2 (dedupe, block)", len(got))
	}
	waitFor(t, func() bool { return len(relay.received()) >= 4 }) // subscribe + 3 job events
	var statuses []string
	for _, r := range relay.received()[1:] {
		statuses = append(statuses, r.msg.Status)
		if r.msg.TemplateMsgID == int64(blocked["msgid"].(float64)) && r.msg.Status != TemplateStatusUserBlock {
			t.Errorf("blocked template reported %q", r.msg.Status)
		}
	}
	if len(statuses) != 3 {
		t.Errorf("job events = %v, want 3", statuses)
	}
}

// waitFor polls cond for up to five seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
