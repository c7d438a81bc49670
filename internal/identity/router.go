package identity

import (
	"context"
	"errors"
	"fmt"

	"github.com/stint-dev/stint/internal/core"
)

// IssuerVerifier is a Verifier for tokens of one issuer.
type IssuerVerifier interface {
	Verifier
	// Issuer is the exact iss the verifier accepts.
	Issuer() string
}

// Router sends a JWT to the verifier of its issuer, so one bearer header
// can carry a token from any configured provider (and stint's own).
type Router struct {
	byIssuer map[string]IssuerVerifier
}

// NewRouter builds a Router; each issuer may appear once, because two
// providers trusting the same issuer would make the choice ambiguous.
func NewRouter(vs ...IssuerVerifier) (*Router, error) {
	r := &Router{byIssuer: make(map[string]IssuerVerifier, len(vs))}
	var errs []error
	for _, v := range vs {
		iss := v.Issuer()
		if iss == "" {
			errs = append(errs, fmt.Errorf("identity: provider %q has no issuer", v.Name()))
			continue
		}
		if prev, dup := r.byIssuer[iss]; dup {
			errs = append(errs, fmt.Errorf("identity: providers %q and %q share issuer %q", prev.Name(), v.Name(), iss))
			continue
		}
		r.byIssuer[iss] = v
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return r, nil
}

// Verify peeks at the unverified iss (after the size and shape checks) and
// hands the token to that issuer's verifier, which checks everything,
// including iss again.
func (r *Router) Verify(ctx context.Context, token string) (core.Principal, error) {
	if err := CheckCompact(token); err != nil {
		return core.Principal{}, err
	}
	iss, err := PeekIssuer(token)
	if err != nil {
		return core.Principal{}, err
	}
	v, ok := r.byIssuer[iss]
	if !ok {
		return core.Principal{}, &TokenError{Reason: ReasonUnknownIssuer, Detail: fmt.Sprintf("no provider for issuer %q", truncate(iss))}
	}
	return v.Verify(ctx, token)
}

// Name identifies the router where a Verifier is expected.
func (r *Router) Name() string { return "router" }

// truncate bounds attacker-chosen text before it reaches a log line.
func truncate(s string) string {
	const max = 128
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}

var _ Verifier = (*Router)(nil)
