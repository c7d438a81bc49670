package jwtidp

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/stint-dev/stint/internal/identity"
	"github.com/stint-dev/stint/internal/jwks"
)

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestVerifyAcceptsEachAlgorithmWithItsKey(t *testing.T) {
	k := keys(t)
	v := newVerifier(t, "kubernetes", func(c *Config) {
		c.Algorithms = []string{"RS256", "PS256", "ES256", "ES384", "EdDSA"}
	})
	cases := []struct {
		name string
		alg  jose.SignatureAlgorithm
		key  any
		kid  string
	}{
		{"RS256 on rsa key without alg", jose.RS256, k.rsa, "rsa"},
		{"PS256 on rsa key without alg", jose.PS256, k.rsa, "rsa"},
		{"RS256 on rsa key with alg RS256", jose.RS256, k.rsa, "rsa-rs256"},
		{"ES256 on P-256", jose.ES256, k.ec256, "ec256"},
		{"ES384 on P-384", jose.ES384, k.ec384, "ec384"},
		{"EdDSA on Ed25519", jose.EdDSA, k.ed, "ed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok := signWith(t, tc.alg, tc.key, tc.kid, claimsAt(nil), nil)
			p, err := v.Verify(context.Background(), tok)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if p.Subject != "system:serviceaccount:agents:support-bot" || p.Issuer != testIssuer ||
				p.Provider != "prod-cluster" || p.Kind != "kubernetes" || p.TokenID != "token-1" ||
				!p.ExpiresAt.Equal(testNow.Add(10*time.Minute)) {
				t.Fatalf("principal = %+v", p)
			}
		})
	}
}

