package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/configs"
	"github.com/wechat-relay/wechat-relay/console"
	"github.com/wechat-relay/wechat-relay/gateway/wxsim"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// simAccount creates a simulated Official Account in safe mode and a
// relay configuration for it.
func simAccount(t *testing.T, cfg *configs.Config) wxsim.Account {
	t.Helper()
	a, err := testSim.AddAccount(wxsim.Account{Mode: wxsim.ModeSafe})
	if err != nil {
		t.Fatal(err)
	}
	acct := &cfg.WeChat.Accounts[0]
	acct.AppID, acct.AppSecret, acct.Token, acct.EncodingAESKey = a.AppID, a.AppSecret, a.Token, a.EncodingAESKey
	return a
}

// api calls the console's API as token (none when empty) with body as
// JSON (none when nil), as the User-Agent testUA (the audit trail records
// it), and returns the status and the decoded answer.
func (r *testRelay) api(t *testing.T, method, path, token string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, r.sys.URL()+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", testUA)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// waitFrame reads frames until one satisfies ok.
func waitFrame(t *testing.T, s *socket, what string, ok func(console.Frame) bool) console.Frame {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		f, got := readFrame(t, s, time.Until(deadline))
		if got && ok(f) {
			return f
		}
	}
	t.Fatalf("no %s frame", what)
	return console.Frame{}
}

