// Package storetest is the conformance suite every store.Store must pass,
// run by each implementation's tests (as SPIRE's sqltest is).
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/store"
)

// Run runs the suite. open must return a fresh, empty store for each call
// (the suite migrates it) and arrange its cleanup with t.Cleanup.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	migrated := func(t *testing.T) store.Store {
		t.Helper()
		s := open(t)
		if err := s.Migrate(context.Background()); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
		return s
	}
	tests := []struct {
		name string
		run  func(t *testing.T, s store.Store)
	}{
		{"MigrateIsIdempotentAndConcurrencySafe", testMigrate},
		{"MetaMissingIsNotFound", testMetaMissing},
		{"MetaPutIfAbsentKeepsFirstValue", testMetaPutIfAbsent},
		{"MetaPutIfAbsentRaceHasOneWinner", testMetaRace},
		{"KeysListNewestFirstByPurpose", testKeysOrder},
		{"KeysPutReplacesByID", testKeysReplace},
		{"LeaseRoundTripsEveryField", testLeaseRoundTrip},
		{"LeaseCreateRejectsDuplicateAndInvalid", testLeaseCreateErrors},
		{"LeaseGetMissingIsNotFound", testLeaseMissing},
		{"LeaseUpdateIsCompareAndSet", testLeaseUpdateCAS},
		{"LeaseConcurrentCASHasOneWinner", testLeaseConcurrentCAS},
		{"LeaseUpdateKeepsIdentity", testLeaseUpdateKeepsIdentity},
		{"ExpireLeasesRevokesOnlyActiveOnesNamed", testExpireLeases},
		{"ClaimExpiredLeaseTakesOnlyExpiredActiveOnes", testClaimExpired},
		{"LazyWritesAreVisibleAndFlushKeepsThem", testLazyAndFlush},
		{"ListLeasesFiltersAndCountAgrees", testListFilters},
		{"ListLeasesOrdersByIssuedAtThenID", testListOrder},
		{"ListLeasesPaginatesWithAfterID", testListPagination},
		{"DueLeasesOrderLimitAndStates", testDue},
		{"DueLeasesFollowsUpdates", testDueFollowsUpdates},
		{"PruneLeasesDeletesOnlyLongExpiredRevoked", testPrune},
		{"LocksAcquireExtendRefuseRelease", testLocks},
		{"LocksExpireAndAreTakenOver", testLockExpiry},
		{"LocksConcurrentAcquireHasOneWinner", testLockRace},
		{"InventoryFirstReportInserts", testInventoryInsert},
		{"InventoryMissingFindingIsRemediatedAndReappearanceReopens", testInventoryLifecycle},
		{"InventoryHistoryOnlyFindingIsRemediated", testInventoryHistory},
		{"InventorySourcesAreIndependent", testInventorySources},
		{"InventoryDuplicatesCollapseToLowestLine", testInventoryDuplicates},
		{"InventoryLargeReportAndFilters", testInventoryLarge},
		{"InventoryRejectsInvalidReportWhole", testInventoryInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "MigrateIsIdempotentAndConcurrencySafe" {
				tc.run(t, open(t))
				return
			}
			tc.run(t, migrated(t))
		})
	}
}

// base has nanoseconds and a non-UTC zone, so round trips prove both
// precision and normalisation to UTC.
var base = time.Date(2031, 3, 4, 5, 6, 7, 123456789, time.FixedZone("UTC+2", 2*3600))

func lease(id string, mods ...func(*core.Lease)) core.Lease {
	l := core.Lease{
		ID: id, Target: "db", TargetType: "postgres", Role: "reader", Provider: "k8s",
		Subject: "system:serviceaccount:a:b", Rule: "r1",
		IssuedAt: base, ExpiresAt: base.Add(time.Hour), MaxExpires: base.Add(4 * time.Hour),
		State: core.LeaseActive, Renewable: true, UpdatedAt: base,
	}
	for _, m := range mods {
		m(&l)
	}
	return l
}

func mustCreate(t *testing.T, s store.Store, ls ...core.Lease) {
	t.Helper()
	for _, l := range ls {
		if err := s.CreateLease(context.Background(), l); err != nil {
			t.Fatalf("CreateLease(%s): %v", l.ID, err)
		}
	}
}

func ids(ls []core.Lease) []string {
	out := []string{}
	for _, l := range ls {
		out = append(out, l.ID)
	}
	return out
}

