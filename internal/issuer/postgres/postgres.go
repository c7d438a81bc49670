// Package postgres issues temporary PostgreSQL roles: one LOGIN role per
// lease, created from the role's template, commented with who it belongs
// to, and dropped (after its sessions are terminated) when the lease ends.
package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/issuer"
	"github.com/stint-dev/stint/internal/issuer/sqltmpl"
)

// MaxNameLen is PostgreSQL's identifier limit (NAMEDATALEN-1); longer names
// would be truncated silently, so generated names stay within it.
const MaxNameLen = 63

// DefaultRevocation terminates the role's sessions, then drops it. Both run
// in one implicit transaction (the script is sent as one simple query).
const DefaultRevocation = `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{{.Name}}';
DROP ROLE IF EXISTS "{{.Name}}";`

// DefaultRenewal moves the role's password expiry.
const DefaultRenewal = `ALTER ROLE "{{.Name}}" VALID UNTIL '{{.Expiration}}';`

// Config is one postgres target. The lead maps the YAML target onto it.
type Config struct {
	// Name is the target name (for errors and the role comment).
	Name string
	// DSN is the admin connection (URL or key=value form).
	DSN string
	// Password for the admin connection, already resolved from
	// password_file/password_env; empty for trust, peer or cert auth.
	Password string
	// Host, Port and Database go into the returned credential; each
	// defaults to the DSN's value.
	Host     string
	Port     int
	Database string
	// NamePrefix starts every generated role name (default "stint").
	NamePrefix string
	// MaxConns sizes the admin pool (default 4).
	MaxConns int32
	// Roles by name.
	Roles map[string]RoleConfig
}

// RoleConfig is one role's statements (Go templates; see sqltmpl.Data) and
// the TTL used when a request gives none.
type RoleConfig struct {
	Creation   string
	Revocation string // default DefaultRevocation
	Renewal    string // default DefaultRenewal
	DefaultTTL time.Duration
}

type role struct {
	creation, revocation, renewal *sqltmpl.Template
	defaultTTL                    time.Duration
}

// Issuer mints PostgreSQL roles for one target. Safe for concurrent use.
type Issuer struct {
	cfg   Config
	pool  *pgxpool.Pool
	roles map[string]role
	deflt role // used to revoke a lease whose role left the config
	host  string
	port  int
	db    string
	query string // sslmode etc. for the credential's dsn
}

// New parses every template and opens the admin pool (connections are made
// lazily, so a target that is down does not stop stint from starting).
func New(ctx context.Context, cfg Config) (*Issuer, error) {
	if cfg.NamePrefix == "" {
		cfg.NamePrefix = "stint"
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 4
	}
	if len(cfg.NamePrefix) > 20 {
		return nil, fmt.Errorf("postgres: target %s: name prefix longer than 20 bytes", cfg.Name)
	}
	is := &Issuer{cfg: cfg, roles: map[string]role{}}
	var err error
	if is.deflt, err = parseRole("default", RoleConfig{Creation: "SELECT 1"}); err != nil {
		return nil, err
	}
	for name, rc := range cfg.Roles {
		if rc.Creation == "" {
			return nil, fmt.Errorf("postgres: target %s role %s: creation statements are required", cfg.Name, name)
		}
		r, err := parseRole(name, rc)
		if err != nil {
			return nil, fmt.Errorf("postgres: target %s: %w", cfg.Name, err)
		}
		is.roles[name] = r
	}
	pc, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		// The parse error may echo the DSN, which may hold a password.
		return nil, fmt.Errorf("postgres: target %s: invalid dsn", cfg.Name)
	}
	if cfg.Password != "" {
		pc.ConnConfig.Password = cfg.Password
	}
	pc.MaxConns = cfg.MaxConns
	is.host, is.port, is.db = pc.ConnConfig.Host, int(pc.ConnConfig.Port), pc.ConnConfig.Database
	if cfg.Host != "" {
		is.host = cfg.Host
	}
	if cfg.Port != 0 {
		is.port = cfg.Port
	}
	if cfg.Database != "" {
		is.db = cfg.Database
	}
	if u, err := url.Parse(cfg.DSN); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		if m := u.Query().Get("sslmode"); m != "" {
			is.query = "sslmode=" + url.QueryEscape(m)
		}
	}
	if is.pool, err = pgxpool.NewWithConfig(ctx, pc); err != nil {
		return nil, fmt.Errorf("postgres: target %s: open pool: %w", cfg.Name, err)
	}
	return is, nil
}

