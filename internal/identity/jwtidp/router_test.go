package jwtidp

import (
	"context"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/stint-dev/stint/internal/identity"
)

// The router tests live here because they need real verifiers.
func TestRouterDispatchesByIssuer(t *testing.T) {
	k := keys(t)
	k8s := newVerifier(t, "kubernetes", nil)
	sso := newVerifier(t, "oidc", func(c *Config) { c.Name, c.Issuer = "corp-sso", "https://login.example.com" })
	r, err := identity.NewRouter(k8s, sso)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		token    string
		provider string
		reason   string
	}{
		{"kubernetes issuer", sign(t, jose.RS256, k.rsa, "rsa", claimsAt(nil), nil), "prod-cluster", ""},
		{"sso issuer", sign(t, jose.RS256, k.rsa, "rsa", claimsAt(map[string]any{"iss": "https://login.example.com"}), nil), "corp-sso", ""},
		{"unknown issuer", sign(t, jose.RS256, k.rsa, "rsa", claimsAt(map[string]any{"iss": "https://evil.example"}), nil), "", identity.ReasonUnknownIssuer},
		{"no issuer", sign(t, jose.RS256, k.rsa, "rsa", claimsAt(map[string]any{"iss": nil}), nil), "", identity.ReasonWrongIssuer},
		{"payload not JSON", b64(`{"alg":"RS256"}`) + "." + b64("x") + ".c2ln", "", identity.ReasonMalformed},
		{"too large", string(make([]byte, identity.MaxTokenSize+1)), "", identity.ReasonTooLarge},
		{"right issuer, bad signature", sign(t, jose.RS256, k.other, "rsa", claimsAt(nil), nil), "", identity.ReasonBadSignature},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := r.Verify(context.Background(), tc.token)
			if tc.reason != "" {
				if got := identity.Reason(err); got != tc.reason {
					t.Fatalf("reason = %q (%v), want %q", got, err, tc.reason)
				}
				assertNoTokenInError(t, err, tc.token)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Provider != tc.provider {
				t.Fatalf("provider = %q, want %q", p.Provider, tc.provider)
			}
		})
	}
}

func TestNewRouterRejectsDuplicateIssuer(t *testing.T) {
	a := newVerifier(t, "kubernetes", nil)
	b := newVerifier(t, "oidc", func(c *Config) { c.Name = "other" })
	if _, err := identity.NewRouter(a, b); err == nil {
		t.Fatal("NewRouter accepted two providers with one issuer")
	}
}
