package audit

import (
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the Log's Prometheus metrics. Counters that belong to a sink
// live in its queue or its spool and are read at scrape time.
type metrics struct {
	l           *Log
	events      *prometheus.CounterVec
	checkpoints prometheus.Counter

	queueDepth, writeFailures, queueDropped *prometheus.Desc
	spoolBytes, spoolEvents, spoolFull      *prometheus.Desc
	spoolDropped, gapEvents                 *prometheus.Desc
}

func newMetrics(l *Log) *metrics {
	sink := []string{"sink"}
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("stint_audit_"+name, help, sink, nil)
	}
	return &metrics{
		l: l,
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stint_audit_events_total", Help: "Audit events recorded (chained), by type and outcome.",
		}, []string{"type", "outcome"}),
		checkpoints: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "stint_audit_checkpoints_total", Help: "Signed audit.checkpoint events recorded.",
		}),
		queueDepth:    d("queue_depth", "Events waiting in a sink's in-memory queue."),
		writeFailures: d("sink_write_failures_total", "Failed sink Write calls (a required sink's failure fails the request)."),
		queueDropped:  d("queue_dropped_events_total", "Events a best-effort sink lost because its queue was full."),
		spoolBytes:    d("spool_bytes", "Undelivered bytes in a sink's on-disk spool."),
		spoolEvents:   d("spool_events", "Undelivered events in a sink's on-disk spool."),
		spoolFull:     d("spool_full", "1 while a sink's spool is full (until it drains to half)."),
		spoolDropped:  d("spool_dropped_events_total", "Events a sink lost because its spool was full (dropped oldest or rejected)."),
		gapEvents:     d("gap_events_total", "audit.gap events a sink wrote into its stream."),
	}
}

func (m *metrics) register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.events, m.checkpoints, m} {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// recorded counts chained events.
func (m *metrics) recorded(evs []Event) {
	for i := range evs {
		m.events.WithLabelValues(evs[i].Type, evs[i].Outcome).Inc()
		if evs[i].Type == Checkpoint {
			m.checkpoints.Inc()
		}
	}
}

// Describe implements prometheus.Collector for the per-sink metrics.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.queueDepth, m.writeFailures, m.queueDropped,
		m.spoolBytes, m.spoolEvents, m.spoolFull, m.spoolDropped, m.gapEvents} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: it reads each sink's queue and,
// for sinks with a spool, its SpoolStats.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	for _, q := range m.l.queues {
		ch <- prometheus.MustNewConstMetric(m.queueDepth, prometheus.GaugeValue, float64(q.depth()), q.label)
		ch <- prometheus.MustNewConstMetric(m.writeFailures, prometheus.CounterValue, float64(q.failures.Load()), q.label)
		ch <- prometheus.MustNewConstMetric(m.queueDropped, prometheus.CounterValue, float64(q.dropped.Load()), q.label)
		sr, ok := q.sink.(SpoolReporter)
		if !ok {
			continue
		}
		if o, ok := q.sink.(interface{ Spooled() bool }); ok && !o.Spooled() {
			continue
		}
		st := sr.SpoolStats()
		full := 0.0
		if st.Full {
			full = 1
		}
		ch <- prometheus.MustNewConstMetric(m.spoolBytes, prometheus.GaugeValue, float64(st.Bytes), q.label)
		ch <- prometheus.MustNewConstMetric(m.spoolEvents, prometheus.GaugeValue, float64(st.Events), q.label)
		ch <- prometheus.MustNewConstMetric(m.spoolFull, prometheus.GaugeValue, full, q.label)
		ch <- prometheus.MustNewConstMetric(m.spoolDropped, prometheus.CounterValue, float64(st.DroppedEvents), q.label)
		ch <- prometheus.MustNewConstMetric(m.gapEvents, prometheus.CounterValue, float64(st.GapEvents), q.label)
	}
}

// sinkLabel names sink i of a Log for metrics: its type (the part of Name
// before ':') and index, e.g. "http-1", never its address, which may carry
// a credential.
func sinkLabel(s Sink, i int) string {
	typ, _, _ := strings.Cut(s.Name(), ":")
	return typ + "-" + strconv.Itoa(i)
}

var _ prometheus.Collector = (*metrics)(nil)
