package core

import "time"

// LeaseState is where a lease is in its life.
type LeaseState string

const (
	LeasePending  LeaseState = "pending"  // recorded, target not yet (known to be) touched
	LeaseActive   LeaseState = "active"   // credential exists in the target
	LeaseRevoking LeaseState = "revoking" // revocation requested, not yet confirmed
	LeaseRevoked  LeaseState = "revoked"  // gone from the target (terminal)
	LeaseFailed   LeaseState = "failed"   // revocation kept failing; retried slowly
)

// Lease records one issued credential and everything needed to revoke it.
type Lease struct {
	ID         string     `json:"lease_id"`
	Target     string     `json:"target"`
	TargetType string     `json:"target_type"`
	Role       string     `json:"role"`
	Provider   string     `json:"provider"`
	Subject    string     `json:"subject"`
	Human      string     `json:"human,omitempty"` // subject of the human, if any
	Rule       string     `json:"rule"`
	IssuedAt   time.Time  `json:"issued_at"`
	ExpiresAt  time.Time  `json:"expires_at"`
	MaxExpires time.Time  `json:"max_expires_at"` // renewals never pass this
	State      LeaseState `json:"state"`
	Renewable  bool       `json:"renewable"`
	Attempts   int        `json:"attempts"`
	LastError  string     `json:"last_error,omitempty"`
	// NextAttempt is when the reaper should next try to revoke (zero: at ExpiresAt).
	NextAttempt time.Time `json:"next_attempt_at,omitempty"`
	// IssuerData is what the issuer needs to revoke, encrypted by keys before storing.
	IssuerData []byte    `json:"-"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// Credential is what the caller receives: public fields per target type
// (access_token, username, password, certificate, …).
type Credential map[string]string
