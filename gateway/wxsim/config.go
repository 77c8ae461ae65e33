package wxsim

import (
	"log/slog"
	"net/http"
	"time"
)

// Config tunes the simulator. The zero value is WeChat as documented: every
// zero field takes the default named in its comment.
type Config struct {
	// Clock drives every time-based rule. Default: SystemClock.
	Clock Clock
	// Logger receives operational logs (never message bodies). Default:
	// discard.
	Logger *slog.Logger
	// Seed makes generated ids (openids, tokens, media ids, MsgIds) and the
	// fault dice reproducible. The zero seed is a seed like any other.
	Seed uint64
	// PublicURL is the base URL where this simulator is reachable (for
	// PicUrl in image callbacks and video_url in media/get). Default: set by
	// Server.Serve from its listener, or by SetPublicURL; until then, the
	// Host of the request that asks.
	PublicURL string

	// TokenTTL is an access_token's lifetime. Default 7200 s.
	TokenTTL time.Duration
	// TokenOverlap is how long an old cgi-bin/token stays valid after a new
	// one is issued. Default 5 min (WeChat: "新老access_token在5分钟内都可用").
	TokenOverlap time.Duration
	// DailyQuota caps calls per account per day (reset at midnight Beijing
	// time) by API path, e.g. "/cgi-bin/token". Entries here override the
	// defaults: /cgi-bin/token 2000, /cgi-bin/stable_token 10000,
	// /cgi-bin/message/custom/send 500000, /cgi-bin/message/template/send
	// 100000, /cgi-bin/media/upload 100000, /cgi-bin/media/get 200000,
	// /cgi-bin/qrcode/create 100000, /cgi-bin/user/info 500000. A negative
	// value removes the cap. Exceeding a cap answers 45009.
	DailyQuota map[string]int
	// StableForceRefreshPerDay caps stable_token calls with force_refresh.
	// Default 20.
	StableForceRefreshPerDay int

	// Window is the customer-service window after a client's last
	// interaction. Default 48 h (errcode 45015 after it).
	Window time.Duration
	// SendsPerInteraction caps custom/send messages to one client between
	// two of its interactions. Default 5 (errcode 45047 for the 6th).
	SendsPerInteraction int
	// TextMaxBytes caps a custom text message's content. Default 2048.
	TextMaxBytes int
	// TypingTTL is how long a "Typing" indicator shows. Default 15 s.
	TypingTTL time.Duration
	// MediaTTL is how long temporary media can be fetched. Default 3 days.
	MediaTTL time.Duration
	// TemplateDedupe is how long a template message's client_msg_id
	// suppresses a repeat to the same openid. Default 10 min.
	TemplateDedupe time.Duration

	// CallbackTimeout is how long WeChat waits for the relay's answer before
	// trying again. Default 5 s.
	CallbackTimeout time.Duration
	// CallbackTries is how many times a callback is sent when unanswered.
	// Default 3 (three tries in all).
	CallbackTries int
	// CallbackRetryDelay is the pause between tries. Default 0 (WeChat
	// reconnects at once).
	CallbackRetryDelay time.Duration
	// TemplateJobDelay is how long after template/send the
	// TEMPLATESENDJOBFINISH event is delivered. Default 0: at once, on a
	// goroutine owned by the Sim.
	TemplateJobDelay time.Duration
	// HTTPClient sends callbacks. Default: a private client; each try is
	// bounded by CallbackTimeout.
	HTTPClient *http.Client
	// CallbackIPs is what cgi-bin/getcallbackip answers. Default
	// ["127.0.0.1"].
	CallbackIPs []string
	// CallbackLogSize is how many callback results CallbackLog keeps.
	// Default 1000.
	CallbackLogSize int
}

// defaultDailyQuota are WeChat's published per-account daily limits for the
// APIs the simulator serves.
var defaultDailyQuota = map[string]int{
	pathToken:         2000,
	pathStableToken:   10000,
	pathCustomSend:    500000,
	pathTemplateSend:  100000,
	pathMediaUpload:   100000,
	pathMediaGet:      200000,
	pathQRCodeCreate:  100000,
	pathUserInfo:      500000,
	pathCustomTyping:  500000,
	pathUserGet:       500,
	pathGetCallbackIP: 10000,
}

// withDefaults returns c with every zero field replaced by its default.
func (c Config) withDefaults() Config {
	if c.Clock == nil {
		c.Clock = SystemClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.TokenTTL <= 0 {
		c.TokenTTL = 7200 * time.Second
	}
	if c.TokenOverlap <= 0 {
		c.TokenOverlap = 5 * time.Minute
	}
	q := make(map[string]int, len(defaultDailyQuota)+len(c.DailyQuota))
	for k, v := range defaultDailyQuota {
		q[k] = v
	}
	for k, v := range c.DailyQuota {
		q[normalizePath(k)] = v
	}
	c.DailyQuota = q
	if c.StableForceRefreshPerDay <= 0 {
		c.StableForceRefreshPerDay = 20
	}
	if c.Window <= 0 {
		c.Window = 48 * time.Hour
	}
	if c.SendsPerInteraction <= 0 {
		c.SendsPerInteraction = 5
	}
	if c.TextMaxBytes <= 0 {
		c.TextMaxBytes = 2048
	}
	if c.TypingTTL <= 0 {
		c.TypingTTL = 15 * time.Second
	}
	if c.MediaTTL <= 0 {
		c.MediaTTL = 72 * time.Hour
	}
	if c.TemplateDedupe <= 0 {
		c.TemplateDedupe = 10 * time.Minute
	}
	if c.CallbackTimeout <= 0 {
		c.CallbackTimeout = 5 * time.Second
	}
	if c.CallbackTries <= 0 {
		c.CallbackTries = 3
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	if len(c.CallbackIPs) == 0 {
		c.CallbackIPs = []string{"127.0.0.1"}
	}
	if c.CallbackLogSize <= 0 {
		c.CallbackLogSize = 1000
	}
	return c
}
