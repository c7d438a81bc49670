package lease

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/stint-dev/stint/internal/audit"
	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/issuer"
	"github.com/stint-dev/stint/internal/store"
)

// defaultTTL is used when neither the request nor the role gives a TTL.
const defaultTTL = 15 * time.Minute

// Manager runs the life of every lease. Safe for concurrent use; every
// replica has one, and Run makes exactly one of them the reaper.
type Manager struct {
	o   Options
	met *metrics

	limits *limitLocks // make count-then-create exact within one replica

	mu       sync.Mutex
	inflight map[string]bool   // claimed lease ids queued or running here
	queues   map[string]*queue // per target, while Run runs
	running  bool
	bg       sync.WaitGroup // kill-switch markers
}

// New checks the options and fills their defaults.
func New(o Options) (*Manager, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	met, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, fmt.Errorf("lease: metrics: %w", err)
	}
	return &Manager{o: o, met: met, inflight: map[string]bool{}, limits: newLimitLocks()}, nil
}

// IssueRequest asks for one credential. The broker has authenticated the
// principal and authorized the grant; TTL 0 means the role's default.
type IssueRequest struct {
	Target, Role, Rule, RequestID, Source string
	Principal                             core.Principal
	Human                                 *core.Principal
	TTL, MaxTTL                           time.Duration
	Params                                map[string]string
	// Preceding are the caller's events of this request (authentication,
	// policy), recorded with the outcome in one durable write.
	Preceding []audit.Event
}

