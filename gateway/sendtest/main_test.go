package sendtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wechat-relay/wechat-relay/gateway"
	"github.com/wechat-relay/wechat-relay/gateway/wxsim"
	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
	"github.com/wechat-relay/wechat-relay/storage/testenv/promtest"
)

// The simulator every test of this binary talks to, on 127.0.0.1.
var (
	sim    *wxsim.Sim
	clock  *wxsim.ManualClock
	simURL string
)

func TestMain(m *testing.M) {
	clock = wxsim.NewManualClock(time.Now())
	sim = wxsim.New(wxsim.Config{Clock: clock})
	srv := httptest.NewServer(wxsim.NewServer(sim))
	simURL = srv.URL
	sim.SetPublicURL(srv.URL)
	gateway.ConfigureAPI(srv.URL, 5*time.Second)
	code := m.Run()
	// Close the simulator first: it ends hung requests, which srv.Close
	// would otherwise wait for.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	_ = sim.Close(ctx)
	cancel()
	srv.Close()
	os.Exit(code)
}

// recorder is the relay side of callbacks: it accepts every message.
type recorder struct {
	mu   sync.Mutex
	msgs []relay.Message
}

func (r *recorder) Accept(_ context.Context, m relay.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, m)
	return nil
}

func (r *recorder) got() []relay.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]relay.Message(nil), r.msgs...)
}

// env is one Official Account on the simulator, seen from the relay: its
// callback handler (with a recorder as the Acceptor), its API client and
// its Sender.
type env struct {
	t      *testing.T
	id     string        // the relay's account id
	acct   wxsim.Account // the simulator's account, with its secrets
	api    *gateway.API
	sender *gateway.Sender
	cache  *gateway.MemoryCache
	reg    *prometheus.Registry
	inbox  *recorder
	log    *testenv.SyncBuffer

	// tokens are every access token the test saw, for the leak checks.
	mu     sync.Mutex
	tokens map[string]bool
}

var envSeq atomic.Int64

