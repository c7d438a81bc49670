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
	// It writes what a lease's life changes — state, expiry, renewability,
	// attempts, errors, issuer data, update time; the lease's identity
	// (target, type, role, principal, human, rule, issued_at) is fixed at
	// CreateLease and l's values for it are ignored.
	UpdateLease(ctx context.Context, l core.Lease, from ...core.LeaseState) (bool, error)
	// ClaimExpiredLease writes l as UpdateLease does, but only if the
	// stored lease is active and its expiry is at or before now: the
	// reaper's claim of an expired lease, which must not take one renewed
	// since the reaper read it.
	ClaimExpiredLease(ctx context.Context, l core.Lease, now time.Time) (bool, error)
	// ExpireLeases marks revoked, in one write, those of the leases named
	// that are still active — credentials that ended by themselves and
	// need nothing undone — and returns the ids it changed. It writes the
	// state, clears the last error and the next attempt, and sets the
	// update time to at; a lease in any other state is left as it is.
	ExpireLeases(ctx context.Context, ids []string, at time.Time) ([]string, error)
	// ListLeases returns leases matching f, ordered by issued_at then id.
	ListLeases(ctx context.Context, f LeaseFilter) ([]core.Lease, error)
	// DueLeases returns up to limit leases in states pending/active/revoking/failed
	// whose due time (next_attempt_at if set, else expires_at) is at or before
	// now, oldest due first, through an index (never a full scan).
	DueLeases(ctx context.Context, now time.Time, limit int) ([]core.Lease, error)
	// CountLeases counts leases matching f.
	CountLeases(ctx context.Context, f LeaseFilter) (int, error)
	// Flush makes every write committed so far durable, including Lazy
	// ones: a barrier for a decision taken on state a Lazy write made.
	Flush(ctx context.Context) error
	// PruneLeases deletes up to limit (positive) revoked leases whose
	// expires_at is before expiredBefore, oldest expiry first, through an
	// index, and returns how many it deleted. Leases in any other state
	// are never deleted.
	PruneLeases(ctx context.Context, expiredBefore time.Time, limit int) (int, error)

	// AcquireLock takes or extends the named lock for holder until now+ttl
	// and reports whether holder holds it. Replicas sharing one database use
	// it to choose the one that runs the reaper; a holder that stops
	// extending loses the lock when ttl passes.
	AcquireLock(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	// ReleaseLock gives the lock up if holder holds it.
	ReleaseLock(ctx context.Context, name, holder string) error

	// UpsertFindings records one report of the credential inventory: the
	// full snapshot of source's findings at now, in one transaction.
	// Findings not seen before are inserted with FirstSeen now; seen ones
	// get LastSeen now and keep FirstSeen; a finding reported with
	// PresentAtHead false, or an open one of source missing from the
	// report, is marked remediated at now; a remediated one reported again
	// at HEAD is reopened. Findings are keyed by (source, fingerprint,
	// file); the report's Source, FirstSeen, LastSeen and RemediatedAt are
	// ignored. The diff counts what the report changed.
	UpsertFindings(ctx context.Context, source string, findings []Finding, now time.Time) (InventoryDiff, error)
	// ListFindings returns inventory findings matching f, ordered by
	// source, first_seen, fingerprint and file.
	ListFindings(ctx context.Context, f FindingFilter) ([]Finding, error)

	Close() error
}

// KeyRecord is one stored key. Private holds the private key encrypted
// under the key-encryption key; Public is the public JWK or key in clear.
type KeyRecord struct {
	ID        string // kid
	Purpose   string // "signing", "audit", "ssh-ca:<target>", "x509-ca:<target>", "upstream:<target>"
	Algorithm string // ES256, EdDSA, RS256, …
	Private   []byte // sealed
	Public    []byte // clear (e.g. JWK JSON)
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
	// ExpiresAfter, when set, keeps only leases that expire after it (the
	// SSH KRL needs revoked leases that are still valid, not all of them).
	ExpiresAfter time.Time
	Limit        int // 0: no limit
	AfterID      string
}

// Finding is one static credential in the inventory: where it is, what
// kind, and since when. It never holds the secret, only the scanner's
// fingerprint and redacted form.
type Finding struct {
	Source      string // repository or other label of the scanned tree
	Fingerprint string // hex HMAC-SHA256 prefix of the secret (scan.Finding.Fingerprint)
	File        string
	Rule        string
	Line        int
	Commit      string // git commit the finding was seen in; "" for a plain tree
	Redacted    string // at most a third of the secret (scan.Finding.Redacted)
	FirstSeen   time.Time
	LastSeen    time.Time
	// RemediatedAt is when the credential left HEAD (zero: still open).
	RemediatedAt time.Time
	// PresentAtHead is whether the last report saw it in the current tree
	// rather than only in history.
	PresentAtHead bool
}

// Open reports whether the credential is still present (not remediated).
func (f Finding) Open() bool { return f.RemediatedAt.IsZero() }

// InventoryDiff counts what one UpsertFindings report changed.
type InventoryDiff struct {
	New        int // findings never seen before in the source
	Present    int // open findings seen again at HEAD
	Reopened   int // remediated findings seen again at HEAD
	Remediated int // open findings now gone from HEAD
}

// FindingState selects open or remediated findings.
type FindingState string

// The states of an inventory finding.
const (
	FindingOpen       FindingState = "open"
	FindingRemediated FindingState = "remediated"
)

// FindingFilter selects inventory findings; empty fields match anything.
type FindingFilter struct {
	Source      string
	Rule        string
	Fingerprint string
	State       FindingState // "": both
	Limit       int          // 0: no limit
}
