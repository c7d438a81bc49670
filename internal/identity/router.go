package identity

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/stint-dev/stint/internal/core"
)

// IssuerVerifier is a Verifier for tokens of one issuer.
type IssuerVerifier interface {
	Verifier
	// Issuer is the exact iss the verifier accepts.
	Issuer() string
}

// ProofVerifier verifies presented proofs that are not JWTs (a signed
// AWS GetCallerIdentity request, say). Such proofs start with a fixed
// prefix containing ':', which no compact JWS contains, so the router can
// tell them apart before any JWT parsing.
type ProofVerifier interface {
	Verifier
	// ProofPrefix marks this verifier's proofs, e.g. "aws-iam:".
	ProofPrefix() string
	// Claims reports, cheaply and without trusting the proof, whether it
	// is meant for this provider when several share a prefix.
	Claims(proof string) bool
}

// Router sends a JWT to the verifier of its issuer, so one bearer header
// can carry a token from any configured provider (and stint's own), and a
// prefixed non-JWT proof to the provider that claims it.
type Router struct {
	byIssuer map[string]IssuerVerifier
	byPrefix map[string][]ProofVerifier
}

// NewRouter builds a Router; each issuer may appear once, because two
// providers trusting the same issuer would make the choice ambiguous.
func NewRouter(vs ...IssuerVerifier) (*Router, error) {
	r := &Router{byIssuer: make(map[string]IssuerVerifier, len(vs)), byPrefix: map[string][]ProofVerifier{}}
	var errs []error
	for _, v := range vs {
		if pv, ok := v.(ProofVerifier); ok {
			if !strings.Contains(pv.ProofPrefix(), ":") {
				errs = append(errs, fmt.Errorf("identity: provider %q: proof prefix %q must contain ':'", v.Name(), pv.ProofPrefix()))
				continue
			}
			r.byPrefix[pv.ProofPrefix()] = append(r.byPrefix[pv.ProofPrefix()], pv)
			continue
		}
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
	if prefix, _, ok := strings.Cut(token, ":"); ok && len(r.byPrefix[prefix+":"]) > 0 {
		return r.verifyProof(ctx, prefix+":", token)
	}
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

// verifyProof hands a prefixed proof to the provider that claims it (the
// only one, when one provider has the prefix).
func (r *Router) verifyProof(ctx context.Context, prefix, proof string) (core.Principal, error) {
	vs := r.byPrefix[prefix]
	if len(vs) == 1 {
		return vs[0].Verify(ctx, proof)
	}
	for _, v := range vs {
		if v.Claims(proof) {
			return v.Verify(ctx, proof)
		}
	}
	return core.Principal{}, &TokenError{Reason: ReasonUnknownIssuer, Detail: fmt.Sprintf("no provider for proof type %q", truncate(prefix))}
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
