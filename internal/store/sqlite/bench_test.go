package sqlite

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stint-dev/stint/internal/core"
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

func BenchmarkCreateLease(b *testing.B) {
	for _, sync := range []string{"FULL", "NORMAL"} {
		for _, parallel := range []bool{false, true} {
			b.Run(fmt.Sprintf("sync=%s/parallel=%v", sync, parallel), func(b *testing.B) {
				s := benchStore(b, sync)
				ctx := context.Background()
				now := time.Now()
				var n atomic.Int64
				create := func() {
					if err := s.CreateLease(ctx, benchLease(fmt.Sprintf("lease-%d", n.Add(1)), now)); err != nil {
						b.Error(err)
					}
				}
				b.ResetTimer()
				if parallel {
					b.SetParallelism(4)
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							create()
						}
					})
				} else {
					for b.Loop() {
						create()
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
			})
		}
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
