package audit

import (
	"context"
	"crypto/ed25519"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// TestRecordGivesUpOnFullRequiredQueueWithinDeadline fills a stuck required
// sink's queue: callers waiting for room or for their turn return at their
// deadline, take no seq, and once the sink recovers the chain goes on
// without a gap.
func TestRecordGivesUpOnFullRequiredQueueWithinDeadline(t *testing.T) {
	stuck := &memSink{block: make(chan struct{})}
	l, err := NewLog(Options{Sinks: []SinkConfig{{Sink: stuck, Required: true, QueueSize: 1}}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	short := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), 100*time.Millisecond)
	}
	// Seq 1 is taken by the writer (stuck in Write); seq 2 fills the queue.
	for i := 1; i <= 2; i++ {
		ctx, cancel := short()
		if err := l.Record(ctx, ev(CredentialIssue, i)); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Record %d = %v, want deadline exceeded while the sink is stuck", i, err)
		}
		cancel()
		if i == 1 {
			waitFor(t, "writer to take seq 1", func() bool { return l.queues[0].depth() == 0 })
		}
	}
	// Now the queue is full: one caller waits for room, others for its turn.
	var wg sync.WaitGroup
	errs := make([]error, 4)
	took := make([]time.Duration, 4)
	for i := range errs {
		wg.Go(func() {
			ctx, cancel := short()
			defer cancel()
			start := time.Now()
			errs[i] = l.Record(ctx, ev(CredentialIssue, 10+i))
			took[i] = time.Since(start)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("caller %d: Record = %v, want deadline exceeded", i, err)
		}
		if took[i] > time.Second {
			t.Errorf("caller %d returned after %v, deadline was 100ms", i, took[i])
		}
	}
	if seq, _ := l.Head(); seq != 2 {
		t.Fatalf("head seq = %d after callers gave up; want 2 (they must take no seq)", seq)
	}
	close(stuck.block)
	if err := l.Record(context.Background(), ev(CredentialIssue, 99)); err != nil {
		t.Fatal(err)
	}
	got := stuck.got()
	if len(got) != 3 {
		t.Fatalf("sink got seqs %v, want 1 2 3", seqs(got))
	}
	for i, e := range got {
		if e.Seq != uint64(i+1) || (i > 0 && e.PrevHash != got[i-1].Hash) {
			t.Fatalf("sink got seqs %v: chain broken at %d", seqs(got), i)
		}
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	ok := &memSink{}
	hs, err := NewHTTPSink(HTTPOptions{URL: "http://127.0.0.1:1/in?token=SECRET", Logger: quiet, SpoolOptions: SpoolOptions{SpoolDir: t.TempDir(), RetryMin: time.Hour}}) // nothing listens: the http sink spools
	if err != nil {
		t.Fatal(err)
	}
	bad := &memSink{err: errors.New("nope")}
	l, err := NewLog(Options{Registerer: reg, Logger: quiet, CheckpointKey: testKey(t), CheckpointEvery: 3,
		Sinks: []SinkConfig{{Sink: ok, Required: true}, {Sink: hs}, {Sink: bad}}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := l.Record(context.Background(), ev(CredentialIssue, i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Record(context.Background(), Event{Type: PolicyDeny, Outcome: OutcomeDenied}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "best-effort writes", func() bool { return l.queues[2].failures.Load() >= 1 && hs.SpoolStats().Events == 5 })
	l.Close()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		byName[mf.GetName()] = mf
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if strings.Contains(lp.GetValue(), "SECRET") || strings.Contains(lp.GetValue(), "127.0.0.1") {
					t.Fatalf("metric %s has label %s=%q: an address", mf.GetName(), lp.GetName(), lp.GetValue())
				}
			}
		}
	}
	tests := []struct {
		name   string
		labels map[string]string
		want   float64 // -1: at least 1
	}{
		{"stint_audit_events_total", map[string]string{"type": CredentialIssue, "outcome": OutcomeSuccess}, 3},
		{"stint_audit_events_total", map[string]string{"type": PolicyDeny, "outcome": OutcomeDenied}, 1},
		{"stint_audit_events_total", map[string]string{"type": Checkpoint, "outcome": OutcomeSuccess}, 2},
		{"stint_audit_checkpoints_total", nil, 2},
		{"stint_audit_spool_events", map[string]string{"sink": "http-1"}, 6},
		{"stint_audit_spool_bytes", map[string]string{"sink": "http-1"}, -1},
		{"stint_audit_spool_full", map[string]string{"sink": "http-1"}, 0},
		{"stint_audit_spool_dropped_events_total", map[string]string{"sink": "http-1"}, 0},
		{"stint_audit_gap_events_total", map[string]string{"sink": "http-1"}, 0},
		{"stint_audit_sink_write_failures_total", map[string]string{"sink": "mem-2"}, -1},
		{"stint_audit_sink_write_failures_total", map[string]string{"sink": "mem-0"}, 0},
		{"stint_audit_queue_depth", map[string]string{"sink": "mem-0"}, 0},
		{"stint_audit_queue_dropped_events_total", map[string]string{"sink": "mem-2"}, 0},
	}
	for _, tc := range tests {
		v, ok := metricValue(byName[tc.name], tc.labels)
		switch {
		case !ok:
			t.Errorf("%s%v not exported", tc.name, tc.labels)
		case tc.want < 0 && v < 1, tc.want >= 0 && v != tc.want:
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, v, tc.want)
		}
	}
}

// metricValue finds the sample of mf with exactly these labels.
func metricValue(mf *dto.MetricFamily, labels map[string]string) (float64, bool) {
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.GetMetric() {
		if len(m.GetLabel()) != len(labels) {
			continue
		}
		for _, lp := range m.GetLabel() {
			if labels[lp.GetName()] != lp.GetValue() {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		}
	}
	return 0, false
}

func testKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
