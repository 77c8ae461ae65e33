package gateway

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// sendMetrics counts the Sender's calls by account, API and result.
type sendMetrics struct {
	total *prometheus.CounterVec
}

// newSendMetrics registers the counter with reg, or keeps it
// unregistered when reg is nil. A second Sender on the same registry
// shares the counter already registered instead of failing.
func newSendMetrics(reg prometheus.Registerer) (*sendMetrics, error) {
	total := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wechat_relay_sends_total",
		Help: "WeChat outbound API calls (custom/send, typing, media/upload, template/send) by account, api and result: " +
			"ok, WeChat's errcode, unknown (may have been delivered) or error (not sent).",
	}, []string{"account", "api", "result"})
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
	return &sendMetrics{total: total}, nil
}

func (m *sendMetrics) count(account, api, result string) {
	m.total.WithLabelValues(account, api, result).Inc()
}
