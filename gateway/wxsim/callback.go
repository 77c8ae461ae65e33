package wxsim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/silenceper/wechat/v2/util"
)

// CallbackStatus is how a callback ended.
type CallbackStatus string

// Callback outcomes.
const (
	// CallbackSuccess: the relay answered "success" or an empty body.
	CallbackSuccess CallbackStatus = "success"
	// CallbackReply: the relay answered a valid passive reply, which was
	// delivered to the client.
	CallbackReply CallbackStatus = "reply"
	// CallbackTimeout: no try was answered within CallbackTimeout.
	CallbackTimeout CallbackStatus = "timeout"
	// CallbackError: unreachable, a non-200 status, or an answer WeChat
	// would refuse (garbage, a bad signature, plaintext in safe mode…).
	CallbackError CallbackStatus = "error"
	// CallbackPending: the first try is in flight (log entries only).
	CallbackPending CallbackStatus = "pending"
	// CallbackRetrying: an earlier try went unanswered or failed, a later
	// one is in flight (log entries only).
	CallbackRetrying CallbackStatus = "retrying"
)

// maxStateResponse bounds the relay's answer kept in a CallbackState.
const maxStateResponse = 512

// CallbackState is how the push of one client log entry to the relay
// stands, for the phone page: in flight (pending, retrying) or its outcome
// (success, reply, timeout, error), with the relay's answer.
type CallbackState struct {
	Status CallbackStatus `json:"status"`
	// Attempts is the number of the try in flight, or of tries made.
	Attempts int `json:"attempts"`
	// Tries is how many tries WeChat makes in all (CallbackTries).
	Tries int `json:"tries"`
	// HTTPStatus and Response are the relay's final answer (Response cut
	// to 512 bytes).
	HTTPStatus int    `json:"http_status,omitempty"`
	Response   string `json:"response,omitempty"`
	// Error explains a failure, or why the previous try is being retried.
	Error string `json:"error,omitempty"`
}

// Errors a callback can end with (wrapped, with details).
var (
	ErrCallbackTimeout = errors.New("wxsim: callback not answered in time")
	ErrBadAnswer       = errors.New("wxsim: callback answer refused")
	ErrUnreachable     = errors.New("wxsim: callback URL unreachable")
)

// maxAnswer bounds how much of the relay's answer is read.
const maxAnswer = 1 << 20

// CallbackResult reports one push to the relay, all tries included.
type CallbackResult struct {
	AppID   string `json:"appid"`
	OpenID  string `json:"openid"`
	MsgType string `json:"msgtype"`
	Event   string `json:"event,omitempty"`
	// MsgID is the MsgId (messages) or MsgID (TEMPLATESENDJOBFINISH) as a
	// decimal string; events have none.
	MsgID      string `json:"msgid,omitempty"`
	CreateTime int64  `json:"create_time"`
	// Attempts is how many tries were sent (1 to CallbackTries).
	Attempts int            `json:"attempts"`
	Status   CallbackStatus `json:"status"`
	// HTTPStatus and Response are the final answer's status and body.
	HTTPStatus int    `json:"http_status,omitempty"`
	Response   string `json:"response,omitempty"`
	// Reply is the plaintext passive reply XML (decrypted in safe mode).
	Reply string `json:"reply,omitempty"`
	// Latency is the final try's round trip; Total spans all tries.
	Latency time.Duration `json:"latency"`
	Total   time.Duration `json:"total"`
	// Error explains a timeout or error status; TryErrors lists what went
	// wrong with each failed try.
	Error     string   `json:"error,omitempty"`
	TryErrors []string `json:"try_errors,omitempty"`
}

// push is one callback to deliver.
type push struct {
	appID, openID string
	msgType       string
	event         string
	msgID         string
	createTime    int64
	plain         []byte // plaintext XML
	// toPhone: a passive reply is delivered to the client's log.
	toPhone bool
	// logSeq is the client log entry whose CallbackState follows this
	// push; 0 for none.
	logSeq int64
}

// acctView is what delivery needs of an account, copied under the lock.
type acctView struct {
	appID, token, aesKey, originalID, callbackURL string
	mode                                          Mode
}

