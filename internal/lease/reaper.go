package lease

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stint-dev/stint/internal/audit"
	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/issuer"
	"github.com/stint-dev/stint/internal/store"
)

// LockName is the store lock whose holder runs the reaper.
const LockName = "reaper"

// reapBatch is how many due leases one store query returns.
const reapBatch = 1000

// A prune pass runs once a minute (every tick while a backlog lasts) and
// makes at most pruneBatches deletes of pruneBatch leases each, so no one
// store write holds the store long. It also stops starting batches after
// pruneBudget: it runs inside the reaper's loop, and expired leases must
// still be revoked within two seconds.
const (
	pruneInterval = time.Minute
	pruneBatch    = 1000
	pruneBatches  = 20
	pruneBudget   = 250 * time.Millisecond
)

// Run is the reaper. Every ReapInterval it tries to take (or keep) the
// reaper lock; while it holds it, it claims every due lease — expired,
// left pending by a crash, marked by the kill switch, or due for a retry —
// and hands it to that target's worker pool. The first pass runs at once,
// which is the start-up recovery. The lock holder also deletes revoked
// leases expired for longer than the Retention. When ctx ends, revocations
// in progress finish, queued ones are handed back to the store for the
// next reaper, the lock is released, and Run returns nil.
func (m *Manager) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.running {
		m.mu.Unlock()
		return errors.New("lease: Run is already running")
	}
	m.running = true
	m.queues = map[string]*queue{}
	m.mu.Unlock()

	var wg sync.WaitGroup
	m.mu.Lock()
	for t := range m.o.Issuers {
		m.queueLocked(ctx, &wg, t)
	}
	m.mu.Unlock()

	tick := time.NewTicker(m.o.ReapInterval)
	defer tick.Stop()
	leader := false
	var lastMetrics, lastPrune time.Time
	var refreshing atomic.Bool
	var metricsEvery atomic.Int64 // time.Duration
	metricsEvery.Store(int64(minMetricsEvery))
	for {
		held, err := m.o.Store.AcquireLock(ctx, LockName, m.o.Holder, m.o.LockTTL)
		if err != nil && ctx.Err() == nil {
			m.o.Logger.Error("lease: reaper lock", "err", err)
		}
		if held != leader {
			m.o.Logger.Info("lease: reaper leadership changed", "holder", m.o.Holder, "leading", held)
		}
		leader = held
		if leader {
			for i := 0; i < 20 && ctx.Err() == nil; i++ {
				if !m.reap(ctx, &wg) {
					break
				}
			}
			if m.o.Retention > 0 && time.Since(lastPrune) >= pruneInterval {
				if !m.prune(ctx) {
					lastPrune = time.Now()
				}
			}
		}
		// The gauges are counted beside the loop, so that a slow count
		// never delays a revocation.
		if time.Since(lastMetrics) > time.Duration(metricsEvery.Load()) && refreshing.CompareAndSwap(false, true) {
			lastMetrics = time.Now()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer refreshing.Store(false)
				start := time.Now()
				m.refreshMetrics(ctx)
				metricsEvery.Store(int64(gaugeInterval(time.Since(start))))
			}()
		}
		select {
		case <-ctx.Done():
			m.stop(&wg, leader)
			return nil
		case <-tick.C:
		}
	}
}

func (m *Manager) stop(wg *sync.WaitGroup, leader bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m.mu.Lock()
	qs := m.queues
	m.queues = nil
	m.mu.Unlock()
	for _, q := range qs {
		for _, j := range q.close() {
			// Never started: make it due again at once for the next reaper.
			l := j.lease
			l.NextAttempt = m.o.Now()
			if _, err := m.o.Store.UpdateLease(ctx, l, core.LeaseRevoking); err != nil {
				m.o.Logger.Warn("lease: hand back claim", "lease", l.ID, "err", err)
			}
			m.mu.Lock()
			delete(m.inflight, l.ID)
			m.mu.Unlock()
		}
	}
	wg.Wait()
	if leader {
		if err := m.o.Store.ReleaseLock(ctx, LockName, m.o.Holder); err != nil {
			m.o.Logger.Warn("lease: release reaper lock", "err", err)
		}
	}
	m.bg.Wait()
	m.mu.Lock()
	m.running = false
	m.mu.Unlock()
}

