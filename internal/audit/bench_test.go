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
