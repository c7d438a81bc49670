package lease

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/stint-dev/stint/internal/audit"
	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/issuer"
	"github.com/stint-dev/stint/internal/store"
	"github.com/stint-dev/stint/internal/store/sqlite"
)

// fakeIssuer stands in for a target in the manager's unit tests; the real
// PostgreSQL and MariaDB targets are exercised in integration_test.go.
type fakeIssuer struct {
	mu       sync.Mutex
	live     map[string]bool
	down     atomic.Bool
	failIss  error
	block    chan struct{} // when set, Revoke waits on it
	revokes  atomic.Int64
	renewals atomic.Int64
}

func newFake() *fakeIssuer { return &fakeIssuer{live: map[string]bool{}} }

func (f *fakeIssuer) Roles() []string { return []string{"ro"} }
func (f *fakeIssuer) DefaultTTL(string) time.Duration {
	return time.Hour
}
func (f *fakeIssuer) Issue(ctx context.Context, r issuer.Request) (issuer.Result, error) {
	if f.failIss != nil {
		f.mu.Lock()
		f.live[r.LeaseID] = true // half-created
		f.mu.Unlock()
		return issuer.Result{}, f.failIss
	}
	f.mu.Lock()
	f.live[r.LeaseID] = true
	f.mu.Unlock()
	return issuer.Result{Credential: core.Credential{"username": "u", "password": "s3cretpassword-value"}, Internal: []byte(`{"name":"u"}`), Renewable: true}, nil
}
func (f *fakeIssuer) Revoke(ctx context.Context, r issuer.RevokeRequest) error {
	f.revokes.Add(1)
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if f.down.Load() {
		return errors.New("fake: connection refused")
	}
	f.mu.Lock()
	delete(f.live, r.LeaseID)
	f.mu.Unlock()
	return nil
}

// RevokesIdempotently: like the database targets, revoking a credential
// already gone is success.
func (f *fakeIssuer) RevokesIdempotently() {}
func (f *fakeIssuer) Renew(ctx context.Context, r issuer.RenewRequest) error {
	f.renewals.Add(1)
	return nil
}
func (f *fakeIssuer) isLive(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.live[id]
}

// recorder keeps events and fails the test if any carries the password.
type recorder struct {
	mu     sync.Mutex
	events []audit.Event
	fail   atomic.Bool
}

func (r *recorder) Record(ctx context.Context, e audit.Event) error {
	if r.fail.Load() {
		return errors.New("sink down")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
	return nil
}

func (r *recorder) count(typ, outcome string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.events {
		if e.Type == typ && (outcome == "" || e.Outcome == outcome) {
			n++
		}
	}
	return n
}

func (r *recorder) assertNoSecret(t *testing.T, secret string) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	b, _ := json.Marshal(r.events)
	if bytes.Contains(b, []byte(secret)) {
		t.Errorf("an audit event carries the password")
	}
}

// xorSealer marks sealed data so tests see it was sealed with the lease id.
type xorSealer struct{}

func (xorSealer) Seal(p, aad []byte) ([]byte, error) {
	return append(append([]byte("sealed:"), aad...), append([]byte{'|'}, p...)...), nil
}
func (xorSealer) Open(s, aad []byte) ([]byte, error) {
	pre := append(append([]byte("sealed:"), aad...), '|')
	if !bytes.HasPrefix(s, pre) {
		return nil, errors.New("wrong aad")
	}
	return s[len(pre):], nil
}

type env struct {
	m    *Manager
	st   store.Store
	a, b *fakeIssuer
	rec  *recorder
	reg  *prometheus.Registry
	ctx  context.Context
}