// Issue stores the lease as pending, asks the target's issuer for the
// credential, then activates the lease. When the issuer fails the lease is
// revoked at once (the issuer may have half-created the credential) and the
// error returned as a *core.Error.
func (m *Manager) Issue(ctx context.Context, r IssueRequest) (core.Lease, core.Credential, error) {
	ev := audit.Event{Type: audit.CredentialIssue, RequestID: r.RequestID, Source: r.Source,
		Principal: actorOf(&r.Principal), Human: actorOf(r.Human), Target: r.Target, Role: r.Role, Rule: r.Rule}
	fail := func(l core.Lease, outcome string, err *core.Error) (core.Lease, core.Credential, error) {
		ev.LeaseID, ev.Outcome, ev.Error = l.ID, outcome, err.Error()
		m.record(ctx, append(r.Preceding, ev)...)
		return core.Lease{}, nil, err
	}
	is, ok := m.o.Issuers[r.Target]
	if !ok {
		return fail(core.Lease{}, audit.OutcomeFailure, core.Invalid("unknown target %q", r.Target))
	}
	if !slices.Contains(is.Roles(), r.Role) {
		return fail(core.Lease{}, audit.OutcomeFailure, core.Invalid("target %s has no role %q", r.Target, r.Role))
	}
	ttl := r.TTL
	if ttl <= 0 {
		if d, ok := is.(DefaultTTLer); ok {
			ttl = d.DefaultTTL(r.Role)
		}
	}
	if ttl <= 0 {
		ttl = defaultTTL
	}
	if r.MaxTTL > 0 && ttl > r.MaxTTL {
		if r.TTL > 0 {
			return fail(core.Lease{}, audit.OutcomeFailure, core.Invalid("ttl %s exceeds the rule's max_ttl %s", r.TTL, r.MaxTTL))
		}
		ttl = r.MaxTTL // a role default above the rule's cap is capped, not refused
	}
	maxTTL := max(r.MaxTTL, ttl)
	now := m.o.Now()
	l := core.Lease{
		ID: newLeaseID(), Target: r.Target, TargetType: m.o.TargetTypes[r.Target], Role: r.Role,
		Provider: r.Principal.Provider, Subject: r.Principal.Subject, Rule: r.Rule,
		IssuedAt: now, ExpiresAt: now.Add(ttl), MaxExpires: now.Add(maxTTL),
		State: core.LeasePending,
		// A pending lease becomes due (for revocation) only once its
		// issuance can no longer be running anywhere: then it is a crash's.
		NextAttempt: now.Add(2 * m.o.IssueTimeout), UpdatedAt: now,
	}
	if r.Human != nil {
		l.Human = r.Human.Subject
	}
	ev.Details = map[string]any{"ttl": ttl.String()}
	limited := m.o.Limits.PerPrincipal > 0 || m.o.Limits.PerRole > 0
	if _, remote := is.(issuer.Remote); remote && !limited {
		return m.issueRemote(ctx, is, r, l, ev, fail)
	}
	if _, local := is.(issuer.NoCleanup); local {
		return m.issueLocal(ctx, is, r, l, ev, fail)
	}
	if err := m.create(ctx, l); err != nil {
		outcome, ce := storeOutcome(err)
		return fail(l, outcome, ce)
	}
	if h := m.o.Hooks; h != nil && h.AfterPending != nil {
		if err := h.AfterPending(l.ID); err != nil {
			return core.Lease{}, nil, err
		}
	}
	res, ierr := m.callIssuer(ctx, is, r, l)
	if ierr != nil {
		m.revokeNow(ctx, l, "issue failed")
		return fail(l, audit.OutcomeFailure, ierr)
	}
	if h := m.o.Hooks; h != nil && h.AfterIssue != nil {
		if err := h.AfterIssue(l.ID); err != nil {
			return core.Lease{}, nil, err
		}
	}
	act, serr := m.settle(l, is, res)
	if serr != nil {
		m.revokeNow(ctx, l, "issue failed")
		return fail(l, audit.OutcomeFailure, serr)
	}
	act.UpdatedAt = m.o.Now()
	ev.LeaseID, ev.Outcome = l.ID, audit.OutcomeSuccess
	ev.Details["expires_at"] = act.ExpiresAt.UTC().Format(time.RFC3339)
	describe(&ev, res)
	// The credential is returned only when the activation and the record
	// both hold; the pending lease already guarantees that the credential
	// is removed whatever happens from here. That is also why the
	// activation may skip the flush (store.Lazy): if a crash loses it, the
	// lease is pending again and start-up recovery revokes it.
	var activated bool
	actErr, auditErr := m.withRecord(ctx, func() (err error) {
		activated, err = m.o.Store.UpdateLease(store.Lazy(ctx), act, core.LeasePending)
		return err
	}, append(r.Preceding, ev)...)
	if actErr != nil || !activated {
		// Revoked meanwhile (kill switch) or the store failed: the
		// credential must not outlive this call.
		m.revokeNow(ctx, act, "issue failed")
		if actErr == nil {
			actErr = errors.New("lease was revoked while being issued")
		}
		ce := core.E(core.KindUnavailable, "", "lease could not be activated", actErr)
		if auditErr == nil {
			// The record already says issued: say that it was not.
			ev.Outcome, ev.Error = audit.OutcomeFailure, ce.Error()
			m.record(ctx, ev)
			return core.Lease{}, nil, ce
		}
		return fail(l, audit.OutcomeFailure, ce)
	}
	if auditErr != nil {
		return m.auditFailed(ctx, act, auditErr)
	}
	act.IssuerData = nil
	return act, res.Credential, nil
}

// issueLocal issues from an issuer whose credentials need no cleanup
// (issuer.NoCleanup): it issues first and records the lease once, already
// active. A credential whose lease could not be recorded is never
// returned, so it needs no revocation, and the pending phase would only
// cost a durable write.
func (m *Manager) issueLocal(ctx context.Context, is issuer.Issuer, r IssueRequest, l core.Lease, ev audit.Event,
	fail func(core.Lease, string, *core.Error) (core.Lease, core.Credential, error)) (core.Lease, core.Credential, error) {
	res, ierr := m.callIssuer(ctx, is, r, l)
	if ierr != nil {
		return fail(l, audit.OutcomeFailure, ierr)
	}
	l, serr := m.settle(l, is, res)
	if serr != nil {
		return fail(l, audit.OutcomeFailure, serr)
	}
	storeFailed := func(err error) (core.Lease, core.Credential, error) {
		outcome, ce := storeOutcome(err)
		return fail(l, outcome, ce)
	}
	limited := m.o.Limits.PerPrincipal > 0 || m.o.Limits.PerRole > 0
	if limited {
		// A limit is checked before anything is recorded as issued.
		if err := m.create(ctx, l); err != nil {
			return storeFailed(err)
		}
	}
	ev.LeaseID, ev.Outcome = l.ID, audit.OutcomeSuccess
	ev.Details["expires_at"] = l.ExpiresAt.UTC().Format(time.RFC3339)
	describe(&ev, res)
	// The credential is returned only when the lease and the record both
	// hold (with a limit, the lease is stored already).
	createErr, auditErr := m.withRecord(ctx, func() error {
		if limited {
			return nil
		}
		return m.create(ctx, l)
	}, append(r.Preceding, ev)...)
	switch {
	case createErr != nil && auditErr == nil:
		// The record already says issued: say at once that it was not.
		ev.Outcome, ev.Error, ev.Details = audit.OutcomeFailure, "lease store unavailable: the credential was not returned", nil
		m.record(ctx, ev)
		return core.Lease{}, nil, core.E(core.KindUnavailable, "", "lease store unavailable", createErr)
	case createErr != nil:
		return storeFailed(createErr)
	case auditErr != nil:
		return m.auditFailed(ctx, l, auditErr)
	}
	l.IssuerData = nil
	return l, res.Credential, nil
}

