package e2e

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/gorilla/websocket"
	"github.com/silenceper/wechat/v2/util"

	"github.com/wechat-relay/wechat-relay/configs"
	"github.com/wechat-relay/wechat-relay/console"
	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// End-to-end tests of the inbound path: signed WeChat callbacks into a
// relay built exactly as `serve` builds it, on the real ClickHouse and
// Redis, with employees on real WebSockets.

const (
	e2eAppID  = "wxe2e0000000000001"
	e2eToken  = "e2etoken"
	e2eAESKey = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
	aliceTok  = "alice-e2e-token-000001"
	supTok    = "sup-e2e-token-00000001"
)

// ownConfig is e2eConfig against the shared ClickHouse and Redis, with
// a database, a Redis key prefix and a data directory of the test's own;
// ch and db are the ClickHouse server's address and that database.
func ownConfig(t testing.TB) (cfg *configs.Config, ch, db string) {
	t.Helper()
	ch, db = testenv.ClickHouseAddr(t), testenv.UniqueName("e2e")
	cfg = e2eConfig(t, ch, testenv.RedisAddr(t), db, testenv.UniqueName("wr")+":", t.TempDir())
	return cfg, ch, db
}

// e2eConfig is a relay on the given ClickHouse and Redis with one safe-mode
// account whose every client goes to alice.
func e2eConfig(t testing.TB, chAddr, redisAddr, db, prefix, dataDir string) *configs.Config {
	t.Helper()
	c := &configs.Config{}
	c.DataDir = dataDir
	c.Storage.ClickHouse.Addr = chAddr
	c.Storage.ClickHouse.Database = db
	c.Storage.Redis.Addr = redisAddr
	c.Storage.Redis.Prefix = prefix
	c.WeChat.Accounts = []configs.AccountConfig{{ID: "acme", AppID: e2eAppID, Mode: "safe", AppSecret: "secret", Token: e2eToken, EncodingAESKey: e2eAESKey}}
	c.Console.Employees = []configs.EmployeeConfig{
		{ID: "alice", Role: console.RoleAgent, Accounts: []string{"acme"}, Token: aliceTok},
		{ID: "sup", Role: console.RoleSupervisor, AllTeams: true, Token: supTok},
	}
	c.Pipeline = relay.Config{Linger: 5 * time.Millisecond, RetryMin: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond, DrainTimeout: time.Second}
	c.WeChat.APIBaseURL = simURL
	c.Bot.Disabled = true // tests that want the bot's messages turn it on
	c.Defaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

// callback is what WeChat would POST for one message in safe mode.
type callback struct {
	path, query string
	body        []byte
}

func textXML(openid, msgID, content string, created time.Time) string {
	return fmt.Sprintf(`<xml><ToUserName><![CDATA[gh_e2e]]></ToUserName><FromUserName><![CDATA[%s]]></FromUserName><CreateTime>%d</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[%s]]></Content><MsgId>%s</MsgId></xml>`,
		openid, created.Unix(), content, msgID)
}

func safeCallback(t testing.TB, account, plain string, ts time.Time) callback {
	t.Helper()
	random := make([]byte, 16)
	rand.Read(random)
	enc, err := util.EncryptMsg(random, []byte(plain), e2eAppID, e2eAESKey)
	if err != nil {
		t.Fatal(err)
	}
	timestamp, nonce := strconv.FormatInt(ts.Unix(), 10), fmt.Sprint(ts.UnixNano()%1e9)
	q := url.Values{
		"signature":     {util.Signature(e2eToken, timestamp, nonce)},
		"timestamp":     {timestamp},
		"nonce":         {nonce},
		"openid":        {"x"},
		"encrypt_type":  {"aes"},
		"msg_signature": {util.Signature(e2eToken, timestamp, nonce, string(enc))},
	}
	body := fmt.Sprintf(`<xml><ToUserName><![CDATA[gh_e2e]]></ToUserName><Encrypt><![CDATA[%s]]></Encrypt></xml>`, enc)
	return callback{path: "/wechat/" + account, query: q.Encode(), body: []byte(body)}
}

// post delivers cb and returns the status and body of the relay's answer.
func (r *testRelay) post(t *testing.T, cb callback) (int, string) {
	t.Helper()
	resp, err := http.Post(r.sys.URL()+cb.path+"?"+cb.query, "text/xml", strings.NewReader(string(cb.body)))
	if err != nil {
		t.Fatalf("posting callback: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// socket is a console WebSocket read by one goroutine, so tests can wait
// for a frame with a timeout (a gorilla connection cannot be read again
// after a read deadline expired).
type socket struct {
	ws     *websocket.Conn
	frames chan console.Frame
	err    error // why reading ended; read it once frames is closed
}

func (r *testRelay) dial(t *testing.T, token string) *socket {
	t.Helper()
	return r.dialWith(t, http.Header{"Authorization": {"Bearer " + token}})
}

// dialWith opens a console socket with the credential in hdr (a bearer
// token, or the session cookie).
func (r *testRelay) dialWith(t *testing.T, hdr http.Header) *socket {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(r.sys.URL(), "http")+"/api/ws", hdr)
	if err != nil {
		t.Fatalf("dialing console socket: %v (%v)", err, resp)
	}
	s := &socket{ws: ws, frames: make(chan console.Frame, 100)}
	go func() {
		defer close(s.frames)
		for {
			var f console.Frame
			if err := ws.ReadJSON(&f); err != nil {
				s.err = err
				return
			}
			s.frames <- f
		}
	}()
	t.Cleanup(func() { ws.Close() })
	time.Sleep(50 * time.Millisecond) // registered with the hub before anything is published
	return s
}

func (s *socket) send(t *testing.T, f console.Frame) {
	t.Helper()
	if err := s.ws.WriteJSON(f); err != nil {
		t.Fatalf("sending frame: %v", err)
	}
}

// readFrame waits up to within for the next frame; false if none came.
func readFrame(t *testing.T, s *socket, within time.Duration) (console.Frame, bool) {
	t.Helper()
	select {
	case f, ok := <-s.frames:
		if !ok {
			t.Fatal("console socket closed")
		}
		return f, true
	case <-time.After(within):
		return console.Frame{}, false
	}
}

// rowCount counts the archived rows of a message id as stored, without
// collapsing duplicates: "exactly once" means one physical row here.
func rowCount(t *testing.T, chAddr, db, id string) int {
	t.Helper()
	return int(countRows(t, chAddr, db, "SELECT count() FROM messages WHERE id = ?", id))
}

// countRows runs a count query against the archive database directly.
func countRows(t *testing.T, chAddr, db, query string, args ...any) uint64 {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{chAddr}, Auth: clickhouse.Auth{Database: db}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var n uint64
	if err := conn.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func msgID(openid, wxID string) string { return relay.InboundID("acme", openid, wxID, 0, "", "") }

func TestE2ECallbackArchivedThenDelivered(t *testing.T) {
	cfg, ch, db := ownConfig(t)
	r := startRelay(t, cfg)
	alice, sup := r.dial(t, aliceTok), r.dial(t, supTok)

	now := time.Now()
	status, body := r.post(t, safeCallback(t, "acme", textXML("oClient1", "10001", "你好，我想咨询基金", now), now))
	if status != 200 || body != "success" {
		t.Fatalf("callback answered %d %q", status, body)
	}
	for name, ws := range map[string]*socket{"alice": alice, "supervisor": sup} {
		f, ok := readFrame(t, ws, 10*time.Second)
		if !ok || f.Type != console.FrameMessage || f.Message.Text != "你好，我想咨询基金" || f.Seq != 1 || f.Message.Employee != "alice" {
			t.Fatalf("%s got %+v", name, f)
		}
	}
	if n := rowCount(t, ch, db, msgID("oClient1", "10001")); n != 1 {
		t.Fatalf("%d rows archived", n)
	}
}

func TestE2ERetriesArchivedAndDeliveredOnce(t *testing.T) {
	cfg, ch, db := ownConfig(t)
	r := startRelay(t, cfg)
	alice := r.dial(t, aliceTok)

	now := time.Now()
	plain := textXML("oClient2", "20002", "retry me", now)
	// WeChat's three tries, one after the other, then three at once.
	for i := range 3 {
		if status, _ := r.post(t, safeCallback(t, "acme", plain, now.Add(time.Duration(i)*time.Second))); status != 200 {
			t.Fatalf("try %d answered %d", i, status)
		}
	}
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Post(r.sys.URL()+"/wechat/acme?"+safeCallback(t, "acme", plain, now).query, "text/xml",
				strings.NewReader(string(safeCallback(t, "acme", plain, now).body)))
			if err == nil {
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	f, ok := readFrame(t, alice, 10*time.Second)
	if !ok || f.Message.WxMsgID != "20002" {
		t.Fatalf("first frame %+v", f)
	}
	if f, ok := readFrame(t, alice, 500*time.Millisecond); ok {
		t.Fatalf("second frame for a retried callback: %+v", f)
	}
	if n := rowCount(t, ch, db, msgID("oClient2", "20002")); n != 1 {
		t.Fatalf("%d rows archived for one message", n)
	}
}

func TestE2EBadInputRefusedNothingArchived(t *testing.T) {
	cfg, ch, db := ownConfig(t)
	r := startRelay(t, cfg)
	sup := r.dial(t, supTok)
	now := time.Now()

	good := safeCallback(t, "acme", textXML("oBad", "30001", "ok", now), now)
	badSig := good
	badSig.query = strings.Replace(good.query, "msg_signature=", "msg_signature=0", 1)
	stale := safeCallback(t, "acme", textXML("oBad", "30002", "old", now), now.Add(-time.Hour))
	unknown := good
	unknown.path = "/wechat/nosuch"
	huge := safeCallback(t, "acme", textXML("oBad", "30003", strings.Repeat("长", 200_000), now), now)
	malformed := safeCallback(t, "acme", "<xml><MsgType>text</MsgType><Content>unclosed", now)
	tests := []struct {
		name   string
		cb     callback
		status int
	}{
		{"bad signature", badSig, http.StatusUnauthorized},
		{"stale timestamp", stale, http.StatusForbidden},
		{"unknown account", unknown, http.StatusNotFound},
		{"oversized body", huge, http.StatusRequestEntityTooLarge},
		{"malformed XML", malformed, http.StatusBadRequest},
	}
	for _, tt := range tests {
		status, body := r.post(t, tt.cb)
		if status != tt.status {
			t.Errorf("%s: answered %d %q, want %d", tt.name, status, body, tt.status)
		}
		if strings.TrimSpace(body) == "" || body == "success" {
			t.Errorf("%s: refusal without an explanation: %q", tt.name, body)
		}
	}
	// A good callback after them: once it is delivered, the pipeline has
	// had every chance to archive the bad ones too.
	if status, _ := r.post(t, good); status != 200 {
		t.Fatalf("good callback answered %d", status)
	}
	f, ok := readFrame(t, sup, 10*time.Second)
	if !ok || f.Message.WxMsgID != "30001" {
		t.Fatalf("frame %+v", f)
	}
	if f, ok := readFrame(t, sup, 300*time.Millisecond); ok {
		t.Fatalf("a refused callback was delivered: %+v", f)
	}
	for _, id := range []string{"30002", "30003"} {
		if n := rowCount(t, ch, db, msgID("oBad", id)); n != 0 {
			t.Errorf("refused message %s archived (%d rows)", id, n)
		}
	}
}
