package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
)

// wx is the one stand-in for WeChat's API of this test binary.
// silenceper's URI modifier and HTTP client are process-wide, so
// ConfigureAPI is called once, here, and every API test talks to this
// server; tests keep apart by using their own AppIDs.
var wx *fakeWeChat

func TestMain(m *testing.M) {
	wx = newFakeWeChat()
	ConfigureAPI(wx.srv.URL, 5*time.Second)
	code := m.Run()
	wx.srv.Close()
	os.Exit(code)
}

var pngBytes = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR fake image bytes")

// fakeWeChat serves cgi-bin/stable_token and cgi-bin/media/get. Tokens
// are "<appid>.<generation>"; a forced refresh starts a new generation
// and invalidates the older ones, as WeChat does.
type fakeWeChat struct {
	srv *httptest.Server

	mu        sync.Mutex
	gen       map[string]int // appid -> current token generation
	forced    map[string]int // appid -> forced refreshes
	mediaGets map[string]int // appid -> media/get calls
}

func newFakeWeChat() *fakeWeChat {
	f := &fakeWeChat{gen: map[string]int{}, forced: map[string]int{}, mediaGets: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /cgi-bin/stable_token", f.stableToken)
	mux.HandleFunc("GET /cgi-bin/media/get", f.mediaGet)
	mux.HandleFunc("GET /cdn/video.mp4", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "video/mp4")
		_, _ = w.Write([]byte("fake mp4 bytes"))
	})
	f.srv = httptest.NewServer(mux)
	return f
}

