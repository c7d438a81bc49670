package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/stint-dev/stint/internal/audit"
	"github.com/stint-dev/stint/internal/config"
	"github.com/stint-dev/stint/internal/identity"
	"github.com/stint-dev/stint/internal/identity/jwtidp"
	"github.com/stint-dev/stint/internal/issuer"
	jwtissuer "github.com/stint-dev/stint/internal/issuer/jwt"
	"github.com/stint-dev/stint/internal/issuer/mysql"
	"github.com/stint-dev/stint/internal/issuer/postgres"
	"github.com/stint-dev/stint/internal/jwks"
	"github.com/stint-dev/stint/internal/keys"
	"github.com/stint-dev/stint/internal/store"
)

// deps is what constructors may use.
type deps struct {
	HTTPClient *http.Client
	Now        func() time.Time
	IssuerURL  string
	Signer     jwtissuer.Signer
	OnRefresh  func(source string, err error)
	// Keys hands out CA keys (ssh-ca:<target>, x509-ca:<target>).
	Keys *keys.Manager
	// Store lists leases (the ssh KRL) and keeps write-once records (the x509 root).
	Store store.Store
}

// identityBuilder builds one identity provider from its config.
type identityBuilder func(ctx context.Context, p config.IdentityProvider, d deps) (identity.IssuerVerifier, error)

// targetBuilder builds one target's issuer from its config.
type targetBuilder func(ctx context.Context, t config.Target, d deps) (issuer.Issuer, error)

// sinkBuilder builds one audit sink; logger gets the sink's own warnings.
type sinkBuilder func(s config.Sink, logger *slog.Logger) (audit.Sink, error)

// identityTypes lists every built-in identity provider type, by hand.
var identityTypes = map[string]identityBuilder{
	"kubernetes":     jwtProvider,
	"oidc":           jwtProvider,
	"github-actions": jwtProvider,
	"gitlab-ci":      jwtProvider,
	"gcp":            jwtProvider,
	"azure":          jwtProvider,
	"aws-iam":        awsIAMProvider,
}

// targetTypes lists every built-in target type, by hand.
var targetTypes = map[string]targetBuilder{
	"jwt":      jwtTarget,
	"postgres": postgresTarget,
	"mysql":    mysqlTarget,
	"http":     httpTarget,
	"aws-sts":  awsSTSTarget,
	"ssh":      sshTarget,
	"x509":     x509Target,
}

// sinkTypes lists every built-in audit sink type, by hand.
var sinkTypes = map[string]sinkBuilder{
	"file": fileSink,
	"stdout": func(config.Sink, *slog.Logger) (audit.Sink, error) {
		return audit.NewStreamSink("stdout", os.Stdout), nil
	},
	"syslog": syslogSink,
	"http":   httpSink,
}

func names[V any](m map[string]V) string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// Well-known issuers whose JWKS is found by discovery when none is configured.
var defaultIssuers = map[string]string{
	"github-actions": "https://token.actions.githubusercontent.com",
	"gitlab-ci":      "https://gitlab.com",
	"gcp":            "https://accounts.google.com",
}

func jwtProvider(ctx context.Context, p config.IdentityProvider, d deps) (identity.IssuerVerifier, error) {
	iss := p.Issuer
	if iss == "" {
		iss = defaultIssuers[p.Type]
	}
	if iss == "" {
		return nil, fmt.Errorf("issuer is required for a %s provider", p.Type)
	}
	o := jwks.Options{HTTPClient: d.HTTPClient, Now: d.Now, OnRefresh: d.OnRefresh}
	switch {
	case p.JWKSFile != "":
		o.File = p.JWKSFile
	case p.JWKSURL != "":
		o.URL = p.JWKSURL
	default:
		o.Issuer = iss
	}
	keys, err := jwks.New(ctx, o)
	if err != nil {
		return nil, err
	}
	return jwtidp.New(jwtidp.Config{
		Name: p.Name, Type: p.Type, Issuer: iss, Audiences: p.Audiences, Keys: keys,
		Algorithms: p.Algorithms, Attributes: p.Attributes, ClaimAttributes: p.Claims,
		SubjectClaim: p.SubjectClaim, Now: d.Now,
	})
}