// queueLocked returns the target's queue, starting its workers on first
// use. m.mu must be held; nil after Run ended.
func (m *Manager) queueLocked(ctx context.Context, wg *sync.WaitGroup, target string) *queue {
	if m.queues == nil {
		return nil
	}
	if q, ok := m.queues[target]; ok {
		return q
	}
	q := newQueue()
	m.queues[target] = q
	for range m.o.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				j, ok := q.pop()
				if !ok {
					return
				}
				m.attempt(ctx, j.lease, j.reason)
				m.mu.Lock()
				delete(m.inflight, j.lease.ID)
				m.mu.Unlock()
			}
		}()
	}
	return q
}

// reap claims one batch of due leases and queues them per target. It
// reports whether the batch was full (more may be due).
func (m *Manager) reap(ctx context.Context, wg *sync.WaitGroup) bool {
	now := m.o.Now()
	due, err := m.o.Store.DueLeases(ctx, now, reapBatch)
	if err != nil {
		if ctx.Err() == nil {
			m.o.Logger.Error("lease: due leases", "err", err)
		}
		return false
	}
	// Claims are independent store writes; a few at a time keeps a big
	// kill switch fast on a store that takes concurrent writers.
	sem := make(chan struct{}, 8)
	var cw sync.WaitGroup
	var expired []core.Lease
	for _, l := range due {
		if m.expiresAlone(l, now) {
			expired = append(expired, l)
			continue
		}
		m.mu.Lock()
		busy := m.inflight[l.ID]
		if !busy {
			m.inflight[l.ID] = true
		}
		m.mu.Unlock()
		sem <- struct{}{}
		cw.Add(1)
		go func() {
			defer func() { <-sem; cw.Done() }()
			m.claim(ctx, wg, l, busy, now)
		}()
	}
	cw.Wait()
	m.expireAll(ctx, expired, now)
	return len(due) == reapBatch
}

// expiresAlone reports whether l is a credential that ended by itself: an
// active lease, past its expiry, of an issuer with nothing to clean up (a
// certificate, a JWT, STS credentials). Such a lease needs no claim, no
// issuer call and no retry: only its state and its audit record.
func (m *Manager) expiresAlone(l core.Lease, now time.Time) bool {
	return l.State == core.LeaseActive && m.endedAlone(l, now)
}

// endedAlone reports whether l's credential is dead without stint's help:
// it has expired, and its issuer has nothing to clean up. Its lease's
// revoked state then decides nothing (an expired certificate is not in
// the KRL), so writing it may skip the flush.
func (m *Manager) endedAlone(l core.Lease, now time.Time) bool {
	_, ok := m.o.Issuers[l.Target].(issuer.NoCleanup)
	return ok && !l.ExpiresAt.After(now)
}

// expireWrite is how many expiries one store write and one audit write
// carry: enough to cost a fraction of a write each, few enough that the
// issues queued behind them (SQLite has one writer; the audit chain one
// lock) wait a millisecond or two, not tens.
const expireWrite = 100

// expireAll marks expired leases revoked (expiresAlone), expireWrite at a
// time: each store write changes only the leases still active — a
// revocation or another replica that got there first keeps its outcome —
// and one audit write records an event per lease it changed. The store
// write may skip the flush: the credentials are dead already, an expired
// certificate is not in the KRL, and a lease whose write a crash loses is
// due again. Done one by one, as claim and attempt, an expiry cost four
// writes, and the reaper fell behind a few thousand certificates a
// second, delaying every other target's revocations behind it.
func (m *Manager) expireAll(ctx context.Context, ls []core.Lease, now time.Time) {
	// Not cancelled with ctx: a write that has begun finishes, and its
	// events follow it.
	wctx := context.WithoutCancel(ctx)
	for start := 0; start < len(ls); start += expireWrite {
		m.expire(wctx, ls[start:min(start+expireWrite, len(ls))], now)
	}
}