// issueRemote issues from an issuer.Remote (no cleanup needed; Issue is a
// network round trip): the lease is written, already active, while the
// issuer works, so that its commit overlaps the round trip. A lease whose
// credential then fails to come is marked revoked at once; a credential
// whose lease failed is never returned. The credential is returned only
// once the lease and the audit record are durable. What only the result
// tells (the sealed issuer data, an earlier expiry) follows in a second,
// unawaited update: until it commits the lease holds the requested
// expiry, which is never earlier than the credential's.
func (m *Manager) issueRemote(ctx context.Context, is issuer.Issuer, r IssueRequest, l core.Lease, ev audit.Event,
	fail func(core.Lease, string, *core.Error) (core.Lease, core.Credential, error)) (core.Lease, core.Credential, error) {
	l.State, l.NextAttempt = core.LeaseActive, time.Time{}
	// The credential cannot be recalled and expires on its own, so the
	// durable record of it is the audit record; the lease's writes may
	// skip the flush (store.Lazy), and a crash that loses one loses only
	// the bookkeeping of a credential that needs no cleanup.
	lazy := store.Lazy(ctx)
	var createErr error
	stored := make(chan struct{})
	go func() {
		createErr = m.create(lazy, l)
		close(stored)
	}()
	res, ierr := m.callIssuer(ctx, is, r, l)
	<-stored
	if ierr != nil {
		if createErr == nil {
			m.voidLease(lazy, l, "issue failed")
		}
		return fail(l, audit.OutcomeFailure, ierr)
	}
	if createErr != nil {
		outcome, ce := storeOutcome(createErr)
		return fail(l, outcome, ce)
	}
	final, serr := m.settle(l, is, res)
	if serr != nil {
		m.voidLease(lazy, l, "cannot seal issuer data")
		return fail(l, audit.OutcomeFailure, serr)
	}
	ev.LeaseID, ev.Outcome = l.ID, audit.OutcomeSuccess
	ev.Details["expires_at"] = final.ExpiresAt.UTC().Format(time.RFC3339)
	describe(&ev, res)
	if err := m.recordAll(ctx, append(r.Preceding, ev)...); err != nil {
		return m.auditFailed(ctx, l, err)
	}
	// Expiries from remote services have whole seconds: one a fraction of
	// a second before the requested expiry needs no second write.
	if len(final.IssuerData) > 0 || l.ExpiresAt.Sub(final.ExpiresAt) >= time.Second || final.Renewable != l.Renewable {
		upd := final
		upd.UpdatedAt = m.o.Now()
		m.bg.Add(1)
		go func() {
			defer m.bg.Done()
			// A lease revoked meanwhile keeps its state: the compare-and-set fails.
			if _, err := m.o.Store.UpdateLease(context.WithoutCancel(lazy), upd, core.LeaseActive); err != nil {
				m.o.Logger.Warn("lease: record issuer data", "lease", upd.ID, "err", err)
			}
		}()
	}
	final.IssuerData = nil
	return final, res.Credential, nil
}

