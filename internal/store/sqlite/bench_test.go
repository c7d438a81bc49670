package sqlite

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/store"
	"github.com/stint-dev/stint/internal/store/internal/sqlstore"
)

// The benchmarks show the write rate a single node can sustain, with the
// durable default (FULL: an fsync per commit) and with NORMAL.

func benchLease(id string, now time.Time) core.Lease {
	return core.Lease{
		ID: id, Target: "db", TargetType: "postgres", Role: "reader", Provider: "k8s",
		Subject: "system:serviceaccount:ns:app", Rule: "r1",
		IssuedAt: now, ExpiresAt: now.Add(15 * time.Minute), MaxExpires: now.Add(time.Hour),
		State: core.LeasePending, Renewable: true, UpdatedAt: now,
		IssuerData: make([]byte, 256),
	}
}

func benchStore(b *testing.B, sync string) *Store {
	s := openTemp(b, Options{Synchronous: sync})
	if err := s.Migrate(context.Background()); err != nil {
		b.Fatal(err)
	}
	return s
}

// writerCounts are the concurrent callers the parallel benchmarks run with:
// one (no batching possible), a handful, and a busy server.
var writerCounts = []int{1, 8, 64}

// runWriters runs op b.N times spread over exactly writers goroutines (not
// RunParallel's multiple of GOMAXPROCS) and reports writes/s.
func runWriters(b *testing.B, writers int, op func(i int64)) {
	var n atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := n.Add(1)
				if i > int64(b.N) {
					return
				}
				op(i)
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "writes/s")
}

// reportBatch reports how many writes group commit put in each commit:
// unlike writes/s it does not swing with the disk's fsync latency.
func reportBatch(b *testing.B, before, after sqlstore.GroupStats) {
	if commits := after.Commits - before.Commits; commits > 0 {
		b.ReportMetric(float64(after.Writes-before.Writes)/float64(commits), "writes/commit")
	}
}

func BenchmarkCreateLease(b *testing.B) {
	for _, mode := range []string{"FULL", "NORMAL"} {
		for _, writers := range writerCounts {
			b.Run(fmt.Sprintf("sync=%s/writers=%d", mode, writers), func(b *testing.B) {
				s := benchStore(b, mode)
				ctx := context.Background()
				now := time.Now()
				before := s.GroupStats()
				runWriters(b, writers, func(i int64) {
					if err := s.CreateLease(ctx, benchLease(fmt.Sprintf("lease-%d", i), now)); err != nil {
						b.Error(err)
					}
				})
				reportBatch(b, before, s.GroupStats())
			})
		}
	}
}

// BenchmarkIssue is what stint does per credential: create the lease
// pending, then move it to active. writes/s counts leases, so each is two
// durable writes.
func BenchmarkIssue(b *testing.B) {
	for _, writers := range writerCounts {
		b.Run(fmt.Sprintf("sync=FULL/writers=%d", writers), func(b *testing.B) {
			s := benchStore(b, "FULL")
			ctx := context.Background()
			now := time.Now()
			before := s.GroupStats()
			runWriters(b, writers, func(i int64) {
				l := benchLease(fmt.Sprintf("lease-%d", i), now)
				if err := s.CreateLease(ctx, l); err != nil {
					b.Error(err)
					return
				}
				l.State = core.LeaseActive
				if ok, err := s.UpdateLease(ctx, l, core.LeasePending); err != nil || !ok {
					b.Errorf("UpdateLease = %v, %v", ok, err)
				}
			})
			reportBatch(b, before, s.GroupStats())
		})
	}
}

func BenchmarkUpdateLease(b *testing.B) {
	for _, sync := range []string{"FULL", "NORMAL"} {
		b.Run("sync="+sync, func(b *testing.B) {
			s := benchStore(b, sync)
			ctx := context.Background()
			now := time.Now()
			const leases = 1000
			for i := range leases {
				if err := s.CreateLease(ctx, benchLease(fmt.Sprintf("lease-%d", i), now)); err != nil {
					b.Fatal(err)
				}
			}
			i := 0
			for b.Loop() {
				// Pending → active → pending … so every update passes its CAS.
				l := benchLease(fmt.Sprintf("lease-%d", i%leases), now)
				from := core.LeasePending
				l.State = core.LeaseActive
				if (i/leases)%2 == 1 {
					from, l.State = core.LeaseActive, core.LeasePending
				}
				ok, err := s.UpdateLease(ctx, l, from)
				if err != nil || !ok {
					b.Fatalf("UpdateLease = %v, %v", ok, err)
				}
				i++
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
		})
	}
}

// BenchmarkCountLiveLeases is the lease limit's check: the live leases of
// one principal that has many revoked ones behind it.
func BenchmarkCountLiveLeases(b *testing.B) {
	for _, history := range []int{1000, 20000} {
		b.Run(fmt.Sprintf("revoked=%d", history), func(b *testing.B) {
			s := benchStore(b, "NORMAL")
			ctx := context.Background()
			now := time.Now()
			for i := range history + 5 {
				l := benchLease(fmt.Sprintf("lease-%06d", i), now.Add(time.Duration(i)*time.Millisecond))
				if i < history {
					l.State = core.LeaseRevoked
				}
				if err := s.CreateLease(ctx, l); err != nil {
					b.Fatal(err)
				}
			}
			live := []core.LeaseState{core.LeasePending, core.LeaseActive}
			b.ResetTimer()
			for b.Loop() {
				n, err := s.CountLeases(ctx, store.LeaseFilter{Provider: "k8s", Subject: "system:serviceaccount:ns:app", States: live})
				if err != nil || n != 5 {
					b.Fatalf("count = %d, %v; want 5", n, err)
				}
			}
		})
	}
}