// expire is expireAll for one store write and one audit write.
func (m *Manager) expire(ctx context.Context, ls []core.Lease, now time.Time) {
	ids := make([]string, len(ls))
	for i, l := range ls {
		ids[i] = l.ID
	}
	changed, err := m.o.Store.ExpireLeases(store.Lazy(ctx), ids, now)
	if err != nil {
		m.o.Logger.Error("lease: record expiries", "leases", len(ids), "first", ids[0], "err", err)
		return
	}
	won := make(map[string]bool, len(changed))
	for _, id := range changed {
		won[id] = true
	}
	var events []audit.Event
	for _, l := range ls {
		if !won[l.ID] {
			continue
		}
		m.met.revocations.WithLabelValues(l.Target, "success").Inc()
		ev := audit.Event{Type: audit.CredentialRevoke, Principal: &audit.Actor{Provider: l.Provider, Subject: l.Subject},
			Target: l.Target, Role: l.Role, LeaseID: l.ID, Rule: l.Rule, Reason: "expired", Outcome: audit.OutcomeSuccess}
		if l.Human != "" {
			ev.Human = &audit.Actor{Subject: l.Human}
		}
		events = append(events, ev)
	}
	if err := m.recordAll(ctx, events...); err != nil {
		// The leases stay revoked (their credentials have expired); say
		// which ones the record lacks.
		m.o.Logger.Error("lease: audit expiries", "events", len(events), "leases", changed, "err", err)
	}
}

func (m *Manager) claim(ctx context.Context, wg *sync.WaitGroup, l core.Lease, busy bool, now time.Time) {
	c := l
	c.State, c.NextAttempt, c.UpdatedAt = core.LeaseRevoking, now.Add(m.o.claimTTL()), now
	if busy {
		// Still queued here behind a slow target: extend the claim so it
		// neither crowds the due list nor goes to another replica.
		if l.State == core.LeaseRevoking {
			_, _ = m.o.Store.UpdateLease(lazyClaim(ctx), c, core.LeaseRevoking)
		}
		return
	}
	var ok bool
	var err error
	if l.State == core.LeaseActive {
		// Due by expiry: a renewal since the lease was read moved its
		// expiry, and then the lease is not taken.
		ok, err = m.o.Store.ClaimExpiredLease(lazyClaim(ctx), c, now)
	} else {
		ok, err = m.o.Store.UpdateLease(lazyClaim(ctx), c, l.State)
	}
	if err != nil || !ok {
		if err != nil && ctx.Err() == nil {
			m.o.Logger.Error("lease: claim", "lease", l.ID, "err", err)
		}
		m.mu.Lock()
		delete(m.inflight, l.ID)
		m.mu.Unlock()
		return
	}
	m.mu.Lock()
	q := m.queueLocked(ctx, wg, l.Target)
	m.mu.Unlock()
	if q == nil || !q.push(job{lease: c, reason: reasonFor(l)}) {
		m.mu.Lock()
		delete(m.inflight, l.ID)
		m.mu.Unlock()
	}
}

// lazyClaim marks a claim's write as one that may skip the flush
// (store.Lazy). The claim only decides which replica revokes; the outcome
// that follows it is written durably. If a crash loses the claim, the
// lease is back in the state it was claimed from: a due lease (expired,
// pending, marked by the kill switch, or due for a retry) is due again at
// once, and a lease revoked on request stays active until the caller asks
// again or it expires; the caller's request did not succeed.
func lazyClaim(ctx context.Context) context.Context { return store.Lazy(ctx) }

func reasonFor(l core.Lease) string {
	switch l.State {
	case core.LeasePending:
		return "abandoned issue"
	case core.LeaseActive:
		return "expired"
	case core.LeaseRevoking:
		if l.Attempts == 0 {
			return "requested"
		}
	}
	return "retry"
}