// auditFailed fails an issue closed when its audit record could not be
// written: a credential nobody can account for must not exist, so it is
// not returned and its lease is revoked now.
func (m *Manager) auditFailed(ctx context.Context, l core.Lease, err error) (core.Lease, core.Credential, error) {
	m.revokeNow(ctx, l, "audit unavailable")
	return core.Lease{}, nil, core.E(core.KindUnavailable, "", "audit log unavailable", err)
}

// withRecord runs write (a lease store write) and records events at the
// same time, and returns when both are done. They go to different durable
// writers, so the caller waits for the slower commit, not for their sum.
func (m *Manager) withRecord(ctx context.Context, write func() error, events ...audit.Event) (writeErr, recordErr error) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		writeErr = write()
	}()
	recordErr = m.recordAll(ctx, events...)
	<-done
	return writeErr, recordErr
}

// callIssuer asks the target's issuer for the credential, within
// IssueTimeout; a failure comes back as a *core.Error.
func (m *Manager) callIssuer(ctx context.Context, is issuer.Issuer, r IssueRequest, l core.Lease) (issuer.Result, *core.Error) {
	ictx, cancel := context.WithTimeout(ctx, m.o.IssueTimeout)
	defer cancel()
	res, err := is.Issue(ictx, issuer.Request{
		LeaseID: l.ID, Role: r.Role, Principal: r.Principal, Human: r.Human, Rule: r.Rule,
		IssuedAt: l.IssuedAt, ExpiresAt: l.ExpiresAt, Params: r.Params,
	})
	if err != nil {
		var ce *core.Error
		if !errors.As(err, &ce) {
			ce = core.E(core.KindUnavailable, "", fmt.Sprintf("target %s is unavailable", r.Target), err)
		}
		return issuer.Result{}, ce
	}
	return res, nil
}

// settle returns l active with what the issuer's result says: its sealed
// data, an earlier expiry, whether it can be renewed.
func (m *Manager) settle(l core.Lease, is issuer.Issuer, res issuer.Result) (core.Lease, *core.Error) {
	sealed, err := m.seal(l.ID, res.Internal)
	if err != nil {
		return l, core.E(core.KindInternal, "", "cannot seal issuer data", err)
	}
	l.State, l.IssuerData, l.NextAttempt = core.LeaseActive, sealed, time.Time{}
	if !res.ExpiresAt.IsZero() && res.ExpiresAt.Before(l.ExpiresAt) {
		l.ExpiresAt = res.ExpiresAt
	}
	_, renewer := is.(issuer.Renewer)
	l.Renewable = res.Renewable && renewer
	return l, nil
}

// storeOutcome turns a failed lease write into the audited outcome and
// the caller's error: a hit limit is a denial, anything else the store
// being unavailable.
func storeOutcome(err error) (string, *core.Error) {
	var ce *core.Error
	if errors.As(err, &ce) && ce.Kind == core.KindRateLimited {
		return audit.OutcomeDenied, ce
	}
	return audit.OutcomeFailure, core.E(core.KindUnavailable, "", "lease store unavailable", err)
}

// describe adds an issuer's non-secret facts about the credential to its
// audit event, never replacing what the manager put there.
func describe(ev *audit.Event, res issuer.Result) {
	for k, v := range res.Audit {
		if _, taken := ev.Details[k]; !taken {
			ev.Details[k] = v
		}
	}
}

// voidLease marks a lease whose credential never came as revoked; there is
// nothing at the target to remove.
func (m *Manager) voidLease(ctx context.Context, l core.Lease, reason string) {
	v := l
	v.State, v.LastError, v.UpdatedAt = core.LeaseRevoked, reason, m.o.Now()
	if _, err := m.o.Store.UpdateLease(context.WithoutCancel(ctx), v, core.LeaseActive); err != nil {
		m.o.Logger.Error("lease: mark a lease without credential revoked", "lease", l.ID, "err", err)
	}
}

