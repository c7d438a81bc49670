// Package identity verifies presented identities (platform tokens,
// certificates, signed requests) and turns them into core.Principals.
// One subpackage per kind implements Verifier.
package identity

import (
	"context"

	"github.com/stint-dev/stint/internal/core"
)

// Verifier verifies one kind of presented identity for one configured
// identity provider.
type Verifier interface {
	// Name is the configured provider name.
	Name() string
	// Verify checks proof and returns the principal. Every failure is
	// returned as-is (the caller wraps it as core.Unauthenticated); the
	// error text is the precise reason for logs and audit and must never
	// contain the token.
	Verify(ctx context.Context, proof string) (core.Principal, error)
}
