package wxsim

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Mode is an account's message encryption mode, as set in the Official
// Account's admin page.
type Mode string

// The three encryption modes WeChat offers.
const (
	// ModePlain sends plaintext XML, signed by the query's signature only.
	ModePlain Mode = "plain"
	// ModeCompatible sends the plaintext fields and an Encrypt element;
	// the relay may answer in plaintext or encrypted.
	ModeCompatible Mode = "compatible"
	// ModeSafe sends only ToUserName and Encrypt; answers must be encrypted.
	ModeSafe Mode = "safe"
)

func (m Mode) valid() bool { return m == ModePlain || m == ModeCompatible || m == ModeSafe }

// Account is one Official Account on the simulated platform.
type Account struct {
	// AppID identifies the account to the API ("wx" + 16 hex digits).
	// Generated when empty.
	AppID string `json:"appid"`
	// AppSecret is checked by cgi-bin/token. Generated when empty.
	AppSecret string `json:"app_secret"`
	// Token signs callbacks (3 to 32 letters and digits). Generated when
	// empty.
	Token string `json:"token"`
	// EncodingAESKey encrypts callbacks in compatible and safe mode (43
	// characters). Generated when empty.
	EncodingAESKey string `json:"encoding_aes_key"`
	// Mode is the encryption mode. Default ModePlain, WeChat's default for
	// a new account.
	Mode Mode `json:"mode"`
	// Name is the account's display name, shown in the phone page's title
	// bar. Empty: the page shows the OriginalID.
	Name string `json:"name,omitempty"`
	// OriginalID ("gh_" + 12 hex digits) is the ToUserName of callbacks.
	// Generated when empty.
	OriginalID string `json:"original_id"`
	// CallbackURL is where the relay listens for callbacks. Empty: client
	// actions still change state, but report ErrNoCallbackURL.
	CallbackURL string `json:"callback_url"`
	// Templates are the template ids template/send accepts. Empty: none.
	Templates []string `json:"templates,omitempty"`
	// KFAccounts are the customer-service accounts custom/send accepts in
	// customservice.kf_account. Empty: any.
	KFAccounts []string `json:"kf_accounts,omitempty"`
}

// Sentinel errors of the Go API (the HTTP API answers WeChat errcodes).
var (
	ErrUnknownAccount   = errors.New("wxsim: unknown account")
	ErrUnknownClient    = errors.New("wxsim: unknown client")
	ErrNotFollowing     = errors.New("wxsim: client does not follow the account")
	ErrAlreadyFollowing = errors.New("wxsim: client already follows the account")
	ErrUnknownQR        = errors.New("wxsim: unknown QR code")
	ErrQRExpired        = errors.New("wxsim: QR code expired")
	ErrNoCallbackURL    = errors.New("wxsim: account has no callback URL")
	ErrManualClock      = errors.New("wxsim: clock is not a ManualClock")
	ErrClosed           = errors.New("wxsim: simulator closed")
	ErrBadAccount       = errors.New("wxsim: invalid account")
	ErrDuplicateAccount = errors.New("wxsim: account exists")
)

// Sim is the simulated platform. Create it with New; it is safe for
// concurrent use. Close stops the goroutines it started.
type Sim struct {
	cfg   Config
	clock Clock
	log   *slog.Logger

	ctx    context.Context // cancelled by Close; parent of async deliveries
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// mu guards everything below. It is never held during network I/O or
	// sleeps.
	mu          sync.Mutex
	closed      bool
	rng         *rand.Rand
	publicURL   string
	accounts    map[string]*account // by AppID
	accountList []string            // AppIDs in creation order
	clients     map[string]*client  // by openid (unique across accounts)
	tokens      map[string]*accessToken
	media       map[string]*media
	qrs         map[string]*qrCode // by ticket
	qrByURL     map[string]string  // QR content URL → ticket
	faults      map[string]*faultState
	msgID       uint64 // last callback MsgId handed out
	templateID  int64  // last template msgid handed out
	callbackLog []CallbackResult

	ownClient bool // cfg.HTTPClient was made here, so Close may tidy it
}

// account is an Account plus its platform-side state.
type account struct {
	Account
	templates map[string]bool
	kf        map[string]bool

	plainToken  string // newest cgi-bin/token token
	stableToken string // current cgi-bin/stable_token token

	quotaDay       string         // day the counters below count
	calls          map[string]int // API path → calls today
	forceRefreshes int            // stable_token force_refresh calls today

	clients     []string                  // openids in creation order
	templateIDs map[string]templateRecord // openid+"\x00"+client_msg_id
}