func parseRole(name string, rc RoleConfig) (role, error) {
	if rc.Revocation == "" {
		rc.Revocation = DefaultRevocation
	}
	if rc.Renewal == "" {
		rc.Renewal = DefaultRenewal
	}
	var r role
	var err error
	if r.creation, err = sqltmpl.Parse(name+".creation", rc.Creation, sqltmpl.Postgres); err != nil {
		return r, err
	}
	if r.revocation, err = sqltmpl.Parse(name+".revocation", rc.Revocation, sqltmpl.Postgres); err != nil {
		return r, err
	}
	if r.renewal, err = sqltmpl.Parse(name+".renewal", rc.Renewal, sqltmpl.Postgres); err != nil {
		return r, err
	}
	// Revocation and renewal run when only the lease id is known (after a
	// crash), so they may use only .Name, .LeaseID, .Role and .Expiration:
	// check that now rather than when a user must be removed.
	probe := sqltmpl.Data{Name: "probe", LeaseID: "probe", Role: name, Expiration: "2000-01-01T00:00:00Z"}
	if _, err := r.revocation.Execute(probe); err != nil {
		return r, fmt.Errorf("role %s: revocation may use only .Name, .LeaseID, .Role: %w", name, err)
	}
	if _, err := r.renewal.Execute(probe); err != nil {
		return r, fmt.Errorf("role %s: renewal may use only .Name, .LeaseID, .Role, .Expiration: %w", name, err)
	}
	r.defaultTTL = rc.DefaultTTL
	return r, nil
}

// Close closes the admin pool.
func (is *Issuer) Close() { is.pool.Close() }

// Pool is the admin pool, for tests and health checks.
func (is *Issuer) Pool() *pgxpool.Pool { return is.pool }

// Roles lists the configured role names, sorted.
func (is *Issuer) Roles() []string { return sqltmpl.RoleNames(is.roles) }

// DefaultTTL is the role's default_ttl (0 when unset or unknown).
func (is *Issuer) DefaultTTL(role string) time.Duration { return is.roles[role].defaultTTL }

// UserName is the role name a lease gets; it depends only on the prefix,
// the role and the lease id.
func (is *Issuer) UserName(role, leaseID string) (string, error) {
	return sqltmpl.UserName(is.cfg.NamePrefix, role, leaseID, MaxNameLen, 20)
}

type internal struct {
	Name string `json:"name"`
}

// Issue creates the role. Template errors (a missing attribute) are
// returned as core.Invalid before the database is touched.
func (is *Issuer) Issue(ctx context.Context, req issuer.Request) (issuer.Result, error) {
	r, ok := is.roles[req.Role]
	if !ok {
		return issuer.Result{}, core.Invalid("target %s has no role %q", is.cfg.Name, req.Role)
	}
	name, err := is.UserName(req.Role, req.LeaseID)
	if err != nil {
		return issuer.Result{}, fmt.Errorf("postgres: %w", err)
	}
	pw, err := sqltmpl.Password(40)
	if err != nil {
		return issuer.Result{}, err
	}
	data := sqltmpl.Data{
		Name: name, Password: pw, LeaseID: req.LeaseID, Role: req.Role,
		Expiration: sqltmpl.Expiration(req.ExpiresAt, sqltmpl.Postgres),
		Principal:  sqltmpl.Attributes(&req.Principal),
		Human:      sqltmpl.Attributes(req.Human),
	}
	script, err := r.creation.Execute(data)
	if err != nil {
		return issuer.Result{}, core.E(core.KindInvalid, "", fmt.Sprintf("target %s role %s: creation template: %v", is.cfg.Name, req.Role, err), err)
	}
	comment, err := is.comment(name, req)
	if err != nil {
		return issuer.Result{}, core.E(core.KindInvalid, "", "postgres: cannot describe the principal in a role comment", err)
	}
	// One simple-protocol query: PostgreSQL runs the statements in one
	// implicit transaction, so a failure leaves no half-made role.
	if _, err := is.pool.Exec(ctx, script+"\n;\n"+comment); err != nil {
		return issuer.Result{}, fmt.Errorf("postgres: target %s: create role %s: %w", is.cfg.Name, name, sqltmpl.Redact(err, pw))
	}
	in, _ := json.Marshal(internal{Name: name})
	return issuer.Result{
		Credential: is.credential(name, pw),
		Internal:   in,
		Renewable:  true,
	}, nil
}

