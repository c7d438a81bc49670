// Package audit records every decision, issuance, use and revocation as a
// hash-chained event and fans it out to sinks (file, syslog, HTTP, stdout).
package audit

import (
	"context"
	"time"
)

// Event types. New types are added here and documented in docs/audit.md.
const (
	AuthSuccess            = "auth.success"
	AuthFailure            = "auth.failure"
	PolicyAllow            = "policy.allow"
	PolicyDeny             = "policy.deny"
	CredentialIssue        = "credential.issue"
	CredentialRenew        = "credential.renew"
	CredentialRevoke       = "credential.revoke"
	CredentialRevokeFailed = "credential.revoke_failed"
	CredentialUse          = "credential.use"
	TokenExchange          = "token.exchange"
	AdminPrefix            = "admin."
	Checkpoint             = "audit.checkpoint"
)

// Outcomes.
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
	OutcomeDenied  = "denied"
)

// Actor is the principal as the audit record shows it: never a token.
type Actor struct {
	Provider   string         `json:"provider,omitempty"`
	Kind       string         `json:"kind,omitempty"`
	Subject    string         `json:"subject,omitempty"`
	Attributes map[string]any `json:"attributes,omitempty"`
	// TokenID is the jti of the presented token, or an HMAC fingerprint of
	// it when it had none.
	TokenID string `json:"token_id,omitempty"`
}

// Event is one item-level audit record. Secrets never appear in it.
type Event struct {
	// Filled by the Log: sequence number, time, chain hashes.
	Seq      uint64    `json:"seq"`
	Time     time.Time `json:"time"`
	ID       string    `json:"id"`
	PrevHash string    `json:"prev_hash"`
	Hash     string    `json:"hash"`

	Type      string `json:"type"`
	RequestID string `json:"request_id,omitempty"`
	Source    string `json:"source,omitempty"` // remote address
	Principal *Actor `json:"principal,omitempty"`
	Human     *Actor `json:"human,omitempty"`
	Target    string `json:"target,omitempty"`
	Role      string `json:"role,omitempty"`
	LeaseID   string `json:"lease_id,omitempty"`
	Rule      string `json:"rule,omitempty"`
	Reason    string `json:"reason,omitempty"`
	Outcome   string `json:"outcome"`
	Error     string `json:"error,omitempty"`
	// Details carries type-specific, non-secret fields (ttl, audience, scope, jti, counts).
	Details map[string]any `json:"details,omitempty"`

	// line caches the canonical encoding made while chaining, so sinks do
	// not encode the event a second time (see lineOf).
	line []byte
}

// Sink receives chained events. Lifecycle: constructed from config →
// Write (many, from one goroutine, in sequence order) → Close.
type Sink interface {
	// Name identifies the sink in logs and metrics.
	Name() string
	// Write delivers a batch of events. For a required sink, returning nil
	// means the events are durable.
	Write(ctx context.Context, events []Event) error
	Close() error
}

// Recorder is what the rest of stint uses to record events.
type Recorder interface {
	// Record chains e and delivers it to every sink; it returns when every
	// required sink has it durably (or failed), so issuance can fail closed.
	Record(ctx context.Context, e Event) error
}