// templateRecord remembers a template send for client_msg_id dedupe.
type templateRecord struct {
	msgID int64
	at    time.Time
}

// New returns a simulator with no accounts.
func New(cfg Config) *Sim {
	ownClient := cfg.HTTPClient == nil
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	s := &Sim{
		cfg:       cfg,
		clock:     cfg.Clock,
		log:       cfg.Logger,
		ctx:       ctx,
		cancel:    cancel,
		rng:       newRand(cfg.Seed),
		publicURL: strings.TrimRight(cfg.PublicURL, "/"),
		accounts:  map[string]*account{},
		clients:   map[string]*client{},
		tokens:    map[string]*accessToken{},
		media:     map[string]*media{},
		qrs:       map[string]*qrCode{},
		qrByURL:   map[string]string{},
		faults:    map[string]*faultState{},
		ownClient: ownClient,
	}
	// MsgIds look like real ones: 17 digits, increasing.
	s.msgID = 24_000_000_000_000_000 + s.rng.Uint64N(1_000_000_000_000_000)
	s.templateID = 2_000_000_000 + s.rng.Int64N(100_000_000)
	return s
}

// Close stops the simulator's goroutines (pending TEMPLATESENDJOBFINISH
// deliveries, hung fault-injected requests) and waits for them, or for ctx.
// It is idempotent.
func (s *Sim) Close(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	if s.ownClient {
		s.cfg.HTTPClient.CloseIdleConnections()
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wxsim: close: %w", ctx.Err())
	}
}

// goAsync runs f on a goroutine owned by the Sim; Close cancels its context
// and waits for it. It reports false when the Sim is closed.
func (s *Sim) goAsync(f func(ctx context.Context)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f(s.ctx)
	}()
	return true
}

// Now is the simulator's current time.
func (s *Sim) Now() time.Time { return s.clock.Now() }

// Clock returns the simulator's clock.
func (s *Sim) Clock() Clock { return s.clock }

// Config returns the effective configuration (defaults filled in).
func (s *Sim) Config() Config { return s.cfg }

// SetPublicURL sets the base URL where the simulator is reachable, used in
// PicUrl and video_url links (e.g. an httptest.Server's URL).
func (s *Sim) SetPublicURL(u string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.publicURL = strings.TrimRight(u, "/")
}

// baseURL returns the public URL, or one derived from r when none is set.
func (s *Sim) baseURL(r *http.Request) string {
	s.mu.Lock()
	u := s.publicURL
	s.mu.Unlock()
	if u != "" || r == nil {
		return u
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// AddAccount registers an account. Empty credentials are generated; the
// complete account is returned.
func (s *Sim) AddAccount(a Account) (Account, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a.AppID == "" {
		a.AppID = newAppID(s.rng)
	}
	if a.AppSecret == "" {
		a.AppSecret = newAppSecret(s.rng)
	}
	if a.Token == "" {
		a.Token = newCallbackToken(s.rng)
	}
	if a.EncodingAESKey == "" {
		a.EncodingAESKey = newEncodingAESKey(s.rng)
	}
	if a.OriginalID == "" {
		a.OriginalID = newOriginalID(s.rng)
	}
	if a.Mode == "" {
		a.Mode = ModePlain
	}
	if err := validateAccount(a); err != nil {
		return Account{}, err
	}
	if _, ok := s.accounts[a.AppID]; ok {
		return Account{}, fmt.Errorf("%w: %s", ErrDuplicateAccount, a.AppID)
	}
	a.Templates = slices.Clone(a.Templates)
	a.KFAccounts = slices.Clone(a.KFAccounts)
	acc := &account{
		Account:     a,
		templates:   map[string]bool{},
		kf:          map[string]bool{},
		calls:       map[string]int{},
		templateIDs: map[string]templateRecord{},
	}
	for _, t := range a.Templates {
		acc.templates[t] = true
	}
	for _, k := range a.KFAccounts {
		acc.kf[k] = true
	}
	s.accounts[a.AppID] = acc
	s.accountList = append(s.accountList, a.AppID)
	s.log.Info("wxsim: account added", "account", a.AppID, "mode", a.Mode)
	return acc.snapshot(), nil
}

func validateAccount(a Account) error {
	if !a.Mode.valid() {
		return fmt.Errorf("%w: mode %q (want plain, compatible or safe)", ErrBadAccount, a.Mode)
	}
	if n := len(a.Token); n < 3 || n > 32 || strings.IndexFunc(a.Token, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	}) >= 0 {
		return fmt.Errorf("%w: token must be 3 to 32 letters and digits", ErrBadAccount)
	}
	if len(a.EncodingAESKey) != 43 {
		return fmt.Errorf("%w: EncodingAESKey must be 43 characters", ErrBadAccount)
	}
	if k, err := base64.StdEncoding.DecodeString(a.EncodingAESKey + "="); err != nil || len(k) != 32 {
		return fmt.Errorf("%w: EncodingAESKey is not base64 of 32 bytes", ErrBadAccount)
	}
	return nil
}

// snapshot copies the public part of the account.
func (a *account) snapshot() Account {
	c := a.Account
	c.Templates = slices.Clone(a.Templates)
	c.KFAccounts = slices.Clone(a.KFAccounts)
	return c
}

// Account returns the account with appID.
func (s *Sim) Account(appID string) (Account, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.accounts[appID]
	if !ok {
		return Account{}, fmt.Errorf("%w: %s", ErrUnknownAccount, appID)
	}
	return a.snapshot(), nil
}

// Accounts lists the accounts in the order they were added.
func (s *Sim) Accounts() []Account {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Account, 0, len(s.accountList))
	for _, id := range s.accountList {
		out = append(out, s.accounts[id].snapshot())
	}
	return out
}

