package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"testing"
)

// BenchmarkSignES256 measures Manager.Sign with a small claim set: the
// cost stint adds per issued token.
func BenchmarkSignES256(b *testing.B) {
	env := newEnv(b)
	m := env.manager(b, Options{Algorithm: "ES256"})
	claims := map[string]any{
		"iss": "https://stint.example.com", "sub": "spiffe://example.org/ns/agents/sa/bot",
		"aud": "orders-api", "exp": 1893456000, "iat": 1893455100, "jti": "0f8c2a1e-5b7d-4c3e-9a1f-2b6d8e4c7a90",
		"scope": "orders:read",
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Sign(claims); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRawES256SignRS256Verify is the baseline BENCHMARKS.md divides
// by: one raw ECDSA P-256 signature over a SHA-256 digest plus one RSA-2048
// PKCS#1 v1.5 verification (a typical inbound platform token), on one
// goroutine, with no JOSE or JSON work.
func BenchmarkRawES256SignRS256Verify(b *testing.B) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	msg := []byte(`{"iss":"https://stint.example.com","sub":"bot","aud":"orders-api","exp":1893456000}`)
	digest := sha256.Sum256(msg)
	rsig, err := rsa.SignPKCS1v15(rand.Reader, rk, crypto.SHA256, digest[:])
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		d := sha256.Sum256(msg)
		if _, err := ecdsa.SignASN1(rand.Reader, ec, d[:]); err != nil {
			b.Fatal(err)
		}
		if err := rsa.VerifyPKCS1v15(&rk.PublicKey, crypto.SHA256, d[:], rsig); err != nil {
			b.Fatal(err)
		}
	}
}
