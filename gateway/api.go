package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/silenceper/wechat/v2/cache"
	"github.com/silenceper/wechat/v2/util"

	"github.com/wechat-relay/wechat-relay/relay"
)

// ConfigureAPI points silenceper's HTTP helpers — used here for the
// access token — at baseURL instead of https://api.weixin.qq.com, and
// replaces its DefaultHTTPClient (http.DefaultClient, no timeout) with a
// client bounded by timeout. An empty baseURL and a zero timeout mean the
// defaults.
//
// Both settings are PROCESS-WIDE globals of silenceper, written without
// synchronisation: main calls ConfigureAPI once, before any API call, with
// the Config's APIBaseURL and APITimeout (the API client itself uses the
// Config for its own requests).
func ConfigureAPI(baseURL string, timeout time.Duration) {
	c := Config{APIBaseURL: baseURL, APITimeout: timeout}.withDefaults()
	if c.APIBaseURL == DefaultAPIBaseURL {
		util.SetURIModifier(nil)
	} else {
		base := c.APIBaseURL
		util.SetURIModifier(func(uri string) string {
			if rest, ok := strings.CutPrefix(uri, DefaultAPIBaseURL); ok {
				return base + rest
			}
			return uri
		})
	}
	util.DefaultHTTPClient = &http.Client{Timeout: c.APITimeout}
}

// ErrUnknownAccount is returned by API calls for an account id that is
// not configured.
var ErrUnknownAccount = errors.New("gateway: unknown account")

// APIError is an error answer of the WeChat API: errcode and errmsg,
// which the console shows plainly.
type APIError struct {
	Code int
	Msg  string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("wechat api errcode %d: %s", e.Code, e.Msg)
}

// tokenExpired reports whether the errcode says the access token is
// invalid or expired, which one forced refresh can cure.
func (e *APIError) tokenExpired() bool { return tokenRejected(e.Code) }

// tokenRejected reports whether a WeChat errcode says the access token
// is invalid or expired (40001, 40014, 42001), which one forced refresh
// can cure.
func tokenRejected(code int) bool {
	switch code {
	case 40001, 40014, 42001:
		return true
	}
	return false
}

// errcodeMediaGone: invalid media_id (expired after three days, or
// never existed).
const errcodeMediaGone = 40007

// maxMediaBytes bounds a downloaded media, so a broken or hostile
// upstream cannot exhaust memory. WeChat's own limits are far lower
// (10 MB for video).
const maxMediaBytes = 128 << 20

// API is the small WeChat API client of the inbound side: media download
// for now. It is safe for concurrent use.
type API struct {
	base     string
	client   *http.Client
	accounts map[string]*tokenSource
	log      *slog.Logger
	now      func() time.Time
}

var _ relay.MediaFetcher = (*API)(nil)

