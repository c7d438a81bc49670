package jwt

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/issuer"
)

// jsonSigner returns the claims as JSON instead of a JWS, so tests can
// read exactly what would be signed.
type jsonSigner struct{ typ string }

func (s *jsonSigner) SignWithType(claims any, typ string) (string, error) {
	s.typ = typ
	b, err := json.Marshal(claims)
	return string(b), err
}

func TestIssueClaimsLayout(t *testing.T) {
	s := &jsonSigner{}
	is, err := New(Config{Name: "api", IssuerURL: "https://stint", Signer: s, Roles: map[string]RoleConfig{
		"read": {Audience: "https://api", Scopes: []string{"a", "b"}, Claims: map[string]string{"ns": "{{ .identity.namespace }}", "who": "{{ .human.subject }}"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1800000000, 0)
	workload := core.Principal{Provider: "k8s", Kind: "kubernetes", Subject: "sa", Issuer: "https://k8s", Attributes: map[string]any{"namespace": "agents"}}
	human := &core.Principal{Provider: "sso", Kind: "oidc", Subject: "alice"}
	res, err := is.Issue(context.Background(), issuer.Request{LeaseID: "L1", Role: "read", Principal: workload, Human: human,
		IssuedAt: now, ExpiresAt: now.Add(5 * time.Minute), Params: map[string]string{"scope": "b z"}})
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal([]byte(res.Credential["access_token"]), &c); err != nil {
		t.Fatal(err)
	}
	act, _ := c["act"].(map[string]any)
	checks := map[string]any{
		"iss": "https://stint", "aud": "https://api", "sub": "alice", "jti": "L1", "scope": "b",
		"exp": float64(now.Add(5 * time.Minute).Unix()), "iat": float64(now.Unix()), "nbf": float64(now.Unix()),
		"stint_provider": "sso", "stint_kind": "oidc", "ns": "agents", "who": "alice",
	}
	for k, want := range checks {
		if c[k] != want {
			t.Errorf("claim %s = %v, want %v", k, c[k], want)
		}
	}
	if act == nil || act["sub"] != "sa" || act["iss"] != "https://k8s" || act["stint_provider"] != "k8s" {
		t.Errorf("act = %v", act)
	}
	if s.typ != "at+jwt" {
		t.Errorf("typ %q", s.typ)
	}
}

func TestNewRefusesReservedClaims(t *testing.T) {
	for _, claim := range []string{"sub", "act", "exp", "stint_attrs", "scope"} {
		_, err := New(Config{Name: "api", Signer: &jsonSigner{}, Roles: map[string]RoleConfig{"r": {Audience: "x", Claims: map[string]string{claim: "v"}}}})
		if err == nil || !strings.Contains(err.Error(), "set by stint") {
			t.Errorf("claim %s: got %v", claim, err)
		}
	}
}
