package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeQR serves qrcode/create and showqrcode; access tokens come from wx.
type fakeQR struct {
	srv *httptest.Server

	mu       sync.Mutex
	creates  int
	tokens   []string
	script   []int  // errcodes to answer qrcode/create with, in turn (0: success)
	image    []byte // showqrcode's answer
	imageCT  string
	notFound bool
}

func newFakeQR(t *testing.T, img []byte, ct string) *fakeQR {
	f := &fakeQR{image: img, imageCT: ct}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /cgi-bin/qrcode/create", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			ActionName string `json:"action_name"`
			ActionInfo struct {
				Scene struct {
					SceneStr string `json:"scene_str"`
				} `json:"scene"`
			} `json:"action_info"`
		}
		json.NewDecoder(r.Body).Decode(&req)
		f.mu.Lock()
		defer f.mu.Unlock()
		f.creates++
		f.tokens = append(f.tokens, r.URL.Query().Get("access_token"))
		if len(f.script) > 0 {
			code := f.script[0]
			f.script = f.script[1:]
			if code != 0 {
				writeJSON(w, map[string]any{"errcode": code, "errmsg": "refused, access_token=" + r.URL.Query().Get("access_token")})
				return
			}
		}
		if req.ActionName != "QR_LIMIT_STR_SCENE" || req.ActionInfo.Scene.SceneStr == "" {
			writeJSON(w, map[string]any{"errcode": 40053, "errmsg": "invalid action info"})
			return
		}
		writeJSON(w, map[string]any{"ticket": "T+/" + req.ActionInfo.Scene.SceneStr, "url": "http://weixin.qq.com/q/x"})
	})
	mux.HandleFunc("GET /cgi-bin/showqrcode", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.notFound || !strings.HasPrefix(r.URL.Query().Get("ticket"), "T+/") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", f.imageCT)
		w.Write(f.image)
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeQR) createCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.creates
}

func newTestQRCodes(t *testing.T, appID string, base string) (*QRCodes, *bytes.Buffer) {
	t.Helper()
	var (
		buf bytes.Buffer
		mu  sync.Mutex
	)
	log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	api, err := NewAPI(Config{
		Accounts:   []Account{{ID: "acct", AppID: appID, AppSecret: "secret-" + appID, Token: "t", Mode: ModePlain}},
		APIBaseURL: base, APITimeout: 5 * time.Second,
	}, NewMemoryCache(), log)
	if err != nil {
		t.Fatal(err)
	}
	q, err := NewQRCodes(api, log)
	if err != nil {
		t.Fatal(err)
	}
	return q, &buf
}

func testImage(t *testing.T, format string) []byte {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, 40, 40))
	for x := range 40 {
		img.Set(x, x, color.White)
	}
	var b bytes.Buffer
	var err error
	if format == "png" {
		err = png.Encode(&b, img)
	} else {
		err = jpeg.Encode(&b, img, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestQRCodeCreatedOnceAndServedAsPNG(t *testing.T) {
	t.Parallel()
	f := newFakeQR(t, testImage(t, "jpeg"), "image/jpg")
	q, _ := newTestQRCodes(t, "wxqrjpeg", f.srv.URL)
	ctx := context.Background()
	var wg sync.WaitGroup
	results := make([][]byte, 8)
	for i := range results {
		wg.Go(func() {
			img, err := q.PermanentQR(ctx, "acct", "emp:alice")
			if err != nil {
				t.Error(err)
			}
			results[i] = img
		})
	}
	wg.Wait()
	if n := f.createCalls(); n != 1 {
		t.Fatalf("qrcode/create called %d times for one code, want 1", n)
	}
	for _, img := range results {
		if _, format, err := image.Decode(bytes.NewReader(img)); err != nil || format != "png" {
			t.Fatalf("image is %q, %v; want a PNG", format, err)
		}
	}
	if _, err := q.PermanentQR(ctx, "acct", "emp:bob"); err != nil {
		t.Fatal(err)
	}
	if n := f.createCalls(); n != 2 {
		t.Fatalf("another scene: %d creations, want 2", n)
	}
	pngImg := testImage(t, "png")
	f2 := newFakeQR(t, pngImg, "image/png")
	q2, _ := newTestQRCodes(t, "wxqrpng", f2.srv.URL)
	if img, err := q2.PermanentQR(ctx, "acct", "emp:alice"); err != nil || !bytes.Equal(img, pngImg) {
		t.Fatalf("a PNG is passed through unchanged: %v", err)
	}
}

func TestQRCodeRefreshesRejectedToken(t *testing.T) {
	t.Parallel()
	f := newFakeQR(t, testImage(t, "png"), "image/png")
	f.script = []int{40001}
	q, _ := newTestQRCodes(t, "wxqrtoken", f.srv.URL)
	if _, err := q.PermanentQR(context.Background(), "acct", "emp:alice"); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.tokens) != 2 || f.tokens[0] == f.tokens[1] {
		t.Fatalf("tokens used: %v; want a rejected one, then a fresh one", f.tokens)
	}
}

func TestQRCodeErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFakeQR(t, testImage(t, "png"), "image/png")
	f.script = []int{45009}
	q, log := newTestQRCodes(t, "wxqrerr", f.srv.URL)

	_, err := q.PermanentQR(ctx, "acct", "emp:alice")
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Code != 45009 {
		t.Fatalf("refused creation: %v, want APIError 45009", err)
	}
	if strings.Contains(err.Error(), "wxqrerr.") || strings.Contains(log.String(), "wxqrerr.") {
		t.Fatalf("an access token leaked: %v / %s", err, log)
	}
	// A failure is not cached: the next call tries again.
	if _, err := q.PermanentQR(ctx, "acct", "emp:alice"); err != nil {
		t.Fatalf("after a refusal: %v", err)
	}

	f.mu.Lock()
	f.notFound = true
	f.mu.Unlock()
	if _, err := q.PermanentQR(ctx, "acct", "emp:bob"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("showqrcode 404: %v", err)
	}
	f.mu.Lock()
	f.notFound, f.image, f.imageCT = false, []byte(`{"errcode":40097}`), "application/json"
	f.mu.Unlock()
	if _, err := q.PermanentQR(ctx, "acct", "emp:carol"); err == nil || !strings.Contains(err.Error(), "not an image") {
		t.Fatalf("showqrcode without an image: %v", err)
	}
	if _, err := q.PermanentQR(ctx, "nope", "emp:alice"); !errors.Is(err, ErrUnknownAccount) {
		t.Fatalf("unknown account: %v", err)
	}
	for _, scene := range []string{"", strings.Repeat("长", 65)} {
		if _, err := q.PermanentQR(ctx, "acct", scene); err == nil {
			t.Fatalf("scene %q: no error", scene)
		}
	}
}

func TestQRCodeShowBase(t *testing.T) {
	t.Parallel()
	api, err := NewAPI(Config{Accounts: []Account{{ID: "acct", AppID: "wxqrbase", AppSecret: "s", Token: "t", Mode: ModePlain}}}, NewMemoryCache(), nil)
	if err != nil {
		t.Fatal(err)
	}
	q, _ := NewQRCodes(api, nil)
	if q.showBase != DefaultShowQRBaseURL {
		t.Fatalf("showqrcode base %q with WeChat's API host, want %q", q.showBase, DefaultShowQRBaseURL)
	}
}