func (s *Sim) acctView(appID string) (acctView, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.accounts[appID]
	if !ok {
		return acctView{}, fmt.Errorf("%w: %s", ErrUnknownAccount, appID)
	}
	return acctView{appID: a.AppID, token: a.Token, aesKey: a.EncodingAESKey, originalID: a.OriginalID,
		callbackURL: a.CallbackURL, mode: a.Mode}, nil
}

// deliver POSTs p to the account's callback URL as WeChat does: signed,
// encrypted per mode, retried when unanswered within CallbackTimeout, up to
// CallbackTries tries with the same MsgId. The answer is checked; a passive
// reply is delivered to the client. The result is recorded in CallbackLog
// and returned, with an error unless the relay answered acceptably.
func (s *Sim) deliver(ctx context.Context, p push) (CallbackResult, error) {
	res := CallbackResult{AppID: p.appID, OpenID: p.openID, MsgType: p.msgType, Event: p.event, MsgID: p.msgID, CreateTime: p.createTime}
	err := s.deliverTries(ctx, p, &res)
	if err != nil {
		res.Error = err.Error()
		if res.Status == "" {
			res.Status = CallbackError
		}
	}
	s.recordCallback(res)
	s.noteCallback(p, CallbackState{Status: res.Status, Attempts: res.Attempts, HTTPStatus: res.HTTPStatus,
		Response: truncate([]byte(res.Response), maxStateResponse), Error: res.Error})
	log := s.log.With("account", p.appID, "msg_id", p.msgID, "msgtype", p.msgType, "event", p.event,
		"attempts", res.Attempts, "status", res.Status)
	if err != nil {
		log.Warn("wxsim: callback failed", "err", err)
	} else {
		log.Debug("wxsim: callback delivered", "latency", res.Latency)
	}
	return res, err
}

func (s *Sim) deliverTries(ctx context.Context, p push, res *CallbackResult) error {
	av, err := s.acctView(p.appID)
	if err != nil {
		return err
	}
	if av.callbackURL == "" {
		return fmt.Errorf("%w: %s", ErrNoCallbackURL, p.appID)
	}
	start := time.Now()
	defer func() { res.Total = time.Since(start) }()
	var lastErr error
	for try := 1; try <= s.cfg.CallbackTries; try++ {
		if try > 1 {
			s.noteCallback(p, CallbackState{Status: CallbackRetrying, Attempts: try, Error: lastErr.Error()})
		}
		if try > 1 && s.cfg.CallbackRetryDelay > 0 {
			t := time.NewTimer(s.cfg.CallbackRetryDelay)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("wxsim: callback: %w", ctx.Err())
			}
		}
		res.Attempts = try
		status, body, latency, err := s.tryOnce(ctx, av, p)
		res.Latency = latency
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("wxsim: callback: %w", ctx.Err())
			}
			lastErr = err
			res.TryErrors = append(res.TryErrors, fmt.Sprintf("try %d: %v", try, err))
			continue
		}
		res.HTTPStatus = status
		res.Response = string(body)
		return s.judgeAnswer(av, p, status, body, res)
	}
	if errors.Is(lastErr, ErrCallbackTimeout) {
		res.Status = CallbackTimeout
	}
	return lastErr
}

