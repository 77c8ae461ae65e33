package wxsim

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// ruleAccount adds an account to e with a fake relay answering success,
// and one following client.
func (e *env) ruleAccount(a Account) (Account, *Client) {
	e.t.Helper()
	acct, err := e.sim.AddAccount(a)
	if err != nil {
		e.t.Fatal(err)
	}
	newRelay(e.t, e.sim, acct, nil)
	c, err := e.sim.NewClient(acct.AppID)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := c.Subscribe(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	return acct, c
}

func wantCode(t *testing.T, what string, got apiResult, want int) {
	t.Helper()
	if got.code() != want {
		t.Errorf("%s: errcode %d (%v), want %d", what, got.code(), got, want)
	}
	if want != 0 && !strings.Contains(got.str("errmsg"), " rid: ") {
		t.Errorf("%s: errmsg %q lacks WeChat's rid suffix", what, got.str("errmsg"))
	}
}

func TestRule48HourWindow(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	acct, c := e.ruleAccount(Account{})
	tok := e.stable(acct)
	wantCode(t, "inside the window", e.post(pathCustomSend, tok, text(c.OpenID, "a")), 0)
	e.clock.Advance(47*time.Hour + 59*time.Minute)
	tok = e.stable(acct)
	wantCode(t, "at 47h59m", e.post(pathCustomSend, tok, text(c.OpenID, "b")), 0)
	e.clock.Advance(2 * time.Minute)
	wantCode(t, "after 48h", e.post(pathCustomSend, tok, text(c.OpenID, "c")), CodeOutOfWindow)
	wantCode(t, "typing after 48h", e.post(pathCustomTyping, tok, map[string]string{"touser": c.OpenID, "command": "Typing"}), CodeOutOfWindow)
	if info, _ := c.Info(); info.SendsLeft != 0 || !info.WindowEnds.Before(e.clock.Now()) {
		t.Errorf("info after the window = %+v", info)
	}

	// A message from the client opens the window again.
	if _, err := c.SendText(context.Background(), "hello again"); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "after the client wrote", e.post(pathCustomSend, tok, text(c.OpenID, "d")), 0)

	// VIEW does not count as an interaction; CLICK does.
	e.clock.Advance(49 * time.Hour)
	tok = e.stable(acct)
	if _, err := c.View(context.Background(), "https://example.com/"); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "after VIEW", e.post(pathCustomSend, tok, text(c.OpenID, "e")), CodeOutOfWindow)
	if _, err := c.Click(context.Background(), "MENU_HELP"); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "after CLICK", e.post(pathCustomSend, tok, text(c.OpenID, "f")), 0)

	// Unsubscribing closes it, even within 48 hours.
	if _, err := c.Unsubscribe(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "after unsubscribe", e.post(pathCustomSend, tok, text(c.OpenID, "g")), CodeOutOfWindow)
}

func TestRule45047PerInteraction(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	acct, c := e.ruleAccount(Account{})
	tok := e.token(acct)
	for i := 1; i <= 5; i++ {
		wantCode(t, "send within the cap", e.post(pathCustomSend, tok, text(c.OpenID, "x")), 0)
	}
	wantCode(t, "6th send", e.post(pathCustomSend, tok, text(c.OpenID, "x")), CodeOutOfResponseCount)
	// Typing is not a send.
	wantCode(t, "typing at the cap", e.post(pathCustomTyping, tok, map[string]string{"touser": c.OpenID, "command": "Typing"}), 0)
	if _, err := c.SendText(context.Background(), "reset"); err != nil {
		t.Fatal(err)
	}
	if info, _ := c.Info(); info.SendsLeft != 5 {
		t.Errorf("sends left after the client wrote = %d, want 5", info.SendsLeft)
	}
	for i := 1; i <= 5; i++ {
		wantCode(t, "send after reset", e.post(pathCustomSend, tok, text(c.OpenID, "y")), 0)
	}
	wantCode(t, "6th send after reset", e.post(pathCustomSend, tok, text(c.OpenID, "y")), CodeOutOfResponseCount)
	if got, _ := c.Delivered(); len(got) != 10 {
		t.Errorf("delivered %d messages, want 10", len(got))
	}

	// The cap is configurable.
	e2 := newEnv(t, Config{SendsPerInteraction: 2})
	acct2, c2 := e2.ruleAccount(Account{})
	tok2 := e2.token(acct2)
	wantCode(t, "cap 2, send 1", e2.post(pathCustomSend, tok2, text(c2.OpenID, "x")), 0)
	wantCode(t, "cap 2, send 2", e2.post(pathCustomSend, tok2, text(c2.OpenID, "x")), 0)
	wantCode(t, "cap 2, send 3", e2.post(pathCustomSend, tok2, text(c2.OpenID, "x")), CodeOutOfResponseCount)
}