// create checks the limits and stores the pending lease.
func (m *Manager) create(ctx context.Context, l core.Lease) error {
	lim := m.o.Limits
	if lim.PerPrincipal > 0 || lim.PerRole > 0 {
		defer m.limits.lock(l, lim.PerPrincipal > 0, lim.PerRole > 0)()
		live := []core.LeaseState{core.LeasePending, core.LeaseActive}
		if lim.PerPrincipal > 0 {
			n, err := m.o.Store.CountLeases(ctx, store.LeaseFilter{Provider: l.Provider, Subject: l.Subject, States: live})
			if err != nil {
				return err
			}
			if n >= lim.PerPrincipal {
				return core.E(core.KindRateLimited, "", fmt.Sprintf("principal %s/%s already holds %d active leases (limit %d)", l.Provider, l.Subject, n, lim.PerPrincipal), nil)
			}
		}
		if lim.PerRole > 0 {
			n, err := m.o.Store.CountLeases(ctx, store.LeaseFilter{Target: l.Target, Role: l.Role, States: live})
			if err != nil {
				return err
			}
			if n >= lim.PerRole {
				return core.E(core.KindRateLimited, "", fmt.Sprintf("role %s/%s already has %d active leases (limit %d)", l.Target, l.Role, n, lim.PerRole), nil)
			}
		}
	}
	return m.o.Store.CreateLease(ctx, l)
}

// Renew extends an active lease by ttl from now (0: its original TTL), never
// past MaxExpires, and tells the target when its issuer is a Renewer.
func (m *Manager) Renew(ctx context.Context, id string, ttl time.Duration, by core.Principal) (core.Lease, error) {
	l, err := m.Get(ctx, id)
	if err != nil {
		return core.Lease{}, err
	}
	ev := audit.Event{Type: audit.CredentialRenew, Principal: actorOf(&by), Target: l.Target, Role: l.Role, LeaseID: l.ID, Rule: l.Rule}
	fail := func(e *core.Error) (core.Lease, error) {
		ev.Outcome, ev.Error = audit.OutcomeFailure, e.Error()
		m.record(ctx, ev)
		return core.Lease{}, e
	}
	now := m.o.Now()
	switch {
	case l.State != core.LeaseActive:
		return fail(core.E(core.KindConflict, "", fmt.Sprintf("lease %s is %s, not active", l.ID, l.State), nil))
	case !now.Before(l.ExpiresAt):
		return fail(core.E(core.KindConflict, "", fmt.Sprintf("lease %s has expired", l.ID), nil))
	case !l.Renewable:
		return fail(core.Invalid("lease %s is not renewable", l.ID))
	}
	if ttl <= 0 {
		ttl = l.ExpiresAt.Sub(l.IssuedAt)
	}
	exp := now.Add(ttl)
	if exp.After(l.MaxExpires) {
		exp = l.MaxExpires
	}
	if !exp.After(l.ExpiresAt) {
		return fail(core.E(core.KindConflict, "", fmt.Sprintf("lease %s is already at its max_ttl (%s)", l.ID, l.MaxExpires.UTC().Format(time.RFC3339)), nil))
	}
	if rn, ok := m.o.Issuers[l.Target].(issuer.Renewer); ok {
		internal, err := m.open(l)
		if err != nil {
			return fail(core.E(core.KindInternal, "", "cannot open issuer data", err))
		}
		rctx, cancel := context.WithTimeout(ctx, m.o.RevokeTimeout)
		err = rn.Renew(rctx, issuer.RenewRequest{LeaseID: l.ID, Role: l.Role, Internal: internal, ExpiresAt: exp})
		cancel()
		if err != nil {
			return fail(core.E(core.KindUnavailable, "", fmt.Sprintf("target %s is unavailable", l.Target), err))
		}
	}
	prev := l.ExpiresAt
	l.ExpiresAt, l.UpdatedAt = exp, m.o.Now()
	if ok, err := m.o.Store.UpdateLease(ctx, l, core.LeaseActive); err != nil {
		return fail(core.E(core.KindUnavailable, "", "lease store unavailable", err))
	} else if !ok {
		return fail(core.E(core.KindConflict, "", fmt.Sprintf("lease %s is being revoked", l.ID), nil))
	}
	ev.Outcome = audit.OutcomeSuccess
	ev.Details = map[string]any{"previous_expires_at": prev.UTC().Format(time.RFC3339), "expires_at": exp.UTC().Format(time.RFC3339)}
	m.record(ctx, ev)
	l.IssuerData = nil
	return l, nil
}

