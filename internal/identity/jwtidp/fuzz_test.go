package jwtidp

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/stint-dev/stint/internal/identity"
	"github.com/stint-dev/stint/internal/jwks"
)

// fuzzKey is fixed so the seed corpus holds tokens that really verify and
// the fuzzer mutates from accepted input, not only from garbage.
var fuzzKey = ed25519.NewKeyFromSeed([]byte("stint-jwtidp-fuzz-seed-32-bytes!"))

func fuzzVerifier(t testing.TB) *Verifier {
	v, err := New(Config{
		Name: "fuzz", Type: "kubernetes", Issuer: testIssuer, Audiences: []string{testAudience},
		Keys: jwks.NewStatic(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: fuzzKey.Public(), KeyID: "ed"}}}),
		Now:  func() time.Time { return testNow },
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func FuzzVerify(f *testing.F) {
	v := fuzzVerifier(f)
	f.Add(sign(f, jose.EdDSA, fuzzKey, "ed", claimsAt(nil), nil))
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Fuzz(func(t *testing.T, token string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p, err := v.Verify(ctx, token)
		if err != nil {
			if identity.Reason(err) == "" {
				t.Fatalf("error without reason: %v", err)
			}
			assertNoTokenInError(t, err, token)
			return
		}
		if len(token) > identity.MaxTokenSize || p.Subject == "" || p.Attr("namespace") == "" {
			t.Fatalf("accepted %d-byte token with principal %+v", len(token), p)
		}
	})
}

// TestWriteFuzzCorpus regenerates testdata/fuzz/FuzzVerify when
// STINT_WRITE_CORPUS=1; it documents where the seeds come from.
// TestFuzzCorpusUpToDate checks that the committed seed corpus is what the
// seeds below produce (Ed25519 signatures are deterministic); with
// STINT_WRITE_CORPUS=1 it rewrites the corpus instead.
func TestFuzzCorpusUpToDate(t *testing.T) {
	write := os.Getenv("STINT_WRITE_CORPUS") == "1"
	good := sign(t, jose.EdDSA, fuzzKey, "ed", claimsAt(nil), nil)
	parts := strings.Split(good, ".")
	seeds := map[string]string{
		"valid":          good,
		"alg_none":       b64(`{"alg":"none","kid":"ed"}`) + "." + parts[1] + "." + parts[2],
		"hs256":          b64(`{"alg":"HS256","kid":"ed"}`) + "." + parts[1] + "." + parts[2],
		"crit":           b64(`{"alg":"EdDSA","kid":"ed","crit":["exp"]}`) + "." + parts[1] + "." + parts[2],
		"jku":            b64(`{"alg":"EdDSA","kid":"ed","jku":"https://x"}`) + "." + parts[1] + "." + parts[2],
		"expired":        sign(t, jose.EdDSA, fuzzKey, "ed", claimsAt(map[string]any{"exp": testNow.Add(-time.Hour).Unix()}), nil),
		"no_exp":         sign(t, jose.EdDSA, fuzzKey, "ed", claimsAt(map[string]any{"exp": nil}), nil),
		"legacy_k8s":     sign(t, jose.EdDSA, fuzzKey, "ed", claimsAt(map[string]any{"kubernetes.io": nil}), nil),
		"json_serial":    `{"payload":"` + parts[1] + `","protected":"` + parts[0] + `","signature":"` + parts[2] + `"}`,
		"jwe":            "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a.b.c.d",
		"dup_header_key": b64(`{"alg":"EdDSA","kid":"ed","kid":"x"}`) + "." + parts[1] + "." + parts[2],
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzVerify")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, tok := range seeds {
		body := fmt.Sprintf("go test fuzz v1\nstring(%q)\n", tok)
		if !write {
			got, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil || string(got) != body {
				t.Errorf("seed %s is missing or stale (regenerate with STINT_WRITE_CORPUS=1): %v", name, err)
			}
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFuzzSeedValidTokenVerifies(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzVerify", "valid"))
	if err != nil {
		t.Fatal(err)
	}
	var tok string
	if _, err := fmt.Sscanf(strings.SplitN(string(data), "\n", 2)[1], "string(%q)", &tok); err != nil {
		t.Fatal(err)
	}
	if _, err := fuzzVerifier(t).Verify(context.Background(), tok); err != nil {
		t.Fatalf("the valid seed no longer verifies, so fuzzing starts from rejected input only: %v", err)
	}
}
