// Package store persists stint's state: signing keys (encrypted), leases and
// small metadata records. Implementations live in sqlite/ and postgres/ and
// share one conformance suite in storetest/.
package store

import (
	"context"
	"time"

	"github.com/stint-dev/stint/internal/core"
)

// Store is the persistence boundary. Every method is safe for concurrent use.
// Lifecycle: Open (by URL) → Migrate → use → Close.
type Store interface {
	// Migrate brings the schema up to date; safe to call on every start.
	Migrate(ctx context.Context) error

	// GetMeta returns a metadata value, core.ErrNotFound when unset.
	GetMeta(ctx context.Context, key string) ([]byte, error)
	// PutMetaIfAbsent stores value under key unless a value exists; it
	// returns the value now stored (the existing one when there was one).
	PutMetaIfAbsent(ctx context.Context, key string, value []byte) ([]byte, error)

	// PutKey inserts or replaces a key record by ID.
	PutKey(ctx context.Context, k KeyRecord) error
	// ListKeys returns the keys of one purpose, newest first.
	ListKeys(ctx context.Context, purpose string) ([]KeyRecord, error)

	// CreateLease inserts a new lease (normally in state pending).
	CreateLease(ctx context.Context, l core.Lease) error
	// GetLease returns a lease by id, core.ErrNotFound when absent.
	GetLease(ctx context.Context, id string) (core.Lease, error)
	// UpdateLease writes l if the stored lease is in one of the states in
	// from (any state when from is empty); it reports whether it wrote.
	// This compare-and-set is how replicas avoid revoking a lease twice.
	UpdateLease(ctx context.Context, l core.Lease, from ...core.LeaseState) (bool, error)
	// ListLeases returns leases matching f, ordered by issued_at then id.
	ListLeases(ctx context.Context, f LeaseFilter) ([]core.Lease, error)
	// DueLeases returns up to limit leases in states pending/active/revoking/failed
	// whose due time (next_attempt_at if set, else expires_at) is at or before
	// now, oldest due first, through an index (never a full scan).
	DueLeases(ctx context.Context, now time.Time, limit int) ([]core.Lease, error)
	// CountLeases counts leases matching f.
	CountLeases(ctx context.Context, f LeaseFilter) (int, error)

	// AcquireLock takes or extends the named lock for holder until now+ttl
	// and reports whether holder holds it. Replicas sharing one database use
	// it to choose the one that runs the reaper; a holder that stops
	// extending loses the lock when ttl passes.
	AcquireLock(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	// ReleaseLock gives the lock up if holder holds it.
	ReleaseLock(ctx context.Context, name, holder string) error

	Close() error
}

// KeyRecord is one stored key. Private holds the private key encrypted
// under the key-encryption key; Public is the public JWK or key in clear.
type KeyRecord struct {
	ID        string    // kid
	Purpose   string    // "signing", "audit", "ssh-ca:<target>", "x509-ca:<target>", "upstream:<target>"
	Algorithm string    // ES256, EdDSA, RS256, …
	Private   []byte    // sealed
	Public    []byte    // clear (e.g. JWK JSON)
	CreatedAt time.Time
	// NotAfter is when the key may be dropped from the JWKS (zero: in use).
	NotAfter time.Time
}

// LeaseFilter selects leases; empty fields match anything.
type LeaseFilter struct {
	IDs      []string
	Subject  string
	Provider string
	Human    string
	Target   string
	Role     string
	Rule     string
	States   []core.LeaseState
	Limit    int // 0: no limit
	AfterID  string
}