func jwtTarget(_ context.Context, t config.Target, d deps) (issuer.Issuer, error) {
	roles := map[string]jwtissuer.RoleConfig{}
	for name, r := range t.Roles {
		roles[name] = jwtissuer.RoleConfig{Audience: r.Audience, Scopes: r.Scopes, Claims: r.Claims, DefaultTTL: r.DefaultTTL.D()}
	}
	return jwtissuer.New(jwtissuer.Config{Name: t.Name, IssuerURL: d.IssuerURL, Roles: roles, Signer: d.Signer, Now: d.Now})
}

func postgresTarget(ctx context.Context, t config.Target, _ deps) (issuer.Issuer, error) {
	pw, err := secretRef(t.PasswordFile, t.PasswordEnv)
	if err != nil {
		return nil, err
	}
	roles := map[string]postgres.RoleConfig{}
	for name, r := range t.Roles {
		roles[name] = postgres.RoleConfig{Creation: r.Creation, Revocation: r.Revocation, Renewal: r.Renewal, DefaultTTL: r.DefaultTTL.D()}
	}
	return postgres.New(ctx, postgres.Config{
		Name: t.Name, DSN: t.DSN, Password: pw, Host: t.Host, Port: t.Port, Database: t.Database,
		MaxConns: int32(t.MaxConns), NamePrefix: t.NamePrefix, Roles: roles,
	})
}

func mysqlTarget(_ context.Context, t config.Target, _ deps) (issuer.Issuer, error) {
	pw, err := secretRef(t.PasswordFile, t.PasswordEnv)
	if err != nil {
		return nil, err
	}
	roles := map[string]mysql.RoleConfig{}
	for name, r := range t.Roles {
		roles[name] = mysql.RoleConfig{Creation: r.Creation, Revocation: r.Revocation, Renewal: r.Renewal, DefaultTTL: r.DefaultTTL.D()}
	}
	return mysql.New(mysql.Config{
		Name: t.Name, DSN: t.DSN, Password: pw, Host: t.Host, Port: t.Port, Database: t.Database,
		MaxConns: t.MaxConns, NamePrefix: t.NamePrefix, Roles: roles,
	})
}

// secretRef reads a secret given by file or environment reference.
func secretRef(file, env string) (string, error) {
	switch {
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("read password_file: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	case env != "":
		return os.Getenv(env), nil
	}
	return "", nil
}

func fileSink(s config.Sink, logger *slog.Logger) (audit.Sink, error) {
	return audit.NewFileSink(s.Path, audit.FileOptions{DisableFsync: s.Fsync != nil && !*s.Fsync, Logger: logger, MaxBytes: s.MaxBytes})
}

// syslogSink spools like httpSink (fsync'd, so that a required sink's
// events are durable when Write returns) when spool_dir is set; a required
// sink without one sends synchronously.
func syslogSink(s config.Sink, logger *slog.Logger) (audit.Sink, error) {
	u, err := url.Parse(s.Address)
	if err != nil {
		return nil, fmt.Errorf("syslog address: %w", err)
	}
	o := audit.SyslogOptions{Network: u.Scheme, Address: u.Host, Format: s.Format, Logger: logger, SpoolOptions: spoolOf(s)}
	if u.Scheme == "tls" && s.CAFile != "" {
		pem, err := os.ReadFile(s.CAFile)
		if err != nil {
			return nil, fmt.Errorf("syslog ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("syslog ca_file: no PEM certificate")
		}
		o.TLSConfig = &tls.Config{RootCAs: pool, ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}
	}
	return audit.NewSyslogSink(o)
}

// spoolOf is a sink's on-disk spool as configured; a spool is always
// fsync'd, so that events survive a power loss, not only a crash.
func spoolOf(s config.Sink) audit.SpoolOptions {
	return audit.SpoolOptions{SpoolDir: s.SpoolDir, MaxSpoolBytes: s.MaxSpoolBytes, OnFull: s.OnFull, SpoolFsync: true}
}

func httpSink(s config.Sink, logger *slog.Logger) (audit.Sink, error) {
	tok, err := secretRef(s.TokenFile, s.TokenEnv)
	if err != nil {
		return nil, err
	}
	return audit.NewHTTPSink(audit.HTTPOptions{URL: s.URL, Format: s.Format, Token: tok, Logger: logger, SpoolOptions: spoolOf(s)})
}