func (f *fakeWeChat) stableToken(w http.ResponseWriter, r *http.Request) {
	var req struct {
		AppID        string `json:"appid"`
		Secret       string `json:"secret"`
		ForceRefresh bool   `json:"force_refresh"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if req.AppID == "wxtokendown" {
		http.Error(w, "down", http.StatusInternalServerError)
		return
	}
	if req.Secret != "secret-"+req.AppID {
		writeJSON(w, map[string]any{"errcode": 40125, "errmsg": "invalid appsecret"})
		return
	}
	f.mu.Lock()
	if req.ForceRefresh || f.gen[req.AppID] == 0 {
		f.gen[req.AppID]++
	}
	if req.ForceRefresh {
		f.forced[req.AppID]++
	}
	tok := fmt.Sprintf("%s.%d", req.AppID, f.gen[req.AppID])
	f.mu.Unlock()
	writeJSON(w, map[string]any{"access_token": tok, "expires_in": 7200})
}

func (f *fakeWeChat) mediaGet(w http.ResponseWriter, r *http.Request) {
	tok, mediaID := r.URL.Query().Get("access_token"), r.URL.Query().Get("media_id")
	appID, genStr, _ := strings.Cut(tok, ".")
	f.mu.Lock()
	f.mediaGets[appID]++
	valid := genStr == fmt.Sprint(f.gen[appID]) && f.gen[appID] > 0
	f.mu.Unlock()
	switch {
	case mediaID == "always-40001" || !valid:
		writeJSON(w, map[string]any{"errcode": 40001, "errmsg": "invalid credential, access_token is invalid or not latest"})
	case mediaID == "expired":
		writeJSON(w, map[string]any{"errcode": 40007, "errmsg": "invalid media_id rid: 65a1b2c3-1"})
	case mediaID == "quota":
		writeJSON(w, map[string]any{"errcode": 45009, "errmsg": "reach max api daily quota limit"})
	case mediaID == "video":
		writeJSON(w, map[string]any{"video_url": f.srv.URL + "/cdn/video.mp4"})
	case mediaID == "http500":
		http.Error(w, "oops", http.StatusInternalServerError)
	case mediaID == "drop":
		hj, _ := w.(http.Hijacker)
		conn, _, _ := hj.Hijack()
		_ = conn.Close()
	case mediaID == "voice":
		// No Content-Disposition, binary body.
		w.Header().Set("Content-Type", "audio/amr")
		_, _ = w.Write([]byte("#!AMR\n\x3c\x48"))
	default:
		w.Header().Set("Content-Type", "image/png")
		w.Header().Set("Content-Disposition", `attachment; filename="`+mediaID+`.png"`)
		_, _ = w.Write(pngBytes)
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; encoding=utf-8")
	_ = json.NewEncoder(w).Encode(v)
}

func (f *fakeWeChat) counts(appID string) (forced, gets int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.forced[appID], f.mediaGets[appID]
}

// newTestAPI returns an API for one account with its own AppID, and the
// captured log.
func newTestAPI(t *testing.T, appID string) (*API, *bytes.Buffer, *MemoryCache) {
	t.Helper()
	var buf bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := NewMemoryCache()
	cfg := Config{
		Accounts:   []Account{{ID: "acct", AppID: appID, AppSecret: "secret-" + appID, Token: "t", Mode: ModePlain}},
		APIBaseURL: wx.srv.URL,
		APITimeout: 5 * time.Second,
	}
	a, err := NewAPI(cfg, c, log)
	if err != nil {
		t.Fatal(err)
	}
	return a, &buf, c
}

func TestFetchMedia(t *testing.T) {
	t.Parallel()
	a, _, _ := newTestAPI(t, "wxfetchok")
	m, err := a.FetchMedia(context.Background(), "acct", "MEDIA_IMG_1")
	if err != nil {
		t.Fatalf("FetchMedia: %v", err)
	}
	if !bytes.Equal(m.Data, pngBytes) || m.ContentType != "image/png" || m.FileName != "MEDIA_IMG_1.png" {
		t.Errorf("media = %q %q %q", m.Data, m.ContentType, m.FileName)
	}
	sum := sha256.Sum256(pngBytes)
	if m.SHA256 != hex.EncodeToString(sum[:]) || m.MediaID != "MEDIA_IMG_1" || m.FetchedAt.IsZero() {
		t.Errorf("sha/mediaid/fetchedat = %q %q %v", m.SHA256, m.MediaID, m.FetchedAt)
	}

	m, err = a.FetchMedia(context.Background(), "acct", "voice")
	if err != nil || m.ContentType != "audio/amr" || m.FileName != "" || string(m.Data) != "#!AMR\n\x3c\x48" {
		t.Errorf("voice: %v %q %q %q", err, m.ContentType, m.FileName, m.Data)
	}

	m, err = a.FetchMedia(context.Background(), "acct", "video")
	if err != nil || m.ContentType != "video/mp4" || string(m.Data) != "fake mp4 bytes" {
		t.Errorf("video via video_url: %v %q %q", err, m.ContentType, m.Data)
	}
	if forced, _ := wx.counts("wxfetchok"); forced != 0 {
		t.Errorf("forced refreshes = %d, want 0", forced)
	}
}

func TestFetchMediaErrors(t *testing.T) {
	t.Parallel()
	a, log, _ := newTestAPI(t, "wxfetcherr")
	ctx := context.Background()

	_, err := a.FetchMedia(ctx, "acct", "expired")
	if !errors.Is(err, relay.ErrMediaGone) {
		t.Errorf("40007: err = %v, want relay.ErrMediaGone", err)
	}
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Code != 40007 {
		t.Errorf("40007 not an *APIError: %v", err)
	}

	_, err = a.FetchMedia(ctx, "acct", "quota")
	if !errors.As(err, &apiErr) || apiErr.Code != 45009 || !strings.Contains(apiErr.Msg, "quota") {
		t.Errorf("45009: err = %v", err)
	}
	if errors.Is(err, relay.ErrMediaGone) {
		t.Errorf("45009 reported as media gone")
	}
	if !strings.Contains(err.Error(), "45009") || !strings.Contains(err.Error(), "reach max api daily quota limit") {
		t.Errorf("error text lacks code or message: %v", err)
	}

	_, err = a.FetchMedia(ctx, "acct", "http500")
	if err == nil || !strings.Contains(err.Error(), "500") {
		t.Errorf("HTTP 500: err = %v", err)
	}

	_, err = a.FetchMedia(ctx, "nobody", "x")
	if !errors.Is(err, ErrUnknownAccount) {
		t.Errorf("unknown account: err = %v", err)
	}
	if _, err = a.FetchMedia(ctx, "acct", ""); err == nil {
		t.Errorf("empty media id accepted")
	}

	// No error or log line carries the token.
	for _, id := range []string{"drop", "http500", "quota"} {
		_, err := a.FetchMedia(ctx, "acct", id)
		if err == nil {
			t.Fatalf("%s: no error", id)
		}
		if strings.Contains(err.Error(), "wxfetcherr.") {
			t.Errorf("%s: error leaks the access token: %v", id, err)
		}
	}
	_, err = a.FetchMedia(ctx, "acct", "drop")
	if !strings.Contains(err.Error(), "access_token=REDACTED") {
		t.Errorf("transport error not redacted as expected: %v", err)
	}
	if strings.Contains(log.String(), "wxfetcherr.") || strings.Contains(log.String(), "secret-") {
		t.Errorf("log leaks a secret: %s", log)
	}
}

func TestFetchMediaRefreshesRejectedTokenOnce(t *testing.T) {
	t.Parallel()
	a, log, c := newTestAPI(t, "wxrefresh")
	ctx := context.Background()
	if _, err := a.FetchMedia(ctx, "acct", "first"); err != nil {
		t.Fatal(err)
	}
	// Another party forces a refresh: our cached token is now stale.
	wx.mu.Lock()
	wx.gen["wxrefresh"]++
	wx.mu.Unlock()

	_, getsBefore := wx.counts("wxrefresh")
	m, err := a.FetchMedia(ctx, "acct", "second")
	if err != nil {
		t.Fatalf("FetchMedia after token invalidation: %v", err)
	}
	if m.FileName != "second.png" {
		t.Errorf("FileName = %q", m.FileName)
	}
	forced, gets := wx.counts("wxrefresh")
	if forced != 1 || gets-getsBefore != 2 {
		t.Errorf("forced=%d media/get calls=%d, want 1 and 2", forced, gets-getsBefore)
	}
	// The refreshed token is cached for the next calls.
	if tok, _ := c.Get(TokenCacheKeyPrefix + "_stable_access_token_wxrefresh").(string); tok != "wxrefresh.3" {
		t.Errorf("cached token = %q, want wxrefresh.3", tok)
	}
	if _, err := a.FetchMedia(ctx, "acct", "third"); err != nil {
		t.Fatal(err)
	}
	if forced, _ := wx.counts("wxrefresh"); forced != 1 {
		t.Errorf("forced = %d after a call with a good token", forced)
	}
	if strings.Contains(log.String(), "wxrefresh.") {
		t.Errorf("log leaks a token: %s", log)
	}

	// A token WeChat keeps refusing is refreshed once, not in a loop.
	_, err = a.FetchMedia(ctx, "acct", "always-40001")
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Code != 40001 {
		t.Fatalf("always-40001: err = %v", err)
	}
	if forced, _ := wx.counts("wxrefresh"); forced != 2 {
		t.Errorf("forced = %d, want 2", forced)
	}
}

// TestFetchMediaConcurrentRefresh: a burst of calls that all meet a
// stale token forces one refresh, not one per call.
func TestFetchMediaConcurrentRefresh(t *testing.T) {
	t.Parallel()
	a, _, _ := newTestAPI(t, "wxburst")
	ctx := context.Background()
	if _, err := a.FetchMedia(ctx, "acct", "warm"); err != nil {
		t.Fatal(err)
	}
	wx.mu.Lock()
	wx.gen["wxburst"]++
	wx.mu.Unlock()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := a.FetchMedia(ctx, "acct", fmt.Sprintf("m%d", i))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if forced, _ := wx.counts("wxburst"); forced != 1 {
		t.Errorf("forced refreshes = %d, want 1", forced)
	}
}

func TestFetchMediaTokenErrors(t *testing.T) {
	t.Parallel()
	for _, appID := range []string{"wxtokendown"} {
		a, _, _ := newTestAPI(t, appID)
		_, err := a.FetchMedia(context.Background(), "acct", "x")
		if err == nil || !strings.Contains(err.Error(), "access token") {
			t.Errorf("%s: err = %v", appID, err)
		}
	}
	// A wrong secret: WeChat's errcode is reported, the secret is not.
	c := NewMemoryCache()
	a, err := NewAPI(Config{Accounts: []Account{{ID: "acct", AppID: "wxbadsecret", AppSecret: "WRONG-SECRET", Token: "t"}},
		APIBaseURL: wx.srv.URL}, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.FetchMedia(context.Background(), "acct", "x")
	if err == nil || !strings.Contains(err.Error(), "40125") || strings.Contains(err.Error(), "WRONG-SECRET") {
		t.Errorf("bad secret: err = %v", err)
	}
}

func TestNewAPIErrors(t *testing.T) {
	t.Parallel()
	if _, err := NewAPI(testConfig(), nil, nil); err == nil {
		t.Error("nil cache accepted")
	}
	if _, err := NewAPI(Config{Accounts: []Account{{ID: "a", AppID: "wx"}}}, NewMemoryCache(), nil); err == nil {
		t.Error("missing AppSecret accepted")
	}
	if _, err := NewAPI(Config{Accounts: []Account{plainAccount, plainAccount}}, NewMemoryCache(), nil); err == nil {
		t.Error("duplicate account accepted")
	}
}

func TestAPIErrorText(t *testing.T) {
	t.Parallel()
	e := &APIError{Code: 45015, Msg: "response out of time limit or subscription is canceled"}
	if got := e.Error(); !strings.Contains(got, "45015") || !strings.Contains(got, "out of time limit") {
		t.Errorf("Error() = %q", got)
	}
}

func TestDispositionFileName(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{`attachment; filename="MEDIA.jpg"`, "MEDIA.jpg"},
		{`attachment; filename=plain.amr`, "plain.amr"},
		{`attachment; filename="季度报告.pdf"`, "季度报告.pdf"},
		{`attachment; filename*=UTF-8''%E6%8A%A5%E5%91%8A.pdf`, "报告.pdf"},
		{`attachment; filename="../../etc/passwd"`, "passwd"},
		{`attachment`, ""},
		{``, ""},
	}
	for _, tt := range tests {
		if got := dispositionFileName(tt.in); got != tt.want {
			t.Errorf("dispositionFileName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
