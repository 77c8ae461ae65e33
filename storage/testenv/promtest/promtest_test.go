package promtest

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestCounterPicksTheLabelledSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "things_total"}, []string{"a", "b"})
	reg.MustRegister(c)
	c.WithLabelValues("x", "1").Add(2)
	c.WithLabelValues("x", "2").Add(5)

	if got := Counter(t, reg, "things_total", map[string]string{"a": "x", "b": "2"}); got != 5 {
		t.Errorf("things_total{a=x,b=2} = %v, want 5", got)
	}
	if got := Counter(t, reg, "things_total", map[string]string{"a": "y"}); got != 0 {
		t.Errorf("things_total{a=y} = %v, want 0 (no such series)", got)
	}
	if got := Counter(t, reg, "other_total", nil); got != 0 {
		t.Errorf("other_total = %v, want 0 (no such metric)", got)
	}
}
