package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wechat-relay/wechat-relay/relay"
)

// Acceptor is what the callback handler needs from the relay. A nil
// error means the message is durable (or a known duplicate) and WeChat
// may be answered; any error makes the handler answer 503 so that WeChat
// retries.
type Acceptor interface {
	Accept(ctx context.Context, m relay.Message) error
}

// CallbackOptions are the optional collaborators of the callback
// handler. The zero value is usable.
type CallbackOptions struct {
	// Logger receives one line per refused callback; nil discards.
	Logger *slog.Logger
	// Now is the clock for the timestamp window; nil means time.Now.
	Now func() time.Time
	// Registerer receives wechat_relay_callbacks_total; nil means no
	// metrics are exported.
	Registerer prometheus.Registerer
}

// CallbackPath is the pattern the handler serves, with {account} the
// Account.ID.
const CallbackPath = "/wechat/{account}"

// callbackHandler serves WeChat's callbacks for every configured account.
// It holds no mutable state; all methods are safe for concurrent use.
type callbackHandler struct {
	accounts map[string]*callbackAccount
	acc      Acceptor
	log      *slog.Logger
	now      func() time.Time
	maxBody  int64
	skew     time.Duration
	metrics  *callbackMetrics
	mux      *http.ServeMux
}

// callbackAccount is an Account with its AES key decoded once.
type callbackAccount struct {
	Account
	key    []byte // nil if EncodingAESKey is empty or invalid
	keyErr error
}

