package gateway

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Results of a callback, the values of the "result" label.
const (
	resultAccepted       = "accepted"        // message handed to the Acceptor, answered success
	resultVerified       = "verified"        // echostr verification answered
	resultUnknownAccount = "unknown_account" // 404
	resultBadSignature   = "bad_signature"   // 401
	resultBadTimestamp   = "bad_timestamp"   // 403: missing, malformed or outside the skew window
	resultModeMismatch   = "mode_mismatch"   // 403: plain callback for a safe account or the reverse
	resultTooLarge       = "too_large"       // 413
	resultMalformed      = "malformed"       // 400: XML or fields unusable
	resultBadCiphertext  = "bad_ciphertext"  // 400
	resultWrongAppID     = "wrong_appid"     // 400
	resultMisconfigured  = "misconfigured"   // 500: the account's key does not decode
	resultUnavailable    = "unavailable"     // 503: the Acceptor failed; WeChat will retry
)

// unknownAccountLabel is the account label of callbacks for ids that are
// not configured: the path is chosen by the caller, and echoing it into a
// label would let anyone grow the metric without bound.
const unknownAccountLabel = "_unknown"

// callbackMetrics counts callbacks by account and result.
type callbackMetrics struct {
	total *prometheus.CounterVec
}

// newCallbackMetrics registers the counters with reg, or keeps them
// unregistered when reg is nil. A second handler on the same registry
// shares the counters already registered instead of panicking.
func newCallbackMetrics(reg prometheus.Registerer) (*callbackMetrics, error) {
	total := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wechat_relay_callbacks_total",
		Help: "WeChat callbacks received, by account and result (accepted, verified, or the reason for refusal).",
	}, []string{"account", "result"})
	if reg != nil {
		if err := reg.Register(total); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, err
			}
			existing, ok := are.ExistingCollector.(*prometheus.CounterVec)
			if !ok {
				return nil, err
			}
			total = existing
		}
	}
	return &callbackMetrics{total: total}, nil
}

func (m *callbackMetrics) count(account, result string) {
	m.total.WithLabelValues(account, result).Inc()
}
