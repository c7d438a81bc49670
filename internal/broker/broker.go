// Package broker is stint's one use case, end to end in plain code:
// authenticate the presented identity, authorize the grant against policy,
// issue the credential under a lease, and audit every step. The HTTP server
// and the CLI only translate to and from it.
package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/stint-dev/stint/internal/audit"
	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/issuer"
	jwtissuer "github.com/stint-dev/stint/internal/issuer/jwt"
	"github.com/stint-dev/stint/internal/policy"
)

// Authenticator verifies a presented token (identity.Router).
type Authenticator interface {
	Verify(ctx context.Context, token string) (core.Principal, error)
}

// Auditor records events in order and returns once the required sinks
// hold them (audit.Log).
type Auditor interface {
	RecordAll(ctx context.Context, events ...audit.Event) error
}

// Target is one configured target as the broker sees it.
type Target struct {
	Name   string
	Type   string
	Issuer issuer.Issuer
	Roles  map[string]Role
}

// Role is what the broker needs to know of a role.
type Role struct {
	DefaultTTL time.Duration
}

// Options wires the broker's dependencies.
type Options struct {
	IssuerURL  string
	Identities Authenticator
	Policy     *policy.Engine
	Targets    map[string]Target
	Leases     Leases
	Signer     jwtissuer.Signer
	Audit      Auditor
	// Fingerprint names a token in audit events when it has no jti.
	Fingerprint func(secret string) string
	SessionTTL  time.Duration
	Now         func() time.Time
	Logger      *slog.Logger
	Metrics     *Metrics
	// AuditFile is the local audit record that GET /v1/audit reads.
	AuditFile string
	// Inventory stores credential inventory reports (nil: not offered).
	Inventory Inventory
}

// Broker runs the flow. It is safe for concurrent use.
type Broker struct {
	o Options
	// audiences maps a jwt role's audience to its target and role.
	audiences map[string]audienceRole
}

type audienceRole struct {
	target string
	role   string
	is     *jwtissuer.Issuer
}

// New checks the options and indexes jwt audiences.
func New(o Options) (*Broker, error) {
	if o.Identities == nil || o.Policy == nil || o.Signer == nil || o.Audit == nil {
		return nil, errors.New("broker: identities, policy, signer and audit are required")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.SessionTTL <= 0 {
		o.SessionTTL = 15 * time.Minute
	}
	if o.Fingerprint == nil {
		return nil, errors.New("broker: a fingerprint function is required")
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	b := &Broker{o: o, audiences: map[string]audienceRole{}}
	for name, t := range o.Targets {
		js, ok := t.Issuer.(*jwtissuer.Issuer)
		if !ok {
			continue
		}
		for _, role := range js.Roles() {
			aud := js.Audience(role)
			if prev, dup := b.audiences[aud]; dup {
				return nil, fmt.Errorf("broker: audience %q used by %s/%s and %s/%s", aud, prev.target, prev.role, name, role)
			}
			b.audiences[aud] = audienceRole{target: name, role: role, is: js}
		}
	}
	return b, nil
}

// Meta describes the request for audit: who sent it, from where.
type Meta struct {
	RequestID string
	Source    string
	// LocalAdmin is set for requests over the admin Unix socket, whose
	// callers are trusted by file permissions (the bootstrap path).
	LocalAdmin bool
}

// authenticate verifies token and audits a failure. The returned error is
// the one public message for every authentication failure.
func (b *Broker) authenticate(ctx context.Context, m Meta, token, role string) (core.Principal, error) {
	p, err := b.o.Identities.Verify(ctx, token)
	if err != nil {
		b.o.Metrics.auth(false)
		b.record(ctx, audit.Event{
			Type: audit.AuthFailure, RequestID: m.RequestID, Source: m.Source, Outcome: audit.OutcomeFailure,
			Error: err.Error(), Details: map[string]any{"token": role, "token_fingerprint": b.o.Fingerprint(token)},
		})
		return core.Principal{}, core.Unauthenticated(err)
	}
	b.o.Metrics.auth(true)
	return p, nil
}

// actors splits a verified principal into the workload that acts and the
// human it acts for: a stint token with an act claim names the human in
// sub and the workload in act.
func actors(p core.Principal) (identity core.Principal, human *core.Principal) {
	if p.Actor == nil {
		return p, nil
	}
	h := p
	h.Actor = nil
	return *p.Actor, &h
}

// authorize evaluates policy and returns the decision; a denial is an error.
func (b *Broker) authorize(id core.Principal, human *core.Principal, g core.Grant, request map[string]any) (policy.Decision, error) {
	d := b.o.Policy.Evaluate(policy.Input{Identity: &id, Human: human, Grant: g, Request: request, Now: b.o.Now()})
	b.o.Metrics.decision(d.Allow)
	if !d.Allow {
		return d, core.Forbidden(fmt.Sprintf("policy does not grant %s", g), errors.New(d.Reason))
	}
	return d, nil
}

// ttlFor picks the lifetime: the requested one (which must not exceed the
// rule's max_ttl) or the role's default capped by max_ttl.
func ttlFor(requested, roleDefault, max time.Duration) (time.Duration, error) {
	if requested < 0 {
		return 0, core.Invalid("ttl must be positive")
	}
	if requested > 0 {
		if max > 0 && requested > max {
			return 0, core.Invalid("ttl %s exceeds the max_ttl %s of the granting rule", requested, max)
		}
		return requested, nil
	}
	ttl := roleDefault
	if ttl <= 0 {
		ttl = 15 * time.Minute
	}
	if max > 0 && ttl > max {
		ttl = max
	}
	return ttl, nil
}

// record writes events; a failure is returned so issuance can fail closed.
func (b *Broker) record(ctx context.Context, events ...audit.Event) error {
	if err := b.o.Audit.RecordAll(ctx, events...); err != nil {
		b.o.Logger.Error("audit record failed", "err", err, "types", eventTypes(events))
		return core.E(core.KindUnavailable, "", "audit record unavailable", err)
	}
	return nil
}

func eventTypes(events []audit.Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.Type
	}
	return out
}

// actor renders a principal for audit (never a token).
func (b *Broker) actor(p *core.Principal) *audit.Actor {
	if p == nil {
		return nil
	}
	return &audit.Actor{Provider: p.Provider, Kind: p.Kind, Subject: p.Subject, Attributes: p.Attributes, TokenID: p.TokenID}
}

// errText is what an audit event records of an error: the internal cause.
func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