// Revoke removes the credential now. It is idempotent: a revoked lease is
// returned as it is, and one already being revoked is left to that
// revocation. When the target fails, the lease is returned in state
// revoking with its error, and the reaper retries it.
func (m *Manager) Revoke(ctx context.Context, id string) (core.Lease, error) {
	l, err := m.Get(ctx, id)
	if err != nil {
		return core.Lease{}, err
	}
	return m.RevokeLease(ctx, l)
}

// RevokeLease is Revoke for a lease the caller has just read with Get (the
// API checks its owner first), saving a second read. A stale l is safe: the
// claim is a compare-and-set from l.State, and when it loses, the lease is
// returned as stored.
func (m *Manager) RevokeLease(ctx context.Context, l core.Lease) (core.Lease, error) {
	switch l.State {
	case core.LeaseRevoked, core.LeaseRevoking:
		l.IssuerData = nil
		return l, nil
	}
	out, err := m.revokeNow(ctx, l, "requested")
	out.IssuerData = nil
	return out, err
}

// ForceRevoke marks a lease revoked without asking the target: for a lease
// whose target is gone for good. Audited as abandoned.
func (m *Manager) ForceRevoke(ctx context.Context, id string) (core.Lease, error) {
	for range 5 {
		l, err := m.Get(ctx, id)
		if err != nil {
			return core.Lease{}, err
		}
		if l.State == core.LeaseRevoked {
			return l, nil
		}
		prev := l.State
		l.State, l.NextAttempt, l.UpdatedAt = core.LeaseRevoked, time.Time{}, m.o.Now()
		l.LastError = "force-revoked by an admin; the credential may still exist in the target"
		ok, err := m.o.Store.UpdateLease(ctx, l, prev)
		if err != nil {
			return core.Lease{}, core.E(core.KindUnavailable, "", "lease store unavailable", err)
		}
		if ok {
			m.met.revocations.WithLabelValues(l.Target, "abandoned").Inc()
			m.record(ctx, audit.Event{Type: audit.AdminPrefix + "force_revoke", Target: l.Target, Role: l.Role, LeaseID: l.ID,
				Rule: l.Rule, Principal: &audit.Actor{Provider: l.Provider, Subject: l.Subject}, Reason: "abandoned",
				Outcome: audit.OutcomeSuccess, Details: map[string]any{"previous_state": string(prev), "attempts": l.Attempts}})
			l.IssuerData = nil
			return l, nil
		}
	}
	return core.Lease{}, core.E(core.KindConflict, "", "lease keeps changing; try again", nil)
}

// revocable are the states a kill switch acts on.
var revocable = []core.LeaseState{core.LeasePending, core.LeaseActive, core.LeaseFailed}

// RevokeMatching is the kill switch: it counts the matching leases that are
// not yet revoked, returns the count at once, and marks them for
// revocation in the background; the reaper then revokes them at full
// speed, per target. Leases already being revoked are counted and left to
// that revocation.
func (m *Manager) RevokeMatching(ctx context.Context, f store.LeaseFilter) (int, error) {
	states := append(slices.Clone(revocable), core.LeaseRevoking)
	if len(f.States) > 0 {
		states = slices.DeleteFunc(slices.Clone(f.States), func(s core.LeaseState) bool { return !slices.Contains(states, s) })
		if len(states) == 0 {
			return 0, nil
		}
	}
	f.States, f.Limit, f.AfterID = states, 0, ""
	n, err := m.o.Store.CountLeases(ctx, f)
	if err != nil {
		return 0, core.E(core.KindUnavailable, "", "lease store unavailable", err)
	}
	// Leases being revoked are counted and left to that revocation, whose
	// claim may not be flushed yet (lazyClaim): flush it, so that a crash
	// cannot turn a lease the kill switch counted back into an active one.
	if n > 0 {
		if err := m.o.Store.Flush(ctx); err != nil {
			return 0, core.E(core.KindUnavailable, "", "lease store unavailable", err)
		}
	}
	m.record(ctx, audit.Event{Type: audit.AdminPrefix + "revoke_matching", Target: f.Target, Role: f.Role, Rule: f.Rule,
		Outcome: audit.OutcomeSuccess, Details: map[string]any{"count": n, "subject": f.Subject, "provider": f.Provider, "human": f.Human}})
	f.States = slices.DeleteFunc(states, func(s core.LeaseState) bool { return s == core.LeaseRevoking })
	if len(f.States) == 0 || n == 0 {
		return n, nil
	}
	m.bg.Add(1)
	go func() {
		defer m.bg.Done()
		m.markAll(context.WithoutCancel(ctx), f)
	}()
	return n, nil
}