func equalLease(a, b core.Lease) error {
	times := []struct {
		name string
		x, y time.Time
	}{
		{"IssuedAt", a.IssuedAt, b.IssuedAt}, {"ExpiresAt", a.ExpiresAt, b.ExpiresAt},
		{"MaxExpires", a.MaxExpires, b.MaxExpires}, {"NextAttempt", a.NextAttempt, b.NextAttempt},
		{"UpdatedAt", a.UpdatedAt, b.UpdatedAt},
	}
	for _, tm := range times {
		if !tm.x.Equal(tm.y) {
			return fmt.Errorf("%s = %v, want %v", tm.name, tm.x, tm.y)
		}
		if !tm.x.IsZero() && tm.x.Location() != time.UTC {
			return fmt.Errorf("%s is in %v, want UTC", tm.name, tm.x.Location())
		}
	}
	if !bytes.Equal(a.IssuerData, b.IssuerData) {
		return fmt.Errorf("IssuerData = %x, want %x", a.IssuerData, b.IssuerData)
	}
	a.IssuedAt, a.ExpiresAt, a.MaxExpires, a.NextAttempt, a.UpdatedAt, a.IssuerData = time.Time{}, time.Time{}, time.Time{}, time.Time{}, time.Time{}, nil
	b.IssuedAt, b.ExpiresAt, b.MaxExpires, b.NextAttempt, b.UpdatedAt, b.IssuerData = time.Time{}, time.Time{}, time.Time{}, time.Time{}, time.Time{}, nil
	if !reflect.DeepEqual(a, b) {
		return fmt.Errorf("got %+v, want %+v", a, b)
	}
	return nil
}

func testMigrate(t *testing.T, s store.Store) {
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = s.Migrate(ctx) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("concurrent Migrate %d: %v", i, err)
		}
	}
	mustCreate(t, s, lease("l1"))
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate again: %v", err)
	}
	if _, err := s.GetLease(ctx, "l1"); err != nil {
		t.Fatalf("lease lost by re-running Migrate: %v", err)
	}
}

func testMetaMissing(t *testing.T, s store.Store) {
	_, err := s.GetMeta(context.Background(), "nope")
	if !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("GetMeta(missing) error = %v, want core.ErrNotFound", err)
	}
}

func testMetaPutIfAbsent(t *testing.T, s store.Store) {
	ctx := context.Background()
	got, err := s.PutMetaIfAbsent(ctx, "kek-check", []byte("first"))
	if err != nil || string(got) != "first" {
		t.Fatalf("first put = %q, %v; want first", got, err)
	}
	got, err = s.PutMetaIfAbsent(ctx, "kek-check", []byte("second"))
	if err != nil || string(got) != "first" {
		t.Fatalf("second put = %q, %v; want the existing first", got, err)
	}
	got, err = s.GetMeta(ctx, "kek-check")
	if err != nil || string(got) != "first" {
		t.Fatalf("GetMeta = %q, %v; want first", got, err)
	}
	bin := []byte{0, 1, 2, 0xff, 0}
	got, err = s.PutMetaIfAbsent(ctx, "binary", bin)
	if err != nil || !bytes.Equal(got, bin) {
		t.Fatalf("binary put = %x, %v; want %x", got, err, bin)
	}
}

func testMetaRace(t *testing.T, s store.Store) {
	ctx := context.Background()
	const n = 8
	got := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { got[i], errs[i] = s.PutMetaIfAbsent(ctx, "install-id", fmt.Appendf(nil, "v%d", i)) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("goroutine %d: %v", i, errs[i])
		}
		if !bytes.Equal(got[i], got[0]) {
			t.Fatalf("goroutine %d saw %q, goroutine 0 saw %q: not one winner", i, got[i], got[0])
		}
	}
	stored, err := s.GetMeta(ctx, "install-id")
	if err != nil || !bytes.Equal(stored, got[0]) {
		t.Fatalf("GetMeta = %q, %v; want the winner %q", stored, err, got[0])
	}
}

func testKeysOrder(t *testing.T, s store.Store) {
	ctx := context.Background()
	keys := []store.KeyRecord{
		{ID: "k-mid", Purpose: "signing", Algorithm: "ES256", Private: []byte("sealed-1"), Public: []byte(`{"kty":"EC"}`), CreatedAt: base.Add(time.Hour)},
		{ID: "k-old", Purpose: "signing", Algorithm: "ES256", Private: []byte("sealed-0"), Public: []byte(`{}`), CreatedAt: base, NotAfter: base.Add(48 * time.Hour)},
		{ID: "k-new", Purpose: "signing", Algorithm: "EdDSA", Private: []byte("sealed-2"), Public: []byte(`{}`), CreatedAt: base.Add(2 * time.Hour)},
		{ID: "a-1", Purpose: "audit", Algorithm: "EdDSA", Private: []byte("sealed-a"), CreatedAt: base.Add(5 * time.Hour)},
	}
	for _, k := range keys {
		if err := s.PutKey(ctx, k); err != nil {
			t.Fatalf("PutKey(%s): %v", k.ID, err)
		}
	}
	got, err := s.ListKeys(ctx, "signing")
	if err != nil {
		t.Fatal(err)
	}
	var gotIDs []string
	for _, k := range got {
		gotIDs = append(gotIDs, k.ID)
	}
	if want := []string{"k-new", "k-mid", "k-old"}; !slices.Equal(gotIDs, want) {
		t.Fatalf("ListKeys(signing) = %v, want %v", gotIDs, want)
	}
	old := got[2]
	if !old.CreatedAt.Equal(base) || !old.NotAfter.Equal(base.Add(48*time.Hour)) || old.CreatedAt.Location() != time.UTC ||
		old.Algorithm != "ES256" || string(old.Private) != "sealed-0" || string(old.Public) != "{}" {
		t.Fatalf("k-old round trip = %+v", old)
	}
	if !got[0].NotAfter.IsZero() {
		t.Fatalf("k-new NotAfter = %v, want zero", got[0].NotAfter)
	}
	none, err := s.ListKeys(ctx, "x509-ca:none")
	if err != nil || len(none) != 0 {
		t.Fatalf("ListKeys(unknown) = %v, %v; want empty", none, err)
	}
}

