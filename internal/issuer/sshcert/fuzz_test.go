package sshcert

import (
	"errors"
	"testing"

	"github.com/stint-dev/stint/internal/core"
)

// FuzzParsePublicKey: any text either parses to a key stint may certify
// or fails with a client error, never a panic or an internal error.
func FuzzParsePublicKey(f *testing.F) {
	f.Add("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHGp0w7ZbSBjxNgNqBkW5MJBQh5dFn4aTq4IsuNzKJzE me@host")
	f.Add("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC x")
	f.Add("ssh-dss AAAA")
	f.Add("")
	f.Fuzz(func(t *testing.T, text string) {
		pub, err := ParsePublicKey(text)
		if err != nil {
			var ce *core.Error
			if !errors.As(err, &ce) || ce.Kind != core.KindInvalid {
				t.Fatalf("error is not a client error: %v", err)
			}
			return
		}
		if pub == nil {
			t.Fatal("nil key without error")
		}
	})
}