// markAll sets every matching lease to revoking, due now. Each page drops
// out of the next query (it is no longer in a revocable state), so paging
// needs no cursor.
func (m *Manager) markAll(ctx context.Context, f store.LeaseFilter) {
	f.Limit = 500
	for {
		page, err := m.o.Store.ListLeases(ctx, f)
		if err != nil {
			m.o.Logger.Error("lease: kill switch: list", "err", err)
			return
		}
		progress := 0
		for _, l := range page {
			prev := l.State
			now := m.o.Now()
			l.State, l.NextAttempt, l.UpdatedAt = core.LeaseRevoking, now, now
			ok, err := m.o.Store.UpdateLease(ctx, l, prev)
			if err != nil {
				m.o.Logger.Error("lease: kill switch: mark", "lease", l.ID, "err", err)
				continue
			}
			if ok {
				progress++
			}
		}
		if len(page) < f.Limit || progress == 0 {
			// A lease claimed (lazily) by a revocation between the count
			// and its mark was skipped here: flush that claim too.
			if err := m.o.Store.Flush(ctx); err != nil {
				m.o.Logger.Error("lease: kill switch: flush", "err", err)
			}
			return
		}
	}
}

// Get returns a lease without its issuer data.
func (m *Manager) Get(ctx context.Context, id string) (core.Lease, error) {
	l, err := m.o.Store.GetLease(ctx, id)
	if errors.Is(err, core.ErrNotFound) {
		return core.Lease{}, core.E(core.KindNotFound, "", fmt.Sprintf("lease %s not found", id), err)
	}
	if err != nil {
		return core.Lease{}, core.E(core.KindUnavailable, "", "lease store unavailable", err)
	}
	return l, nil
}

// List returns leases matching f, without their issuer data.
func (m *Manager) List(ctx context.Context, f store.LeaseFilter) ([]core.Lease, error) {
	ls, err := m.o.Store.ListLeases(ctx, f)
	if err != nil {
		return nil, core.E(core.KindUnavailable, "", "lease store unavailable", err)
	}
	for i := range ls {
		ls[i].IssuerData = nil
	}
	return ls, nil
}

func (m *Manager) seal(id string, b []byte) ([]byte, error) {
	if m.o.Sealer == nil || len(b) == 0 {
		return b, nil
	}
	return m.o.Sealer.Seal(b, []byte(id))
}

func (m *Manager) open(l core.Lease) ([]byte, error) {
	if m.o.Sealer == nil || len(l.IssuerData) == 0 {
		return l.IssuerData, nil
	}
	return m.o.Sealer.Open(l.IssuerData, []byte(l.ID))
}

func (m *Manager) record(ctx context.Context, events ...audit.Event) {
	if err := m.recordAll(context.WithoutCancel(ctx), events...); err != nil {
		m.o.Logger.Error("lease: audit", "types", len(events), "err", err)
	}
}

// batchRecorder records several events with one durable write (audit.Log).
type batchRecorder interface {
	RecordAll(ctx context.Context, events ...audit.Event) error
}

// recordAll records events in order, in one write when the recorder can.
func (m *Manager) recordAll(ctx context.Context, events ...audit.Event) error {
	if b, ok := m.o.Audit.(batchRecorder); ok {
		return b.RecordAll(ctx, events...)
	}
	for _, e := range events {
		if err := m.o.Audit.Record(ctx, e); err != nil {
			return err
		}
	}
	return nil
}

func actorOf(p *core.Principal) *audit.Actor {
	if p == nil || (p.Provider == "" && p.Subject == "") {
		return nil
	}
	return &audit.Actor{Provider: p.Provider, Kind: p.Kind, Subject: p.Subject, Attributes: p.Attributes, TokenID: p.TokenID}
}