func testKeysReplace(t *testing.T, s store.Store) {
	ctx := context.Background()
	k := store.KeyRecord{ID: "k1", Purpose: "signing", Algorithm: "ES256", Private: []byte("p"), Public: []byte("q"), CreatedAt: base}
	if err := s.PutKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	k.NotAfter = base.Add(time.Hour)
	if err := s.PutKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	got, err := s.ListKeys(ctx, "signing")
	if err != nil || len(got) != 1 || !got[0].NotAfter.Equal(k.NotAfter) {
		t.Fatalf("after replace ListKeys = %+v, %v; want one key with NotAfter %v", got, err, k.NotAfter)
	}
}

func testLeaseRoundTrip(t *testing.T, s store.Store) {
	ctx := context.Background()
	cases := []core.Lease{
		lease("full", func(l *core.Lease) {
			l.Human = "alice@example.com"
			l.State = core.LeaseFailed
			l.Attempts = 7
			l.LastError = "connection refused"
			l.NextAttempt = base.Add(90 * time.Second)
			l.IssuerData = []byte{0, 0xfe, 'x', 0}
		}),
		lease("zeroes", func(l *core.Lease) {
			l.MaxExpires, l.UpdatedAt, l.Renewable = time.Time{}, time.Time{}, false
			l.State = core.LeasePending
		}),
	}
	for _, want := range cases {
		t.Run(want.ID, func(t *testing.T) {
			mustCreate(t, s, want)
			got, err := s.GetLease(ctx, want.ID)
			if err != nil {
				t.Fatal(err)
			}
			if err := equalLease(got, want); err != nil {
				t.Fatal(err)
			}
			if got.IssuedAt.Nanosecond() != base.Nanosecond() {
				t.Fatalf("IssuedAt lost precision: %v", got.IssuedAt)
			}
		})
	}
}

func testLeaseCreateErrors(t *testing.T, s store.Store) {
	ctx := context.Background()
	orig := lease("dup", func(l *core.Lease) { l.Target = "original" })
	mustCreate(t, s, orig)
	err := s.CreateLease(ctx, lease("dup", func(l *core.Lease) { l.Target = "other" }))
	if err == nil || core.KindOf(err) != core.KindConflict {
		t.Fatalf("duplicate CreateLease error = %v, want a KindConflict", err)
	}
	if got, _ := s.GetLease(ctx, "dup"); got.Target != "original" {
		t.Fatalf("duplicate create overwrote the lease: target %q", got.Target)
	}
	invalid := []struct {
		name string
		l    core.Lease
	}{
		{"empty id", lease("")},
		{"unknown state", lease("s", func(l *core.Lease) { l.State = "gone" })},
		{"no expiry", lease("e", func(l *core.Lease) { l.ExpiresAt = time.Time{} })},
		{"no issue time", lease("i", func(l *core.Lease) { l.IssuedAt = time.Time{} })},
		{"time out of range", lease("r", func(l *core.Lease) { l.MaxExpires = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC) })},
	}
	for _, tc := range invalid {
		if err := s.CreateLease(ctx, tc.l); err == nil {
			t.Errorf("CreateLease(%s) succeeded, want an error", tc.name)
		}
	}
	if n, _ := s.CountLeases(ctx, store.LeaseFilter{}); n != 1 {
		t.Fatalf("invalid leases were stored: count %d, want 1", n)
	}
}

func testLeaseMissing(t *testing.T, s store.Store) {
	_, err := s.GetLease(context.Background(), "nope")
	if !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("GetLease(missing) error = %v, want core.ErrNotFound", err)
	}
}