func TestVerifyRejects(t *testing.T) {
	k := keys(t)
	v := newVerifier(t, "kubernetes", nil)
	good := sign(t, jose.RS256, k.rsa, "rsa", claimsAt(nil), nil)
	goodParts := strings.Split(good, ".")
	pubDER, err := x509.MarshalPKIXPublicKey(k.rsa.Public())
	if err != nil {
		t.Fatal(err)
	}
	hdr := func(h map[string]any) string { return b64(mustJSON(t, h)) }
	payload := b64(mustJSON(t, claimsAt(nil)))
	big := strings.Repeat("x", identity.MaxTokenSize)

	cases := []struct {
		name   string
		token  string
		reason string
	}{
		{"alg none with empty signature", hdr(map[string]any{"alg": "none", "kid": "rsa"}) + "." + payload + ".", identity.ReasonMalformed},
		{"alg none with a signature", hdr(map[string]any{"alg": "none", "kid": "rsa"}) + "." + payload + "." + goodParts[2], identity.ReasonUnsupportedAlg},
		{"HS256 keyed with the RSA public key", signWith(t, jose.HS256, pubDER, "rsa", claimsAt(nil), nil), identity.ReasonUnsupportedAlg},
		{"HS384", signWith(t, jose.HS384, make([]byte, 48), "rsa", claimsAt(nil), nil), identity.ReasonUnsupportedAlg},
		{"HS512", signWith(t, jose.HS512, make([]byte, 64), "rsa", claimsAt(nil), nil), identity.ReasonUnsupportedAlg},
		{"algorithm not configured (RS512)", signWith(t, jose.RS512, k.rsa, "rsa", claimsAt(nil), nil), identity.ReasonUnsupportedAlg},
		{"PS256 against key whose alg is RS256", signWith(t, jose.PS256, k.rsa, "rsa-rs256", claimsAt(nil), nil), identity.ReasonAlgKeyMismatch},
		{"ES256 token naming an RSA key", signWith(t, jose.ES256, k.ec256, "rsa", claimsAt(nil), nil), identity.ReasonAlgKeyMismatch},
		{"RS256 token naming an EC key", signWith(t, jose.RS256, k.rsa, "ec256", claimsAt(nil), nil), identity.ReasonAlgKeyMismatch},
		{"ES384 token naming a P-256 key", signWith(t, jose.ES384, k.ec384, "ec256", claimsAt(nil), nil), identity.ReasonAlgKeyMismatch},
		{"signed by another key", sign(t, jose.RS256, k.other, "rsa", claimsAt(nil), nil), identity.ReasonBadSignature},
		{"payload swapped under a valid signature", goodParts[0] + "." + b64(mustJSON(t, claimsAt(map[string]any{"sub": "system:serviceaccount:kube-system:admin"}))) + "." + goodParts[2], identity.ReasonBadSignature},
		{"wrong issuer", sign(t, jose.RS256, k.rsa, "rsa", claimsAt(map[string]any{"iss": "https://evil.example.com"}), nil), identity.ReasonWrongIssuer},
		{"missing aud", sign(t, jose.RS256, k.rsa, "rsa", claimsAt(map[string]any{"aud": nil}), nil), identity.ReasonWrongAudience},
		{"aud not expected", sign(t, jose.RS256, k.rsa, "rsa", claimsAt(map[string]any{"aud": "someone-else"}), nil), identity.ReasonWrongAudience},
		{"expired beyond skew", sign(t, jose.RS256, k.rsa, "rsa", claimsAt(map[string]any{"exp": testNow.Add(-61 * time.Second).Unix()}), nil), identity.ReasonExpired},
		{"nbf beyond skew", sign(t, jose.RS256, k.rsa, "rsa", claimsAt(map[string]any{"nbf": testNow.Add(61 * time.Second).Unix()}), nil), identity.ReasonNotYetValid},
		{"iat in the future beyond skew", sign(t, jose.RS256, k.rsa, "rsa", claimsAt(map[string]any{"iat": testNow.Add(61 * time.Second).Unix(), "nbf": nil}), nil), identity.ReasonIssuedInFuture},
		{"missing exp", sign(t, jose.RS256, k.rsa, "rsa", claimsAt(map[string]any{"exp": nil}), nil), identity.ReasonMissingExp},
		{"exp is a string", sign(t, jose.RS256, k.rsa, "rsa", claimsAt(map[string]any{"exp": "tomorrow"}), nil), identity.ReasonMalformed},
		{"unknown kid", sign(t, jose.RS256, k.rsa, "nope", claimsAt(nil), nil), identity.ReasonUnknownKID},
		{"missing kid", sign(t, jose.RS256, k.rsa, "", claimsAt(nil), nil), identity.ReasonMissingKID},
		{"header not base64url", "eyJ+bGci." + payload + "." + goodParts[2], identity.ReasonMalformed},
		{"header base64 of wrong length", "A." + payload + "." + goodParts[2], identity.ReasonMalformed},
		{"header not JSON", b64("not json") + "." + payload + "." + goodParts[2], identity.ReasonMalformed},
		{"header a JSON array", b64(`["alg"]`) + "." + payload + "." + goodParts[2], identity.ReasonMalformed},
		{"header with duplicate alg", b64(`{"alg":"RS256","alg":"none","kid":"rsa"}`) + "." + payload + "." + goodParts[2], identity.ReasonMalformed},
		{"payload not JSON", goodParts[0] + "." + b64("{nope") + "." + goodParts[2], identity.ReasonBadSignature},
		{"signature not base64", goodParts[0] + "." + goodParts[1] + ".A", identity.ReasonMalformed},
		{"larger than 16 KiB", good + big, identity.ReasonTooLarge},
		{"signed but larger than 16 KiB", sign(t, jose.RS256, k.rsa, "rsa", claimsAt(map[string]any{"pad": big}), nil), identity.ReasonTooLarge},
		{"crit header", sign(t, jose.RS256, k.rsa, "rsa", claimsAt(nil), map[jose.HeaderKey]any{"crit": []string{"exp"}, "exp": 1}), identity.ReasonForbiddenHeader},
		{"jku header", sign(t, jose.RS256, k.rsa, "rsa", claimsAt(nil), map[jose.HeaderKey]any{"jku": "https://evil.example.com/jwks"}), identity.ReasonForbiddenHeader},
		{"x5u header", sign(t, jose.RS256, k.rsa, "rsa", claimsAt(nil), map[jose.HeaderKey]any{"x5u": "https://evil.example.com/cert"}), identity.ReasonForbiddenHeader},
		{"x5c header", sign(t, jose.RS256, k.rsa, "rsa", claimsAt(nil), map[jose.HeaderKey]any{"x5c": []string{"MIIB"}}), identity.ReasonForbiddenHeader},
		{"jwk header", sign(t, jose.RS256, k.rsa, "rsa", claimsAt(nil), map[jose.HeaderKey]any{"jwk": jose.JSONWebKey{Key: k.rsa.Public()}}), identity.ReasonForbiddenHeader},
		{"jku null is still refused", sign(t, jose.RS256, k.rsa, "rsa", claimsAt(nil), map[jose.HeaderKey]any{"jku": nil}), identity.ReasonForbiddenHeader},
		{"b64 header", sign(t, jose.RS256, k.rsa, "rsa", claimsAt(nil), map[jose.HeaderKey]any{"b64": false}), identity.ReasonForbiddenHeader},
		{"JWE compact (five parts)", "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a.b.c.d", identity.ReasonMalformed},
		{"JSON-serialized JWS", `{"payload":"` + payload + `","signatures":[{"protected":"` + goodParts[0] + `","signature":"` + goodParts[2] + `"},{"protected":"` + goodParts[0] + `","signature":"` + goodParts[2] + `"}]}`, identity.ReasonMalformed},
		{"flattened JSON JWS", `{"payload":"` + payload + `","protected":"` + goodParts[0] + `","signature":"` + goodParts[2] + `"}`, identity.ReasonMalformed},
		{"whitespace inside", goodParts[0] + ".\n" + goodParts[1] + "." + goodParts[2], identity.ReasonMalformed},
		{"empty", "", identity.ReasonMalformed},
		{"two parts", goodParts[0] + "." + goodParts[1], identity.ReasonMalformed},
		{"no sub", sign(t, jose.RS256, k.rsa, "rsa", claimsAt(map[string]any{"sub": nil}), nil), identity.ReasonInvalidClaims},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := v.Verify(context.Background(), tc.token)
			if err == nil {
				t.Fatalf("accepted: %+v", p)
			}
			var te *identity.TokenError
			if !errors.As(err, &te) {
				t.Fatalf("error %T %v is not a *identity.TokenError", err, err)
			}
			if te.Reason != tc.reason {
				t.Fatalf("reason = %q, want %q (%v)", te.Reason, tc.reason, err)
			}
			if te.Provider != "prod-cluster" {
				t.Errorf("provider = %q", te.Provider)
			}
			assertNoTokenInError(t, err, tc.token)
		})
	}
}

