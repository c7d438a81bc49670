package core

import "time"

// Principal is a verified caller: a workload, or the human a workload acts
// for. Attributes hold only JSON-like values (string, bool, float64, int64,
// []string, map[string]any) so that policy can evaluate them directly.
type Principal struct {
	// Provider is the name of the identity provider that verified it.
	Provider string `json:"provider"`
	// Kind is the provider's type (kubernetes, oidc, github-actions, …, stint).
	Kind string `json:"kind"`
	// Subject is stable for the same workload across tokens.
	Subject string `json:"subject"`
	// Issuer is the iss of the presented proof.
	Issuer string `json:"issuer,omitempty"`
	// Attributes are what policy binds on: cluster, namespace, repository, …
	Attributes map[string]any `json:"attributes,omitempty"`
	// ExpiresAt is the expiry of the presented proof.
	ExpiresAt time.Time `json:"expires_at"`
	// TokenID is the jti of the presented proof, if it had one.
	TokenID string `json:"token_id,omitempty"`
	// Actor is the chain of workloads acting for this subject (RFC 8693 act).
	Actor *Principal `json:"actor,omitempty"`
}

// Attr returns the attribute as a string, or "" when it is absent or not a string.
func (p Principal) Attr(name string) string {
	s, _ := p.Attributes[name].(string)
	return s
}

// Map is the view of the principal that policy and templates see: the
// attributes plus provider, kind, subject and issuer.
func (p *Principal) Map() map[string]any {
	if p == nil {
		return map[string]any{}
	}
	m := make(map[string]any, len(p.Attributes)+5)
	for k, v := range p.Attributes {
		m[k] = v
	}
	m["provider"] = p.Provider
	m["kind"] = p.Kind
	m["subject"] = p.Subject
	m["issuer"] = p.Issuer
	return m
}