func testLeaseUpdateCAS(t *testing.T, s store.Store) {
	ctx := context.Background()
	cases := []struct {
		name    string
		stored  core.LeaseState
		from    []core.LeaseState
		id      string
		wrote   bool
		wantNow core.LeaseState
	}{
		{"matching from writes", core.LeaseActive, []core.LeaseState{core.LeaseActive}, "", true, core.LeaseRevoking},
		{"one of several from writes", core.LeaseFailed, []core.LeaseState{core.LeaseActive, core.LeaseFailed}, "", true, core.LeaseRevoking},
		{"other state does not write", core.LeaseRevoked, []core.LeaseState{core.LeaseActive, core.LeasePending}, "", false, core.LeaseRevoked},
		{"empty from always writes", core.LeaseRevoked, nil, "", true, core.LeaseRevoking},
		{"missing lease does not write", core.LeaseActive, nil, "missing", false, core.LeaseActive},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprintf("cas-%d", i)
			mustCreate(t, s, lease(id, func(l *core.Lease) { l.State = tc.stored }))
			upd := lease(id, func(l *core.Lease) {
				l.State = core.LeaseRevoking
				l.Attempts = 1
				l.LastError = "tried"
				l.NextAttempt = base.Add(time.Minute)
			})
			if tc.id != "" {
				upd.ID = tc.id
			}
			wrote, err := s.UpdateLease(ctx, upd, tc.from...)
			if err != nil {
				t.Fatal(err)
			}
			if wrote != tc.wrote {
				t.Fatalf("UpdateLease wrote = %v, want %v", wrote, tc.wrote)
			}
			got, err := s.GetLease(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if got.State != tc.wantNow {
				t.Fatalf("state after update = %s, want %s", got.State, tc.wantNow)
			}
			if tc.wrote {
				upd.ID = id
				if err := equalLease(got, upd); err != nil {
					t.Fatalf("written lease: %v", err)
				}
			}
		})
	}
}

// testLeaseUpdateKeepsIdentity: an update writes what a lease's life
// changes and ignores l's identity fields, which are fixed at create.
func testLeaseUpdateKeepsIdentity(t *testing.T, s store.Store) {
	ctx := context.Background()
	orig := lease("identity")
	mustCreate(t, s, orig)
	upd := lease("identity", func(l *core.Lease) {
		l.Target, l.TargetType, l.Role, l.Rule = "other-db", "mysql", "writer", "r9"
		l.Provider, l.Subject, l.Human = "gh", "repo:x", "alice"
		l.IssuedAt = base.Add(time.Minute)
		l.State, l.ExpiresAt, l.MaxExpires = core.LeaseRevoking, base.Add(2*time.Hour), base.Add(5*time.Hour)
		l.Renewable, l.Attempts, l.LastError = false, 3, "boom"
		l.NextAttempt, l.IssuerData, l.UpdatedAt = base.Add(time.Minute), []byte("data"), base.Add(time.Second)
	})
	if ok, err := s.UpdateLease(ctx, upd); err != nil || !ok {
		t.Fatalf("UpdateLease = %v, %v", ok, err)
	}
	got, err := s.GetLease(ctx, "identity")
	if err != nil {
		t.Fatal(err)
	}
	want := upd
	want.Target, want.TargetType, want.Role, want.Rule = orig.Target, orig.TargetType, orig.Role, orig.Rule
	want.Provider, want.Subject, want.Human, want.IssuedAt = orig.Provider, orig.Subject, orig.Human, orig.IssuedAt
	if err := equalLease(got, want); err != nil {
		t.Fatalf("after update: %v", err)
	}
	if n, err := s.CountLeases(ctx, store.LeaseFilter{Subject: orig.Subject, Target: orig.Target}); err != nil || n != 1 {
		t.Fatalf("count by the original identity = %d, %v; want 1", n, err)
	}
}

// testLazyAndFlush: a Lazy write is committed (visible at once) like any
// other, and Flush, the barrier that makes it durable, changes no lease.
func testClaimExpired(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreate(t, s, lease("a"), lease("renewed"))
	claim := func(id string, now time.Time) bool {
		t.Helper()
		c := lease(id)
		c.State, c.NextAttempt, c.UpdatedAt = core.LeaseRevoking, now.Add(time.Minute), now
		ok, err := s.ClaimExpiredLease(ctx, c, now)
		if err != nil {
			t.Fatalf("ClaimExpiredLease(%s): %v", id, err)
		}
		return ok
	}
	if claim("a", base.Add(30*time.Minute)) {
		t.Error("claimed a lease that has not expired")
	}
	if l, _ := s.GetLease(ctx, "a"); l.State != core.LeaseActive {
		t.Errorf("unexpired lease is %s", l.State)
	}
	// A renewal moved the expiry after the claimer read the lease.
	r := lease("renewed", func(l *core.Lease) { l.ExpiresAt = base.Add(3 * time.Hour) })
	if ok, err := s.UpdateLease(ctx, r, core.LeaseActive); err != nil || !ok {
		t.Fatalf("renew: %v %v", ok, err)
	}
	if claim("renewed", base.Add(2*time.Hour)) {
		t.Error("claimed a lease renewed past now")
	}
	if l, _ := s.GetLease(ctx, "renewed"); l.State != core.LeaseActive || !l.ExpiresAt.Equal(base.Add(3*time.Hour)) {
		t.Errorf("renewed lease became %s, expiring %v", l.State, l.ExpiresAt)
	}
	if !claim("a", base.Add(2*time.Hour)) {
		t.Fatal("did not claim an expired active lease")
	}
	if l, _ := s.GetLease(ctx, "a"); l.State != core.LeaseRevoking {
		t.Errorf("claimed lease is %s", l.State)
	}
	if claim("a", base.Add(2*time.Hour)) {
		t.Error("claimed a lease that is no longer active")
	}
}

