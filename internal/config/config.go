// Package config loads stint's YAML configuration strictly (unknown keys
// are errors), fills defaults, and validates, reporting every problem at
// once with its file and line.
package config

import (
	"time"
)

// Config is the whole configuration file.
type Config struct {
	Server            Server             `yaml:"server"`
	IdentityProviders []IdentityProvider `yaml:"identity_providers"`
	Targets           []Target           `yaml:"targets"`
	Policies          []Policy           `yaml:"policies"`
	Audit             Audit              `yaml:"audit"`
	Leases            Leases             `yaml:"leases"`

	// File is the path the config was loaded from ("" for built-in configs).
	File string `yaml:"-"`
	// lines maps a field path ("targets[0].roles.api.default_ttl") to its line.
	lines map[string]int
}

// Server configures the listener, the store and token issuance.
type Server struct {
	Listen    string `yaml:"listen"`
	IssuerURL string `yaml:"issuer_url"`
	// Store is sqlite:///path/to/file.db or postgres://user@host/db.
	Store string `yaml:"store"`
	// KEKFile holds the key-encryption key; default: beside the SQLite file.
	KEKFile string `yaml:"kek_file"`
	// AdminSocket is a Unix socket whose callers are admins (the bootstrap
	// path), guarded by file permissions; "" disables it.
	AdminSocket      string   `yaml:"admin_socket"`
	TLS              TLS      `yaml:"tls"`
	SigningAlgorithm string   `yaml:"signing_algorithm"`
	SessionTTL       Duration `yaml:"session_ttl"`
	// MaxRequestBytes bounds every request body.
	MaxRequestBytes int64 `yaml:"max_request_bytes"`
	// AuthFailuresPerMinute is how many invalid identities one source
	// address may present per minute before getting 429 until the minute
	// ends (default 100; -1: no bound).
	AuthFailuresPerMinute int `yaml:"auth_failures_per_minute"`
	// MaxInventoryBytes bounds a credential inventory report (POST
	// /v1/inventory), which may be far larger than other requests.
	MaxInventoryBytes int64 `yaml:"max_inventory_bytes"`
	// VerifiedTokenCache is how long a verified JWT is trusted without a
	// new signature check (never past its expiry); default 30s, 0s: off.
	VerifiedTokenCache *Duration `yaml:"verified_token_cache"`
	LogLevel           string    `yaml:"log_level"`
}

// TLS configures HTTPS on the listener; both files or neither.
type TLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// IdentityProvider is one trust source for presented identities.
type IdentityProvider struct {
	Name      string   `yaml:"name"`
	Type      string   `yaml:"type"`
	Issuer    string   `yaml:"issuer"`
	JWKSFile  string   `yaml:"jwks_file"`
	JWKSURL   string   `yaml:"jwks_url"`
	Audiences []string `yaml:"audiences"`
	// Attributes are added to every principal this provider verifies.
	Attributes map[string]string `yaml:"attributes"`
	// Claims maps attribute name to claim name (oidc; nested as "a.b").
	Claims       map[string]string `yaml:"claims"`
	Algorithms   []string          `yaml:"algorithms"`
	SubjectClaim string            `yaml:"subject_claim"`
	// aws-iam: signed GetCallerIdentity proofs (see aws.go).
	AWSProvider `yaml:",inline"`
}

// Target is a system stint mints credentials for. Which fields apply
// depends on Type; Validate reports fields set for the wrong type.
type Target struct {
	Name  string          `yaml:"name"`
	Type  string          `yaml:"type"`
	Roles map[string]Role `yaml:"roles"`

	// postgres, mysql: admin connection; its password by reference.
	DSN          string `yaml:"dsn"`
	PasswordFile string `yaml:"password_file"`
	PasswordEnv  string `yaml:"password_env"`
	MaxConns     int    `yaml:"max_conns"`
	// Host, Port, Database override what the returned credential names.
	Host     string `yaml:"host"`
	Port     int    `yaml:"port"`
	Database string `yaml:"database"`

	// NamePrefix starts every generated database user name (default "stint").
	NamePrefix string `yaml:"name_prefix"`

	// http: an upstream API called through /proxy/{target}/… (see http.go).
	HTTP `yaml:",inline"`
	// ssh, x509: the certificate authority (see certs.go).
	CA `yaml:",inline"`
	// aws-sts: STS region and endpoint (see aws.go).
	AWSTarget `yaml:",inline"`
}