// tryOnce sends one try and reads the answer within CallbackTimeout.
func (s *Sim) tryOnce(ctx context.Context, av acctView, p push) (int, []byte, time.Duration, error) {
	req, err := s.buildPush(ctx, av, p)
	if err != nil {
		return 0, nil, 0, err
	}
	tctx, cancel := context.WithTimeout(ctx, s.cfg.CallbackTimeout)
	defer cancel()
	req = req.WithContext(tctx)
	t0 := time.Now()
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		return 0, nil, time.Since(t0), classifyTransport(tctx, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	latency := time.Since(t0)
	if err != nil {
		return 0, nil, latency, classifyTransport(tctx, err)
	}
	return resp.StatusCode, body, latency, nil
}

// classifyTransport tells a timeout (WeChat retries) from other failures.
func classifyTransport(tctx context.Context, err error) error {
	var ne net.Error
	if errors.Is(tctx.Err(), context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%w: %v", ErrCallbackTimeout, err)
	}
	return fmt.Errorf("%w: %v", ErrUnreachable, err)
}

// buildPush signs (and encrypts) one try. Each try gets a fresh timestamp
// and nonce; the XML, its CreateTime and MsgId stay the same.
func (s *Sim) buildPush(ctx context.Context, av acctView, p push) (*http.Request, error) {
	u, err := url.Parse(av.callbackURL)
	if err != nil {
		return nil, fmt.Errorf("wxsim: callback URL %q: %w", av.callbackURL, err)
	}
	s.mu.Lock()
	nonce := newNonce(s.rng)
	random := randString(s.rng, alnumChars, 16)
	s.mu.Unlock()
	ts := strconv.FormatInt(s.clock.Now().Unix(), 10)
	q := u.Query()
	q.Set("signature", util.Signature(av.token, ts, nonce))
	q.Set("timestamp", ts)
	q.Set("nonce", nonce)
	if p.openID != "" {
		q.Set("openid", p.openID)
	}
	body := p.plain
	if av.mode != ModePlain {
		enc, err := util.EncryptMsg([]byte(random), p.plain, av.appID, av.aesKey)
		if err != nil {
			return nil, fmt.Errorf("wxsim: encrypt callback: %w", err)
		}
		q.Set("encrypt_type", "aes")
		q.Set("msg_signature", util.Signature(av.token, ts, nonce, string(enc)))
		if av.mode == ModeSafe {
			body = safeEnvelope(av.originalID, string(enc))
		} else {
			body = compatibleEnvelope(p.plain, string(enc))
		}
	}
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("wxsim: build callback: %w", err)
	}
	req.Header.Set("Content-Type", "text/xml")
	req.Header.Set("User-Agent", "Mozilla/4.0")
	return req, nil
}

// noteCallback updates the CallbackState of the push's log entry, if it
// has one.
func (s *Sim) noteCallback(p push, st CallbackState) {
	if p.logSeq == 0 {
		return
	}
	st.Tries = s.cfg.CallbackTries
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.clients[p.openID]; ok {
		c.setCallback(p.logSeq, st)
	}
}

// recordCallback appends res to the bounded callback log.
func (s *Sim) recordCallback(res CallbackResult) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.callbackLog = append(s.callbackLog, res)
	if over := len(s.callbackLog) - s.cfg.CallbackLogSize; over > 0 {
		s.callbackLog = append(s.callbackLog[:0:0], s.callbackLog[over:]...)
	}
}

// CallbackLog returns the most recent callback results, oldest first.
func (s *Sim) CallbackLog() []CallbackResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]CallbackResult(nil), s.callbackLog...)
}

// VerifyCallbackURL does what WeChat does when an operator saves the
// callback URL in the admin page: a GET with signature, timestamp, nonce
// and echostr, which the relay must answer with the echostr alone.
func (s *Sim) VerifyCallbackURL(ctx context.Context, appID string) error {
	av, err := s.acctView(appID)
	if err != nil {
		return err
	}
	if av.callbackURL == "" {
		return fmt.Errorf("%w: %s", ErrNoCallbackURL, appID)
	}
	u, err := url.Parse(av.callbackURL)
	if err != nil {
		return fmt.Errorf("wxsim: callback URL %q: %w", av.callbackURL, err)
	}
	s.mu.Lock()
	nonce := newNonce(s.rng)
	echo := strconv.FormatUint(s.rng.Uint64(), 10)
	s.mu.Unlock()
	ts := strconv.FormatInt(s.clock.Now().Unix(), 10)
	q := u.Query()
	q.Set("signature", util.Signature(av.token, ts, nonce))
	q.Set("timestamp", ts)
	q.Set("nonce", nonce)
	q.Set("echostr", echo)
	u.RawQuery = q.Encode()
	tctx, cancel := context.WithTimeout(ctx, s.cfg.CallbackTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(tctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("wxsim: verify callback URL: %w", err)
	}
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("wxsim: verify callback URL: %w", classifyTransport(tctx, err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if err != nil {
		return fmt.Errorf("wxsim: verify callback URL: %w", classifyTransport(tctx, err))
	}
	if resp.StatusCode != http.StatusOK || string(bytes.TrimSpace(body)) != echo {
		return fmt.Errorf("%w: URL verification answered HTTP %d %q, want the echostr", ErrBadAnswer, resp.StatusCode, truncate(body, 80))
	}
	return nil
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}