// A client writes on WeChat; the employee sees it, replies; the reply is
// archived, reaches the client's phone once, and the employee sees it
// delivered. Then the window rules, enforced by WeChat, are refused by
// the relay before WeChat is asked.
func TestE2EConversationBothWays(t *testing.T) {
	cfg, ch, db := ownConfig(t)
	acct := simAccount(t, cfg)
	r := startRelay(t, cfg)
	if err := testSim.SetCallbackURL(acct.AppID, r.sys.URL()+"/wechat/acme"); err != nil {
		t.Fatal(err)
	}
	alice := r.dial(t, aliceTok)
	ctx := context.Background()

	client, err := testSim.NewClient(acct.AppID)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := client.Subscribe(ctx); err != nil {
		t.Fatalf("subscribe: %v (%+v)", err, res)
	}
	if res, err := client.SendText(ctx, "请问我的保单什么时候到期？"); err != nil {
		t.Fatalf("client message: %v (%+v)", err, res)
	}
	conv := "acme:" + client.OpenID
	in := waitFrame(t, alice, "inbound text", func(f console.Frame) bool {
		return f.Type == console.FrameMessage && f.Message.Kind == "text"
	})
	if in.Conv != conv || in.Message.Text != "请问我的保单什么时候到期？" {
		t.Fatalf("alice got %+v", in)
	}

	status, body := r.api(t, "GET", "/api/conversations/"+conv+"/window", aliceTok, nil)
	if status != 200 || body["open"] != true || body["sends_left"] != float64(5) {
		t.Fatalf("window: %d %v", status, body)
	}
	send := map[string]any{"key": "reply-1", "kind": "text", "text": "您好，您的保单将于2027年3月到期。"}
	status, body = r.api(t, "POST", "/api/conversations/"+conv+"/messages", aliceTok, send)
	if status != http.StatusAccepted {
		t.Fatalf("send: %d %v", status, body)
	}
	msgID := body["message_id"].(string)
	out := waitFrame(t, alice, "outbound message", func(f console.Frame) bool {
		return f.Type == console.FrameMessage && f.Message.ID == msgID
	})
	if out.Seq <= in.Seq || out.Message.Direction != "out" {
		t.Fatalf("outbound frame %+v after inbound seq %d", out, in.Seq)
	}
	waitFrame(t, alice, "sent status", func(f console.Frame) bool {
		return f.Type == console.FrameStatus && f.Status.MessageID == msgID && f.Status.State == "sent"
	})
	delivered, _ := client.Delivered()
	if len(delivered) != 1 || delivered[0].Content != "您好，您的保单将于2027年3月到期。" {
		t.Fatalf("client's phone shows %+v", delivered)
	}
	// The same key again: nothing new reaches the phone.
	status, body = r.api(t, "POST", "/api/conversations/"+conv+"/messages", aliceTok, send)
	if status != http.StatusOK || body["duplicate"] != true || body["state"] != "sent" {
		t.Fatalf("repeated key: %d %v", status, body)
	}
	if n := rowCount(t, ch, db, msgID); n != 1 {
		t.Fatalf("reply archived %d times", n)
	}

	// Four more fit in the quota; the sixth is refused by the relay.
	for _, k := range []string{"r2", "r3", "r4", "r5"} {
		if status, body := r.api(t, "POST", "/api/conversations/"+conv+"/messages", aliceTok, map[string]any{"key": k, "kind": "text", "text": k}); status != http.StatusAccepted {
			t.Fatalf("send %s: %d %v", k, status, body)
		}
	}
	_, wbody := r.api(t, "GET", "/api/conversations/"+conv+"/window", aliceTok, nil)
	t.Logf("window before the sixth send: %v", wbody)
	status, body = r.api(t, "POST", "/api/conversations/"+conv+"/messages", aliceTok, map[string]any{"key": "r6", "kind": "text", "text": "too many"})
	if status != http.StatusConflict || body["errcode"] != float64(45047) {
		t.Fatalf("sixth send: %d %v", status, body)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		delivered, _ = client.Delivered()
		if len(delivered) == 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("phone shows %d messages, want 5", len(delivered))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WeChat busy, then hung: the first send is retried and delivered once;
// the hung one is recorded as unknown and never resent.
func TestE2EWeChatBusyAndHung(t *testing.T) {
	ch, rd := testenv.ClickHouseAddr(t), testenv.RedisAddr(t)
	cfg := e2eConfig(t, ch, rd, testenv.UniqueName("e2e"), testenv.UniqueName("wr")+":", t.TempDir())
	cfg.Outbox.SendTimeout = 500 * time.Millisecond
	cfg.Outbox.RetryMin = 20 * time.Millisecond
	acct := simAccount(t, cfg)
	r := startRelay(t, cfg)
	testSim.SetCallbackURL(acct.AppID, r.sys.URL()+"/wechat/acme")
	alice := r.dial(t, aliceTok)
	ctx := context.Background()
	client, _ := testSim.NewClient(acct.AppID)
	client.Subscribe(ctx)
	client.SendText(ctx, "hello")
	conv := "acme:" + client.OpenID
	waitFrame(t, alice, "inbound", func(f console.Frame) bool { return f.Type == console.FrameMessage })

	// Busy twice: -1 is a definite refusal, so the relay retries.
	if err := testSim.SetFault("/cgi-bin/message/custom/send", wxsim.Fault{ErrCode: -1, ErrorRate: 1, Count: 2}); err != nil {
		t.Fatal(err)
	}
	_, body := r.api(t, "POST", "/api/conversations/"+conv+"/messages", aliceTok, map[string]any{"key": "busy", "kind": "text", "text": "after busy"})
	busyID := body["message_id"].(string)
	waitFrame(t, alice, "sent after busy", func(f console.Frame) bool {
		return f.Type == console.FrameStatus && f.Status.MessageID == busyID && f.Status.State == "sent"
	})

	// Hung: the request reached WeChat, no answer. Unknown, not resent.
	testSim.SetFault("/cgi-bin/message/custom/send", wxsim.Fault{Hang: true, ErrorRate: 1, Count: 1})
	_, body = r.api(t, "POST", "/api/conversations/"+conv+"/messages", aliceTok, map[string]any{"key": "hung", "kind": "text", "text": "into the void"})
	hungID := body["message_id"].(string)
	f := waitFrame(t, alice, "unknown", func(f console.Frame) bool {
		return f.Type == console.FrameStatus && f.Status.MessageID == hungID && f.Status.State != "sending"
	})
	if f.Status.State != "unknown" || f.Status.Reason == "" {
		t.Fatalf("hung send settled as %+v", f.Status)
	}
	time.Sleep(300 * time.Millisecond)
	delivered, _ := client.Delivered()
	if len(delivered) != 1 || delivered[0].Content != "after busy" {
		t.Fatalf("phone shows %+v; want only the message sent after busy, once", delivered)
	}
}

// The relay's own messages: a client who follows the account is told the
// conversation is recorded and welcomed, once each, archived like every
// message.
func TestE2EBotGreetsOnce(t *testing.T) {
	cfg, ch, db := ownConfig(t)
	cfg.Bot.Disabled = false
	cfg.Bot.Open, cfg.Bot.Close = "00:00", "00:00" // always open
	acct := simAccount(t, cfg)
	r := startRelay(t, cfg)
	testSim.SetCallbackURL(acct.AppID, r.sys.URL()+"/wechat/acme")
	client, _ := testSim.NewClient(acct.AppID)
	if _, err := client.Subscribe(context.Background()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	var got []string
	for time.Now().Before(deadline) {
		delivered, _ := client.Delivered()
		got = got[:0]
		for _, d := range delivered {
			got = append(got, d.Content)
		}
		if len(got) >= 2 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(got) != 2 || got[0] != "温馨提示：根据监管要求，本对话内容将被完整记录并存档。" || got[1] != "感谢关注！请直接留言，您的专属顾问会尽快回复您。" {
		t.Fatalf("phone shows %q", got)
	}
	time.Sleep(200 * time.Millisecond)
	if delivered, _ := client.Delivered(); len(delivered) != 2 {
		t.Fatalf("%d messages on the phone, want the two greetings once", len(delivered))
	}
	if n := rowCount(t, ch, db, "out:acme:"+client.OpenID+":bot-notice"); n != 1 {
		t.Fatalf("compliance notice archived %d times", n)
	}
}

// A client's picture and voice note: the messages are archived at once,
// the media fetched from WeChat's media/get right after and archived
// content-addressed, linked to their messages.
func TestE2EMediaFetchedAndArchived(t *testing.T) {
	cfg, ch, db := ownConfig(t)
	acct := simAccount(t, cfg)
	r := startRelay(t, cfg)
	testSim.SetCallbackURL(acct.AppID, r.sys.URL()+"/wechat/acme")

	client, _ := testSim.NewClient(acct.AppID)
	client.Subscribe(context.Background())
	img, err := client.SendImage(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	voice, err := client.SendVoice(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, wx := range []string{img.MsgID, voice.MsgID} {
		id := msgID(client.OpenID, wx)
		var n uint64
		deadline := time.Now().Add(20 * time.Second)
		for n == 0 && time.Now().Before(deadline) {
			n = countRows(t, ch, db, "SELECT count() FROM media_links WHERE message_id = ?", id)
			time.Sleep(50 * time.Millisecond)
		}
		if n == 0 {
			t.Fatalf("media of %s never archived", id)
		}
		if got := countRows(t, ch, db, "SELECT count() FROM media WHERE sha256 IN (SELECT sha256 FROM media_links WHERE message_id = ?) AND size > 0", id); got != 1 {
			t.Fatalf("media content of %s: %d rows", id, got)
		}
	}
	missing, err := r.sys.Archive().MissingMedia(context.Background(), time.Now().Add(-time.Hour), 10)
	if err != nil || len(missing) != 0 {
		t.Fatalf("still missing: %v %v", missing, err)
	}
}
