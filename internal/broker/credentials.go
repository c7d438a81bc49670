package broker

import (
	"context"
	"errors"
	"time"

	"github.com/stint-dev/stint/internal/audit"
	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/store"
)

// Leases issues credentials under leases and manages them (lease.Manager,
// adapted in app).
type Leases interface {
	Issue(ctx context.Context, r LeaseRequest) (core.Lease, core.Credential, error)
	// Renew extends a lease; by is the caller, named in the audit event.
	Renew(ctx context.Context, id string, ttl time.Duration, by core.Principal) (core.Lease, error)
	// Revoke revokes l, as just read with Get (saving a second read).
	Revoke(ctx context.Context, l core.Lease) (core.Lease, error)
	ForceRevoke(ctx context.Context, id string) (core.Lease, error)
	RevokeMatching(ctx context.Context, f store.LeaseFilter) (int, error)
	Get(ctx context.Context, id string) (core.Lease, error)
	List(ctx context.Context, f store.LeaseFilter) ([]core.Lease, error)
}

// LeaseRequest asks the lease manager for one credential.
type LeaseRequest struct {
	Target, Role, Rule string
	Principal          core.Principal
	Human              *core.Principal
	TTL, MaxTTL        time.Duration
	Params             map[string]string
	Meta               Meta
	// Preceding are this request's authentication and policy events; the
	// lease manager records them with the issuance outcome in one write.
	Preceding []audit.Event
}

// CredentialRequest is POST /v1/credentials.
type CredentialRequest struct {
	// Token is the caller's platform or stint token.
	Token string
	// OnBehalfOf is the human's own token, when the workload acts for one.
	OnBehalfOf string
	Target     string
	Role       string
	TTL        time.Duration
	Params     map[string]string
	Meta       Meta
}

// CredentialResult is the response.
type CredentialResult struct {
	LeaseID    string          `json:"lease_id"`
	ExpiresAt  time.Time       `json:"expires_at"`
	Renewable  bool            `json:"renewable"`
	Credential core.Credential `json:"credential"`
}

// IssueCredential authenticates, authorizes and issues one credential
// under a lease.
func (b *Broker) IssueCredential(ctx context.Context, r CredentialRequest) (CredentialResult, error) {
	start := b.o.Now()
	res, err := b.issueCredential(ctx, r)
	b.o.Metrics.observe("credentials", start, b.o.Now(), err)
	return res, err
}

func (b *Broker) issueCredential(ctx context.Context, r CredentialRequest) (CredentialResult, error) {
	if b.o.Leases == nil {
		return CredentialResult{}, core.E(core.KindUnavailable, "", "credential issuance is not configured", nil)
	}
	id, human, events, err := b.caller(ctx, r.Meta, r.Token, r.OnBehalfOf)
	if err != nil {
		return CredentialResult{}, err
	}
	g := core.Grant{Target: r.Target, Role: r.Role}
	fail := func(err error) (CredentialResult, error) {
		events = append(events, audit.Event{
			Type: audit.CredentialIssue, RequestID: r.Meta.RequestID, Source: r.Meta.Source, Outcome: audit.OutcomeFailure,
			Principal: b.actor(&id), Human: b.actor(human), Target: g.Target, Role: g.Role, Error: errText(err),
		})
		_ = b.record(ctx, events...)
		return CredentialResult{}, err
	}
	t, ok := b.o.Targets[r.Target]
	if !ok {
		return fail(core.E(core.KindInvalid, "invalid_target", "unknown target "+quote(r.Target), nil))
	}
	if t.Type == "http" {
		return fail(core.E(core.KindInvalid, "invalid_target", "target "+t.Name+" is an http upstream: call it through /proxy/"+t.Name+"/ instead", nil))
	}
	role, ok := t.Roles[r.Role]
	if !ok {
		return fail(core.E(core.KindInvalid, "invalid_target", "unknown role "+quote(r.Role)+" on target "+t.Name, nil))
	}
	req := map[string]any{"target": g.Target, "role": g.Role, "ttl": int64(r.TTL / time.Second)}
	// What the caller asks to be put in the credential is policy's to see.
	for _, k := range []string{"scope", "principals", "dns_names", "public_key", "csr"} {
		if v, ok := r.Params[k]; ok {
			req[k] = v
		}
	}
	d, err := b.decide(id, human, g, req)
	events = append(events, d.event(r.Meta, b, &id, human, g))
	if err != nil {
		_ = b.record(ctx, events...)
		return CredentialResult{}, err
	}
	ttl, err := ttlFor(r.TTL, role.DefaultTTL, d.MaxTTL)
	if err != nil {
		return fail(err)
	}
	maxTTL := d.MaxTTL
	if maxTTL <= 0 {
		maxTTL = ttl
	}
	l, cred, err := b.o.Leases.Issue(ctx, LeaseRequest{
		Target: g.Target, Role: g.Role, Rule: d.Rule, Principal: id, Human: human,
		TTL: ttl, MaxTTL: maxTTL, Params: r.Params, Meta: r.Meta, Preceding: events,
	})
	if err != nil {
		return CredentialResult{}, err // the lease manager audits these events with its outcome
	}
	return CredentialResult{LeaseID: l.ID, ExpiresAt: l.ExpiresAt, Renewable: l.Renewable, Credential: cred}, nil
}

// caller authenticates the bearer token and the optional on-behalf-of
// token, returning the acting workload, the human, and the auth events.
func (b *Broker) caller(ctx context.Context, m Meta, token, onBehalfOf string) (core.Principal, *core.Principal, []audit.Event, error) {
	if token == "" {
		err := core.E(core.KindUnauthenticated, "invalid_token", "an identity token is required (Authorization: Bearer …)", nil)
		_ = b.record(ctx, audit.Event{Type: audit.AuthFailure, RequestID: m.RequestID, Source: m.Source, Outcome: audit.OutcomeFailure, Error: "no token presented"})
		return core.Principal{}, nil, nil, err
	}
	p, err := b.authenticate(ctx, m, token, "bearer")
	if err != nil {
		return core.Principal{}, nil, nil, err
	}
	events := []audit.Event{b.authSuccess(m, p)}
	id, human := actors(p)
	if onBehalfOf != "" {
		if human != nil {
			return core.Principal{}, nil, nil, core.Invalid("the token already names a human (act claim); do not also send on_behalf_of")
		}
		h, err := b.authenticate(ctx, m, onBehalfOf, "on_behalf_of")
		if err != nil {
			return core.Principal{}, nil, nil, err
		}
		if h.Actor != nil {
			return core.Principal{}, nil, nil, core.Invalid("on_behalf_of must be the human's own token, not a delegated one")
		}
		human = &h
		events = append(events, b.authSuccess(m, h))
	}
	return id, human, events, nil
}

// Authenticate verifies a token for callers outside the credential flow
// (the proxy, whoami) and audits a failure.
func (b *Broker) Authenticate(ctx context.Context, m Meta, token string) (core.Principal, *core.Principal, error) {
	id, human, _, err := b.caller(ctx, m, token, "")
	return id, human, err
}

// isAdmin reports whether the caller holds stint/admin.
func (b *Broker) isAdmin(m Meta, id core.Principal, human *core.Principal) bool {
	if m.LocalAdmin {
		return true
	}
	_, err := b.authorize(id, human, core.AdminGrant, map[string]any{"target": core.AdminGrant.Target, "role": core.AdminGrant.Role})
	return err == nil
}

func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return `"` + s + `"`
}

var errNotOwner = errors.New("the lease belongs to another principal")