func testExpireLeases(t *testing.T, s store.Store) {
	ctx := context.Background()
	if got, err := s.ExpireLeases(ctx, nil, base); err != nil || got != nil {
		t.Fatalf("ExpireLeases(none) = %v, %v", got, err)
	}
	revoking := func(l *core.Lease) {
		l.State, l.Attempts, l.LastError, l.NextAttempt = core.LeaseRevoking, 1, "claimed", base.Add(time.Minute)
	}
	mustCreate(t, s, lease("a"), lease("b", func(l *core.Lease) { l.LastError = "old" }),
		lease("c", revoking), lease("d"))
	// More ids than one statement names: the store splits them.
	named := []string{"a", "b", "c", "missing"}
	for i := range 1200 {
		named = append(named, fmt.Sprintf("none-%d", i))
	}
	at := base.Add(2 * time.Hour)
	got, err := s.ExpireLeases(ctx, named, at)
	if err != nil {
		t.Fatalf("ExpireLeases: %v", err)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("changed %q, want [a b]", got)
	}
	for _, id := range []string{"a", "b"} {
		l, err := s.GetLease(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		want := lease(id)
		want.State, want.UpdatedAt = core.LeaseRevoked, at
		if err := equalLease(l, want); err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
	for id, want := range map[string]core.Lease{"c": lease("c", revoking), "d": lease("d")} {
		l, err := s.GetLease(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if err := equalLease(l, want); err != nil {
			t.Errorf("%s changed: %v", id, err)
		}
	}
	if got, err := s.ExpireLeases(ctx, []string{"a", "b"}, at); err != nil || len(got) != 0 {
		t.Errorf("expiring again = %q, %v; want nothing changed", got, err)
	}
	due, err := s.DueLeases(ctx, base.Add(10*time.Hour), 10)
	if err != nil {
		t.Fatal(err)
	}
	if ids := ids(due); slices.Contains(ids, "a") || slices.Contains(ids, "b") {
		t.Errorf("expired leases still due: %q", ids)
	}
}

func testLazyAndFlush(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreate(t, s, lease("lazy", func(l *core.Lease) { l.State = core.LeasePending }))
	act := lease("lazy")
	if ok, err := s.UpdateLease(store.Lazy(ctx), act, core.LeasePending); err != nil || !ok {
		t.Fatalf("lazy UpdateLease = %v, %v", ok, err)
	}
	for range 2 {
		if err := s.Flush(ctx); err != nil {
			t.Fatalf("Flush: %v", err)
		}
	}
	got, err := s.GetLease(ctx, "lazy")
	if err != nil {
		t.Fatal(err)
	}
	if err := equalLease(got, act); err != nil {
		t.Fatalf("after a lazy update and Flush: %v", err)
	}
}

func testLeaseConcurrentCAS(t *testing.T, s store.Store) {
	ctx := context.Background()
	for round := range 5 {
		id := fmt.Sprintf("race-%d", round)
		mustCreate(t, s, lease(id))
		const n = 8
		wrote := make([]bool, n)
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				<-start
				wrote[i], errs[i] = s.UpdateLease(ctx, lease(id, func(l *core.Lease) {
					l.State = core.LeaseRevoking
					l.LastError = fmt.Sprintf("replica-%d", i)
				}), core.LeaseActive)
			})
		}
		close(start)
		wg.Wait()
		winner := -1
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("goroutine %d: %v", i, errs[i])
			}
			if wrote[i] {
				if winner >= 0 {
					t.Fatalf("round %d: goroutines %d and %d both won the CAS", round, winner, i)
				}
				winner = i
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no goroutine won the CAS", round)
		}
		got, err := s.GetLease(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("replica-%d", winner); got.LastError != want || got.State != core.LeaseRevoking {
			t.Fatalf("stored lease = %s/%q, want revoking/%q from the winner", got.State, got.LastError, want)
		}
	}
}

// filterFixture is a set of leases with distinct field values.
func filterFixture(t *testing.T, s store.Store) {
	mustCreate(t, s,
		lease("a", func(l *core.Lease) {
			l.Subject = "s1"
			l.Human = "alice"
			l.Target = "db"
			l.Role = "reader"
			l.Rule = "r1"
		}),
		lease("b", func(l *core.Lease) {
			l.Subject = "s1"
			l.Target = "db"
			l.Role = "writer"
			l.Rule = "r2"
			l.State = core.LeaseRevoked
			l.IssuedAt = base.Add(time.Second)
		}),
		lease("c", func(l *core.Lease) {
			l.Subject = "s2"
			l.Human = "alice"
			l.Target = "ssh"
			l.Role = "reader"
			l.Provider = "gha"
			l.Rule = "r1"
			l.IssuedAt = base.Add(2 * time.Second)
			l.ExpiresAt = base.Add(2 * time.Hour)
		}),
		lease("d", func(l *core.Lease) {
			l.Subject = "s2"
			l.Human = "bob"
			l.Target = "db"
			l.Role = "reader"
			l.Rule = "r3"
			l.State = core.LeaseFailed
			l.IssuedAt = base.Add(3 * time.Second)
		}),
	)
}

