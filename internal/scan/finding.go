package scan

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"unicode/utf8"
)

// Finding is one hardcoded credential. It is designed to be posted as-is to
// an inventory endpoint: it carries where the credential is, what kind it
// is, how to replace it and a stable fingerprint, but never the secret.
type Finding struct {
	RuleID      string `json:"rule_id"`
	Description string `json:"description"`
	File        string `json:"file"`
	Line        int    `json:"line"`
	Column      int    `json:"column"`
	// Redacted shows at most the first 4 and last 2 characters.
	Redacted string `json:"redacted"`
	// Fingerprint is hex of the first 16 bytes of HMAC-SHA256(key, secret);
	// the same secret has the same fingerprint wherever it is found.
	Fingerprint string `json:"fingerprint"`
	Confidence  string `json:"confidence"` // "high" (checksum or parse verified) or "medium"

	// Git history fields, set only by ScanGit.
	Commit        string `json:"commit,omitempty"`
	Author        string `json:"author,omitempty"`
	Date          string `json:"date,omitempty"`
	PresentAtHead *bool  `json:"present_at_head,omitempty"`

	Remediation Remediation `json:"remediation"`
}

// Remediation names the stint pattern that replaces a static credential.
type Remediation struct {
	TargetType string `json:"target_type"` // stint target type: http, postgres, mysql, aws-sts, ssh, x509, jwt
	Pattern    string `json:"pattern"`     // e.g. "stint proxy", "stint exec"
	Summary    string `json:"summary"`
}

// DefaultFingerprintKey is the HMAC key used when the caller sets none. It
// is public, so with it the fingerprint is only a domain-separated SHA-256:
// set a private key (Options.FingerprintKey) when findings leave the machine
// and the secrets may be low-entropy passwords.
const DefaultFingerprintKey = "stint-scan-fingerprint-v1"

// fingerprint returns hex(HMAC-SHA256(key, secret)[:16]).
func fingerprint(key []byte, secret []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write(secret)
	return hex.EncodeToString(mac.Sum(nil)[:16])
}

// redact keeps at most the first 4 and last 2 characters, and fewer for
// short secrets so that never more than a third of one is shown.
func redact(secret []byte) string {
	s := string(secret)
	n := utf8.RuneCountInString(s)
	head, tail := 4, 2
	switch {
	case n < 9:
		head, tail = 0, 0
	case n < 18:
		head, tail = 2, 0
	}
	r := []rune(s)
	if head+tail >= len(r) {
		return "…"
	}
	out := string(r[:head]) + "…"
	if tail > 0 {
		out += string(r[len(r)-tail:])
	}
	return out
}
