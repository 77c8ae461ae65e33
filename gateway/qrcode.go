package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // showqrcode answers JPEG on WeChat's platform
	"image/png"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"unicode/utf8"
)

// DefaultShowQRBaseURL is where WeChat serves QR images (showqrcode
// lives on mp.weixin.qq.com, not on the API host). With another API base
// URL (the simulator, an egress proxy), showqrcode is asked of that base.
const DefaultShowQRBaseURL = "https://mp.weixin.qq.com"

// maxQRImageBytes bounds a QR image; WeChat's are a few tens of KiB.
const maxQRImageBytes = 4 << 20

// maxSceneStr is WeChat's limit on a scene string.
const maxSceneStr = 64

// QRCodes issues permanent parametric QR codes (qrcode/create with
// QR_LIMIT_STR_SCENE) and fetches their images (showqrcode), as PNG.
// A permanent code never expires and WeChat caps how many an account may
// create, so each one is created once per process and its image kept:
// later calls are answered from memory. Safe for concurrent use; callers
// asking for the same code at once wait for one creation.
type QRCodes struct {
	api      *API
	client   *http.Client
	showBase string
	log      *slog.Logger

	mu    sync.Mutex
	codes map[string]*qrEntry // account + "\x00" + scene
}

type qrEntry struct {
	mu  sync.Mutex // held while the code is being created
	png []byte
}

// NewQRCodes returns the QR code client of api's accounts. log receives
// failures (never a token); nil discards.
func NewQRCodes(api *API, log *slog.Logger) (*QRCodes, error) {
	if api == nil {
		return nil, errors.New("gateway: NewQRCodes: nil API")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	show := api.base
	if show == DefaultAPIBaseURL {
		show = DefaultShowQRBaseURL
	}
	return &QRCodes{api: api, client: api.client, showBase: show, log: log, codes: map[string]*qrEntry{}}, nil
}

// PermanentQR returns the PNG image of account's permanent QR code for
// scene (a string of 1 to 64 characters, e.g. "emp:alice"). A client who
// scans it sends a subscribe or SCAN event carrying the scene.
func (q *QRCodes) PermanentQR(ctx context.Context, account, scene string) ([]byte, error) {
	if _, ok := q.api.accounts[account]; !ok {
		return nil, fmt.Errorf("gateway: QR code: %w %q", ErrUnknownAccount, account)
	}
	if n := utf8.RuneCountInString(scene); n == 0 || n > maxSceneStr {
		return nil, fmt.Errorf("gateway: QR code: scene must be 1 to %d characters", maxSceneStr)
	}
	key := account + "\x00" + scene
	q.mu.Lock()
	e := q.codes[key]
	if e == nil {
		e = &qrEntry{}
		q.codes[key] = e
	}
	q.mu.Unlock()

	e.mu.Lock()
	defer e.mu.Unlock()
	if e.png != nil {
		return e.png, nil
	}
	ticket, err := q.create(ctx, account, scene)
	if err != nil {
		q.log.Warn("creating a QR code failed", "account", account, "scene", scene, "err", err)
		return nil, err
	}
	img, err := q.show(ctx, ticket)
	if err != nil {
		q.log.Warn("fetching a QR code image failed", "account", account, "scene", scene, "err", err)
		return nil, err
	}
	e.png = img
	return img, nil
}

// qrCreateAnswer is qrcode/create's answer.
type qrCreateAnswer struct {
	ErrCode int    `json:"errcode"`
	ErrMsg  string `json:"errmsg"`
	Ticket  string `json:"ticket"`
	URL     string `json:"url"`
}

// create calls qrcode/create, refreshing a rejected token once.
func (q *QRCodes) create(ctx context.Context, account, scene string) (string, error) {
	ts := q.api.accounts[account]
	body, err := json.Marshal(map[string]any{
		"action_name": "QR_LIMIT_STR_SCENE",
		"action_info": map[string]any{"scene": map[string]string{"scene_str": scene}},
	})
	if err != nil {
		return "", fmt.Errorf("gateway: qrcode/create: %w", err)
	}
	tok, err := ts.token(ctx)
	if err != nil {
		return "", fmt.Errorf("gateway: qrcode/create: %w", err)
	}
	ans, err := q.createOnce(ctx, tok, body)
	if apiErr := (*APIError)(nil); errors.As(err, &apiErr) && apiErr.tokenExpired() {
		if tok, err = ts.refresh(ctx, tok); err != nil {
			return "", fmt.Errorf("gateway: qrcode/create: %w", err)
		}
		ans, err = q.createOnce(ctx, tok, body)
	}
	if err != nil {
		return "", fmt.Errorf("gateway: qrcode/create for account %q: %w", account, err)
	}
	if ans.Ticket == "" {
		return "", fmt.Errorf("gateway: qrcode/create for account %q: answer without a ticket", account)
	}
	return ans.Ticket, nil
}

func (q *QRCodes) createOnce(ctx context.Context, tok string, body []byte) (qrCreateAnswer, error) {
	u := q.api.base + "/cgi-bin/qrcode/create?" + url.Values{"access_token": {tok}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return qrCreateAnswer{}, redactErr(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := q.client.Do(req)
	if err != nil {
		return qrCreateAnswer{}, redactErr(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return qrCreateAnswer{}, fmt.Errorf("reading the answer: %w", redactErr(err))
	}
	var ans qrCreateAnswer
	if err := json.Unmarshal(data, &ans); err != nil {
		return qrCreateAnswer{}, fmt.Errorf("HTTP %d with an answer that is not WeChat's JSON", resp.StatusCode)
	}
	if ans.ErrCode != 0 {
		return qrCreateAnswer{}, &APIError{Code: ans.ErrCode, Msg: scrubToken(ans.ErrMsg, tok)}
	}
	if resp.StatusCode != http.StatusOK {
		return qrCreateAnswer{}, fmt.Errorf("HTTP status %d", resp.StatusCode)
	}
	return ans, nil
}

// show downloads the image of ticket and returns it as PNG.
func (q *QRCodes) show(ctx context.Context, ticket string) ([]byte, error) {
	u := q.showBase + "/cgi-bin/showqrcode?" + url.Values{"ticket": {ticket}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("gateway: showqrcode: %w", err)
	}
	resp, err := q.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("gateway: showqrcode: %w", redactErr(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("gateway: showqrcode: HTTP status %d", resp.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxQRImageBytes+1))
	if err != nil {
		return nil, fmt.Errorf("gateway: showqrcode: reading the image: %w", err)
	}
	if len(data) > maxQRImageBytes {
		return nil, fmt.Errorf("gateway: showqrcode: image larger than %d bytes", maxQRImageBytes)
	}
	return asPNG(data)
}

// asPNG returns data if it is a PNG image, or data decoded and encoded
// as PNG if it is another image format the standard library reads.
func asPNG(data []byte) ([]byte, error) {
	_, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("gateway: showqrcode: the answer is not an image (%s)", strings.TrimSpace(http.DetectContentType(data)))
	}
	if format == "png" {
		return data, nil
	}
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("gateway: showqrcode: decoding the %s image: %w", format, err)
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		return nil, fmt.Errorf("gateway: showqrcode: encoding as PNG: %w", err)
	}
	return b.Bytes(), nil
}