func TestRuleTokenRotation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	acct, _ := e.ruleAccount(Account{})
	t1 := e.token(acct)
	e.clock.Advance(time.Hour)
	t2 := e.token(acct)
	if t1 == t2 {
		t.Fatal("cgi-bin/token returned the same token twice")
	}
	if code := e.ping(t1); code != 0 {
		t.Errorf("old token right after rotation: %d, want 0 (5-minute overlap)", code)
	}
	e.clock.Advance(4*time.Minute + 59*time.Second)
	if code := e.ping(t1); code != 0 {
		t.Errorf("old token at 4m59s: %d, want 0", code)
	}
	e.clock.Advance(time.Second)
	if code := e.ping(t1); code != CodeInvalidCredential {
		t.Errorf("old token at 5m: %d, want 40001", code)
	}
	if code := e.ping(t2); code != 0 {
		t.Errorf("new token: %d, want 0", code)
	}
	e.clock.Advance(2*time.Hour - 5*time.Minute - time.Second)
	if code := e.ping(t2); code != 0 {
		t.Errorf("new token at 7199s: %d, want 0", code)
	}
	e.clock.Advance(time.Second)
	if code := e.ping(t2); code != CodeTokenExpired {
		t.Errorf("new token at 7200s: %d, want 42001", code)
	}
	// Rotation of an expired token does not turn 42001 into 40001.
	e.token(acct)
	if code := e.ping(t2); code != CodeTokenExpired {
		t.Errorf("expired token after a new one: %d, want 42001", code)
	}
}

func TestRuleStableToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{StableForceRefreshPerDay: 2})
	acct, _ := e.ruleAccount(Account{})
	stable := func(force bool) apiResult {
		return e.call(http.MethodPost, pathStableToken, nil, map[string]any{
			"grant_type": "client_credential", "appid": acct.AppID, "secret": acct.AppSecret, "force_refresh": force})
	}
	first := stable(false)
	e.clock.Advance(time.Hour)
	second := stable(false)
	if first.str("access_token") == "" || second.str("access_token") != first.str("access_token") {
		t.Fatalf("stable tokens %v then %v, want the same", first, second)
	}
	if got := second["expires_in"].(float64); got != 3600 {
		t.Errorf("expires_in an hour later = %v, want 3600", got)
	}
	// The plain token family is independent.
	plain := e.token(acct)
	if code := e.ping(first.str("access_token")); code != 0 {
		t.Errorf("stable token after a plain one was issued: %d", code)
	}
	e.clock.Advance(time.Hour)
	if code := e.ping(first.str("access_token")); code != CodeTokenExpired {
		t.Errorf("stable token after 7200 s: %d, want 42001", code)
	}
	third := stable(false)
	if third.str("access_token") == first.str("access_token") {
		t.Error("expired stable token reissued")
	}
	forced := stable(true)
	if code := e.ping(third.str("access_token")); code != CodeInvalidCredential {
		t.Errorf("stable token after force_refresh: %d, want 40001", code)
	}
	if code := e.ping(forced.str("access_token")); code != 0 {
		t.Errorf("forced token: %d", code)
	}
	stable(true)
	wantCode(t, "third force_refresh of the day", stable(true), CodeDailyQuota)
	_ = plain
	wantCode(t, "stable_token by GET", e.call(http.MethodGet, pathStableToken, nil, nil), CodeRequirePost)
	wantCode(t, "stable_token bad JSON", e.call(http.MethodPost, pathStableToken, nil, "{"), CodeDataFormat)
}

func TestRuleTokenErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	acct, _ := e.ruleAccount(Account{})
	get := func(q url.Values) apiResult { return e.call(http.MethodGet, pathToken, q, nil) }
	wantCode(t, "grant_type", get(url.Values{"grant_type": {"password"}, "appid": {acct.AppID}, "secret": {acct.AppSecret}}), CodeInvalidGrantType)
	wantCode(t, "no appid", get(url.Values{"grant_type": {"client_credential"}, "secret": {acct.AppSecret}}), CodeMissingAppID)
	wantCode(t, "no secret", get(url.Values{"grant_type": {"client_credential"}, "appid": {acct.AppID}}), CodeMissingSecret)
	wantCode(t, "unknown appid", get(url.Values{"grant_type": {"client_credential"}, "appid": {"wx1234"}, "secret": {"s"}}), CodeInvalidAppID)
	wantCode(t, "wrong secret", get(url.Values{"grant_type": {"client_credential"}, "appid": {acct.AppID}, "secret": {"s"}}), CodeInvalidAppSecret)
	wantCode(t, "no token", e.call(http.MethodGet, pathGetCallbackIP, nil, nil), CodeMissingToken)
	wantCode(t, "unknown token", e.call(http.MethodGet, pathGetCallbackIP, url.Values{"access_token": {"89_nope"}}, nil), CodeInvalidCredential)
	wantCode(t, "unknown API", e.call(http.MethodGet, "/cgi-bin/menu/create", nil, nil), CodeAPIUnauthorized)
	ips := e.call(http.MethodGet, pathGetCallbackIP, url.Values{"access_token": {e.token(acct)}}, nil)
	if l, _ := ips["ip_list"].([]any); len(l) != 1 || l[0] != "127.0.0.1" {
		t.Errorf("getcallbackip = %v", ips)
	}
}

func TestRuleDailyQuota(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{DailyQuota: map[string]int{"token": 3, "getcallbackip": 2}})
	acct, _ := e.ruleAccount(Account{})
	q := url.Values{"grant_type": {"client_credential"}, "appid": {acct.AppID}, "secret": {acct.AppSecret}}
	var tok string
	for i := 0; i < 3; i++ {
		tok = e.token(acct)
	}
	wantCode(t, "4th token of the day", e.call(http.MethodGet, pathToken, q, nil), CodeDailyQuota)
	wantCode(t, "ping 1", e.call(http.MethodGet, pathGetCallbackIP, url.Values{"access_token": {tok}}, nil), 0)
	wantCode(t, "ping 2", e.call(http.MethodGet, pathGetCallbackIP, url.Values{"access_token": {tok}}, nil), 0)
	wantCode(t, "ping 3", e.call(http.MethodGet, pathGetCallbackIP, url.Values{"access_token": {tok}}, nil), CodeDailyQuota)
	wantCode(t, "clear_quota", e.post(pathClearQuota, tok, map[string]string{"appid": acct.AppID}), 0)
	wantCode(t, "ping after clear_quota", e.call(http.MethodGet, pathGetCallbackIP, url.Values{"access_token": {tok}}, nil), 0)
	for i := 0; i < 3; i++ {
		e.token(acct)
	}
	wantCode(t, "token quota again", e.call(http.MethodGet, pathToken, q, nil), CodeDailyQuota)
	// Quotas reset at midnight Beijing time (epoch is noon there).
	e.clock.Advance(11*time.Hour + 59*time.Minute)
	wantCode(t, "23:59 Beijing", e.call(http.MethodGet, pathToken, q, nil), CodeDailyQuota)
	e.clock.Advance(time.Minute)
	if r := e.call(http.MethodGet, pathToken, q, nil); r.str("access_token") == "" {
		t.Errorf("token after midnight Beijing: %v", r)
	}
}

