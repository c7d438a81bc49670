package broker

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stint-dev/stint/internal/core"
)

// Metrics counts what the broker decides. Labels never carry a subject,
// a token or any other caller-supplied value.
type Metrics struct {
	auths     *prometheus.CounterVec
	decisions *prometheus.CounterVec
	latency   *prometheus.HistogramVec
}

// NewMetrics registers the broker's metrics on reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		auths: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stint_authentications_total", Help: "Presented identities verified, by outcome.",
		}, []string{"outcome"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stint_policy_decisions_total", Help: "Policy decisions, by outcome.",
		}, []string{"outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "stint_broker_duration_seconds", Help: "Time spent in the broker per operation.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, 1, 5},
		}, []string{"op", "outcome"}),
	}
	if reg != nil {
		reg.MustRegister(m.auths, m.decisions, m.latency)
	}
	return m
}

func (m *Metrics) auth(ok bool) { m.auths.WithLabelValues(outcome(ok)).Inc() }

func (m *Metrics) decision(allow bool) {
	if allow {
		m.decisions.WithLabelValues("allow").Inc()
		return
	}
	m.decisions.WithLabelValues("deny").Inc()
}

func (m *Metrics) observe(op string, start, end time.Time, err error) {
	o := "success"
	if err != nil {
		o = errorLabel(core.KindOf(err))
	}
	m.latency.WithLabelValues(op, o).Observe(end.Sub(start).Seconds())
}

func outcome(ok bool) string {
	if ok {
		return "success"
	}
	return "failure"
}

func errorLabel(k core.Kind) string {
	switch k {
	case core.KindInvalid:
		return "invalid"
	case core.KindUnauthenticated:
		return "unauthenticated"
	case core.KindForbidden:
		return "denied"
	case core.KindNotFound:
		return "not_found"
	case core.KindRateLimited:
		return "rate_limited"
	case core.KindUnavailable:
		return "unavailable"
	default:
		return "error"
	}
}