// newEnv adds an account (safe mode) to the simulator, with templates
// and kf accounts as given, and builds the relay's side of it.
func newEnv(t *testing.T, templates, kfAccounts []string) *env {
	t.Helper()
	e := &env{
		t:      t,
		id:     fmt.Sprintf("acct%d", envSeq.Add(1)),
		reg:    prometheus.NewRegistry(),
		inbox:  &recorder{},
		log:    &testenv.SyncBuffer{},
		cache:  gateway.NewMemoryCache(),
		tokens: map[string]bool{},
	}
	logger := slog.New(slog.NewTextHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug}))

	// The callback server exists before the account, whose CallbackURL
	// names it; its handler is installed once the account's secrets are
	// known.
	var handler atomic.Pointer[http.Handler]
	cb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h := handler.Load(); h != nil {
			(*h).ServeHTTP(w, r)
			return
		}
		http.Error(w, "not ready", http.StatusServiceUnavailable)
	}))
	t.Cleanup(cb.Close)

	acct, err := sim.AddAccount(wxsim.Account{
		Mode:        wxsim.ModeSafe,
		CallbackURL: cb.URL + "/wechat/" + e.id,
		Templates:   templates,
		KFAccounts:  kfAccounts,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.acct = acct
	cfg := gateway.Config{
		Accounts: []gateway.Account{{
			ID: e.id, AppID: acct.AppID, AppSecret: acct.AppSecret, Token: acct.Token,
			EncodingAESKey: acct.EncodingAESKey, Mode: gateway.ModeSafe,
		}},
		APIBaseURL: simURL,
		APITimeout: 5 * time.Second,
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	h := gateway.NewCallbackHandler(cfg, e.inbox, gateway.CallbackOptions{Logger: logger, Now: sim.Now})
	handler.Store(&h)

	if e.api, err = gateway.NewAPI(cfg, e.cache, logger); err != nil {
		t.Fatal(err)
	}
	if e.sender, err = gateway.NewSender(e.api, e.reg, logger); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.checkLogs)
	return e
}

// senderAt returns a Sender for the same account, cache and log whose
// API calls go to baseURL.
func (e *env) senderAt(baseURL string) *gateway.Sender {
	e.t.Helper()
	cfg := gateway.Config{
		Accounts: []gateway.Account{{
			ID: e.id, AppID: e.acct.AppID, AppSecret: e.acct.AppSecret, Token: e.acct.Token,
			EncodingAESKey: e.acct.EncodingAESKey, Mode: gateway.ModeSafe,
		}},
		APIBaseURL: baseURL,
		APITimeout: 5 * time.Second,
	}
	logger := slog.New(slog.NewTextHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	api, err := gateway.NewAPI(cfg, e.cache, logger)
	if err != nil {
		e.t.Fatal(err)
	}
	s, err := gateway.NewSender(api, nil, logger)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// client returns a new client of the account that has subscribed and
// sent a first message, so its 48-hour window is open.
func (e *env) client() *wxsim.Client {
	e.t.Helper()
	c, err := sim.NewClient(e.acct.AppID)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx := context.Background()
	if res, err := c.Subscribe(ctx); err != nil {
		e.t.Fatalf("subscribe: %v (%+v)", err, res)
	}
	e.interact(c)
	return c
}

// interact has c send a text, which reopens its window and resets its
// per-interaction send count.
func (e *env) interact(c *wxsim.Client) {
	e.t.Helper()
	if res, err := c.SendText(context.Background(), "在吗？"); err != nil {
		e.t.Fatalf("client text: %v (%+v)", err, res)
	}
}

// noteToken remembers the account's current cached token.
func (e *env) noteToken() {
	key := gateway.TokenCacheKeyPrefix + "_stable_access_token_" + e.acct.AppID
	if tok, ok := e.cache.Get(key).(string); ok && tok != "" {
		e.mu.Lock()
		e.tokens[tok] = true
		e.mu.Unlock()
	}
}

// noSecret fails if err quotes an access token the test has seen, or
// any access_token value at all.
func (e *env) noSecret(err error) {
	e.t.Helper()
	if err == nil {
		return
	}
	e.noteToken()
	e.mu.Lock()
	defer e.mu.Unlock()
	s := err.Error()
	for tok := range e.tokens {
		if strings.Contains(s, tok) {
			e.t.Errorf("error quotes an access token: %v", err)
		}
	}
	if i := strings.Index(s, "access_token="); i >= 0 && !strings.HasPrefix(s[i+len("access_token="):], "REDACTED") {
		e.t.Errorf("error carries an access_token value: %v", err)
	}
}

// checkLogs fails the test if the log quotes a token or a secret.
func (e *env) checkLogs() {
	e.noteToken()
	lt := e.log.String()
	e.mu.Lock()
	defer e.mu.Unlock()
	for tok := range e.tokens {
		if strings.Contains(lt, tok) {
			e.t.Errorf("log quotes an access token")
		}
	}
	for _, secret := range []string{e.acct.AppSecret, e.acct.EncodingAESKey} {
		if strings.Contains(lt, secret) {
			e.t.Errorf("log quotes a secret of the account")
		}
	}
}

// forceRotate forces a new stable token at the simulator, as another
// relay instance (or an operator's tool) would: the token in the relay's
// cache dies at once. It returns the new token.
func (e *env) forceRotate() string {
	e.t.Helper()
	e.noteToken()
	body, _ := json.Marshal(map[string]any{"grant_type": "client_credential", "appid": e.acct.AppID,
		"secret": e.acct.AppSecret, "force_refresh": true})
	resp, err := http.Post(simURL+"/cgi-bin/stable_token", "application/json", bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var ans struct {
		AccessToken string `json:"access_token"`
		ErrCode     int    `json:"errcode"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil || ans.AccessToken == "" {
		e.t.Fatalf("force refresh: %v %+v", err, ans)
	}
	e.mu.Lock()
	e.tokens[ans.AccessToken] = true
	e.mu.Unlock()
	return ans.AccessToken
}

// delivered returns what the client's phone received.
func (e *env) delivered(c *wxsim.Client) []wxsim.LogEntry {
	e.t.Helper()
	d, err := c.Delivered()
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

// counter returns wechat_relay_sends_total{account,api,result}.
func (e *env) counter(api, result string) float64 {
	e.t.Helper()
	return promtest.Counter(e.t, e.reg, "wechat_relay_sends_total", map[string]string{"account": e.id, "api": api, "result": result})
}

// msg is an outbound message of the account to c.
func (e *env) msg(c *wxsim.Client, kind relay.Kind, text, mediaID string, attrs map[string]string) relay.Message {
	return relay.Message{
		ID: fmt.Sprintf("out:%s:%d", e.id, time.Now().UnixNano()), Account: e.id, Client: c.OpenID,
		Conv: relay.Conversation(e.id, c.OpenID), Direction: relay.Outbound,
		Kind: kind, Text: text, MediaID: mediaID, Attrs: attrs,
	}
}

// sendError returns the *relay.SendError in err, or nil.
func sendError(err error) *relay.SendError {
	var se *relay.SendError
	if errors.As(err, &se) {
		return se
	}
	return nil
}

// isPlain reports whether err says "certainly not sent".
func isPlain(err error) bool {
	return err != nil && sendError(err) == nil && !errors.Is(err, relay.ErrOutcomeUnknown)
}
