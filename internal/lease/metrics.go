package lease

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	active      *prometheus.GaugeVec
	revocations *prometheus.CounterVec
	failed      prometheus.Gauge
	pruned      prometheus.Counter
}

func newMetrics(r prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "stint_leases_active", Help: "Live (pending or active) leases by target.",
		}, []string{"target"}),
		revocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stint_lease_revocations_total", Help: "Revocation attempts by target and outcome (success, failure, abandoned).",
		}, []string{"target", "outcome"}),
		failed: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "stint_leases_failed", Help: "Leases whose revocation kept failing (state failed).",
		}),
		pruned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "stint_leases_pruned_total", Help: "Revoked leases deleted from the store after the retention past their expiry.",
		}),
	}
	if r != nil {
		for _, c := range []prometheus.Collector{m.active, m.revocations, m.failed, m.pruned} {
			if err := r.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
