package wxsim

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/silenceper/wechat/v2/officialaccount/message"
	"github.com/silenceper/wechat/v2/util"
)

// TestCallbackModes pushes every client message type in each encryption
// mode to a fake relay that verifies and decrypts with silenceper's
// primitives, and checks the parsed fields and the media behind them.
func TestCallbackModes(t *testing.T) {
	t.Parallel()
	for _, mode := range []Mode{ModePlain, ModeCompatible, ModeSafe} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, Config{})
			acct, err := e.sim.AddAccount(Account{Mode: mode})
			if err != nil {
				t.Fatal(err)
			}
			relay := newRelay(t, e.sim, acct, nil)
			c, _ := e.sim.NewClient(acct.AppID)
			ctx := context.Background()
			steps := []func() (CallbackResult, error){
				func() (CallbackResult, error) { return c.Subscribe(ctx) },
				func() (CallbackResult, error) { return c.SendText(ctx, "你好 <b>&amp; ]]> end") },
				func() (CallbackResult, error) { return c.SendImage(ctx, nil) },
				func() (CallbackResult, error) {
					return c.Send(ctx, ClientMessage{MsgType: "voice", Recognition: "语音"})
				},
				func() (CallbackResult, error) { return c.SendVideo(ctx, nil) },
				func() (CallbackResult, error) { return c.Send(ctx, ClientMessage{MsgType: "shortvideo"}) },
				func() (CallbackResult, error) { return c.SendLocation(ctx, 23.134521, 113.358803, 20, "广州") },
				func() (CallbackResult, error) { return c.SendLink(ctx, "Title", "Desc", "https://example.com/a") },
				func() (CallbackResult, error) {
					return c.Send(ctx, ClientMessage{MsgType: "file", Title: "report.pdf", Data: []byte("%PDF-1.4")})
				},
				func() (CallbackResult, error) { return c.Click(ctx, "MENU_1") },
				func() (CallbackResult, error) { return c.View(ctx, "https://example.com/v") },
				func() (CallbackResult, error) {
					return c.Event(ctx, ClientEvent{Event: "LOCATION", Latitude: 23.1, Longitude: 113.3, Precision: 119.4})
				},
				func() (CallbackResult, error) { return c.Unsubscribe(ctx) },
			}
			var results []CallbackResult
			for i, step := range steps {
				res, err := step()
				if err != nil || res.Status != CallbackSuccess || res.Attempts != 1 {
					t.Fatalf("step %d: %+v, %v", i, res, err)
				}
				results = append(results, res)
			}
			got := relay.received()
			if len(got) != len(steps) {
				t.Fatalf("relay got %d callbacks, want %d", len(got), len(steps))
			}
			for i, r := range got {
				m := r.msg
				if string(m.ToUserName) != acct.OriginalID || string(m.FromUserName) != c.OpenID || r.query.Get("openid") != c.OpenID {
					t.Errorf("callback %d: to %q from %q", i, m.ToUserName, m.FromUserName)
				}
				if m.CreateTime != e.clock.Now().Unix() {
					t.Errorf("callback %d: CreateTime %d", i, m.CreateTime)
				}
				if id := results[i].MsgID; id != "" && strconv.FormatInt(m.MsgID, 10) != id {
					t.Errorf("callback %d: MsgId %d, result says %s", i, m.MsgID, id)
				}
				switch mode {
				case ModeSafe:
					if bytes.Contains(r.body, []byte("FromUserName")) {
						t.Errorf("safe mode body carries plaintext: %s", r.body)
					}
				case ModeCompatible:
					if !bytes.Contains(r.body, []byte("<Encrypt>")) || !bytes.Contains(r.body, []byte("<FromUserName>")) {
						t.Errorf("compatible mode body: %s", r.body)
					}
				case ModePlain:
					if r.query.Get("encrypt_type") != "" || r.query.Get("msg_signature") != "" {
						t.Errorf("plain mode query: %v", r.query)
					}
				}
			}
			tok := e.token(acct)
			fetch := func(id string) ([]byte, string) {
				resp, err := http.Get(e.srv.URL + pathMediaGet + "?" + url.Values{"access_token": {tok}, "media_id": {id}}.Encode())
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return b, resp.Header.Get("Content-Type")
			}
			check := func(i int, want func(m message.MixMessage) bool) {
				t.Helper()
				if !want(got[i].msg) {
					t.Errorf("callback %d (%s): %+v", i, got[i].msg.MsgType, got[i].msg)
				}
			}
			check(0, func(m message.MixMessage) bool { return m.Event == message.EventSubscribe && m.EventKey == "" })
			check(1, func(m message.MixMessage) bool { return m.Content == "你好 <b>&amp; ]]> end" })
			check(2, func(m message.MixMessage) bool {
				b, ct := fetch(m.MediaID)
				return ct == "image/png" && bytes.HasPrefix(b, []byte("\x89PNG")) && strings.HasPrefix(m.PicURL, e.srv.URL+"/sim/media/")
			})
			check(3, func(m message.MixMessage) bool {
				b, ct := fetch(m.MediaID)
				return m.Format == "amr" && m.Recognition == "语音" && ct == "audio/amr" && bytes.HasPrefix(b, []byte("#!AMR\n"))
			})
			check(4, func(m message.MixMessage) bool {
				_, ct := fetch(m.ThumbMediaID)
				return m.MsgType == "video" && m.MediaID != "" && ct == "image/jpeg"
			})
			check(5, func(m message.MixMessage) bool { return m.MsgType == "shortvideo" && m.ThumbMediaID != "" })
			check(6, func(m message.MixMessage) bool {
				return m.LocationX == 23.134521 && m.LocationY == 113.358803 && m.Scale == 20 && m.Label == "广州"
			})
			check(7, func(m message.MixMessage) bool { return m.Title == "Title" && m.URL == "https://example.com/a" })
			check(8, func(m message.MixMessage) bool {
				return m.MsgType == "file" && m.Title == "report.pdf" && bytes.Contains(got[8].plain, []byte("<FileTotalLen>8</FileTotalLen>"))
			})
			check(9, func(m message.MixMessage) bool { return m.Event == message.EventClick && m.EventKey == "MENU_1" })
			check(10, func(m message.MixMessage) bool {
				return m.Event == message.EventView && m.EventKey == "https://example.com/v"
			})
			check(11, func(m message.MixMessage) bool { return m.Event == message.EventLocation && m.Latitude == "23.100000" })
			check(12, func(m message.MixMessage) bool { return m.Event == message.EventUnsubscribe })
		})
	}
}