func testListFilters(t *testing.T, s store.Store) {
	ctx := context.Background()
	filterFixture(t, s)
	cases := []struct {
		name string
		f    store.LeaseFilter
		want []string
	}{
		{"empty matches all", store.LeaseFilter{}, []string{"a", "b", "c", "d"}},
		{"subject", store.LeaseFilter{Subject: "s1"}, []string{"a", "b"}},
		{"provider", store.LeaseFilter{Provider: "gha"}, []string{"c"}},
		{"human", store.LeaseFilter{Human: "alice"}, []string{"a", "c"}},
		{"target", store.LeaseFilter{Target: "db"}, []string{"a", "b", "d"}},
		{"target and role", store.LeaseFilter{Target: "db", Role: "reader"}, []string{"a", "d"}},
		{"role alone", store.LeaseFilter{Role: "reader"}, []string{"a", "c", "d"}},
		{"rule", store.LeaseFilter{Rule: "r1"}, []string{"a", "c"}},
		{"ids", store.LeaseFilter{IDs: []string{"d", "b", "zz"}}, []string{"b", "d"}},
		{"states", store.LeaseFilter{States: []core.LeaseState{core.LeaseRevoked, core.LeaseFailed}}, []string{"b", "d"}},
		{"combined", store.LeaseFilter{Subject: "s2", Human: "alice", States: []core.LeaseState{core.LeaseActive}}, []string{"c"}},
		{"no match", store.LeaseFilter{Subject: "nobody"}, []string{}},
		{"expires after", store.LeaseFilter{ExpiresAfter: base.Add(90 * time.Minute)}, []string{"c"}},
		{"expires after is strict", store.LeaseFilter{ExpiresAfter: base.Add(time.Hour)}, []string{"c"}},
		{"expires after, all", store.LeaseFilter{ExpiresAfter: base.Add(time.Minute)}, []string{"a", "b", "c", "d"}},
		{"expires after and states", store.LeaseFilter{ExpiresAfter: base.Add(time.Minute), States: []core.LeaseState{core.LeaseRevoked, core.LeaseFailed}}, []string{"b", "d"}},
		{"expires after, far future", store.LeaseFilter{ExpiresAfter: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)}, []string{}},
		{"limit", store.LeaseFilter{Target: "db", Limit: 2}, []string{"a", "b"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ListLeases(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ids(got), tc.want) {
				t.Fatalf("ListLeases = %v, want %v", ids(got), tc.want)
			}
			n, err := s.CountLeases(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			wantN := len(tc.want)
			if tc.f.Limit > 0 { // Count ignores paging
				all, _ := s.ListLeases(ctx, store.LeaseFilter{Target: tc.f.Target})
				wantN = len(all)
			}
			if n != wantN {
				t.Fatalf("CountLeases = %d, want %d", n, wantN)
			}
		})
	}
}

func testListOrder(t *testing.T, s store.Store) {
	ctx := context.Background()
	// Inserted out of order; "x" and "y" tie on issued_at and sort by id.
	mustCreate(t, s,
		lease("y", func(l *core.Lease) { l.IssuedAt = base.Add(time.Minute) }),
		lease("z", func(l *core.Lease) { l.IssuedAt = base.Add(time.Nanosecond) }),
		lease("x", func(l *core.Lease) { l.IssuedAt = base.Add(time.Minute) }),
		lease("w", func(l *core.Lease) { l.IssuedAt = base.Add(2 * time.Minute) }),
		lease("v", func(l *core.Lease) { l.IssuedAt = base }),
	)
	got, err := s.ListLeases(ctx, store.LeaseFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"v", "z", "x", "y", "w"}; !slices.Equal(ids(got), want) {
		t.Fatalf("order = %v, want %v", ids(got), want)
	}
}

func testListPagination(t *testing.T, s store.Store) {
	ctx := context.Background()
	var want []string
	for i := range 11 {
		id := fmt.Sprintf("p%02d", i)
		// Pairs share an issued_at, so pages must split ties by id.
		mustCreate(t, s, lease(id, func(l *core.Lease) {
			l.IssuedAt = base.Add(time.Duration(i/2) * time.Second)
			if i%3 == 0 {
				l.State = core.LeaseRevoked
			}
		}))
		want = append(want, id)
	}
	for _, size := range []int{1, 2, 3, 5, 20} {
		var got []string
		f := store.LeaseFilter{Limit: size}
		for pages := 0; ; pages++ {
			if pages > 20 {
				t.Fatalf("page size %d: pagination does not end", size)
			}
			page, err := s.ListLeases(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) > size {
				t.Fatalf("page size %d: got %d", size, len(page))
			}
			got = append(got, ids(page)...)
			if len(page) < size {
				break
			}
			f.AfterID = page[len(page)-1].ID
		}
		if !slices.Equal(got, want) {
			t.Fatalf("page size %d: walked %v, want %v", size, got, want)
		}
	}
	// Pagination composes with filters.
	page, err := s.ListLeases(ctx, store.LeaseFilter{States: []core.LeaseState{core.LeaseRevoked}, AfterID: "p03", Limit: 1})
	if err != nil || !slices.Equal(ids(page), []string{"p06"}) {
		t.Fatalf("filtered page after p03 = %v, %v; want [p06]", ids(page), err)
	}
	_, err = s.ListLeases(ctx, store.LeaseFilter{AfterID: "no-such-lease"})
	if !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("AfterID of a missing lease: error = %v, want core.ErrNotFound", err)
	}
}