// NewCallbackHandler returns the handler of WeChat's callbacks: GET (URL
// verification with echostr) and POST (messages and events) on
// /wechat/{account}. It routes on the full request path, so mount it as
// is — mux.Handle("/wechat/", h) — and not behind http.StripPrefix.
//
// cfg should have passed Validate; an account whose EncodingAESKey does
// not decode refuses encrypted callbacks with 500. Each accepted message
// is passed to acc before WeChat is answered.
func NewCallbackHandler(cfg Config, acc Acceptor, opts CallbackOptions) http.Handler {
	cfg = cfg.withDefaults()
	h := &callbackHandler{
		accounts: make(map[string]*callbackAccount, len(cfg.Accounts)),
		acc:      acc,
		log:      opts.Logger,
		now:      opts.Now,
		maxBody:  cfg.MaxBodyBytes,
		skew:     cfg.TimestampSkew,
		mux:      http.NewServeMux(),
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	metrics, err := newCallbackMetrics(opts.Registerer)
	if err != nil {
		h.log.Error("callback metrics not registered; counting without exporting", "err", err)
		metrics, _ = newCallbackMetrics(nil)
	}
	h.metrics = metrics
	for _, a := range cfg.Accounts {
		ca := &callbackAccount{Account: a}
		if a.EncodingAESKey != "" {
			ca.key, ca.keyErr = decodeAESKey(a.EncodingAESKey)
		} else {
			ca.keyErr = errors.New("EncodingAESKey is not configured")
		}
		h.accounts[a.ID] = ca
	}
	h.mux.HandleFunc("GET "+CallbackPath, h.serveVerify)
	h.mux.HandleFunc("POST "+CallbackPath, h.serveMessage)
	return h
}

func (h *callbackHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mux.ServeHTTP(w, r)
}

// serveVerify answers WeChat's URL verification. With msg_signature the
// echostr is encrypted (the safe-mode variant): it is checked against
// msg_signature, decrypted and the plaintext answered. Otherwise the
// echostr is answered as is when signature matches; WeChat verifies
// Official Account URLs this way in every mode.
func (h *callbackHandler) serveVerify(w http.ResponseWriter, r *http.Request) {
	a, ok := h.account(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	ts, nonce, echostr := q.Get("timestamp"), q.Get("nonce"), q.Get("echostr")
	if echostr == "" {
		h.refuse(w, r, a.ID, http.StatusBadRequest, resultMalformed, "missing echostr", nil)
		return
	}
	var answer string
	if msgSig := q.Get("msg_signature"); msgSig != "" {
		// A '+' of the base64 echostr sent unescaped arrives as a space.
		enc := strings.ReplaceAll(echostr, " ", "+")
		if !signatureOK(msgSig, a.Token, ts, nonce, enc) {
			h.refuse(w, r, a.ID, http.StatusUnauthorized, resultBadSignature, "bad msg_signature", nil)
			return
		}
		if !h.timestampOK(w, r, a.ID, ts) {
			return
		}
		if a.key == nil {
			h.refuse(w, r, a.ID, http.StatusInternalServerError, resultMisconfigured, "account cannot decrypt", a.keyErr)
			return
		}
		plain, err := decryptMessage(a.key, a.AppID, enc)
		if err != nil {
			h.refuseDecrypt(w, r, a.ID, err)
			return
		}
		answer = string(plain)
	} else {
		if !signatureOK(q.Get("signature"), a.Token, ts, nonce) {
			h.refuse(w, r, a.ID, http.StatusUnauthorized, resultBadSignature, "bad or missing signature", nil)
			return
		}
		if !h.timestampOK(w, r, a.ID, ts) {
			return
		}
		answer = echostr
	}
	h.metrics.count(a.ID, resultVerified)
	h.log.Info("wechat callback URL verified", "account", a.ID, "remote", r.RemoteAddr)
	writeText(w, http.StatusOK, answer)
}

// serveMessage handles a message or event callback: authenticate, bound,
// decrypt, parse, hand to the Acceptor, answer "success".
func (h *callbackHandler) serveMessage(w http.ResponseWriter, r *http.Request) {
	a, ok := h.account(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	ts, nonce := q.Get("timestamp"), q.Get("nonce")

	var encrypted bool
	switch et := q.Get("encrypt_type"); et {
	case "", "raw":
	case "aes":
		encrypted = true
	default:
		h.refuse(w, r, a.ID, http.StatusBadRequest, resultMalformed, "unknown encrypt_type", nil)
		return
	}
	switch mode := a.mode(); {
	case encrypted && mode == ModePlain:
		h.refuse(w, r, a.ID, http.StatusForbidden, resultModeMismatch, "account is in plain mode: encrypted callbacks are not accepted", nil)
		return
	case !encrypted && mode == ModeSafe:
		h.refuse(w, r, a.ID, http.StatusForbidden, resultModeMismatch, "account is in safe mode: only encrypted callbacks (encrypt_type=aes) are accepted", nil)
		return
	}

	// The plain signature covers only the query: check it before
	// reading a body from someone who does not know the token. WeChat
	// sends it in safe mode too; checked whenever present.
	sig := q.Get("signature")
	if (!encrypted || sig != "") && !signatureOK(sig, a.Token, ts, nonce) {
		h.refuse(w, r, a.ID, http.StatusUnauthorized, resultBadSignature, "bad or missing signature", nil)
		return
	}

	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			h.refuse(w, r, a.ID, http.StatusRequestEntityTooLarge, resultTooLarge,
				fmt.Sprintf("body larger than %d bytes", h.maxBody), nil)
			return
		}
		h.refuse(w, r, a.ID, http.StatusBadRequest, resultMalformed, "cannot read body", err)
		return
	}

	plain := body
	if encrypted {
		env, err := parseEnvelope(body)
		if err != nil {
			h.refuse(w, r, a.ID, http.StatusBadRequest, resultMalformed, "malformed encrypted envelope", err)
			return
		}
		if !signatureOK(q.Get("msg_signature"), a.Token, ts, nonce, env.Encrypt) {
			h.refuse(w, r, a.ID, http.StatusUnauthorized, resultBadSignature, "bad or missing msg_signature", nil)
			return
		}
		if !h.timestampOK(w, r, a.ID, ts) {
			return
		}
		if a.key == nil {
			h.refuse(w, r, a.ID, http.StatusInternalServerError, resultMisconfigured, "account cannot decrypt", a.keyErr)
			return
		}
		if plain, err = decryptMessage(a.key, a.AppID, env.Encrypt); err != nil {
			h.refuseDecrypt(w, r, a.ID, err)
			return
		}
	} else if !h.timestampOK(w, r, a.ID, ts) {
		return
	}

	m, err := parseMessage(a.ID, plain)
	if err != nil {
		h.refuse(w, r, a.ID, http.StatusBadRequest, resultMalformed, "malformed message XML", err)
		return
	}
	if err := h.acc.Accept(r.Context(), m); err != nil {
		h.refuse(w, r, a.ID, http.StatusServiceUnavailable, resultUnavailable,
			"message not accepted, retry later", err, "msg_id", m.ID)
		return
	}
	h.metrics.count(a.ID, resultAccepted)
	h.log.Debug("wechat callback accepted", "account", a.ID, "msg_id", m.ID, "kind", m.Kind, "event", m.Event)
	writeText(w, http.StatusOK, "success")
}

// account resolves the {account} path value, refusing unknown ids.
func (h *callbackHandler) account(w http.ResponseWriter, r *http.Request) (*callbackAccount, bool) {
	id := r.PathValue("account")
	a, ok := h.accounts[id]
	if !ok {
		if len(id) > 64 {
			id = id[:64]
		}
		h.refuse(w, r, unknownAccountLabel, http.StatusNotFound, resultUnknownAccount, "unknown account", nil,
			"requested", id)
		return nil, false
	}
	return a, true
}

// timestampOK refuses callbacks whose timestamp is missing or further
// than the skew window from the local clock. Signatures never expire, so
// without this a captured callback could be replayed forever.
func (h *callbackHandler) timestampOK(w http.ResponseWriter, r *http.Request, account, ts string) bool {
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		h.refuse(w, r, account, http.StatusForbidden, resultBadTimestamp, "missing or malformed timestamp", nil)
		return false
	}
	now := h.now().Unix()
	skew := int64(h.skew / time.Second)
	if sec < now-skew || sec > now+skew {
		h.refuse(w, r, account, http.StatusForbidden, resultBadTimestamp,
			fmt.Sprintf("stale timestamp: more than %s away from server time", h.skew), nil,
			"offset_seconds", sec-now)
		return false
	}
	return true
}

// refuseDecrypt refuses a callback whose ciphertext could not be opened.
func (h *callbackHandler) refuseDecrypt(w http.ResponseWriter, r *http.Request, account string, err error) {
	if errors.Is(err, errWrongAppID) {
		h.refuse(w, r, account, http.StatusBadRequest, resultWrongAppID, "ciphertext is for another AppID", nil)
		return
	}
	h.refuse(w, r, account, http.StatusBadRequest, resultBadCiphertext, "ciphertext does not decrypt", err)
}

// refuse answers status with a short text, logs one structured line and
// counts the refusal. Log lines carry the account, the reason and the
// remote address — never the body or a secret; err must not quote them.
func (h *callbackHandler) refuse(w http.ResponseWriter, r *http.Request, account string, status int, result, text string, err error, extra ...any) {
	h.metrics.count(account, result)
	attrs := append([]any{
		"account", account,
		"reason", result,
		"status", status,
		"remote", r.RemoteAddr,
	}, extra...)
	if err != nil {
		attrs = append(attrs, "err", err.Error())
	}
	h.log.Warn("wechat callback refused", attrs...)
	writeText(w, status, text)
}

func writeText(w http.ResponseWriter, status int, text string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, text)
}
