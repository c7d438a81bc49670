package jwtidp

import (
	"context"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

func benchmarkVerify(b *testing.B, alg jose.SignatureAlgorithm, key any, kid string) {
	v := newVerifier(b, "kubernetes", nil)
	tok := signWith(b, alg, key, kid, claimsAt(nil), nil)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyRS256(b *testing.B) { benchmarkVerify(b, jose.RS256, keys(b).rsa, "rsa") }

func BenchmarkVerifyES256(b *testing.B) { benchmarkVerify(b, jose.ES256, keys(b).ec256, "ec256") }
