package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wechat-relay/wechat-relay/relay"
)

// Sender is WeChat's outbound API as the relay needs it: customer-service
// messages (custom/send), the typing indicator, temporary media upload
// and template messages. It shares the API's accounts, HTTP settings and
// access tokens, and it is safe for concurrent use.
//
// Errors follow relay.Sender's contract, which exists because WeChat has
// no idempotency key and a message sent twice cannot be taken back:
//
//   - nil: WeChat answered errcode 0.
//   - *relay.SendError (reach it with errors.As): WeChat answered a
//     non-zero errcode, so nothing was delivered. A token WeChat rejects
//     (40001, 40014, 42001) is refreshed once and the call repeated
//     first; that repeat cannot double a message, because the first
//     request was refused.
//   - an error wrapping relay.ErrOutcomeUnknown: the whole request left
//     this process and no WeChat answer came back (a timeout, the caller's
//     deadline while waiting, a connection lost, an HTTP 5xx or a 2xx
//     that is not WeChat's JSON). It may have been delivered: never
//     resend it blindly.
//   - any other error: the request certainly did not reach WeChat's API
//     (unknown account, unsupported kind, no token, a dial, DNS or TLS
//     failure, an HTTP 3xx or 4xx from something in between) and may be
//     retried. Errors wrapping ErrUnsupportedKind are permanent.
//
// No error and no log line carries an access token or a message body.
type Sender struct {
	api     *API
	client  *http.Client
	log     *slog.Logger
	metrics *sendMetrics
}

var _ relay.Sender = (*Sender)(nil)

// ErrUnsupportedKind is wrapped by the errors of SendCustom and
// UploadMedia for a kind WeChat's API cannot carry. Such an error is
// permanent: nothing was sent, and retrying will not help.
var ErrUnsupportedKind = errors.New("gateway: kind not supported by the WeChat API")

// The API paths the Sender calls, under /cgi-bin/. They are also the
// values of the "api" label of wechat_relay_sends_total.
const (
	apiCustomSend   = "message/custom/send"
	apiCustomTyping = "message/custom/typing"
	apiMediaUpload  = "media/upload"
	apiTemplateSend = "message/template/send"
)

// NewSender returns the outbound API over api. reg receives
// wechat_relay_sends_total; nil means no metrics are exported. log
// receives one line per failed call (account, api, outcome, errcode),
// never a token or a message body; nil discards.
func NewSender(api *API, reg prometheus.Registerer, log *slog.Logger) (*Sender, error) {
	if api == nil {
		return nil, errors.New("gateway: NewSender: nil API")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newSendMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("gateway: NewSender: register metrics: %w", err)
	}
	// A copy of the API's client that never follows redirects: a
	// redirected POST would be sent again to wherever it points, and a
	// 301/302 would even turn it into a GET. A redirect is an answer of
	// something that is not WeChat's API, and is reported as such.
	c := *api.client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if dt, ok := http.DefaultTransport.(*http.Transport); ok && c.Transport == nil {
		// A request written on a keep-alive connection the server is
		// closing at that moment fails after being written, and so
		// counts as an unknown outcome. Retiring idle connections early
		// makes that race rarer.
		t := dt.Clone()
		t.IdleConnTimeout = senderIdleConnTimeout
		c.Transport = t
	}
	return &Sender{api: api, client: &c, log: log, metrics: m}, nil
}

// senderIdleConnTimeout retires the Sender's idle connections well
// before common server keep-alive timeouts (nginx: 75 s).
const senderIdleConnTimeout = 15 * time.Second

// apiRequest is one WeChat API call, without its access token.
type apiRequest struct {
	api         string     // path under /cgi-bin/, one of the api* constants
	query       url.Values // besides access_token; may be nil
	contentType string
	body        []byte
}

// url returns the request URL with tok. It holds the token: it goes
// nowhere but into the request, and errors quoting it pass redactErr.
func (s *Sender) url(r apiRequest, tok string) string {
	q := url.Values{}
	for k, v := range r.query {
		q[k] = v
	}
	q.Set("access_token", tok)
	return s.api.base + "/cgi-bin/" + r.api + "?" + q.Encode()
}

// call performs r for account and decodes a successful JSON answer into
// out (if not nil). A rejected token is refreshed once and the call
// repeated. The error follows the contract in Sender's doc comment; it
// is counted and, unless nil, logged.
func (s *Sender) call(ctx context.Context, account, msgID string, r apiRequest, out any) (err error) {
	defer func() { s.record(account, msgID, r.api, err) }()
	ts, ok := s.api.accounts[account]
	if !ok {
		return fmt.Errorf("gateway: %s: %w %q", r.api, ErrUnknownAccount, account)
	}
	tok, err := ts.token(ctx)
	if err != nil {
		return fmt.Errorf("gateway: %s: %w", r.api, err)
	}
	err = s.attempt(ctx, r, tok, out)
	if se := (*relay.SendError)(nil); errors.As(err, &se) && tokenRejected(se.Code) {
		s.log.Info("WeChat rejected the access token; refreshing it and calling again",
			"account", account, "api", r.api, "errcode", se.Code)
		fresh, rerr := ts.refresh(ctx, tok)
		if rerr != nil {
			// The first request was refused, so nothing was sent.
			return fmt.Errorf("gateway: %s for account %q: token rejected (errcode %d): %w", r.api, account, se.Code, rerr)
		}
		err = s.attempt(ctx, r, fresh, out)
	}
	if err != nil {
		return fmt.Errorf("gateway: %s for account %q: %w", r.api, account, err)
	}
	return nil
}

// attempt performs r once with tok and interprets WeChat's answer.
func (s *Sender) attempt(ctx context.Context, r apiRequest, tok string, out any) error {
	status, data, err := s.post(ctx, s.url(r, tok), r.contentType, r.body)
	if err != nil {
		return err
	}
	return interpretAnswer(status, data, tok, out)
}

// record counts a finished call and logs a failure.
func (s *Sender) record(account, msgID, api string, err error) {
	label := account
	if _, ok := s.api.accounts[account]; !ok {
		label = unknownAccountLabel
	}
	result := sendResult(err)
	s.metrics.count(label, api, result)
	if err == nil {
		return
	}
	attrs := []any{"account", account, "api", api, "result", result, "err", err}
	if msgID != "" {
		attrs = append(attrs, "msg_id", msgID)
	}
	switch result {
	case resultUnknown:
		s.log.Warn("WeChat API call: outcome unknown, the request may have been delivered", attrs...)
	case resultError:
		s.log.Warn("WeChat API call failed before reaching WeChat", attrs...)
	default:
		s.log.Info("WeChat API call refused", attrs...)
	}
}

// Results of a call besides WeChat's errcodes, the values of the
// "result" label.
const (
	resultOK      = "ok"
	resultUnknown = "unknown"
	resultError   = "error"
)

// sendResult is the "result" label of a call that returned err.
func sendResult(err error) string {
	var se *relay.SendError
	switch {
	case err == nil:
		return resultOK
	case errors.As(err, &se):
		return strconv.Itoa(se.Code)
	case errors.Is(err, relay.ErrOutcomeUnknown):
		return resultUnknown
	}
	return resultError
}