// revokeNow claims l (from its current state) and makes one attempt in the
// caller's goroutine. When someone else holds the lease (another claim or a
// state change) it returns the lease as stored.
func (m *Manager) revokeNow(ctx context.Context, l core.Lease, reason string) (core.Lease, error) {
	now := m.o.Now()
	c := l
	c.State, c.NextAttempt, c.UpdatedAt = core.LeaseRevoking, now.Add(m.o.claimTTL()), now
	ok, err := m.o.Store.UpdateLease(lazyClaim(context.WithoutCancel(ctx)), c, l.State)
	if err != nil {
		return l, core.E(core.KindUnavailable, "", "lease store unavailable", err)
	}
	if !ok {
		return m.Get(ctx, l.ID)
	}
	return m.attempt(ctx, c, reason), nil
}

// attempt makes one revocation of a claimed lease and records the outcome:
// revoked, or back to revoking with a backoff, or failed after MaxAttempts.
// It runs to the end even when ctx is cancelled, so a stopping replica
// never leaves a revocation half-recorded.
func (m *Manager) attempt(ctx context.Context, c core.Lease, reason string) core.Lease {
	ctx = context.WithoutCancel(ctx)
	var err error
	is, ok := m.o.Issuers[c.Target]
	if !ok {
		err = fmt.Errorf("lease: no issuer for target %s", c.Target)
	} else {
		internal, oerr := m.open(c)
		if oerr != nil {
			// Issuers can find what to remove from the lease id alone.
			m.o.Logger.Warn("lease: open issuer data; revoking by lease id", "lease", c.ID, "err", oerr)
			internal = nil
		}
		rctx, cancel := context.WithTimeout(ctx, m.o.RevokeTimeout)
		err = is.Revoke(rctx, issuer.RevokeRequest{LeaseID: c.ID, Role: c.Role, Internal: internal})
		cancel()
	}
	now := m.o.Now()
	ev := audit.Event{Type: audit.CredentialRevoke, Principal: &audit.Actor{Provider: c.Provider, Subject: c.Subject},
		Target: c.Target, Role: c.Role, LeaseID: c.ID, Rule: c.Rule, Reason: reason}
	if c.Human != "" {
		ev.Human = &audit.Actor{Subject: c.Human}
	}
	if err == nil {
		c.State, c.LastError, c.NextAttempt, c.UpdatedAt = core.LeaseRevoked, "", time.Time{}, now
		m.met.revocations.WithLabelValues(c.Target, "success").Inc()
		ev.Outcome = audit.OutcomeSuccess
	} else {
		c.Attempts++
		c.LastError = truncate(err.Error(), 500)
		if c.Attempts >= m.o.MaxAttempts {
			c.State, c.NextAttempt = core.LeaseFailed, now.Add(m.o.FailedRetry)
		} else {
			c.NextAttempt = now.Add(m.backoff(c.Attempts))
		}
		c.UpdatedAt = now
		m.met.revocations.WithLabelValues(c.Target, "failure").Inc()
		ev.Type, ev.Outcome, ev.Error = audit.CredentialRevokeFailed, audit.OutcomeFailure, c.LastError
		ev.Details = map[string]any{"attempts": c.Attempts, "state": string(c.State), "next_attempt_at": c.NextAttempt.UTC().Format(time.RFC3339)}
		m.o.Logger.Warn("lease: revocation failed", "lease", c.ID, "target", c.Target, "attempts", c.Attempts, "err", err)
	}
	// The outcome goes to the lease store and the audit record at once.
	// A success at a target whose revocation is idempotent (a database
	// user dropped IF EXISTS) may skip the store's flush: its audit record
	// is flushed, and if a crash loses the lease's new state, the lease is
	// revoked again when it is next due, which finds the user gone —
	// success. A failure's backoff, and the revocation of a credential
	// whose lease is what revokes it (an SSH certificate listed in the
	// KRL), are flushed — unless the credential has expired: an expired
	// certificate is refused on its own, the KRL lists unexpired ones
	// only, and a crash that loses the write only makes the lease due
	// again. (At thousands of SSH certificates a second, their expiries
	// would otherwise flush as often as their issues.)
	wctx := ctx
	_, idempotent := is.(issuer.IdempotentRevoke)
	_, noCleanup := is.(issuer.NoCleanup)
	if err == nil && ok && (idempotent && !noCleanup || m.endedAlone(c, now)) {
		wctx = store.Lazy(ctx)
	}
	var stored bool
	uerr, rerr := m.withRecord(ctx, func() (err error) {
		stored, err = m.o.Store.UpdateLease(wctx, c, core.LeaseRevoking)
		return err
	}, ev)
	if rerr != nil {
		m.o.Logger.Error("lease: audit", "types", 1, "err", rerr)
	}
	if uerr != nil {
		m.o.Logger.Error("lease: record revocation", "lease", c.ID, "err", uerr)
	} else if !stored {
		// Force-revoked meanwhile: the stored state stands.
		if cur, gerr := m.o.Store.GetLease(ctx, c.ID); gerr == nil {
			c = cur
		}
	}
	c.IssuerData = nil
	return c
}