// TestCallbackRawControlCharacters: WeChat passes XML-illegal characters
// through inside CDATA; the relay must cope, so the simulator sends them.
func TestCallbackRawControlCharacters(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	acct, c := e.ruleAccount(Account{})
	_ = acct
	res, err := c.SendText(context.Background(), "a\x02b\x08c")
	if err != nil || res.Status != CallbackSuccess {
		t.Fatalf("%+v, %v", res, err)
	}
	log, _ := c.Log(0)
	if !strings.Contains(log[len(log)-1].Raw, "<![CDATA[a\x02b\x08c]]>") {
		t.Errorf("raw XML = %q", log[len(log)-1].Raw)
	}
}

func TestCallbackRetries(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{CallbackTimeout: 150 * time.Millisecond})
	acct, c := e.ruleAccount(Account{Mode: ModeSafe})

	// Never answered in time: three tries, same MsgId, timeout.
	slow := newRelay(t, e.sim, acct, func(int, received) (int, []byte, time.Duration) {
		return http.StatusOK, []byte("success"), time.Second
	})
	start := time.Now()
	res, err := c.SendText(context.Background(), "anyone?")
	if !errors.Is(err, ErrCallbackTimeout) || res.Status != CallbackTimeout || res.Attempts != 3 || len(res.TryErrors) != 3 {
		t.Fatalf("unanswered: %+v, %v", res, err)
	}
	if el := time.Since(start); el < 450*time.Millisecond || el > 3*time.Second {
		t.Errorf("three 150 ms tries took %v", el)
	}
	got := slow.received()
	if len(got) != 3 {
		t.Fatalf("relay saw %d tries, want 3", len(got))
	}
	for _, r := range got {
		if strconv.FormatInt(r.msg.MsgID, 10) != res.MsgID {
			t.Errorf("retry MsgId %d, want %s", r.msg.MsgID, res.MsgID)
		}
	}
	if got[0].query.Get("nonce") == got[1].query.Get("nonce") {
		t.Error("retries reuse the nonce")
	}

	// Slow once, then prompt: two tries, success.
	newRelay(t, e.sim, acct, func(n int, _ received) (int, []byte, time.Duration) {
		if n == 1 {
			return http.StatusOK, []byte("success"), time.Second
		}
		return http.StatusOK, nil, 0
	})
	res, err = c.SendText(context.Background(), "again")
	if err != nil || res.Status != CallbackSuccess || res.Attempts != 2 {
		t.Fatalf("slow once: %+v, %v", res, err)
	}

	// Unreachable: three tries, error.
	if err := e.sim.SetCallbackURL(acct.AppID, "http://127.0.0.1:1/closed"); err != nil {
		t.Fatal(err)
	}
	res, err = c.SendText(context.Background(), "hello?")
	if !errors.Is(err, ErrUnreachable) || res.Status != CallbackError || res.Attempts != 3 {
		t.Fatalf("unreachable: %+v, %v", res, err)
	}
	// The caller's context bounds the whole delivery.
	newRelay(t, e.sim, acct, func(int, received) (int, []byte, time.Duration) { return 200, nil, time.Second })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.SendText(ctx, "cancelled"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("cancelled delivery: %v", err)
	}

	// Every outcome is in the callback log.
	if n := len(e.sim.CallbackLog()); n != 5 {
		t.Errorf("callback log has %d entries, want 5 (subscribe and four texts)", n)
	}
}