func TestRuleMediaExpiry(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	acct, c := e.ruleAccount(Account{})
	res, err := c.SendImage(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = res
	log, _ := c.Log(0)
	mediaID := log[len(log)-1].MediaID
	get := func(tok, id string) (*http.Response, []byte) {
		resp, err := http.Get(e.srv.URL + pathMediaGet + "?" + url.Values{"access_token": {tok}, "media_id": {id}}.Encode())
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	tok := e.token(acct)
	resp, body := get(tok, mediaID)
	if resp.Header.Get("Content-Type") != "image/png" || !strings.HasPrefix(string(body), "\x89PNG") {
		t.Fatalf("media/get of a client's image: %s %q", resp.Header.Get("Content-Type"), body[:min(len(body), 40)])
	}
	e.clock.Advance(72*time.Hour - time.Second)
	tok = e.token(acct)
	if resp, _ := get(tok, mediaID); resp.Header.Get("Content-Type") != "image/png" {
		t.Errorf("media/get just before 3 days: %s", resp.Header.Get("Content-Type"))
	}
	e.clock.Advance(time.Second)
	_, body = get(tok, mediaID)
	if !strings.Contains(string(body), `"errcode":40007`) || !strings.Contains(string(body), "invalid media_id") {
		t.Errorf("media/get after 3 days = %s, want 40007 invalid media_id", body)
	}
	if _, body := get(tok, "nope"); !strings.Contains(string(body), `"errcode":40007`) {
		t.Errorf("unknown media = %s", body)
	}
	if _, body := get(tok, ""); !strings.Contains(string(body), `"errcode":41006`) {
		t.Errorf("missing media_id = %s", body)
	}

	// Another account cannot fetch it.
	other, _ := e.ruleAccount(Account{})
	m, err := e.sim.UploadMedia(acct.AppID, MediaVoice, GenerateAMR(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, body := get(e.token(other), m.MediaID); !strings.Contains(string(body), `"errcode":40007`) {
		t.Errorf("other account's media = %s", body)
	}

	// Videos come back as a video_url to download.
	if _, err := c.SendVideo(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	log, _ = c.Log(0)
	_, body = get(tok, log[len(log)-1].MediaID)
	var v struct {
		VideoURL string `json:"video_url"`
	}
	if err := json.Unmarshal(body, &v); err != nil || !strings.HasPrefix(v.VideoURL, e.srv.URL+"/sim/media/") {
		t.Fatalf("video media/get = %s", body)
	}
	dl, err := http.Get(v.VideoURL)
	if err != nil {
		t.Fatal(err)
	}
	vb, _ := io.ReadAll(dl.Body)
	dl.Body.Close()
	if dl.Header.Get("Content-Type") != "video/mp4" || string(vb[4:8]) != "ftyp" {
		t.Errorf("video download: %s", dl.Header.Get("Content-Type"))
	}
}

func TestRuleQRCodes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	acct, _ := e.ruleAccount(Account{})
	tok := e.token(acct)
	create := func(body string) apiResult { return e.post(pathQRCodeCreate, tok, body) }
	tmp := create(`{"action_name":"QR_SCENE","action_info":{"scene":{"scene_id":123}}}`)
	if tmp.str("ticket") == "" || tmp["expire_seconds"].(float64) != 60 {
		t.Errorf("QR_SCENE without expire_seconds = %v, want 60 s", tmp)
	}
	long := create(`{"expire_seconds":99999999,"action_name":"QR_STR_SCENE","action_info":{"scene":{"scene_str":"emp"}}}`)
	if long["expire_seconds"].(float64) != 2592000 {
		t.Errorf("expire_seconds capped = %v, want 2592000", long["expire_seconds"])
	}
	wantCode(t, "QR_LIMIT_SCENE out of range", create(`{"action_name":"QR_LIMIT_SCENE","action_info":{"scene":{"scene_id":100001}}}`), CodeInvalidActionInfo)
	wantCode(t, "empty scene_str", create(`{"action_name":"QR_LIMIT_STR_SCENE","action_info":{"scene":{}}}`), CodeInvalidActionInfo)
	wantCode(t, "long scene_str", create(`{"action_name":"QR_STR_SCENE","action_info":{"scene":{"scene_str":"`+strings.Repeat("x", 65)+`"}}}`), CodeInvalidActionInfo)
	wantCode(t, "unknown action", create(`{"action_name":"QR_FOO","action_info":{"scene":{"scene_id":1}}}`), CodeInvalidActionInfo)

	q, err := e.sim.ResolveQR(tmp.str("url"))
	if err != nil || q.AppID != acct.AppID || q.Scene() != "123" {
		t.Fatalf("resolve = %+v, %v", q, err)
	}
	if resp, _ := http.Get(e.srv.URL + pathShowQRCode + "?ticket=nope"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown ticket: HTTP %d", resp.StatusCode)
	}
	e.clock.Advance(61 * time.Second)
	c, _ := e.sim.NewClient(acct.AppID)
	if _, err := c.ScanQR(context.Background(), tmp.str("url")); !errors.Is(err, ErrQRExpired) {
		t.Errorf("scan of an expired code: %v", err)
	}
	if _, err := c.ScanQR(context.Background(), long.str("ticket")); err != nil {
		t.Fatal(err)
	}
	ui := e.call(http.MethodGet, pathUserInfo, url.Values{"access_token": {e.token(acct)}, "openid": {c.OpenID}}, nil)
	for _, gone := range []string{"nickname", "headimgurl", "sex", "city"} {
		if _, ok := ui[gone]; ok {
			t.Errorf("user/info has %q (removed by WeChat in 2021)", gone)
		}
	}
	if ui["subscribe"].(float64) != 1 || ui.str("subscribe_scene") != SceneQRCode || ui.str("qr_scene_str") != "emp" || ui.str("language") != "zh_CN" {
		t.Errorf("user/info = %v", ui)
	}
	// A QR code of another account is not this client's.
	other, _ := e.ruleAccount(Account{})
	oq, _ := e.sim.CreateQR(other.AppID, QRRequest{ActionName: QRLimitScene, ActionInfo: qrScene(5)})
	if _, err := c.ScanQR(context.Background(), oq.URL); !errors.Is(err, ErrUnknownQR) {
		t.Errorf("scan of another account's code: %v", err)
	}
}

func qrScene(id int) (s struct {
	Scene struct {
		SceneID  int    `json:"scene_id,omitempty"`
		SceneStr string `json:"scene_str,omitempty"`
	} `json:"scene"`
}) {
	s.Scene.SceneID = id
	return s
}

func TestRuleUsers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	acct, c := e.ruleAccount(Account{})
	tok := e.token(acct)
	gone, _ := e.sim.NewClient(acct.AppID)
	if _, err := gone.Subscribe(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := gone.Unsubscribe(context.Background()); err != nil {
		t.Fatal(err)
	}
	ui := e.call(http.MethodGet, pathUserInfo, url.Values{"access_token": {tok}, "openid": {gone.OpenID}}, nil)
	if len(ui) != 2 || ui["subscribe"].(float64) != 0 || ui.str("openid") != gone.OpenID {
		t.Errorf("user/info of an unsubscribed client = %v", ui)
	}
	wantCode(t, "unknown openid", e.call(http.MethodGet, pathUserInfo, url.Values{"access_token": {tok}, "openid": {"oX"}}, nil), CodeInvalidOpenID)
	list := e.call(http.MethodGet, pathUserGet, url.Values{"access_token": {tok}}, nil)
	if list["total"].(float64) != 1 || list.str("next_openid") != c.OpenID {
		t.Errorf("user/get = %v", list)
	}
	wantCode(t, "remark", e.post(pathUserRemark, tok, map[string]string{"openid": c.OpenID, "remark": "VIP"}), 0)
	if info, _ := c.Info(); info.Remark != "VIP" {
		t.Errorf("remark = %q", info.Remark)
	}
	if len(c.OpenID) != 28 || c.OpenID[0] != 'o' || c.OpenID[:6] != gone.OpenID[:6] {
		t.Errorf("openids %q and %q: want 28 characters sharing the account prefix", c.OpenID, gone.OpenID)
	}
}