// UpdateAccount changes the settings an operator changes in the admin page:
// callback URL and encryption mode (empty fields are left alone), and the
// template and kf lists (nil left alone).
func (s *Sim) UpdateAccount(appID string, callbackURL string, mode Mode, templates, kfAccounts []string) (Account, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.accounts[appID]
	if !ok {
		return Account{}, fmt.Errorf("%w: %s", ErrUnknownAccount, appID)
	}
	if mode != "" {
		if !mode.valid() {
			return Account{}, fmt.Errorf("%w: mode %q", ErrBadAccount, mode)
		}
		a.Mode = mode
	}
	if callbackURL != "" {
		a.CallbackURL = callbackURL
	}
	if templates != nil {
		a.Templates = slices.Clone(templates)
		a.templates = map[string]bool{}
		for _, t := range templates {
			a.templates[t] = true
		}
	}
	if kfAccounts != nil {
		a.KFAccounts = slices.Clone(kfAccounts)
		a.kf = map[string]bool{}
		for _, k := range kfAccounts {
			a.kf[k] = true
		}
	}
	return a.snapshot(), nil
}

// SetCallbackURL points the account's callbacks at u.
func (s *Sim) SetCallbackURL(appID, u string) error {
	_, err := s.UpdateAccount(appID, u, "", nil, nil)
	return err
}

// SetMode changes the account's encryption mode.
func (s *Sim) SetMode(appID string, m Mode) error {
	_, err := s.UpdateAccount(appID, "", m, nil, nil)
	return err
}

// rollQuotaDay resets the account's daily counters when the Beijing day
// has changed. Caller holds s.mu.
func (a *account) rollQuotaDay(now time.Time) {
	if d := quotaDay(now); d != a.quotaDay {
		a.quotaDay = d
		a.calls = map[string]int{}
		a.forceRefreshes = 0
	}
}

// takeQuota counts one call of path against the account's daily quota and
// reports false when the quota was already used up. Caller holds s.mu.
func (s *Sim) takeQuota(a *account, path string) bool {
	a.rollQuotaDay(s.clock.Now())
	limit, ok := s.cfg.DailyQuota[path]
	if ok && limit >= 0 && a.calls[path] >= limit {
		return false
	}
	a.calls[path]++
	return true
}

// QuotaUsed reports how many calls of path (e.g. "/cgi-bin/token") the
// account made today.
func (s *Sim) QuotaUsed(appID, path string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.accounts[appID]
	if !ok {
		return 0, fmt.Errorf("%w: %s", ErrUnknownAccount, appID)
	}
	a.rollQuotaDay(s.clock.Now())
	return a.calls[normalizePath(path)], nil
}

// ResetQuota clears the account's daily counters, as cgi-bin/clear_quota
// does.
func (s *Sim) ResetQuota(appID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.accounts[appID]
	if !ok {
		return fmt.Errorf("%w: %s", ErrUnknownAccount, appID)
	}
	a.calls = map[string]int{}
	a.forceRefreshes = 0
	return nil
}

// nextMsgID hands out a unique, increasing 64-bit MsgId. Caller holds s.mu.
func (s *Sim) nextMsgID() uint64 {
	s.msgID += 1 + s.rng.Uint64N(997)
	return s.msgID
}

// rid returns a fresh request id for an errmsg suffix.
func (s *Sim) rid() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return newRID(s.rng)
}