func openSQLite(t *testing.T) store.Store {
	t.Helper()
	st, err := sqlite.OpenOptions(context.Background(), filepath.Join(t.TempDir(), "s.db"), sqlite.Options{Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func newEnv(t *testing.T, tweak func(*Options)) *env {
	t.Helper()
	e := &env{st: openSQLite(t), a: newFake(), b: newFake(), rec: &recorder{}, reg: prometheus.NewRegistry(), ctx: context.Background()}
	o := Options{
		Store: e.st, Issuers: map[string]issuer.Issuer{"a": e.a, "b": e.b}, TargetTypes: map[string]string{"a": "fake", "b": "fake"},
		Sealer: xorSealer{}, Audit: e.rec, Registerer: e.reg, Holder: "t1",
		ReapInterval: 50 * time.Millisecond, LockTTL: time.Second, BaseBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
		FailedRetry: 200 * time.Millisecond, MaxAttempts: 3, RevokeTimeout: 2 * time.Second, IssueTimeout: 200 * time.Millisecond,
	}
	if tweak != nil {
		tweak(&o)
	}
	m, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	e.m = m
	return e
}

// run starts the reaper until the test ends.
func (e *env) run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.m.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

var bot = core.Principal{Provider: "k8s", Kind: "kubernetes", Subject: "agents:bot", Attributes: map[string]any{"namespace": "agents"}}

func (e *env) issue(t *testing.T, target string, ttl time.Duration) core.Lease {
	t.Helper()
	l, _, err := e.m.Issue(e.ctx, IssueRequest{Target: target, Role: "ro", Rule: "r1", Principal: bot, TTL: ttl, MaxTTL: time.Hour})
	if err != nil {
		t.Fatalf("issue: %v", err)
	}
	return l
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *env) state(t *testing.T, id string) core.Lease {
	t.Helper()
	l, err := e.st.GetLease(e.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestIssueStoresActiveLeaseWithSealedData(t *testing.T) {
	e := newEnv(t, nil)
	l, cred, err := e.m.Issue(e.ctx, IssueRequest{Target: "a", Role: "ro", Rule: "r1", Principal: bot, Human: &core.Principal{Provider: "sso", Subject: "alice"}, TTL: time.Minute, MaxTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if l.State != core.LeaseActive || !l.Renewable || cred["username"] != "u" {
		t.Fatalf("lease %+v cred %v", l, cred)
	}
	got := e.state(t, l.ID)
	if got.State != core.LeaseActive || got.Human != "alice" || got.TargetType != "fake" || !got.NextAttempt.IsZero() {
		t.Errorf("stored lease %+v", got)
	}
	if !bytes.HasPrefix(got.IssuerData, []byte("sealed:"+l.ID)) {
		t.Errorf("issuer data not sealed with the lease id: %q", got.IssuerData)
	}
	if d := got.ExpiresAt.Sub(got.IssuedAt); d != time.Minute {
		t.Errorf("ttl %s", d)
	}
	if e.rec.count(audit.CredentialIssue, audit.OutcomeSuccess) != 1 {
		t.Error("no credential.issue success event")
	}
	e.rec.assertNoSecret(t, "s3cretpassword-value")
}

func TestIssueRefusesBadInputAndTouchesNothing(t *testing.T) {
	e := newEnv(t, nil)
	tests := []struct {
		name string
		req  IssueRequest
		want string
	}{
		{"unknown target", IssueRequest{Target: "zz", Role: "ro"}, `unknown target "zz"`},
		{"unknown role", IssueRequest{Target: "a", Role: "admin"}, `no role "admin"`},
		{"ttl above max", IssueRequest{Target: "a", Role: "ro", TTL: 2 * time.Hour, MaxTTL: time.Hour}, "exceeds the rule's max_ttl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.Principal = bot
			_, _, err := e.m.Issue(e.ctx, tt.req)
			if core.KindOf(err) != core.KindInvalid || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want invalid with %q", err, tt.want)
			}
		})
	}
	if n, _ := e.st.CountLeases(e.ctx, store.LeaseFilter{}); n != 0 {
		t.Errorf("%d leases stored", n)
	}
	if len(e.a.live) != 0 {
		t.Error("issuer was called")
	}
	if got := e.rec.count(audit.CredentialIssue, audit.OutcomeFailure); got != len(tests) {
		t.Errorf("%d failure events, want %d", got, len(tests))
	}
}

func TestIssueDefaultTTLIsCappedByMaxTTL(t *testing.T) {
	e := newEnv(t, nil)
	l, _, err := e.m.Issue(e.ctx, IssueRequest{Target: "a", Role: "ro", Principal: bot, MaxTTL: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if d := l.ExpiresAt.Sub(l.IssuedAt); d != 10*time.Minute {
		t.Errorf("ttl %s, want the max_ttl 10m (role default is 1h)", d)
	}
}

func TestIssuerFailureRevokesHalfCreatedCredential(t *testing.T) {
	e := newEnv(t, nil)
	e.a.failIss = errors.New("fake: create failed")
	_, _, err := e.m.Issue(e.ctx, IssueRequest{Target: "a", Role: "ro", Principal: bot, TTL: time.Minute})
	if core.KindOf(err) != core.KindUnavailable {
		t.Fatalf("err = %v, want unavailable", err)
	}
	ls, _ := e.st.ListLeases(e.ctx, store.LeaseFilter{})
	if len(ls) != 1 || ls[0].State != core.LeaseRevoked || e.a.isLive(ls[0].ID) {
		t.Fatalf("leases %+v, live %v", ls, e.a.live)
	}
	e.a.failIss = core.Invalid("template: missing attribute")
	if _, _, err := e.m.Issue(e.ctx, IssueRequest{Target: "a", Role: "ro", Principal: bot, TTL: time.Minute}); core.KindOf(err) != core.KindInvalid {
		t.Errorf("issuer's invalid error became %v", err)
	}
}

func TestIssueFailsClosedWhenAuditIsDown(t *testing.T) {
	e := newEnv(t, nil)
	e.rec.fail.Store(true)
	_, _, err := e.m.Issue(e.ctx, IssueRequest{Target: "a", Role: "ro", Principal: bot, TTL: time.Minute})
	if core.KindOf(err) != core.KindUnavailable {
		t.Fatalf("err = %v", err)
	}
	ls, _ := e.st.ListLeases(e.ctx, store.LeaseFilter{})
	if len(ls) != 1 || ls[0].State != core.LeaseRevoked || e.a.isLive(ls[0].ID) {
		t.Fatalf("credential survived an unrecorded issue: %+v", ls)
	}
}

func TestLimitsRefuseWithRateLimited(t *testing.T) {
	tests := []struct {
		name   string
		limits Limits
		other  core.Principal
		want   string
	}{
		{"per principal", Limits{PerPrincipal: 2}, core.Principal{Provider: "k8s", Subject: "other"}, "principal k8s/agents:bot already holds 2"},
		{"per role", Limits{PerRole: 2}, bot, "role a/ro already has 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(o *Options) { o.Limits = tt.limits })
			e.issue(t, "a", time.Minute)
			e.issue(t, "a", time.Minute)
			_, _, err := e.m.Issue(e.ctx, IssueRequest{Target: "a", Role: "ro", Principal: bot, TTL: time.Minute})
			if core.KindOf(err) != core.KindRateLimited || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want rate limited %q", err, tt.want)
			}
			if e.rec.count(audit.CredentialIssue, audit.OutcomeDenied) != 1 {
				t.Error("limit hit not audited")
			}
			_, _, err = e.m.Issue(e.ctx, IssueRequest{Target: "a", Role: "ro", Principal: tt.other, TTL: time.Minute})
			if tt.limits.PerPrincipal > 0 && err != nil {
				t.Errorf("another principal was limited: %v", err)
			}
			if tt.limits.PerRole > 0 && core.KindOf(err) != core.KindRateLimited {
				t.Errorf("role limit ignored for another principal: %v", err)
			}
		})
	}
}

func TestRenewExtendsWithinMaxTTL(t *testing.T) {
	e := newEnv(t, nil)
	l, _, err := e.m.Issue(e.ctx, IssueRequest{Target: "a", Role: "ro", Principal: bot, TTL: time.Minute, MaxTTL: 3 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	r, err := e.m.Renew(e.ctx, l.ID, 2*time.Minute, bot)
	if err != nil {
		t.Fatal(err)
	}
	if !r.ExpiresAt.After(l.ExpiresAt) || e.a.renewals.Load() != 1 {
		t.Fatalf("renew did not extend: %v -> %v", l.ExpiresAt, r.ExpiresAt)
	}
	r, err = e.m.Renew(e.ctx, l.ID, time.Hour, bot)
	if err != nil {
		t.Fatal(err)
	}
	if !r.ExpiresAt.Equal(l.MaxExpires) {
		t.Errorf("renew past max: %v, max %v", r.ExpiresAt, l.MaxExpires)
	}
	if _, err := e.m.Renew(e.ctx, l.ID, time.Hour, bot); core.KindOf(err) != core.KindConflict {
		t.Errorf("renew at max: %v", err)
	}
	e.m.Revoke(e.ctx, l.ID)
	if _, err := e.m.Renew(e.ctx, l.ID, time.Minute, bot); core.KindOf(err) != core.KindConflict {
		t.Errorf("renew of revoked lease: %v", err)
	}
	if e.rec.count(audit.CredentialRenew, audit.OutcomeSuccess) != 2 {
		t.Error("renewals not audited")
	}
}

func TestRevokeIsIdempotentAndForceRevokeIsAudited(t *testing.T) {
	e := newEnv(t, nil)
	l := e.issue(t, "a", time.Minute)
	for i := range 2 {
		r, err := e.m.Revoke(e.ctx, l.ID)
		if err != nil || r.State != core.LeaseRevoked {
			t.Fatalf("revoke %d: %v %+v", i, err, r)
		}
	}
	if e.a.revokes.Load() != 1 || e.a.isLive(l.ID) {
		t.Errorf("target revoked %d times", e.a.revokes.Load())
	}
	if _, err := e.m.Revoke(e.ctx, "nope"); core.KindOf(err) != core.KindNotFound {
		t.Errorf("unknown lease: %v", err)
	}
	e.a.down.Store(true)
	l2 := e.issue(t, "a", time.Minute)
	r, err := e.m.Revoke(e.ctx, l2.ID)
	if err != nil || r.State != core.LeaseRevoking || r.Attempts != 1 || !strings.Contains(r.LastError, "connection refused") {
		t.Fatalf("revoke with target down: %v %+v", err, r)
	}
	f, err := e.m.ForceRevoke(e.ctx, l2.ID)
	if err != nil || f.State != core.LeaseRevoked {
		t.Fatalf("force revoke: %v %+v", err, f)
	}
	if e.rec.count("admin.force_revoke", audit.OutcomeSuccess) != 1 {
		t.Error("force revoke not audited")
	}
	if got := metricValue(e.m.met.revocations.WithLabelValues("a", "abandoned")); got != 1 {
		t.Errorf("abandoned metric %v", got)
	}
}

func TestReaperRevokesExpiredLeasesWithinTwoSeconds(t *testing.T) {
	e := newEnv(t, nil)
	l := e.issue(t, "a", time.Second)
	e.run(t)
	waitFor(t, 3*time.Second, "expiry revocation", func() bool { return e.state(t, l.ID).State == core.LeaseRevoked })
	got := e.state(t, l.ID)
	if lag := got.UpdatedAt.Sub(got.ExpiresAt); lag > 2*time.Second || lag < 0 {
		t.Errorf("revoked %s after expiry", lag)
	}
	if e.a.isLive(l.ID) {
		t.Error("credential still live")
	}
	if e.rec.count(audit.CredentialRevoke, audit.OutcomeSuccess) != 1 {
		t.Error("no revoke event")
	}
}

func TestReaperPrunesRevokedLeasesPastRetention(t *testing.T) {
	// The manager's clock runs two days ahead of the wall clock, so the
	// prune must take its bound from Options.Now.
	now := time.Now().Add(48 * time.Hour)
	leases := []struct {
		id      string
		state   core.LeaseState
		expires time.Duration // from now
	}{
		{"revoked-past-retention", core.LeaseRevoked, -2 * time.Hour},
		{"revoked-within-retention", core.LeaseRevoked, -30 * time.Minute},
		{"revoked-unexpired", core.LeaseRevoked, time.Hour},
		{"active", core.LeaseActive, time.Hour},
		{"pending", core.LeasePending, time.Hour},
		{"failed-long-expired", core.LeaseFailed, -2 * time.Hour},
	}
	tests := []struct {
		name      string
		retention time.Duration
		pruned    []string
	}{
		{"retention 1h", time.Hour, []string{"revoked-past-retention"}},
		{"retention 0 keeps all", 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(o *Options) {
				o.Now = func() time.Time { return now }
				o.Retention = tt.retention
			})
			// NextAttempt an hour on: the reaper leaves every one alone.
			for _, l := range leases {
				err := e.st.CreateLease(e.ctx, core.Lease{ID: l.id, Target: "a", TargetType: "fake", Role: "ro",
					Provider: bot.Provider, Subject: bot.Subject, IssuedAt: now.Add(-3 * time.Hour),
					ExpiresAt: now.Add(l.expires), NextAttempt: now.Add(time.Hour), State: l.state, UpdatedAt: now})
				if err != nil {
					t.Fatal(err)
				}
			}
			e.run(t)
			// The gauge is set after the first pass, which prunes; it
			// counts live leases, pending and active.
			waitFor(t, 3*time.Second, "first reaper pass", func() bool { return metricValue(e.m.met.active.WithLabelValues("a")) == 2 })
			for _, l := range leases {
				_, err := e.st.GetLease(e.ctx, l.id)
				want := slices.Contains(tt.pruned, l.id)
				if gone := errors.Is(err, core.ErrNotFound); gone != want {
					t.Errorf("%s: GetLease err = %v, want pruned %v", l.id, err, want)
				}
			}
			if got := metricValue(e.m.met.pruned); got != float64(len(tt.pruned)) {
				t.Errorf("stint_leases_pruned_total = %v, want %d", got, len(tt.pruned))
			}
		})
	}
}

// backlogStore has left prunable leases and fails PruneLeases with err.
type backlogStore struct {
	store.Store
	mu          sync.Mutex
	left, calls int
	err         error
}

func (s *backlogStore) PruneLeases(ctx context.Context, before time.Time, limit int) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.err != nil {
		return 0, s.err
	}
	n := min(s.left, limit)
	s.left -= n
	return n, nil
}

func (s *backlogStore) counts() (left, calls int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.left, s.calls
}

func TestPruneBatchesUntilShortOrCapped(t *testing.T) {
	tests := []struct {
		name          string
		left          int
		err           error
		calls, pruned int
		more          bool
	}{
		{"nothing to prune", 0, nil, 1, 0, false},
		{"short last batch", 2500, nil, 3, 2500, false},
		{"exact batches end on an empty one", 2000, nil, 3, 2000, false},
		{"backlog stops at the cap, more to do", 25000, nil, pruneBatches, pruneBatches * pruneBatch, true},
		{"error ends the pass", 5000, errors.New("store down"), 1, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := &backlogStore{left: tt.left, err: tt.err}
			e := newEnv(t, func(o *Options) { o.Store = st; o.Retention = time.Hour })
			more := e.m.prune(e.ctx)
			if _, calls := st.counts(); more != tt.more || calls != tt.calls {
				t.Errorf("prune = %v after %d batches, want %v after %d", more, calls, tt.more, tt.calls)
			}
			if got := metricValue(e.m.met.pruned); got != float64(tt.pruned) {
				t.Errorf("stint_leases_pruned_total = %v, want %d", got, tt.pruned)
			}
		})
	}
}

// A backlog bigger than one pass is worked off tick by tick, not a pass a
// minute; then the passes are a minute apart again.
func TestReaperWorksOffAPruneBacklogTickByTick(t *testing.T) {
	// Two full passes, then a short batch that ends the backlog.
	st := &backlogStore{left: 2*pruneBatches*pruneBatch + 500}
	e := newEnv(t, func(o *Options) {
		st.Store = o.Store
		o.Store = st
		o.Retention = time.Hour
	})
	e.run(t)
	waitFor(t, 3*time.Second, "backlog pruned", func() bool { left, _ := st.counts(); return left == 0 })
	_, calls := st.counts()
	time.Sleep(10 * e.m.o.ReapInterval)
	if _, again := st.counts(); again != calls {
		t.Errorf("%d more prune batches after the backlog was gone", again-calls)
	}
}

func TestFailedRevocationBacksOffThenFailsThenRecovers(t *testing.T) {
	e := newEnv(t, nil)
	e.a.down.Store(true)
	l := e.issue(t, "a", 100*time.Millisecond)
	e.run(t)
	waitFor(t, 5*time.Second, "state failed", func() bool { return e.state(t, l.ID).State == core.LeaseFailed })
	got := e.state(t, l.ID)
	if got.Attempts != 3 || got.LastError == "" {
		t.Errorf("failed lease %+v", got)
	}
	failed, _ := e.m.List(e.ctx, store.LeaseFilter{States: []core.LeaseState{core.LeaseFailed}})
	if len(failed) != 1 {
		t.Errorf("list failed: %d", len(failed))
	}
	waitFor(t, 3*time.Second, "failed gauge", func() bool { return metricValue(e.m.met.failed) == 1 })
	if e.rec.count(audit.CredentialRevokeFailed, audit.OutcomeFailure) < 3 {
		t.Error("failed attempts not audited")
	}
	e.a.down.Store(false)
	waitFor(t, 3*time.Second, "slow retry succeeds", func() bool { return e.state(t, l.ID).State == core.LeaseRevoked })
	if e.a.isLive(l.ID) {
		t.Error("credential still live")
	}
}

func TestDeadTargetDoesNotDelayAnother(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Workers = 2; o.RevokeTimeout = 5 * time.Second })
	e.a.block = make(chan struct{})
	defer close(e.a.block)
	for range 20 {
		e.issue(t, "a", 50*time.Millisecond)
	}
	lb := e.issue(t, "b", 300*time.Millisecond)
	e.run(t)
	waitFor(t, 2*time.Second, "healthy target revoked", func() bool { return e.state(t, lb.ID).State == core.LeaseRevoked })
}

func TestCrashBetweenPhasesIsRecoveredByTheNextRun(t *testing.T) {
	crash := errors.New("crash")
	e := newEnv(t, func(o *Options) { o.Hooks = &TestHooks{AfterIssue: func(string) error { return crash }} })
	if _, _, err := e.m.Issue(e.ctx, IssueRequest{Target: "a", Role: "ro", Principal: bot, TTL: time.Hour}); !errors.Is(err, crash) {
		t.Fatal(err)
	}
	ls, _ := e.st.ListLeases(e.ctx, store.LeaseFilter{})
	if len(ls) != 1 || ls[0].State != core.LeasePending || !e.a.isLive(ls[0].ID) {
		t.Fatalf("after crash: %+v", ls)
	}
	m2, err := New(Options{Store: e.st, Issuers: map[string]issuer.Issuer{"a": e.a}, Audit: e.rec, Holder: "t2", ReapInterval: 50 * time.Millisecond, IssueTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m2.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	waitFor(t, 3*time.Second, "recovery", func() bool { return e.state(t, ls[0].ID).State == core.LeaseRevoked })
	if e.a.isLive(ls[0].ID) {
		t.Error("credential survived the crash")
	}
}

func TestRevokeMatchingReturnsCountAndRevokesInBackground(t *testing.T) {
	e := newEnv(t, nil)
	var ids []string
	for range 30 {
		ids = append(ids, e.issue(t, "a", time.Hour).ID)
	}
	keep := e.issue(t, "b", time.Hour)
	e.run(t)
	n, err := e.m.RevokeMatching(e.ctx, store.LeaseFilter{Target: "a"})
	if err != nil || n != 30 {
		t.Fatalf("count %d, %v", n, err)
	}
	waitFor(t, 5*time.Second, "kill switch", func() bool {
		c, _ := e.st.CountLeases(e.ctx, store.LeaseFilter{Target: "a", States: []core.LeaseState{core.LeaseRevoked}})
		return c == 30
	})
	for _, id := range ids {
		if e.a.isLive(id) {
			t.Errorf("lease %s still live in the target", id)
		}
	}
	if e.state(t, keep.ID).State != core.LeaseActive {
		t.Error("kill switch revoked a lease it did not match")
	}
	if int(e.a.revokes.Load()) != 30 {
		t.Errorf("%d revoke calls for 30 leases", e.a.revokes.Load())
	}
	if e.rec.count("admin.revoke_matching", audit.OutcomeSuccess) != 1 {
		t.Error("kill switch not audited")
	}
}

func TestBackoffIsCappedAndJittered(t *testing.T) {
	m := &Manager{o: Options{BaseBackoff: time.Second, MaxBackoff: 10 * time.Second}}
	tests := []struct {
		n      int
		lo, hi time.Duration
	}{
		{1, 500 * time.Millisecond, time.Second},
		{3, 2 * time.Second, 4 * time.Second},
		{10, 5 * time.Second, 10 * time.Second},
		{1000, 5 * time.Second, 10 * time.Second},
	}
	for _, tt := range tests {
		seen := map[time.Duration]bool{}
		for range 50 {
			d := m.backoff(tt.n)
			if d < tt.lo || d > tt.hi {
				t.Errorf("backoff(%d) = %s, want [%s, %s]", tt.n, d, tt.lo, tt.hi)
			}
			seen[d] = true
		}
		if len(seen) < 2 {
			t.Errorf("backoff(%d) has no jitter", tt.n)
		}
	}
}

func metricValue(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	if m.Gauge != nil {
		return m.Gauge.GetValue()
	}
	return m.Counter.GetValue()
}

func TestGaugeRefreshBacksOffWhenCountingIsSlow(t *testing.T) {
	tests := []struct {
		took, want time.Duration
	}{
		{0, 2 * time.Second},
		{10 * time.Millisecond, 2 * time.Second},
		{100 * time.Millisecond, 2 * time.Second},
		{500 * time.Millisecond, 10 * time.Second},
		{3 * time.Second, time.Minute},
	}
	for _, tt := range tests {
		if got := gaugeInterval(tt.took); got != tt.want {
			t.Errorf("gaugeInterval(%s) = %s, want %s", tt.took, got, tt.want)
		}
	}
}

// TestReaperExpiresSigningOnlyLeasesInBulk: expired certificates (an
// issuer with nothing to clean up) are marked revoked without a claim or
// an issuer call, each with one revoke event saying "expired", beside a
// target whose expiry still goes through the issuer; a lease a user
// revoked first keeps that revocation and gets no second event.
func TestReaperExpiresSigningOnlyLeasesInBulk(t *testing.T) {
	loc := &localIssuer{fakeIssuer{live: map[string]bool{}}}
	e := newEnv(t, func(o *Options) { o.Issuers["b"] = loc })
	const n = 300
	var certs []core.Lease
	for range n {
		certs = append(certs, e.issue(t, "b", 200*time.Millisecond))
	}
	db := e.issue(t, "a", 200*time.Millisecond)
	if _, err := e.m.Revoke(e.ctx, certs[0].ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(250 * time.Millisecond) // all expired before the reaper's first look
	e.run(t)
	waitFor(t, 10*time.Second, "every expired lease revoked and recorded", func() bool {
		n, err := e.st.CountLeases(e.ctx, store.LeaseFilter{States: []core.LeaseState{core.LeaseRevoked}})
		return err == nil && n == len(certs)+1 && e.rec.count(audit.CredentialRevoke, "") >= len(certs)+1
	})
	time.Sleep(100 * time.Millisecond) // room for a duplicate event to show
	if got := loc.revokes.Load(); got != 1 {
		t.Errorf("the signing-only issuer was called %d times, want once (the user's revocation)", got)
	}
	if got := e.a.revokes.Load(); got != 1 || e.a.isLive(db.ID) {
		t.Errorf("the other target: %d revoke calls, live %v", got, e.a.isLive(db.ID))
	}
	e.rec.mu.Lock()
	defer e.rec.mu.Unlock()
	perLease := map[string][]string{}
	for _, ev := range e.rec.events {
		if ev.Type == audit.CredentialRevoke {
			perLease[ev.LeaseID] = append(perLease[ev.LeaseID], ev.Reason+"/"+ev.Outcome)
		}
	}
	for i, l := range certs {
		want := "expired/" + audit.OutcomeSuccess
		if i == 0 {
			want = "requested/" + audit.OutcomeSuccess
		}
		if got := perLease[l.ID]; len(got) != 1 || got[0] != want {
			t.Fatalf("lease %d: revoke events %q, want [%s]", i, got, want)
		}
	}
	if got := metricValue(e.m.met.revocations.WithLabelValues("b", "success")); got != n {
		t.Errorf("revocations metric for b = %v, want %d", got, n)
	}
}

// renewingStore moves a lease's expiry, as a renewal's write would, right
// after the reaper has read it as due: the race between Renew (which read
// the lease before it expired) and the reaper.
type renewingStore struct {
	store.Store
	id  string
	to  time.Time
	hit atomic.Bool
}

func (s *renewingStore) DueLeases(ctx context.Context, now time.Time, limit int) ([]core.Lease, error) {
	due, err := s.Store.DueLeases(ctx, now, limit)
	for _, l := range due {
		if l.ID == s.id && s.hit.CompareAndSwap(false, true) {
			l.ExpiresAt = s.to
			if ok, err := s.Store.UpdateLease(ctx, l, core.LeaseActive); err != nil || !ok {
				return nil, fmt.Errorf("renew in between: %v %v", ok, err)
			}
		}
	}
	return due, err
}

// TestReaperDoesNotTakeALeaseRenewedAfterItWasRead: a renewal that lands
// between the reaper's read of an expired lease and its claim wins; the
// credential stays live with its new expiry.
func TestReaperDoesNotTakeALeaseRenewedAfterItWasRead(t *testing.T) {
	var rs *renewingStore
	e := newEnv(t, func(o *Options) {
		rs = &renewingStore{Store: o.Store}
		o.Store = rs
	})
	l := e.issue(t, "a", 150*time.Millisecond)
	rs.id, rs.to = l.ID, time.Now().Add(time.Hour)
	time.Sleep(200 * time.Millisecond)
	e.run(t)
	waitFor(t, 5*time.Second, "the reaper to read the lease", rs.hit.Load)
	time.Sleep(300 * time.Millisecond) // a few reaper ticks
	got := e.state(t, l.ID)
	if got.State != core.LeaseActive || !got.ExpiresAt.After(time.Now().Add(50*time.Minute)) {
		t.Fatalf("lease is %s, expiring %v; want active with the renewed expiry", got.State, got.ExpiresAt)
	}
	if e.a.revokes.Load() != 0 || !e.a.isLive(l.ID) {
		t.Errorf("the renewed credential was revoked (%d calls)", e.a.revokes.Load())
	}
}