func (is *Issuer) comment(name string, req issuer.Request) (string, error) {
	text := fmt.Sprintf("stint lease %s; target %s role %s; principal %s/%s", req.LeaseID, is.cfg.Name, req.Role, req.Principal.Provider, req.Principal.Subject)
	if req.Human != nil {
		text += fmt.Sprintf("; human %s/%s", req.Human.Provider, req.Human.Subject)
	}
	if req.Rule != "" {
		text += "; rule " + req.Rule
	}
	lit, err := sqltmpl.Literal(sqltmpl.Postgres, text)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf(`COMMENT ON ROLE "%s" IS %s;`, name, lit), nil
}

func (is *Issuer) credential(name, pw string) core.Credential {
	hostport := net.JoinHostPort(is.host, strconv.Itoa(is.port))
	u := url.URL{Scheme: "postgres", User: url.UserPassword(name, pw), Host: hostport, Path: "/" + is.db, RawQuery: is.query}
	return core.Credential{
		"username": name,
		"password": pw,
		"host":     is.host,
		"port":     strconv.Itoa(is.port),
		"database": is.db,
		"dsn":      u.String(),
	}
}

// name finds the role name from the stored data, or derives it from the
// lease id when the data is missing (a crash between the two phases).
func (is *Issuer) name(role, leaseID string, in []byte) (string, error) {
	var x internal
	if len(in) > 0 && json.Unmarshal(in, &x) == nil && x.Name != "" {
		return x.Name, nil
	}
	n, err := is.UserName(role, leaseID)
	if err != nil {
		return "", fmt.Errorf("postgres: %w", err)
	}
	return n, nil
}

func (is *Issuer) role(name string) role {
	if r, ok := is.roles[name]; ok {
		return r
	}
	return is.deflt
}

// Revoke runs the role's revocation statements. A role that is already
// gone is success (the default uses DROP ROLE IF EXISTS).
// RevokesIdempotently marks Revoke as a success when the user is gone
// (issuer.IdempotentRevoke).
func (is *Issuer) RevokesIdempotently() {}

var _ issuer.IdempotentRevoke = (*Issuer)(nil)

func (is *Issuer) Revoke(ctx context.Context, req issuer.RevokeRequest) error {
	name, err := is.name(req.Role, req.LeaseID, req.Internal)
	if err != nil {
		return err
	}
	script, err := is.role(req.Role).revocation.Execute(sqltmpl.Data{Name: name, LeaseID: req.LeaseID, Role: req.Role})
	if err != nil {
		return fmt.Errorf("postgres: target %s: revocation template: %w", is.cfg.Name, err)
	}
	if _, err := is.pool.Exec(ctx, script); err != nil {
		return fmt.Errorf("postgres: target %s: drop role %s: %w", is.cfg.Name, name, err)
	}
	return nil
}

// Renew runs the role's renewal statements (by default VALID UNTIL).
func (is *Issuer) Renew(ctx context.Context, req issuer.RenewRequest) error {
	name, err := is.name(req.Role, req.LeaseID, req.Internal)
	if err != nil {
		return err
	}
	script, err := is.role(req.Role).renewal.Execute(sqltmpl.Data{
		Name: name, LeaseID: req.LeaseID, Role: req.Role,
		Expiration: sqltmpl.Expiration(req.ExpiresAt, sqltmpl.Postgres),
	})
	if err != nil {
		return fmt.Errorf("postgres: target %s: renewal template: %w", is.cfg.Name, err)
	}
	if _, err := is.pool.Exec(ctx, script); err != nil {
		return fmt.Errorf("postgres: target %s: renew role %s: %w", is.cfg.Name, name, err)
	}
	return nil
}

var (
	_ issuer.Issuer  = (*Issuer)(nil)
	_ issuer.Renewer = (*Issuer)(nil)
)
