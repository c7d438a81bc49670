package jwtidp

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/stint-dev/stint/internal/jwks"
)

const (
	testIssuer   = "https://issuer.example.com"
	testAudience = "stint"
)

// testNow is the fixed clock of every test: tokens are minted around it.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// keyring holds one key of each family, published under its kid.
type keyring struct {
	rsa   *rsa.PrivateKey
	ec256 *ecdsa.PrivateKey
	ec384 *ecdsa.PrivateKey
	ed    ed25519.PrivateKey
	other *rsa.PrivateKey // not published, for bad signatures
}

var sharedKeys *keyring

func keys(t testing.TB) *keyring {
	t.Helper()
	if sharedKeys != nil {
		return sharedKeys
	}
	k := &keyring{}
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if k.other, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if k.ec256, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	if k.ec384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	if _, k.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		t.Fatal(err)
	}
	sharedKeys = k
	return k
}

// set publishes the public keys: "rsa" (no alg), "rsa-rs256" (alg RS256),
// "ec256", "ec384", "ed".
func (k *keyring) set() jose.JSONWebKeySet {
	return jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: k.rsa.Public(), KeyID: "rsa", Use: "sig"},
		{Key: k.rsa.Public(), KeyID: "rsa-rs256", Algorithm: "RS256", Use: "sig"},
		{Key: k.ec256.Public(), KeyID: "ec256"},
		{Key: k.ec384.Public(), KeyID: "ec384"},
		{Key: k.ed.Public(), KeyID: "ed"},
	}}
}

// claimsAt returns valid claims for testNow.
func claimsAt(extra map[string]any) map[string]any {
	c := map[string]any{
		"iss": testIssuer,
		"sub": "system:serviceaccount:agents:support-bot",
		"aud": []string{testAudience},
		"exp": testNow.Add(10 * time.Minute).Unix(),
		"iat": testNow.Add(-time.Minute).Unix(),
		"nbf": testNow.Add(-time.Minute).Unix(),
		"jti": "token-1",
		"kubernetes.io": map[string]any{
			"namespace":      "agents",
			"serviceaccount": map[string]any{"name": "support-bot", "uid": "sa-uid"},
			"pod":            map[string]any{"name": "bot-7d9", "uid": "pod-uid"},
			"node":           map[string]any{"name": "node-1", "uid": "node-uid"},
		},
	}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

// sign signs claims with key as a compact JWS with kid and extra headers.
func sign(t testing.TB, alg jose.SignatureAlgorithm, key crypto.Signer, kid string, claims any, headers map[jose.HeaderKey]any) string {
	t.Helper()
	return signWith(t, alg, key, kid, claims, headers)
}

func signWith(t testing.TB, alg jose.SignatureAlgorithm, key any, kid string, claims any, headers map[jose.HeaderKey]any) string {
	t.Helper()
	opts := &jose.SignerOptions{ExtraHeaders: map[jose.HeaderKey]any{}}
	if kid != "" {
		opts.ExtraHeaders["kid"] = kid
	}
	for k, v := range headers {
		opts.ExtraHeaders[k] = v
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts.WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func newVerifier(t testing.TB, typ string, mod func(*Config)) *Verifier {
	t.Helper()
	cfg := Config{
		Name:       "prod-cluster",
		Type:       typ,
		Issuer:     testIssuer,
		Audiences:  []string{testAudience, "other"},
		Keys:       jwks.NewStatic(keys(t).set()),
		Attributes: map[string]string{"cluster": "prod-eu-1"},
		Now:        func() time.Time { return testNow },
	}
	if mod != nil {
		mod(&cfg)
	}
	v, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
