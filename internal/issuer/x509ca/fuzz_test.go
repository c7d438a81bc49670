package x509ca

import (
	"errors"
	"testing"

	"github.com/stint-dev/stint/internal/core"
)

// FuzzParseCSR: any text either parses to a request with a verified
// signature and an accepted key, or fails with a client error.
func FuzzParseCSR(f *testing.F) {
	f.Add("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n")
	f.Add("MIIB")
	f.Add("")
	f.Fuzz(func(t *testing.T, text string) {
		csr, err := ParseCSR(text)
		if err != nil {
			var ce *core.Error
			if !errors.As(err, &ce) || ce.Kind != core.KindInvalid {
				t.Fatalf("error is not a client error: %v", err)
			}
			return
		}
		if csr.CheckSignature() != nil || checkKey(csr.PublicKey) != nil {
			t.Fatal("accepted a request that does not verify")
		}
	})
}
