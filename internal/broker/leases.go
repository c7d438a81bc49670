package broker

import (
	"context"
	"errors"
	"time"

	"github.com/stint-dev/stint/internal/audit"
	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/policy"
	"github.com/stint-dev/stint/internal/store"
)

// LeaseAction is a renew or revoke of one lease.
type LeaseAction struct {
	Token   string
	LeaseID string
	TTL     time.Duration // renew only; 0: the role's default
	Force   bool          // revoke only, admin: mark revoked without the target (abandoned)
	Meta    Meta
}

// owns reports whether the lease was issued to the caller.
func owns(l core.Lease, id core.Principal) bool {
	return l.Provider == id.Provider && l.Subject == id.Subject
}

// leaseFor authenticates the caller and loads a lease it may act on.
// A lease of another principal looks the same as a missing one, unless
// the caller is an admin.
func (b *Broker) leaseFor(ctx context.Context, a LeaseAction) (core.Lease, core.Principal, *core.Principal, bool, error) {
	if b.o.Leases == nil {
		return core.Lease{}, core.Principal{}, nil, false, core.E(core.KindUnavailable, "", "leases are not configured", nil)
	}
	id, human, err := b.callerOrLocal(ctx, a.Meta, a.Token)
	if err != nil {
		return core.Lease{}, id, human, false, err
	}
	l, err := b.o.Leases.Get(ctx, a.LeaseID)
	if errors.Is(err, core.ErrNotFound) {
		return core.Lease{}, id, human, false, core.E(core.KindNotFound, "", "no such lease", nil)
	}
	if err != nil {
		return core.Lease{}, id, human, false, err
	}
	admin := b.isAdmin(a.Meta, id, human)
	if !admin && !owns(l, id) {
		return core.Lease{}, id, human, false, core.E(core.KindNotFound, "", "no such lease", errNotOwner)
	}
	return l, id, human, admin, nil
}

// callerOrLocal authenticates, except over the admin socket where no
// token is needed.
func (b *Broker) callerOrLocal(ctx context.Context, m Meta, token string) (core.Principal, *core.Principal, error) {
	if m.LocalAdmin && token == "" {
		return core.Principal{Provider: "local", Kind: "unix-socket", Subject: "local-admin"}, nil, nil
	}
	id, human, _, err := b.caller(ctx, m, token, "")
	return id, human, err
}

// GetLease returns one lease of the caller (any lease for an admin).
func (b *Broker) GetLease(ctx context.Context, a LeaseAction) (core.Lease, error) {
	l, _, _, _, err := b.leaseFor(ctx, a)
	return l, err
}

// RenewLease extends a lease within its max TTL.
func (b *Broker) RenewLease(ctx context.Context, a LeaseAction) (core.Lease, error) {
	_, id, _, _, err := b.leaseFor(ctx, a)
	if err != nil {
		return core.Lease{}, err
	}
	return b.o.Leases.Renew(ctx, a.LeaseID, a.TTL, id)
}

// RevokeLease revokes a lease now; revoking a revoked lease succeeds.
func (b *Broker) RevokeLease(ctx context.Context, a LeaseAction) (core.Lease, error) {
	l, _, _, admin, err := b.leaseFor(ctx, a)
	if err != nil {
		return core.Lease{}, err
	}
	if a.Force {
		if !admin {
			return core.Lease{}, core.Forbidden("force revocation needs stint/admin", nil)
		}
		return b.o.Leases.ForceRevoke(ctx, a.LeaseID)
	}
	return b.o.Leases.Revoke(ctx, l)
}

// ListLeases lists the caller's leases; an admin may list everyone's with
// the filter as given.
func (b *Broker) ListLeases(ctx context.Context, m Meta, token string, f store.LeaseFilter) ([]core.Lease, error) {
	if b.o.Leases == nil {
		return nil, core.E(core.KindUnavailable, "", "leases are not configured", nil)
	}
	id, human, err := b.callerOrLocal(ctx, m, token)
	if err != nil {
		return nil, err
	}
	if !b.isAdmin(m, id, human) {
		f.Provider, f.Subject = id.Provider, id.Subject
	}
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 1000
	}
	return b.o.Leases.List(ctx, f)
}

// RevokeMatching is the admin kill switch: it revokes every active lease
// matching the selector in the background and returns the count at once.
func (b *Broker) RevokeMatching(ctx context.Context, m Meta, token string, f store.LeaseFilter) (int, error) {
	if b.o.Leases == nil {
		return 0, core.E(core.KindUnavailable, "", "leases are not configured", nil)
	}
	id, human, err := b.callerOrLocal(ctx, m, token)
	if err != nil {
		return 0, err
	}
	if !b.isAdmin(m, id, human) {
		_ = b.record(ctx, audit.Event{Type: audit.AdminPrefix + "revoke_matching", RequestID: m.RequestID, Source: m.Source,
			Outcome: audit.OutcomeDenied, Principal: b.actor(&id), Human: b.actor(human), Reason: "caller lacks stint/admin"})
		return 0, core.Forbidden("the kill switch needs stint/admin", nil)
	}
	if f.Subject == "" && f.Human == "" && f.Target == "" && f.Role == "" && f.Rule == "" && f.Provider == "" {
		return 0, core.Invalid("name at least one selector: subject, human, target, role, rule or provider")
	}
	return b.o.Leases.RevokeMatching(ctx, f)
}

// EvaluateRequest is an admin's dry run of policy.
type EvaluateRequest struct {
	Token    string
	Identity core.Principal
	Human    *core.Principal
	Grant    string
	Request  map[string]any
	Meta     Meta
}

// EvaluatePolicy tells an admin whether a principal would get a grant, and why.
func (b *Broker) EvaluatePolicy(ctx context.Context, r EvaluateRequest) (policy.Explanation, error) {
	id, human, err := b.callerOrLocal(ctx, r.Meta, r.Token)
	if err != nil {
		return policy.Explanation{}, err
	}
	ev := audit.Event{Type: audit.AdminPrefix + "policy_evaluate", RequestID: r.Meta.RequestID, Source: r.Meta.Source,
		Principal: b.actor(&id), Human: b.actor(human), Outcome: audit.OutcomeSuccess}
	if !b.isAdmin(r.Meta, id, human) {
		ev.Outcome, ev.Reason = audit.OutcomeDenied, "caller lacks stint/admin"
		_ = b.record(ctx, ev)
		return policy.Explanation{}, core.Forbidden("policy evaluation needs stint/admin", nil)
	}
	g, err := core.ParseGrant(r.Grant)
	if err != nil {
		return policy.Explanation{}, core.Invalid("%v", err)
	}
	if r.Identity.Provider == "" || r.Identity.Subject == "" {
		return policy.Explanation{}, core.Invalid("identity needs at least provider and subject")
	}
	if r.Request == nil {
		r.Request = map[string]any{}
	}
	r.Request["target"], r.Request["role"] = g.Target, g.Role
	x := b.o.Policy.Explain(policy.Input{Identity: &r.Identity, Human: r.Human, Grant: g, Request: r.Request, Now: b.o.Now()})
	ev.Target, ev.Role, ev.Rule, ev.Reason = g.Target, g.Role, x.Decision.Rule, x.Decision.Reason
	if err := b.record(ctx, ev); err != nil {
		return policy.Explanation{}, err
	}
	return x, nil
}
