package audit

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkRecordFile records through a durable (fsync) file sink from
// 100×GOMAXPROCS concurrent callers: group commit shares each fsync.
func BenchmarkRecordFile(b *testing.B) {
	l := newFileLog(b, filepath.Join(b.TempDir(), "audit.jsonl"), nil)
	defer l.Close()
	e := ev(CredentialIssue, 1)
	b.SetParallelism(100)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := l.Record(context.Background(), e); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkRawFsyncAppend is the baseline: append the same line and fsync,
// one event at a time, as a naive durable logger would.
func BenchmarkRawFsyncAppend(b *testing.B) {
	f, err := os.OpenFile(filepath.Join(b.TempDir(), "raw.jsonl"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	e := ev(CredentialIssue, 1)
	e.Seq, e.Hash, e.PrevHash, e.ID = 1, GenesisHash, GenesisHash, "0123456789abcdef0123456789abcdef"
	line, _ := canonicalJSON(&e)
	line = append(line, '\n')
	b.ResetTimer()
	for b.Loop() {
		if _, err := f.Write(line); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkRecordFileOneCaller is a lone caller recording three events at a
// time, as one credential request does: it must pay one fsync, never a
// commit delay meant for busy sinks.
func BenchmarkRecordFileOneCaller(b *testing.B) {
	l := newFileLog(b, filepath.Join(b.TempDir(), "audit.jsonl"), nil)
	defer l.Close()
	e := ev(CredentialIssue, 1)
	for b.Loop() {
		if err := l.RecordAll(context.Background(), e, e, e); err != nil {
			b.Fatal(err)
		}
	}
}

// discardSink accepts every batch at once.
type discardSink struct{}

func (discardSink) Name() string                         { return "discard" }
func (discardSink) Write(context.Context, []Event) error { return nil }
func (discardSink) Close() error                         { return nil }

// k8sActor is a principal as a Kubernetes service-account token yields
// it: eight string attributes.
func k8sActor() *Actor {
	return &Actor{Provider: "k8s", Kind: "kubernetes", Subject: "system:serviceaccount:payments:api",
		TokenID: "6f1c2a7e-3b9d-4c8e-a1f0-2d5e7b9c4a13",
		Attributes: map[string]any{
			"namespace": "payments", "service_account": "api", "service_account_uid": "0b5e8a52-8f7d-4c1e-9a3b-6d2f1e0c7b94",
			"pod": "api-7c9f8d6b5-x2k4q", "pod_uid": "d3a1f6c2-5e4b-4a9d-8c7f-1b2e3d4f5a6b", "node": "ip-10-0-12-34.eu-west-1.compute.internal",
			"issuer": "https://oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE", "audience": "stint",
		}}
}

// BenchmarkRecordAllSharedActor records what one credential issue does:
// three events in one RecordAll call, each with its own *Actor built from
// the same principal (one attributes map), to a required sink that costs
// nothing, so the chaining and encoding are what is measured.
func BenchmarkRecordAllSharedActor(b *testing.B) {
	l, err := NewLog(Options{Sinks: []SinkConfig{{Sink: discardSink{}, Required: true}}, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	evs := credentialRequest()
	b.ReportAllocs()
	for b.Loop() {
		if err := l.RecordAll(context.Background(), evs...); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodeSharedActor encodes the three events of a credential
// request as append does, each alone and with one actorMemo for the three.
func BenchmarkEncodeSharedActor(b *testing.B) {
	evs := credentialRequest()
	for i := range evs {
		evs[i].Seq, evs[i].ID, evs[i].PrevHash = uint64(i+1), "0b9e4c1a-7f2d-4e3b-9a8c-5d6e7f8a9b0c", GenesisHash
	}
	for _, c := range []struct {
		name string
		memo bool
	}{{"alone", false}, {"memo", true}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var m *actorMemo
				if c.memo {
					m = new(actorMemo)
				}
				for i := range evs {
					if _, err := encodeEvent(&evs[i], m); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// credentialRequest is what one credential issue records.
func credentialRequest() []Event {
	p := k8sActor()
	mk := func(typ string) Event {
		a := *p
		return Event{Type: typ, Outcome: OutcomeSuccess, RequestID: "0b9e4c1a-7f2d-4e3b-9a8c-5d6e7f8a9b0c",
			Source: "10.0.3.17:52144", Principal: &a, Target: "postgres-prod", Role: "readonly"}
	}
	evs := []Event{mk(AuthSuccess), mk(PolicyAllow), mk(CredentialIssue)}
	evs[1].Rule = "payments-db"
	evs[2].LeaseID = "lease-1234"
	evs[2].Details = map[string]any{"ttl": "15m0s", "username": "v-payments-api-readonly-abc123", "expires": "2026-11-26T10:15:00Z"}
	return evs
}