// assertNoTokenInError fails when the error text holds the token or any
// of its longer segments.
func assertNoTokenInError(t testing.TB, err error, token string) {
	t.Helper()
	msg := err.Error()
	if len(token) >= 16 && strings.Contains(msg, token) {
		t.Fatalf("error text contains the token: %s", msg)
	}
	for _, seg := range strings.Split(token, ".") {
		if len(seg) >= 16 && strings.Contains(msg, seg) {
			t.Fatalf("error text contains a token segment: %s", msg)
		}
	}
}

func TestVerifySkewIsTolerated(t *testing.T) {
	k := keys(t)
	v := newVerifier(t, "kubernetes", nil)
	cases := []struct {
		name  string
		extra map[string]any
	}{
		{"expired 59s ago", map[string]any{"exp": testNow.Add(-59 * time.Second).Unix()}},
		{"nbf 59s ahead", map[string]any{"nbf": testNow.Add(59 * time.Second).Unix()}},
		{"iat 59s ahead", map[string]any{"iat": testNow.Add(59 * time.Second).Unix(), "nbf": nil}},
		{"aud as a plain string", map[string]any{"aud": "other"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := v.Verify(context.Background(), sign(t, jose.RS256, k.rsa, "rsa", claimsAt(tc.extra), nil)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	ks := jwks.NewStatic(jose.JSONWebKeySet{})
	base := func() Config {
		return Config{Name: "p", Type: "oidc", Issuer: testIssuer, Audiences: []string{"a"}, Keys: ks}
	}
	cases := []struct {
		name string
		mod  func(*Config)
	}{
		{"unknown type", func(c *Config) { c.Type = "ldap" }},
		{"HS256 allowed", func(c *Config) { c.Algorithms = []string{"RS256", "HS256"} }},
		{"none allowed", func(c *Config) { c.Algorithms = []string{"none"} }},
		{"no audience", func(c *Config) { c.Audiences = nil }},
		{"no issuer", func(c *Config) { c.Issuer = "" }},
		{"no keys", func(c *Config) { c.Keys = nil }},
		{"no name", func(c *Config) { c.Name = "" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.mod(&c)
			if _, err := New(c); err == nil {
				t.Fatal("New accepted the config")
			}
		})
	}
	if _, err := New(base()); err != nil {
		t.Fatalf("base config: %v", err)
	}
	for _, typ := range Types() {
		c := base()
		c.Type = typ
		if _, err := New(c); err != nil {
			t.Errorf("type %q: %v", typ, err)
		}
	}
}