// Role is one shape of credential on a target.
type Role struct {
	DefaultTTL Duration `yaml:"default_ttl"`
	// jwt
	Audience string            `yaml:"audience"`
	Scopes   []string          `yaml:"scopes"`
	Claims   map[string]string `yaml:"claims"`
	// postgres, mysql
	Creation   string `yaml:"creation"`
	Revocation string `yaml:"revocation"`
	Renewal    string `yaml:"renewal"`
	// http: the methods and paths (exact, or a prefix ending in /*) this role allows.
	Methods []string `yaml:"methods"`
	Paths   []string `yaml:"paths"`
	// ssh, x509: certificate shape (see certs.go).
	CertRole `yaml:",inline"`
	// aws-sts: the IAM role and how the session is shaped (see aws.go).
	AWSRole `yaml:",inline"`
}

// Policy is one CEL rule.
type Policy struct {
	Name        string            `yaml:"name"`
	Grants      []string          `yaml:"grants"`
	When        string            `yaml:"when"`
	MaxTTL      Duration          `yaml:"max_ttl"`
	Deny        bool              `yaml:"deny"`
	Constraints map[string]string `yaml:"constraints"`
}

// Audit configures the audit record and its sinks.
type Audit struct {
	Sinks []Sink `yaml:"sinks"`
}

// Sink is one audit destination.
type Sink struct {
	// Type is file, stdout, syslog or http.
	Type string `yaml:"type"`
	// Required sinks must hold an event durably before the request goes on
	// (fail closed); best-effort sinks never block a request.
	Required *bool `yaml:"required"`
	// file: path; Fsync makes it durable (group commit), default true.
	Path  string `yaml:"path"`
	Fsync *bool  `yaml:"fsync"`
	// MaxBytes rotates the file at this size (0: never); SIGHUP reopens it
	// after an external rotation.
	MaxBytes int64 `yaml:"max_bytes"`
	// syslog: address as udp://host:port, tcp://host:port or tls://host:port.
	Address string `yaml:"address"`
	// CAFile verifies the syslog TLS server (default: system roots).
	CAFile string `yaml:"ca_file"`
	// Format: syslog json|cef; http json|ndjson|splunk-hec.
	Format string `yaml:"format"`
	// http: endpoint, token by reference.
	URL       string `yaml:"url"`
	TokenFile string `yaml:"token_file"`
	TokenEnv  string `yaml:"token_env"`
	// http and syslog: the on-disk spool events wait in while the receiver
	// is down. Required for http and for a best-effort syslog sink; a
	// required syslog sink without one sends synchronously.
	SpoolDir      string `yaml:"spool_dir"`
	MaxSpoolBytes int64  `yaml:"max_spool_bytes"`
	// OnFull is what a full spool does: fail (reject new events; a
	// required sink then fails the request) or drop_oldest (discard the
	// oldest, with an audit.gap event). Default: fail for required sinks,
	// drop_oldest for best-effort ones.
	OnFull string `yaml:"on_full"`
	// Types and Outcomes filter what this sink receives (type prefixes
	// such as "admin."); Exclude inverts the filter.
	Types    []string `yaml:"types"`
	Outcomes []string `yaml:"outcomes"`
	Exclude  bool     `yaml:"exclude"`
}

// Leases configures the lease manager.
type Leases struct {
	MaxAttempts int      `yaml:"max_attempts"`
	MaxBackoff  Duration `yaml:"max_backoff"`
	FailedRetry Duration `yaml:"failed_retry"`
	// MaxActivePerPrincipal caps the live leases of one principal and
	// MaxActivePerRole those of one target/role (0: unlimited); a request
	// over the cap gets 429 and an audit event.
	MaxActivePerPrincipal int `yaml:"max_active_per_principal"`
	MaxActivePerRole      int `yaml:"max_active_per_role"`
	// Retention is how long a revoked lease is kept past its expiry before
	// the reaper deletes it (default 30 days; 0s: kept forever). The audit
	// log keeps the permanent record.
	Retention *Duration `yaml:"retention"`
}

// Duration is a time.Duration written as "15m" in YAML.
type Duration time.Duration

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Or returns the duration d points to, or def when d is nil (a field left
// unset in a config that did not go through SetDefaults).
func (d *Duration) Or(def time.Duration) time.Duration {
	if d == nil {
		return def
	}
	return d.D()
}