func TestCallbackAnswers(t *testing.T) {
	t.Parallel()
	type answerFn func(f *fakeRelay, rec received) []byte
	cases := []struct {
		name   string
		mode   Mode
		status int
		answer answerFn
		want   CallbackStatus
		reply  bool // a reply lands on the phone
	}{
		{"success", ModePlain, 200, func(*fakeRelay, received) []byte { return []byte("success") }, CallbackSuccess, false},
		{"empty", ModeSafe, 200, func(*fakeRelay, received) []byte { return nil }, CallbackSuccess, false},
		{"success with spaces", ModeSafe, 200, func(*fakeRelay, received) []byte { return []byte(" success\n") }, CallbackSuccess, false},
		{"garbage", ModePlain, 200, func(*fakeRelay, received) []byte { return []byte("OK!") }, CallbackError, false},
		{"HTTP 500", ModePlain, 500, func(*fakeRelay, received) []byte { return []byte("success") }, CallbackError, false},
		{"plain reply", ModePlain, 200, func(f *fakeRelay, r received) []byte { return f.textReply(r, "hi there") }, CallbackReply, true},
		{"safe reply", ModeSafe, 200, func(f *fakeRelay, r received) []byte { return f.textReply(r, "hi there") }, CallbackReply, true},
		{"compatible plain reply", ModeCompatible, 200, func(f *fakeRelay, r received) []byte {
			r.query.Del("encrypt_type")
			return f.textReply(r, "hi there")
		}, CallbackReply, true},
		{"plaintext reply in safe mode", ModeSafe, 200, func(f *fakeRelay, r received) []byte {
			r.query.Del("encrypt_type")
			return f.textReply(r, "hi")
		}, CallbackError, false},
		{"bad reply signature", ModeSafe, 200, func(f *fakeRelay, r received) []byte {
			plain := newXML().cdata("ToUserName", string(r.msg.FromUserName)).cdata("FromUserName", string(r.msg.ToUserName)).
				int("CreateTime", 1).cdata("MsgType", "text").cdata("Content", "x").done()
			return f.encrypt(plain, false)
		}, CallbackError, false},
		{"empty encrypted reply", ModeSafe, 200, func(f *fakeRelay, r received) []byte { return f.encrypt(nil, true) }, CallbackError, false},
		{"reply to the wrong user", ModePlain, 200, func(f *fakeRelay, r received) []byte {
			return newXML().cdata("ToUserName", "oSomeoneElse").cdata("FromUserName", string(r.msg.ToUserName)).
				int("CreateTime", 1).cdata("MsgType", "text").cdata("Content", "x").done()
		}, CallbackError, false},
		{"reply with unknown media", ModePlain, 200, func(f *fakeRelay, r received) []byte {
			return []byte("<xml><ToUserName><![CDATA[" + string(r.msg.FromUserName) + "]]></ToUserName><FromUserName><![CDATA[" +
				string(r.msg.ToUserName) + "]]></FromUserName><CreateTime>1</CreateTime><MsgType><![CDATA[image]]></MsgType>" +
				"<Image><MediaId><![CDATA[nope]]></MediaId></Image></xml>")
		}, CallbackError, false},
		{"transfer to customer service", ModePlain, 200, func(f *fakeRelay, r received) []byte {
			return newXML().cdata("ToUserName", string(r.msg.FromUserName)).cdata("FromUserName", string(r.msg.ToUserName)).
				int("CreateTime", 1).cdata("MsgType", "transfer_customer_service").done()
		}, CallbackReply, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, Config{})
			acct, c := e.ruleAccount(Account{Mode: tc.mode})
			var relay *fakeRelay
			relay = newRelay(t, e.sim, acct, func(_ int, rec received) (int, []byte, time.Duration) {
				return tc.status, tc.answer(relay, rec), 0
			})
			res, err := c.SendText(context.Background(), "question")
			if res.Status != tc.want || res.Attempts != 1 {
				t.Fatalf("status %s after %d tries (%v), want %s after 1", res.Status, res.Attempts, err, tc.want)
			}
			if (err == nil) != (tc.want == CallbackSuccess || tc.want == CallbackReply) {
				t.Errorf("err = %v", err)
			}
			if err != nil && !errors.Is(err, ErrBadAnswer) {
				t.Errorf("err = %v, want ErrBadAnswer", err)
			}
			got, _ := c.Delivered()
			if tc.reply != (len(got) == 1) {
				t.Fatalf("delivered = %+v", got)
			}
			if tc.reply && (got[0].Source != SourceReply || got[0].Content != "hi there") {
				t.Errorf("reply logged as %+v", got[0])
			}
		})
	}
}

