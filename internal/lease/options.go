// Package lease keeps every revocable credential on a lease: it records the
// lease before the target is touched, activates it after, renews it within
// its max TTL, and revokes it on request, on expiry (the reaper) or after a
// crash, retrying failed revocations with backoff, per target, so a dead
// target never delays another.
package lease

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stint-dev/stint/internal/audit"
	"github.com/stint-dev/stint/internal/issuer"
	"github.com/stint-dev/stint/internal/store"
)

// Sealer encrypts the issuer data stored with a lease (keys.Sealer does).
// The lease id is the additional data, so sealed data cannot be moved to
// another lease.
type Sealer interface {
	Seal(plaintext, aad []byte) ([]byte, error)
	Open(sealed, aad []byte) ([]byte, error)
}

// DefaultTTLer is implemented by issuers whose roles have a default TTL;
// Issue uses it when a request gives no TTL.
type DefaultTTLer interface {
	DefaultTTL(role string) time.Duration
}

// Limits caps active (pending or active) leases, protecting a target from a
// runaway agent. Zero means unlimited.
type Limits struct {
	// PerPrincipal caps leases held by one principal (provider + subject).
	PerPrincipal int
	// PerRole caps leases on one target/role.
	PerRole int
}

// TestHooks let tests stop Issue between its phases, as a crash would.
// When a hook returns an error, Issue returns it at once and does nothing
// more: the lease stays as it is in the store. Nil in production.
type TestHooks struct {
	// AfterPending runs after the pending lease is stored, before the target is touched.
	AfterPending func(leaseID string) error
	// AfterIssue runs after the issuer made the credential, before the lease is activated.
	AfterIssue func(leaseID string) error
}

// Options configure a Manager. Store, Issuers and Audit are required.
type Options struct {
	Store store.Store
	// Issuers by target name.
	Issuers map[string]issuer.Issuer
	// TargetTypes by target name (postgres, mysql, …), recorded on leases.
	TargetTypes map[string]string
	// Sealer encrypts issuer data at rest. Nil stores it in clear: tests only.
	Sealer Sealer
	Audit  audit.Recorder
	// Now is the clock (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
	// Registerer receives the metrics (nil: none).
	Registerer prometheus.Registerer

	// Holder is this replica's id for the reaper lock (default host:pid:random).
	Holder string
	// ReapInterval is how often the reaper looks for due leases (default
	// 500ms, so a lease is revoked within about 2 s of expiry).
	ReapInterval time.Duration
	// LockTTL is how long the reaper lock outlives its holder (default 5s):
	// the time another replica needs to take over after one dies.
	LockTTL time.Duration

	// MaxAttempts before a lease becomes failed (default 10).
	MaxAttempts int
	// BaseBackoff and MaxBackoff bound the retry delay, which doubles per
	// attempt with jitter (defaults 1s and 5m).
	BaseBackoff, MaxBackoff time.Duration
	// FailedRetry is the slow retry period of failed leases (default 15m).
	FailedRetry time.Duration
	// Workers revoking concurrently per target (default 8).
	Workers int
	// RevokeTimeout bounds one revocation attempt (default 10s).
	RevokeTimeout time.Duration
	// IssueTimeout bounds the issuer's Issue call; a pending lease older
	// than twice this is taken for a crash and revoked (default 15s).
	IssueTimeout time.Duration

	// Retention is how long a revoked lease is kept past its expiry before
	// the reaper deletes it (0: kept forever). Counted from expiry, not
	// revocation, so a revoked SSH certificate stays in the KRL until it
	// expires; the audit log keeps the permanent record.
	Retention time.Duration

	Limits Limits
	Hooks  *TestHooks
}

func (o *Options) defaults() error {
	if o.Store == nil {
		return fmt.Errorf("lease: a store is required")
	}
	if o.Audit == nil {
		return fmt.Errorf("lease: an audit recorder is required")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Holder == "" {
		h, _ := os.Hostname()
		o.Holder = fmt.Sprintf("%s:%d:%s", h, os.Getpid(), uuid.NewString()[:8])
	}
	setDur(&o.ReapInterval, 500*time.Millisecond)
	setDur(&o.LockTTL, 5*time.Second)
	setDur(&o.BaseBackoff, time.Second)
	setDur(&o.MaxBackoff, 5*time.Minute)
	setDur(&o.FailedRetry, 15*time.Minute)
	setDur(&o.RevokeTimeout, 10*time.Second)
	setDur(&o.IssueTimeout, 15*time.Second)
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 10
	}
	if o.Workers <= 0 {
		o.Workers = 8
	}
	if o.LockTTL < 2*o.ReapInterval {
		return fmt.Errorf("lease: lock ttl %s must be at least twice the reap interval %s", o.LockTTL, o.ReapInterval)
	}
	return nil
}

func setDur(d *time.Duration, v time.Duration) {
	if *d <= 0 {
		*d = v
	}
}

// claimTTL is how long a claimed revocation is left to its claimer before
// the reaper takes it as abandoned (the claimer died).
func (o *Options) claimTTL() time.Duration { return 3*o.RevokeTimeout + o.LockTTL }
