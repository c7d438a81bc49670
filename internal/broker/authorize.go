package broker

import (
	"context"

	"github.com/stint-dev/stint/internal/audit"
	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/policy"
)

// Authorize evaluates policy for a grant with request attributes, for
// callers that act per request (the proxy). It returns the decision, the
// policy event to record (the caller records it together with its outcome
// event, so one request costs one durable write), and a *core.Error when
// denied.
func (b *Broker) Authorize(m Meta, id core.Principal, human *core.Principal, g core.Grant, request map[string]any) (policy.Decision, audit.Event, error) {
	if request == nil {
		request = map[string]any{}
	}
	request["target"], request["role"] = g.Target, g.Role
	d, err := b.authorize(id, human, g, request)
	ev := policyResult{Allow: d.Allow, Rule: d.Rule, MaxTTL: d.MaxTTL, Reason: d.Reason}.event(m, b, &id, human, g)
	return d, ev, err
}

// Record writes events to the audit record; it returns once the required
// sinks hold them.
func (b *Broker) Record(ctx context.Context, events ...audit.Event) error {
	return b.record(ctx, events...)
}

// Actor renders a principal as audit events show it (never a token).
func (b *Broker) Actor(p *core.Principal) *audit.Actor { return b.actor(p) }