// NewAPI builds the client for every account of cfg. Access tokens live
// in c, which several instances must share (Redis) so they share one
// token; NewMemoryCache serves a single instance. Tokens are fetched
// through silenceper, so ConfigureAPI must have been called with the same
// base URL. log receives no secrets; nil discards.
func NewAPI(cfg Config, c cache.Cache, log *slog.Logger) (*API, error) {
	if c == nil {
		return nil, errors.New("gateway: NewAPI: nil token cache")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	a := &API{
		base:     cfg.APIBaseURL,
		client:   &http.Client{Timeout: cfg.APITimeout},
		accounts: make(map[string]*tokenSource, len(cfg.Accounts)),
		log:      log,
		now:      time.Now,
	}
	for _, acct := range cfg.Accounts {
		if acct.AppID == "" || acct.AppSecret == "" {
			return nil, fmt.Errorf("gateway: NewAPI: account %q needs AppID and AppSecret", acct.ID)
		}
		if _, dup := a.accounts[acct.ID]; dup {
			return nil, fmt.Errorf("gateway: NewAPI: duplicate account id %q", acct.ID)
		}
		ts, err := newTokenSource(acct, c, log)
		if err != nil {
			return nil, err
		}
		a.accounts[acct.ID] = ts
	}
	return a, nil
}

// FetchMedia downloads the temporary media mediaID that a client of
// account sent (cgi-bin/media/get, which silenceper does not wrap). An
// expired or unknown media id yields an error wrapping
// relay.ErrMediaGone; a rejected access token is refreshed once and the
// call retried; other WeChat errors are *APIError. For video WeChat
// answers with a download URL, which is followed.
func (a *API) FetchMedia(ctx context.Context, account, mediaID string) (relay.Media, error) {
	ts, ok := a.accounts[account]
	if !ok {
		return relay.Media{}, fmt.Errorf("fetch media: %w %q", ErrUnknownAccount, account)
	}
	if mediaID == "" {
		return relay.Media{}, fmt.Errorf("fetch media of account %q: empty media id", account)
	}
	tok, err := ts.token(ctx)
	if err != nil {
		return relay.Media{}, fmt.Errorf("fetch media %q: %w", mediaID, err)
	}
	m, err := a.getMedia(ctx, tok, mediaID)
	if apiErr := (*APIError)(nil); errors.As(err, &apiErr) && apiErr.tokenExpired() {
		a.log.Info("media/get rejected the access token", "account", account, "errcode", apiErr.Code)
		if tok, err = ts.refresh(ctx, tok); err != nil {
			return relay.Media{}, fmt.Errorf("fetch media %q: %w", mediaID, err)
		}
		m, err = a.getMedia(ctx, tok, mediaID)
	}
	if err != nil {
		if apiErr := (*APIError)(nil); errors.As(err, &apiErr) && apiErr.Code == errcodeMediaGone {
			return relay.Media{}, fmt.Errorf("fetch media %q of account %q: %w: %w", mediaID, account, relay.ErrMediaGone, apiErr)
		}
		return relay.Media{}, fmt.Errorf("fetch media %q of account %q: %w", mediaID, account, err)
	}
	m.MediaID = mediaID
	m.FetchedAt = a.now()
	sum := sha256.Sum256(m.Data)
	m.SHA256 = hex.EncodeToString(sum[:])
	return m, nil
}

// mediaJSON is what media/get answers instead of bytes: an error, or the
// download URL of a video.
type mediaJSON struct {
	ErrCode  *int   `json:"errcode"`
	ErrMsg   string `json:"errmsg"`
	VideoURL string `json:"video_url"`
}

// getMedia performs one media/get call with tok.
func (a *API) getMedia(ctx context.Context, tok, mediaID string) (relay.Media, error) {
	q := url.Values{"access_token": {tok}, "media_id": {mediaID}}
	m, isJSON, err := a.download(ctx, a.base+"/cgi-bin/media/get?"+q.Encode())
	if err != nil || !isJSON {
		return m, err
	}
	var j mediaJSON
	if err := json.Unmarshal(m.Data, &j); err != nil {
		return relay.Media{}, fmt.Errorf("media/get: undecodable JSON answer: %w", err)
	}
	switch {
	case j.ErrCode != nil && *j.ErrCode != 0:
		return relay.Media{}, &APIError{Code: *j.ErrCode, Msg: j.ErrMsg}
	case j.VideoURL != "":
		u, err := url.Parse(j.VideoURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
			return relay.Media{}, errors.New("media/get: video_url is not an http(s) URL")
		}
		vm, _, err := a.download(ctx, j.VideoURL)
		if err != nil {
			return relay.Media{}, fmt.Errorf("media/get: video download: %w", err)
		}
		return vm, nil
	}
	return relay.Media{}, errors.New("media/get: JSON answer with neither errcode nor video_url")
}

// download GETs rawURL and returns the body with its content type and
// file name. isJSON reports an answer that looks like a JSON object and
// is not an attachment: WeChat's way of answering an error.
func (a *API) download(ctx context.Context, rawURL string) (m relay.Media, isJSON bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return m, false, redactErr(err)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return m, false, redactErr(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return m, false, fmt.Errorf("GET %s: HTTP status %d", redactURLForError(rawURL), resp.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxMediaBytes+1))
	if err != nil {
		return m, false, fmt.Errorf("GET %s: read body: %w", redactURLForError(rawURL), redactErr(err))
	}
	if len(data) > maxMediaBytes {
		return m, false, fmt.Errorf("GET %s: media larger than %d bytes", redactURLForError(rawURL), maxMediaBytes)
	}
	m.Data = data
	m.ContentType = resp.Header.Get("Content-Type")
	m.FileName = dispositionFileName(resp.Header.Get("Content-Disposition"))
	if m.ContentType == "" {
		m.ContentType = http.DetectContentType(data)
	}
	isJSON = m.FileName == "" && looksLikeJSONAnswer(m.ContentType, data)
	return m, isJSON, nil
}

// redactURLForError shortens a URL for an error message: no query, so
// no token, and no long signed download parameters.
func redactURLForError(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return redact(rawURL)
	}
	u.RawQuery, u.Fragment = "", ""
	return u.String()
}

// looksLikeJSONAnswer tells WeChat's JSON answers from media bytes.
// WeChat labels them application/json or text/plain.
func looksLikeJSONAnswer(contentType string, data []byte) bool {
	ct, _, _ := mime.ParseMediaType(contentType)
	if ct != "application/json" && ct != "text/plain" && ct != "" {
		return false
	}
	d := bytes.TrimSpace(data)
	return len(d) > 1 && d[0] == '{' && d[len(d)-1] == '}' && json.Valid(d)
}

// fileNameParam is the fallback for Content-Disposition values that
// mime.ParseMediaType refuses (WeChat sometimes sends raw UTF-8 names).
var fileNameParam = regexp.MustCompile(`(?i)filename\s*=\s*"?([^";]+)"?`)

// dispositionFileName returns the base name of the filename of a
// Content-Disposition header, "" if none. Directory parts are dropped:
// the name is metadata, never a path.
func dispositionFileName(cd string) string {
	if cd == "" {
		return ""
	}
	fn := ""
	if _, params, err := mime.ParseMediaType(cd); err == nil {
		fn = params["filename"]
	}
	if fn == "" {
		if m := fileNameParam.FindStringSubmatch(cd); m != nil {
			fn = m[1]
		}
	}
	if i := strings.LastIndexAny(fn, `/\`); i >= 0 {
		fn = fn[i+1:]
	}
	return strings.TrimSpace(fn)
}