func testDue(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := base.Add(time.Hour)
	at := func(d time.Duration) time.Time { return now.Add(d) }
	mustCreate(t, s,
		lease("expired-active", func(l *core.Lease) { l.ExpiresAt = at(-10 * time.Minute) }),
		lease("expired-pending", func(l *core.Lease) { l.State = core.LeasePending; l.ExpiresAt = at(-20 * time.Minute) }),
		lease("due-exactly-now", func(l *core.Lease) { l.ExpiresAt = now }),
		lease("future", func(l *core.Lease) { l.ExpiresAt = at(time.Minute) }),
		lease("revoked-long-ago", func(l *core.Lease) { l.State = core.LeaseRevoked; l.ExpiresAt = at(-time.Hour) }),
		// next_attempt_at overrides expires_at in both directions.
		lease("retry-later", func(l *core.Lease) {
			l.State = core.LeaseFailed
			l.ExpiresAt = at(-time.Hour)
			l.NextAttempt = at(5 * time.Minute)
		}),
		lease("retry-due", func(l *core.Lease) {
			l.State = core.LeaseRevoking
			l.ExpiresAt = at(time.Hour)
			l.NextAttempt = at(-15 * time.Minute)
		}),
		lease("failed-due", func(l *core.Lease) { l.State = core.LeaseFailed; l.NextAttempt = at(-time.Nanosecond) }),
		lease("revoked-with-retry", func(l *core.Lease) { l.State = core.LeaseRevoked; l.NextAttempt = at(-time.Hour) }),
	)
	cases := []struct {
		limit int
		want  []string
	}{
		{100, []string{"expired-pending", "retry-due", "expired-active", "failed-due", "due-exactly-now"}},
		{2, []string{"expired-pending", "retry-due"}},
		{1, []string{"expired-pending"}},
	}
	for _, tc := range cases {
		got, err := s.DueLeases(ctx, now, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ids(got), tc.want) {
			t.Fatalf("DueLeases(limit %d) = %v, want %v", tc.limit, ids(got), tc.want)
		}
	}
	if got, err := s.DueLeases(ctx, base.Add(-24*time.Hour), 10); err != nil || len(got) != 0 {
		t.Fatalf("DueLeases long before = %v, %v; want none", ids(got), err)
	}
	if _, err := s.DueLeases(ctx, now, 0); err == nil {
		t.Fatal("DueLeases(limit 0) succeeded, want an error")
	}
}

func testDueFollowsUpdates(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := base.Add(2 * time.Hour)
	l := lease("l", func(l *core.Lease) { l.ExpiresAt = now.Add(-time.Minute) })
	mustCreate(t, s, l)
	steps := []struct {
		name   string
		change func(*core.Lease)
		due    bool
	}{
		{"expired is due", func(*core.Lease) {}, true},
		{"backoff postpones", func(l *core.Lease) { l.State = core.LeaseFailed; l.NextAttempt = now.Add(time.Minute) }, false},
		{"backoff over", func(l *core.Lease) { l.NextAttempt = now.Add(-time.Second) }, true},
		{"revoked is never due", func(l *core.Lease) { l.State = core.LeaseRevoked }, false},
	}
	for _, st := range steps {
		st.change(&l)
		if ok, err := s.UpdateLease(ctx, l); err != nil || !ok {
			t.Fatalf("%s: UpdateLease = %v, %v", st.name, ok, err)
		}
		got, err := s.DueLeases(ctx, now, 10)
		if err != nil {
			t.Fatal(err)
		}
		if due := len(got) == 1; due != st.due {
			t.Fatalf("%s: due = %v (%v), want %v", st.name, due, ids(got), st.due)
		}
	}
}

