// Package issuer defines how stint mints a credential on a target.
// One subpackage per target type implements it.
package issuer

import (
	"context"
	"time"

	"github.com/stint-dev/stint/internal/core"
)

// Issuer mints and revokes credentials on one configured target.
//
// Lifecycle, per lease: the lease manager stores the lease as pending with
// its ID, then calls Issue; on success it stores Result.Internal (sealed)
// and marks the lease active. Later it calls Revoke with the same lease ID
// and Internal — which may be nil when stint crashed between the two
// phases, so Revoke must be able to find what to remove from the lease ID
// and role alone (e.g. a user name derived from the lease ID).
// Revoke must succeed when the credential is already gone.
type Issuer interface {
	// Roles lists the role names this target offers.
	Roles() []string
	Issue(ctx context.Context, req Request) (Result, error)
	Revoke(ctx context.Context, req RevokeRequest) error
}

// Renewer is implemented by issuers whose credentials can be extended in place.
type Renewer interface {
	Renew(ctx context.Context, req RenewRequest) error
}

// NoCleanup is implemented by issuers whose credentials need no cleanup
// when they were never handed out: they only sign (jwt, ssh, x509), or mint
// credentials that cannot be recalled and expire on their own (aws-sts).
// The lease manager then records the lease once, already active, after
// Issue: the pending phase exists to remove what a crash left behind in a
// target, and there is nothing to remove, so it would only cost a durable
// write.
type NoCleanup interface {
	NeedsNoCleanup()
}

// IdempotentRevoke is implemented by issuers whose Revoke succeeds when
// the credential is already gone (the database targets: their default
// revocation drops the user IF EXISTS, and custom revocation statements
// must be idempotent too). A successful revocation's lease write may then
// skip the flush: if a crash loses it, the lease is revoked again when
// next due, and that finds nothing left to remove.
type IdempotentRevoke interface {
	RevokesIdempotently()
}

// Remote is implemented by NoCleanup issuers whose Issue waits on a
// network round trip (aws-sts calls STS). The lease manager then writes
// the lease while the issuer works, instead of after it, so the caller
// waits for the round trip or the lease's commit, whichever is longer,
// and then for the audit record alone. Such a credential cannot be
// recalled, so the audit record is its durable record and the lease's
// writes may skip the flush (store.Lazy).
type Remote interface {
	NoCleanup
	IssuesRemotely()
}

// Request asks for one credential.
type Request struct {
	LeaseID   string
	Role      string
	Principal core.Principal
	Human     *core.Principal
	Rule      string
	IssuedAt  time.Time
	ExpiresAt time.Time
	// Params are role-specific inputs from the caller (public_key, csr, scope).
	Params map[string]string
}

// Result is what Issue returns.
type Result struct {
	Credential core.Credential
	// Internal is what Revoke needs; stored encrypted with the lease.
	Internal []byte
	// ExpiresAt may shorten the lease (zero: the requested expiry).
	ExpiresAt time.Time
	Renewable bool
	// Audit holds non-secret facts that identify the credential elsewhere
	// (an AWS access key id for CloudTrail); they go into the details of
	// its credential.issue audit event.
	Audit map[string]any
}

// RevokeRequest asks to remove a credential.
type RevokeRequest struct {
	LeaseID  string
	Role     string
	Internal []byte
}

// RenewRequest asks to extend a credential to ExpiresAt.
type RenewRequest struct {
	LeaseID   string
	Role      string
	Internal  []byte
	ExpiresAt time.Time
}
