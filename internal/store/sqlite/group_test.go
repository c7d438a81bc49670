package sqlite

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	msqlite "modernc.org/sqlite"

	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/store"
)

// These tests show group commit on the real store: concurrent writes share
// one transaction (counted by SQLite's own commit hook, not only by the
// store's counter) while each keeps its own outcome.

func migrated(t *testing.T) *Store {
	t.Helper()
	s := openTemp(t, Options{})
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

// commitHook counts the transactions SQLite commits on the writer
// connection from now on. The writer pool has one connection that is never
// recycled, so the hook stays on every later write.
func commitHook(t *testing.T, s *Store) *atomic.Int64 {
	t.Helper()
	var n atomic.Int64
	conn, err := s.w.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		hr, ok := dc.(msqlite.HookRegisterer)
		if !ok {
			return fmt.Errorf("driver connection %T cannot register hooks", dc)
		}
		hr.RegisterCommitHook(func() int32 { n.Add(1); return 0 })
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return &n
}

// holdWriter takes the writer connection, so the group commit writer
// waits for it with one write in hand while the others queue; release then
// lets them all commit in one transaction.
func holdWriter(t *testing.T, s *Store, writers int) (queued func(), release func()) {
	t.Helper()
	conn, err := s.w.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	queued = func() {
		deadline := time.Now().Add(10 * time.Second)
		for s.GroupStats().Queued < writers-1 {
			if time.Now().After(deadline) {
				t.Fatalf("queued = %d, want %d", s.GroupStats().Queued, writers-1)
			}
			time.Sleep(time.Millisecond)
		}
	}
	return queued, func() { conn.Close() }
}

func lease(id string, now time.Time) core.Lease {
	return core.Lease{
		ID: id, Target: "db", TargetType: "postgres", Role: "reader", Provider: "k8s",
		Subject: "system:serviceaccount:ns:app", Rule: "r1",
		IssuedAt: now, ExpiresAt: now.Add(15 * time.Minute),
		State: core.LeasePending, UpdatedAt: now,
	}
}

func TestConcurrentCreateLeaseDuplicateFailsOnlyItsCaller(t *testing.T) {
	s := migrated(t)
	ctx := context.Background()
	now := time.Unix(1_700_000_000, 0).UTC()
	if err := s.CreateLease(ctx, lease("dup", now)); err != nil {
		t.Fatal(err)
	}
	commits := commitHook(t, s)
	before := s.GroupStats()

	const writers, dupAt = 64, 17
	queued, release := holdWriter(t, s, writers)
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := lease(fmt.Sprintf("lease-%02d", i), now)
			if i == dupAt {
				l = lease("dup", now)
				l.Target = "overwritten?"
			}
			errs[i] = s.CreateLease(ctx, l)
		}()
	}
	queued()
	release()
	wg.Wait()

	for i, err := range errs {
		switch {
		case i == dupAt && core.KindOf(err) != core.KindConflict:
			t.Errorf("duplicate CreateLease = %v, want a KindConflict", err)
		case i != dupAt && err != nil:
			t.Errorf("CreateLease lease-%02d in the duplicate's batch = %v", i, err)
		}
	}
	for i := range writers {
		if i == dupAt {
			continue
		}
		if _, err := s.GetLease(ctx, fmt.Sprintf("lease-%02d", i)); err != nil {
			t.Errorf("lease-%02d not readable after success: %v", i, err)
		}
	}
	if got, err := s.GetLease(ctx, "dup"); err != nil || got.Target != "db" {
		t.Errorf("dup after a duplicate create = %+v, %v; want it unchanged", got, err)
	}
	// All 64 in one transaction: one commit for SQLite, one for the store.
	if got := commits.Load(); got != 1 {
		t.Errorf("SQLite commits for %d concurrent creates = %d, want 1", writers, got)
	}
	after := s.GroupStats()
	if after.Commits-before.Commits != 1 || after.Writes-before.Writes != writers {
		t.Errorf("group stats went from %+v to %+v, want 1 commit of %d writes", before, after, writers)
	}
}

func TestConcurrentUpdateLeaseHasOneWinnerPerRound(t *testing.T) {
	s := migrated(t)
	ctx := context.Background()
	now := time.Unix(1_700_000_000, 0).UTC()
	active := lease("l", now)
	active.State = core.LeaseActive
	if err := s.CreateLease(ctx, active); err != nil {
		t.Fatal(err)
	}
	const writers = 16
	for round := range 8 {
		// Even rounds are held so every contender is in one transaction;
		// odd rounds race as they come.
		held := round%2 == 0
		var queued, release func()
		if held {
			queued, release = holdWriter(t, s, writers)
		}
		won := make([]bool, writers)
		var wg sync.WaitGroup
		for i := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				l := active
				l.State, l.Attempts = core.LeaseRevoking, i+1
				ok, err := s.UpdateLease(ctx, l, core.LeaseActive)
				if err != nil {
					t.Errorf("round %d: UpdateLease: %v", round, err)
				}
				won[i] = ok
			}()
		}
		if held {
			queued()
			release()
		}
		wg.Wait()
		winner := -1
		for i, ok := range won {
			if ok {
				if winner >= 0 {
					t.Fatalf("round %d (held %v): writers %d and %d both won", round, held, winner, i)
				}
				winner = i
			}
		}
		if winner < 0 {
			t.Fatalf("round %d (held %v): no writer won", round, held)
		}
		got, err := s.GetLease(ctx, "l")
		if err != nil {
			t.Fatal(err)
		}
		if got.State != core.LeaseRevoking || got.Attempts != winner+1 {
			t.Fatalf("round %d: stored %s attempts %d, want the winner's (revoking, %d)", round, got.State, got.Attempts, winner+1)
		}
		if ok, err := s.UpdateLease(ctx, active); err != nil || !ok {
			t.Fatalf("reset: %v, %v", ok, err)
		}
	}
}

func TestConcurrentWritersShareCommits(t *testing.T) {
	s := migrated(t)
	ctx := context.Background()
	now := time.Now()
	commits := commitHook(t, s)
	before := s.GroupStats()

	const writers, each = 64, 4
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := s.CreateLease(ctx, lease(fmt.Sprintf("w%d-%d", w, i), now)); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()

	n, err := s.CountLeases(ctx, store.LeaseFilter{})
	if err != nil || n != writers*each {
		t.Fatalf("leases stored = %d, %v; want %d", n, err, writers*each)
	}
	got := commits.Load()
	if stats := s.GroupStats(); uint64(got) != stats.Commits-before.Commits {
		t.Errorf("SQLite counted %d commits, the store %d", got, stats.Commits-before.Commits)
	}
	t.Logf("%d writes from %d concurrent writers took %d commits", writers*each, writers, got)
	// Unheld, the batches depend on scheduling; even so, writers that
	// arrive during one fsync must share the next one.
	if got > writers*each/2 {
		t.Errorf("%d writes took %d commits, want at most half as many", writers*each, got)
	}
}