// backoff is the delay before retry n (1-based): BaseBackoff doubling per
// attempt, capped at MaxBackoff, with jitter in [d/2, d) so many leases of
// one dead target do not retry in lockstep.
func (m *Manager) backoff(n int) time.Duration {
	d := m.o.BaseBackoff
	for i := 1; i < n && d < m.o.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, m.o.MaxBackoff)
	half := d / 2
	return half + rand.N(half+1)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// prune deletes revoked leases whose expiry is more than the Retention
// ago. It reports whether the pass stopped at its cap with more perhaps
// left: the next tick then goes on, so a backlog (a burst of revocations,
// or retention newly enabled on a long history) is worked off in minutes
// rather than 20,000 leases a minute. Errors are logged; the next pass
// tries again.
func (m *Manager) prune(ctx context.Context) bool {
	before := m.o.Now().Add(-m.o.Retention)
	total, more := 0, false
	start := time.Now()
	for i := 0; i < pruneBatches && (i == 0 || time.Since(start) < pruneBudget); i++ {
		n, err := m.o.Store.PruneLeases(ctx, before, pruneBatch)
		total += n
		if err != nil {
			if ctx.Err() == nil {
				m.o.Logger.Error("lease: prune revoked leases", "err", err)
			}
			more = false
			break
		}
		if more = n == pruneBatch; !more {
			break
		}
	}
	if total > 0 {
		m.met.pruned.Add(float64(total))
		m.o.Logger.Info("lease: pruned revoked leases", "count", total, "expired_before", before)
	}
	return more
}

// The gauges count live leases, which costs time in proportion to how
// many there are (millions, with short-lived certificates at thousands a
// second). They are refreshed every minMetricsEvery, or less often when a
// refresh takes long, so that counting never takes more than about a
// twentieth of one core.
const minMetricsEvery = 2 * time.Second

func gaugeInterval(took time.Duration) time.Duration {
	return max(minMetricsEvery, 20*took)
}

// refreshMetrics sets the gauges. Both counts go through partial indexes
// of the live and the failed leases, so they cost the same however many
// revoked leases the store keeps.
func (m *Manager) refreshMetrics(ctx context.Context) {
	live := []core.LeaseState{core.LeasePending, core.LeaseActive}
	for t := range m.o.Issuers {
		n, err := m.o.Store.CountLeases(ctx, store.LeaseFilter{Target: t, States: live})
		if err != nil {
			return
		}
		m.met.active.WithLabelValues(t).Set(float64(n))
	}
	if n, err := m.o.Store.CountLeases(ctx, store.LeaseFilter{States: []core.LeaseState{core.LeaseFailed}}); err == nil {
		m.met.failed.Set(float64(n))
	}
}
