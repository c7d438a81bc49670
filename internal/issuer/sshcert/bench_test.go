package sshcert

import (
	"crypto/ed25519"
	"crypto/rand"
	"strconv"
	"testing"
	"time"
)

// BenchmarkRawEd25519Sign is the floor: one Ed25519 signature.
func BenchmarkRawEd25519Sign(b *testing.B) {
	_, k, _ := ed25519.GenerateKey(rand.Reader)
	msg := make([]byte, 300) // about a certificate's signed body
	for b.Loop() {
		ed25519.Sign(k, msg)
	}
}

// BenchmarkIssue is one certificate without HTTP, lease or audit:
// template, checks, one Ed25519 signature and encoding.
func BenchmarkIssue(b *testing.B) {
	is := newIssuer(b, "", roles, nil)
	_, pub := clientKey(b)
	now := time.Now()
	params := map[string]string{"public_key": pub}
	i := 0
	for b.Loop() {
		i++
		if _, err := is.Issue(b.Context(), request(strconv.Itoa(i), "ops", params, now, now.Add(time.Minute))); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIssueGeneratedKey adds the key pair stint makes when the
// caller sends none.
func BenchmarkIssueGeneratedKey(b *testing.B) {
	is := newIssuer(b, "", roles, nil)
	now := time.Now()
	i := 0
	for b.Loop() {
		i++
		if _, err := is.Issue(b.Context(), request(strconv.Itoa(i), "ops", nil, now, now.Add(time.Minute))); err != nil {
			b.Fatal(err)
		}
	}
}