func TestCallbackMsgIDsUnique(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	_, c := e.ruleAccount(Account{})
	seen := map[string]bool{}
	var last uint64
	for i := 0; i < 200; i++ {
		res, err := c.SendText(context.Background(), "n")
		if err != nil {
			t.Fatal(err)
		}
		id, err := strconv.ParseUint(res.MsgID, 10, 64)
		if err != nil || seen[res.MsgID] || id <= last || len(res.MsgID) != 17 {
			t.Fatalf("MsgId %q after %d", res.MsgID, last)
		}
		seen[res.MsgID], last = true, id
	}
}

// TestCallbackVectors pins the envelope to Tencent's published test
// vector through the same primitive the simulator uses.
func TestCallbackVectors(t *testing.T) {
	t.Parallel()
	enc, err := util.EncryptMsg([]byte("aaaabbbbccccdddd"), []byte("我是中文abcd123"), "wxb11529c136998cb6", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG")
	if err != nil {
		t.Fatal(err)
	}
	const want = "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg=="
	if string(enc) != want {
		t.Errorf("Encrypt = %s, want %s", enc, want)
	}
	if sig := util.Signature("pamtest", "1409304348", "xxxxxx", want); sig != "82c962d39941aa48552f90ef55aa323dc620cc10" {
		t.Errorf("msg_signature = %s", sig)
	}
}

func TestCallbackNoURL(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	acct, _ := e.sim.AddAccount(Account{})
	c, _ := e.sim.NewClient(acct.AppID)
	res, err := c.Subscribe(context.Background())
	if !errors.Is(err, ErrNoCallbackURL) || res.Status != CallbackError {
		t.Errorf("no callback URL: %+v, %v", res, err)
	}
	if info, _ := c.Info(); !info.Subscribed {
		t.Error("the subscribe did not happen")
	}
	if _, err := c.Subscribe(context.Background()); !errors.Is(err, ErrAlreadyFollowing) {
		t.Errorf("second subscribe: %v", err)
	}
}

func TestVerifyCallbackURL(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	acct, _ := e.ruleAccount(Account{Mode: ModeSafe})
	if err := e.sim.VerifyCallbackURL(context.Background(), acct.AppID); err != nil {
		t.Errorf("verify against a good relay: %v", err)
	}
	newRelay(t, e.sim, acct, nil)
	bad := httptestServer(t, func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("success")) })
	if err := e.sim.SetCallbackURL(acct.AppID, bad); err != nil {
		t.Fatal(err)
	}
	if err := e.sim.VerifyCallbackURL(context.Background(), acct.AppID); !errors.Is(err, ErrBadAnswer) {
		t.Errorf("verify against a relay that ignores echostr: %v", err)
	}
}

func httptestServer(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}
