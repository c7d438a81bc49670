package config

import (
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Defaults used when a field is unset.
const (
	DefaultListen          = "127.0.0.1:8420"
	DefaultStore           = "sqlite:///var/lib/stint/stint.db"
	DefaultAlgorithm       = "ES256"
	DefaultSessionTTL      = 15 * time.Minute
	DefaultRoleTTL         = 15 * time.Minute
	DefaultMaxRequestBytes = 64 << 10
	// DefaultMaxInventoryBytes fits a report of 10,000 findings.
	DefaultMaxInventoryBytes = 8 << 20
	DefaultAudience          = "stint"
	// DefaultVerifiedTokenCache matches identity.DefaultCacheTTL.
	DefaultVerifiedTokenCache = 30 * time.Second
	// DefaultLeaseRetention keeps revoked leases 30 days past expiry.
	DefaultLeaseRetention = 30 * 24 * time.Hour
)

// SetDefaults fills unset fields. It never validates; Validate never mutates.
func (c *Config) SetDefaults() {
	s := &c.Server
	if s.Listen == "" {
		s.Listen = DefaultListen
	}
	if s.IssuerURL == "" {
		scheme := "http"
		if s.TLS.CertFile != "" {
			scheme = "https"
		}
		s.IssuerURL = scheme + "://" + s.Listen
	}
	s.IssuerURL = strings.TrimRight(s.IssuerURL, "/")
	if s.Store == "" {
		s.Store = DefaultStore
	}
	if s.KEKFile == "" {
		s.KEKFile = os.Getenv("STINT_KEK_FILE")
	}
	if s.KEKFile == "" {
		if p, ok := SQLitePath(s.Store); ok {
			s.KEKFile = filepath.Join(filepath.Dir(p), "kek")
		}
	}
	if s.SigningAlgorithm == "" {
		s.SigningAlgorithm = DefaultAlgorithm
	}
	if s.SessionTTL == 0 {
		s.SessionTTL = Duration(DefaultSessionTTL)
	}
	if s.MaxRequestBytes == 0 {
		s.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if s.MaxInventoryBytes == 0 {
		s.MaxInventoryBytes = DefaultMaxInventoryBytes
	}
	if s.VerifiedTokenCache == nil {
		d := Duration(DefaultVerifiedTokenCache)
		s.VerifiedTokenCache = &d
	}
	if s.LogLevel == "" {
		s.LogLevel = "info"
	}
	if c.Leases.Retention == nil {
		d := Duration(DefaultLeaseRetention)
		c.Leases.Retention = &d
	}
	for i := range c.IdentityProviders {
		p := &c.IdentityProviders[i]
		if len(p.Audiences) == 0 {
			p.Audiences = []string{DefaultAudience}
		}
	}
	for i := range c.Targets {
		t := &c.Targets[i]
		setHTTPDefaults(t)
		for name, r := range t.Roles {
			if r.DefaultTTL == 0 {
				r.DefaultTTL = Duration(DefaultRoleTTL)
			}
			t.Roles[name] = r
		}
	}
	for i := range c.Audit.Sinks {
		k := &c.Audit.Sinks[i]
		if k.Required == nil {
			req := k.Type == "file"
			k.Required = &req
		}
		if (k.Type == "http" || (k.Type == "syslog" && k.SpoolDir != "")) && k.OnFull == "" {
			k.OnFull = "drop_oldest"
			if *k.Required {
				k.OnFull = "fail"
			}
		}
		if k.Type == "file" && k.Fsync == nil {
			t := true
			k.Fsync = &t
		}
	}
}

// SQLitePath returns the file path of a sqlite:// store URL.
func SQLitePath(store string) (string, bool) {
	p, ok := strings.CutPrefix(store, "sqlite://")
	if !ok || p == "" {
		return "", false
	}
	return p, true
}

// IsPostgres reports whether the store URL selects PostgreSQL.
func IsPostgres(store string) bool {
	return strings.HasPrefix(store, "postgres://") || strings.HasPrefix(store, "postgresql://")
}
