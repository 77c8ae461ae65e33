package wxsim

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// adminClient drives a simulator over its admin API.
type adminClient struct {
	t    *testing.T
	base string
}

func (a adminClient) do(method, path string, body any, out any) int {
	a.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			a.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, a.base+path, rd)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, out); err != nil {
			a.t.Fatalf("%s %s: %s: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode
}

func TestAdminAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	adm := adminClient{t: t, base: e.srv.URL}

	var acct Account
	if st := adm.do(http.MethodPost, "/sim/api/accounts", Account{Mode: ModeSafe, Templates: []string{"T"}}, &acct); st != 200 || acct.AppID == "" || len(acct.EncodingAESKey) != 43 {
		t.Fatalf("add account: %d %+v", st, acct)
	}
	if st := adm.do(http.MethodPost, "/sim/api/accounts", Account{AppID: acct.AppID}, nil); st != http.StatusConflict {
		t.Errorf("duplicate account: %d", st)
	}
	if st := adm.do(http.MethodPost, "/sim/api/accounts", Account{Mode: "loud"}, nil); st != http.StatusBadRequest {
		t.Errorf("bad mode: %d", st)
	}
	relay := newRelay(t, e.sim, acct, func(_ int, rec received) (int, []byte, time.Duration) {
		return 200, nil, 0
	})
	var patched Account
	adm.do(http.MethodPatch, "/sim/api/accounts/"+acct.AppID, map[string]any{"callback_url": relay.srv.URL + "/cb"}, &patched)
	if patched.CallbackURL != relay.srv.URL+"/cb" || patched.Mode != ModeSafe {
		t.Errorf("patched = %+v", patched)
	}

	var info ClientInfo
	adm.do(http.MethodPost, "/sim/api/accounts/"+acct.AppID+"/clients", nil, &info)
	if len(info.OpenID) != 28 || info.Subscribed {
		t.Fatalf("new client = %+v", info)
	}
	cl := "/sim/api/clients/" + info.OpenID
	if st := adm.do(http.MethodPost, cl+"/messages", ClientMessage{MsgType: "text", Content: "x"}, nil); st != http.StatusConflict {
		t.Errorf("message from a non-follower: %d", st)
	}
	var q QRInfo
	adm.do(http.MethodPost, "/sim/api/accounts/"+acct.AppID+"/qrcodes", map[string]any{
		"action_name": "QR_LIMIT_STR_SCENE", "action_info": map[string]any{"scene": map[string]any{"scene_str": "rm-7"}}}, &q)
	var qs []QRInfo
	adm.do(http.MethodGet, "/sim/api/accounts/"+acct.AppID+"/qrcodes", nil, &qs)
	if len(qs) != 1 || qs[0].Ticket != q.Ticket {
		t.Errorf("qrcodes = %+v", qs)
	}
	var resolved QRInfo
	adm.do(http.MethodGet, "/sim/api/qrcodes/resolve?qr="+q.URL, nil, &resolved)
	if resolved.SceneStr != "rm-7" {
		t.Errorf("resolved = %+v", resolved)
	}
	var res CallbackResult
	if st := adm.do(http.MethodPost, cl+"/scan", map[string]string{"qr": q.URL}, &res); st != 200 || res.Status != CallbackSuccess || res.Event != "subscribe" {
		t.Fatalf("scan: %d %+v", st, res)
	}
	if got := relay.received(); len(got) != 1 || got[0].msg.EventKey != "qrscene_rm-7" {
		t.Errorf("relay got %+v", got)
	}
	if st := adm.do(http.MethodPost, cl+"/messages", ClientMessage{MsgType: "image", Data: GeneratePNG(9)}, &res); st != 200 || res.MsgID == "" {
		t.Fatalf("image via admin: %d %+v", st, res)
	}
	adm.do(http.MethodPost, cl+"/events", ClientEvent{Event: "CLICK", Key: "K"}, &res)
	if res.Event != "CLICK" {
		t.Errorf("event = %+v", res)
	}
	var entries []LogEntry
	adm.do(http.MethodGet, cl+"/log?after=1", nil, &entries)
	if len(entries) != 2 || entries[0].Seq != 2 || entries[0].MsgType != "image" || entries[1].Event != "CLICK" {
		t.Errorf("log after 1 = %+v", entries)
	}
	var m MediaInfo
	if st := adm.do(http.MethodGet, "/sim/media/"+entries[0].MediaID, nil, nil); st != 200 {
		t.Errorf("raw media: %d", st)
	}
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/sim/api/accounts/"+acct.AppID+"/media?type=voice", bytes.NewReader(GenerateAMR(1)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = json.NewDecoder(resp.Body).Decode(&m)
	resp.Body.Close()
	if m.Type != MediaVoice || m.ContentType != "audio/amr" || !m.ExpiresAt.Equal(m.CreatedAt.Add(72*time.Hour)) {
		t.Errorf("media upload = %+v", m)
	}

	var clock struct {
		Now    time.Time `json:"now"`
		Manual bool      `json:"manual"`
	}
	adm.do(http.MethodPost, "/sim/api/clock", map[string]string{"advance": "49h"}, &clock)
	if !clock.Manual || !clock.Now.Equal(epoch.Add(49*time.Hour)) {
		t.Errorf("clock = %+v", clock)
	}
	adm.do(http.MethodGet, cl, nil, &info)
	if info.SendsLeft != 0 || info.SubscribeScene != SceneQRCode || info.QRSceneStr != "rm-7" {
		t.Errorf("client after 49h = %+v", info)
	}
	var cbs []CallbackResult
	adm.do(http.MethodGet, "/sim/api/callbacks?limit=2", nil, &cbs)
	if len(cbs) != 2 || cbs[1].Event != "CLICK" {
		t.Errorf("callbacks = %+v", cbs)
	}
	if st := adm.do(http.MethodGet, "/sim/api/clients/oNobody", nil, nil); st != http.StatusNotFound {
		t.Errorf("unknown client: %d", st)
	}
	if st := adm.do(http.MethodGet, "/sim/api/nothing", nil, nil); st != http.StatusNotFound {
		t.Errorf("unknown route: %d", st)
	}
	var state struct {
		Accounts []Account `json:"accounts"`
	}
	adm.do(http.MethodGet, "/sim/api/state", nil, &state)
	if len(state.Accounts) != 1 {
		t.Errorf("state = %+v", state)
	}
}

func TestAdminClockNeedsManualClock(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{Clock: SystemClock{}})
	adm := adminClient{t: t, base: e.srv.URL}
	if st := adm.do(http.MethodPost, "/sim/api/clock", map[string]string{"advance": "1h"}, nil); st != http.StatusConflict {
		t.Errorf("advancing the system clock: %d", st)
	}
}

func TestServerServe(t *testing.T) {
	t.Parallel()
	sim := New(Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- NewServer(sim).Serve(ctx, ln) }()
	base := "http://" + ln.Addr().String()
	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.TrimSpace(string(b)) != "ok" {
		t.Errorf("healthz = %q", b)
	}
	if got := sim.baseURL(nil); got != base {
		t.Errorf("public URL = %q, want %q", got, base)
	}
	// A hung request does not hold up shutdown.
	if err := sim.SetFault(FaultAll, Fault{Hang: true}); err != nil {
		t.Fatal(err)
	}
	go func() {
		if resp, err := http.Get(base + "/cgi-bin/token"); err == nil {
			resp.Body.Close()
		}
	}()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Serve did not return")
	}
	if err := sim.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}