func testPrune(t *testing.T, s store.Store) {
	ctx := context.Background()
	bound := base.Add(10 * time.Hour)
	expired := func(state core.LeaseState, before time.Duration) func(*core.Lease) {
		return func(l *core.Lease) { l.State, l.ExpiresAt = state, bound.Add(-before) }
	}
	mustCreate(t, s,
		lease("revoked-3h", expired(core.LeaseRevoked, 3*time.Hour)),
		lease("revoked-2h", expired(core.LeaseRevoked, 2*time.Hour)),
		lease("revoked-1h", expired(core.LeaseRevoked, time.Hour)),
		// The bound is strict, and a recently expired revoked lease stays.
		lease("revoked-at-bound", expired(core.LeaseRevoked, 0)),
		lease("revoked-recent", expired(core.LeaseRevoked, -time.Hour)),
		// Only revoked leases are ever pruned, however long expired.
		lease("active", expired(core.LeaseActive, 5*time.Hour)),
		lease("pending", expired(core.LeasePending, 5*time.Hour)),
		lease("revoking", expired(core.LeaseRevoking, 5*time.Hour)),
		lease("failed", expired(core.LeaseFailed, 5*time.Hour)),
	)
	kept := []string{"active", "failed", "pending", "revoked-at-bound", "revoked-recent", "revoking"}
	steps := []struct {
		limit int
		want  int
		left  []string // besides kept
	}{
		{2, 2, []string{"revoked-1h"}}, // oldest expiry first
		{10, 1, nil},
		{10, 0, nil},
	}
	for i, st := range steps {
		n, err := s.PruneLeases(ctx, bound, st.limit)
		if err != nil || n != st.want {
			t.Fatalf("step %d: PruneLeases(limit %d) = %d, %v; want %d", i, st.limit, n, err, st.want)
		}
		got, err := s.ListLeases(ctx, store.LeaseFilter{})
		if err != nil {
			t.Fatal(err)
		}
		want := slices.Sorted(slices.Values(append(slices.Clone(kept), st.left...)))
		if have := slices.Sorted(slices.Values(ids(got))); !slices.Equal(have, want) {
			t.Fatalf("step %d: left %v, want %v", i, have, want)
		}
	}
	for _, limit := range []int{0, -1} {
		if _, err := s.PruneLeases(ctx, bound, limit); err == nil {
			t.Errorf("PruneLeases(limit %d) succeeded, want an error", limit)
		}
	}
}

func testLocks(t *testing.T, s store.Store) {
	ctx := context.Background()
	steps := []struct {
		name   string
		op     string // acquire, release
		holder string
		want   bool
	}{
		{"free lock is taken", "acquire", "r1", true},
		{"holder extends", "acquire", "r1", true},
		{"other holder refused", "acquire", "r2", false},
		{"non-holder release is a no-op", "release", "r2", false},
		{"still refused after foreign release", "acquire", "r2", false},
		{"holder releases", "release", "r1", false},
		{"released lock is taken by another", "acquire", "r2", true},
		{"former holder refused", "acquire", "r1", false},
	}
	for _, st := range steps {
		switch st.op {
		case "acquire":
			got, err := s.AcquireLock(ctx, "reaper", st.holder, time.Minute)
			if err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
			if got != st.want {
				t.Fatalf("%s: AcquireLock(%s) = %v, want %v", st.name, st.holder, got, st.want)
			}
		case "release":
			if err := s.ReleaseLock(ctx, "reaper", st.holder); err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
		}
	}
	// Locks are independent by name.
	if ok, err := s.AcquireLock(ctx, "other", "r1", time.Minute); err != nil || !ok {
		t.Fatalf("AcquireLock(other lock) = %v, %v; want true", ok, err)
	}
	if _, err := s.AcquireLock(ctx, "reaper", "r1", 0); err == nil {
		t.Fatal("AcquireLock with ttl 0 succeeded, want an error")
	}
}

func testLockExpiry(t *testing.T, s store.Store) {
	ctx := context.Background()
	const ttl = 300 * time.Millisecond
	if ok, err := s.AcquireLock(ctx, "reaper", "r1", ttl); err != nil || !ok {
		t.Fatalf("r1 acquire = %v, %v", ok, err)
	}
	if ok, err := s.AcquireLock(ctx, "reaper", "r2", ttl); err != nil || ok {
		t.Fatalf("r2 acquire before expiry = %v, %v; want false", ok, err)
	}
	time.Sleep(ttl + 200*time.Millisecond)
	if ok, err := s.AcquireLock(ctx, "reaper", "r2", time.Minute); err != nil || !ok {
		t.Fatalf("r2 acquire after expiry = %v, %v; want true", ok, err)
	}
	if ok, err := s.AcquireLock(ctx, "reaper", "r1", time.Minute); err != nil || ok {
		t.Fatalf("r1 re-acquire after takeover = %v, %v; want false", ok, err)
	}
}

func testLockRace(t *testing.T, s store.Store) {
	ctx := context.Background()
	const n = 8
	got := make([]bool, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			got[i], errs[i] = s.AcquireLock(ctx, "reaper", fmt.Sprintf("replica-%d", i), time.Minute)
		})
	}
	close(start)
	wg.Wait()
	winners := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("goroutine %d: %v", i, errs[i])
		}
		if got[i] {
			winners++
		}
	}
	if winners != 1 {
		t.Fatalf("%d holders acquired the lock, want exactly 1", winners)
	}
}
