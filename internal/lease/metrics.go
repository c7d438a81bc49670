package lease

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	active      *prometheus.GaugeVec
	revocations *prometheus.CounterVec
	failed      prometheus.Gauge
}

func newMetrics(r prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "stint_leases_active", Help: "Active leases by target.",
		}, []string{"target"}),
		revocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stint_lease_revocations_total", Help: "Revocation attempts by target and outcome (success, failure, abandoned).",
		}, []string{"target", "outcome"}),
		failed: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "stint_leases_failed", Help: "Leases whose revocation kept failing (state failed).",
		}),
	}
	if r != nil {
		for _, c := range []prometheus.Collector{m.active, m.revocations, m.failed} {
			if err := r.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
