package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// namePattern bounds names that appear in grants, URLs and metric labels.
var namePattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$`)

// grantPattern allows '*' wildcards within one segment.
var grantPattern = regexp.MustCompile(`^[a-zA-Z0-9_.*-]+/[a-zA-Z0-9_.*-]+$`)

// SQL target types share the dsn/creation/revocation keys.
func isSQL(typ string) bool { return typ == "postgres" || typ == "mysql" }

// Validate reports every structural problem at once, each with file:line.
// It does not know which identity provider or target types are built in,
// and does not compile CEL; app.Check adds those checks.
func (c *Config) Validate() error {
	var errs []error
	add := func(path, format string, args ...any) { errs = append(errs, c.Errorf(path, format, args...)) }

	s := c.Server
	if _, _, err := net.SplitHostPort(s.Listen); err != nil {
		add("server.listen", "want host:port: %v", err)
	}
	if u, err := url.Parse(s.IssuerURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		add("server.issuer_url", "want an absolute http(s) URL, got %q", s.IssuerURL)
	} else if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		add("server.issuer_url", "plain http is only allowed on loopback; use https")
	}
	switch {
	case IsPostgres(s.Store):
		if s.KEKFile == "" {
			add("server.kek_file", "required with a postgres store (or set STINT_KEK_FILE)")
		}
	default:
		if _, ok := SQLitePath(s.Store); !ok {
			add("server.store", "want sqlite:///path/file.db or postgres://…, got %q", redactURL(s.Store))
		}
	}
	switch s.SigningAlgorithm {
	case "ES256", "EdDSA", "RS256":
	default:
		add("server.signing_algorithm", "want ES256, EdDSA or RS256, got %q", s.SigningAlgorithm)
	}
	if (s.TLS.CertFile == "") != (s.TLS.KeyFile == "") {
		add("server.tls", "cert_file and key_file go together")
	}
	for _, f := range []struct{ path, file string }{{"server.tls.cert_file", s.TLS.CertFile}, {"server.tls.key_file", s.TLS.KeyFile}} {
		checkFile(f.file, f.path, add)
	}
	if s.MaxRequestBytes < 1024 || s.MaxRequestBytes > 64<<20 {
		add("server.max_request_bytes", "want between 1024 and 67108864")
	}
	if s.MaxInventoryBytes < 1024 || s.MaxInventoryBytes > 256<<20 {
		add("server.max_inventory_bytes", "want between 1024 and 268435456")
	}
	if c := s.VerifiedTokenCache; c != nil && (*c < 0 || c.D() > 10*time.Minute) {
		add("server.verified_token_cache", "want between 0s (off) and 10m")
	}
	switch s.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		add("server.log_level", "want debug, info, warn or error")
	}

	seen := map[string]string{}
	for i, p := range c.IdentityProviders {
		path := fmt.Sprintf("identity_providers[%d]", i)
		checkName(p.Name, path+".name", seen, add)
		switch p.Name {
		case "stint", "local", "unix-socket":
			// Principals of these providers are made by stint itself (its
			// session tokens, the admin socket, proxy socket peers).
			add(path+".name", "%q is reserved for stint's own principals", p.Name)
		}
		if p.Type == "" {
			add(path+".type", "required")
		}
		if p.JWKSFile != "" && p.JWKSURL != "" {
			add(path, "jwks_file and jwks_url are exclusive")
		}
		checkFile(p.JWKSFile, path+".jwks_file", add)
		c.validateAWSProvider(path, p, add)
		if p.JWKSURL != "" {
			if u, err := url.Parse(p.JWKSURL); err != nil || (u.Scheme != "https" && !(u.Scheme == "http" && isLoopback(u.Hostname()))) {
				add(path+".jwks_url", "want an https URL (http only on loopback)")
			}
		}
		for j, a := range p.Audiences {
			if a == "" {
				add(fmt.Sprintf("%s.audiences[%d]", path, j), "empty audience")
			}
		}
	}

	seen = map[string]string{}
	audiences := map[string]string{}
	for i, t := range c.Targets {
		path := fmt.Sprintf("targets[%d]", i)
		checkName(t.Name, path+".name", seen, add)
		if t.Name == "stint" {
			add(path+".name", `"stint" is reserved for stint's own grants (stint/admin)`)
		}
		if t.Type == "" {
			add(path+".type", "required")
		}
		if t.HTTP.Audience != "" && t.HTTP.Audience == c.Server.IssuerURL {
			add(path+".audience", "must differ from server.issuer_url (that audience is the stint session token)")
		}
		if len(t.Roles) == 0 {
			add(path+".roles", "at least one role is required")
		}
		c.validateHTTP(path, t, add)
		c.validateCerts(path, t, add)
		c.validateAWSTarget(path, t, add)
		if isSQL(t.Type) {
			if t.DSN == "" {
				add(path+".dsn", "required for a %s target", t.Type)
			}
			if t.PasswordFile != "" && t.PasswordEnv != "" {
				add(path, "password_file and password_env are exclusive")
			}
			checkFile(t.PasswordFile, path+".password_file", add)
			if t.PasswordEnv != "" && os.Getenv(t.PasswordEnv) == "" {
				add(path+".password_env", "environment variable %s is not set", t.PasswordEnv)
			}
		} else {
			for k, v := range map[string]bool{"dsn": t.DSN != "", "password_file": t.PasswordFile != "", "password_env": t.PasswordEnv != ""} {
				if v {
					add(path+"."+k, "not used by a %s target", t.Type)
				}
			}
		}
		for _, name := range sortedKeys(t.Roles) {
			r := t.Roles[name]
			rp := path + ".roles." + name
			if !namePattern.MatchString(name) {
				add(rp, "role name must match %s", namePattern)
			}
			// A stint-signed token for this audience would be a session token.
			if r.Audience != "" && r.Audience == c.Server.IssuerURL {
				add(rp+".audience", "must differ from server.issuer_url (that audience is the stint session token)")
			}
			switch {
			case t.Type == "jwt":
				if r.Audience == "" {
					add(rp+".audience", "required for a jwt role")
				} else if prev, dup := audiences[r.Audience]; dup {
					add(rp+".audience", "audience %q is already used by %s", r.Audience, prev)
				} else {
					audiences[r.Audience] = t.Name + "/" + name
				}
			case isSQL(t.Type):
				if strings.TrimSpace(r.Creation) == "" {
					add(rp+".creation", "required for a %s role", t.Type)
				}
			}
		}
	}

	seen = map[string]string{}
	for i, p := range c.Policies {
		path := fmt.Sprintf("policies[%d]", i)
		checkName(p.Name, path+".name", seen, add)
		if len(p.Grants) == 0 {
			add(path+".grants", "at least one target/role grant is required")
		}
		for j, g := range p.Grants {
			if !grantPattern.MatchString(g) {
				add(fmt.Sprintf("%s.grants[%d]", path, j), "want target/role (with * wildcards), got %q", g)
			}
		}
	}

	spoolDirs := map[string]int{} // spool_dir → index of the sink using it
	for i, k := range c.Audit.Sinks {
		path := fmt.Sprintf("audit.sinks[%d]", i)
		if k.Type == "" {
			add(path+".type", "required")
		}
		switch k.Type {
		case "file":
			if k.Path == "" {
				add(path+".path", "required for a file sink")
			}
			if k.MaxBytes < 0 || (k.MaxBytes > 0 && k.MaxBytes < 64<<10) {
				add(path+".max_bytes", "want 0 (no rotation) or at least 65536")
			}
		case "syslog":
			if u, err := url.Parse(k.Address); err != nil || (u.Scheme != "udp" && u.Scheme != "tcp" && u.Scheme != "tls") || u.Port() == "" {
				add(path+".address", "want udp://host:port, tcp://host:port or tls://host:port")
			}
			if k.Format != "" && k.Format != "json" && k.Format != "cef" {
				add(path+".format", "want json or cef")
			}
			checkFile(k.CAFile, path+".ca_file", add)
			if k.SpoolDir == "" {
				if k.Required == nil || !*k.Required {
					add(path+".spool_dir", "required for a best-effort syslog sink (events wait there while the collector is down)")
				}
				if k.OnFull != "" || k.MaxSpoolBytes != 0 {
					add(path, "on_full and max_spool_bytes need a spool_dir")
				}
			}
		case "http":
			if u, err := url.Parse(k.URL); err != nil || (u.Scheme != "https" && !(u.Scheme == "http" && isLoopback(u.Hostname()))) {
				add(path+".url", "want an https URL (http only on loopback)")
			}
			if k.Format != "" && k.Format != "json" && k.Format != "ndjson" && k.Format != "splunk-hec" {
				add(path+".format", "want json, ndjson or splunk-hec")
			}
			if k.SpoolDir == "" {
				add(path+".spool_dir", "required for an http sink (events wait there while the receiver is down)")
			}
			if k.TokenFile != "" && k.TokenEnv != "" {
				add(path, "token_file and token_env are exclusive")
			}
		}
		if k.Type == "http" || k.Type == "syslog" {
			if k.OnFull != "" && k.OnFull != "fail" && k.OnFull != "drop_oldest" {
				add(path+".on_full", "want fail or drop_oldest")
			}
			if k.MaxSpoolBytes < 0 {
				add(path+".max_spool_bytes", "must not be negative (0: 256 MiB)")
			}
			if j, ok := spoolDirs[filepath.Clean(k.SpoolDir)]; ok && k.SpoolDir != "" {
				add(path+".spool_dir", "also used by audit.sinks[%d]; each sink needs its own spool", j)
			} else if k.SpoolDir != "" {
				spoolDirs[filepath.Clean(k.SpoolDir)] = i
			}
		}
		checkFile(k.TokenFile, path+".token_file", add)
	}
	if c.Leases.MaxAttempts < 0 {
		add("leases.max_attempts", "must not be negative")
	}
	if c.Leases.MaxActivePerPrincipal < 0 {
		add("leases.max_active_per_principal", "must not be negative")
	}
	if c.Leases.MaxActivePerRole < 0 {
		add("leases.max_active_per_role", "must not be negative")
	}
	// Under an hour is most likely a unit mistake (30m is minutes, not
	// months).
	if r := c.Leases.Retention; r != nil && (*r < 0 || (*r > 0 && r.D() < time.Hour)) {
		add("leases.retention", "must be 0 (keep forever) or at least 1h")
	}
	return errors.Join(errs...)
}

func checkName(name, path string, seen map[string]string, add func(string, string, ...any)) {
	switch {
	case name == "":
		add(path, "required")
	case !namePattern.MatchString(name):
		add(path, "%q must match %s", name, namePattern)
	case seen[name] != "":
		add(path, "duplicate name %q (first at %s)", name, seen[name])
	default:
		seen[name] = path
	}
}

func checkFile(file, path string, add func(string, string, ...any)) {
	if file == "" {
		return
	}
	if _, err := os.Stat(file); err != nil {
		add(path, "cannot read %s: %v", file, errors.Unwrap(err))
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// redactURL drops a password from a URL before it appears in a message.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "<unparseable>"
	}
	return u.Redacted()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
