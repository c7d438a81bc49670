// Package mysql issues temporary MySQL 8 / MariaDB 10.11+ users: one user
// per lease, created from the role's template and, when the lease ends,
// locked, its sessions killed, and dropped.
package mysql

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	driver "github.com/go-sql-driver/mysql"

	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/issuer"
	"github.com/stint-dev/stint/internal/issuer/sqltmpl"
)

// Name limits: MySQL allows 32 characters in a user name, MariaDB 80.
const (
	MaxNameMySQL   = 32
	MaxNameMariaDB = 80
)

// DefaultRevocation drops the user. Before it runs, the issuer locks the
// account and kills its sessions, so no session outlives the lease.
const DefaultRevocation = `DROP USER IF EXISTS '{{.Name}}'@'%';`

// Config is one mysql target. The lead maps the YAML target onto it.
type Config struct {
	// Name is the target name (for errors).
	Name string
	// DSN is the admin connection in go-sql-driver form
	// (user@tcp(host:port)/db); multiStatements must not be set.
	DSN string
	// Password for the admin connection, already resolved from
	// password_file/password_env; empty when the DSN needs none.
	Password string
	// Host, Port and Database go into the returned credential; each
	// defaults to the DSN's value.
	Host     string
	Port     int
	Database string
	// NamePrefix starts every generated user name (default "stint").
	NamePrefix string
	// MaxConns sizes the admin pool (default 4).
	MaxConns int
	// Roles by name.
	Roles map[string]RoleConfig
}

// RoleConfig is one role's statements (Go templates; see sqltmpl.Data),
// run one at a time, and the TTL used when a request gives none. Renewal is
// optional: MySQL users have no expiry of their own, so a renewal only
// moves the lease unless statements are given.
type RoleConfig struct {
	Creation   string
	Revocation string // default DefaultRevocation
	Renewal    string
	DefaultTTL time.Duration
}

type role struct {
	creation, revocation, renewal *sqltmpl.Template
	defaultTTL                    time.Duration
}

// Issuer mints MySQL/MariaDB users for one target. Safe for concurrent use.
type Issuer struct {
	cfg   Config
	db    *sql.DB
	roles map[string]role
	deflt role
	host  string
	port  string
	dbn   string

	mu      sync.Mutex
	maxName int // 0 until the server was asked
}

// New parses every template and opens the admin pool. The server is asked
// for its flavour (for the name limit) on first use, so a target that is
// down does not stop stint from starting.
func New(cfg Config) (*Issuer, error) {
	if cfg.NamePrefix == "" {
		cfg.NamePrefix = "stint"
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 4
	}
	if len(cfg.NamePrefix) > 8 {
		return nil, fmt.Errorf("mysql: target %s: name prefix longer than 8 bytes (MySQL names are at most 32)", cfg.Name)
	}
	is := &Issuer{cfg: cfg, roles: map[string]role{}}
	var err error
	if is.deflt, err = parseRole("default", RoleConfig{Creation: "SELECT 1"}); err != nil {
		return nil, err
	}
	for name, rc := range cfg.Roles {
		if rc.Creation == "" {
			return nil, fmt.Errorf("mysql: target %s role %s: creation statements are required", cfg.Name, name)
		}
		r, err := parseRole(name, rc)
		if err != nil {
			return nil, fmt.Errorf("mysql: target %s: %w", cfg.Name, err)
		}
		is.roles[name] = r
	}
	dc, err := driver.ParseDSN(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("mysql: target %s: invalid dsn", cfg.Name)
	}
	if dc.MultiStatements {
		return nil, fmt.Errorf("mysql: target %s: multiStatements must be off (statements run one at a time)", cfg.Name)
	}
	if cfg.Password != "" {
		dc.Passwd = cfg.Password
	}
	dc.ParseTime = true
	h, p, err := net.SplitHostPort(dc.Addr)
	if err != nil {
		h, p = dc.Addr, "3306"
	}
	is.host, is.port, is.dbn = h, p, dc.DBName
	if cfg.Host != "" {
		is.host = cfg.Host
	}
	if cfg.Port != 0 {
		is.port = fmt.Sprint(cfg.Port)
	}
	if cfg.Database != "" {
		is.dbn = cfg.Database
	}
	conn, err := driver.NewConnector(dc)
	if err != nil {
		return nil, fmt.Errorf("mysql: target %s: %w", cfg.Name, err)
	}
	is.db = sql.OpenDB(conn)
	is.db.SetMaxOpenConns(cfg.MaxConns)
	is.db.SetMaxIdleConns(cfg.MaxConns)
	is.db.SetConnMaxIdleTime(5 * time.Minute)
	return is, nil
}

func parseRole(name string, rc RoleConfig) (role, error) {
	if rc.Revocation == "" {
		rc.Revocation = DefaultRevocation
	}
	var r role
	var err error
	if r.creation, err = sqltmpl.Parse(name+".creation", rc.Creation, sqltmpl.MySQL); err != nil {
		return r, err
	}
	if r.revocation, err = sqltmpl.Parse(name+".revocation", rc.Revocation, sqltmpl.MySQL); err != nil {
		return r, err
	}
	probe := sqltmpl.Data{Name: "probe", LeaseID: "probe", Role: name, Expiration: "2000-01-01 00:00:00"}
	if _, err := r.revocation.Execute(probe); err != nil {
		return r, fmt.Errorf("role %s: revocation may use only .Name, .LeaseID, .Role: %w", name, err)
	}
	if rc.Renewal != "" {
		if r.renewal, err = sqltmpl.Parse(name+".renewal", rc.Renewal, sqltmpl.MySQL); err != nil {
			return r, err
		}
		if _, err := r.renewal.Execute(probe); err != nil {
			return r, fmt.Errorf("role %s: renewal may use only .Name, .LeaseID, .Role, .Expiration: %w", name, err)
		}
	}
	r.defaultTTL = rc.DefaultTTL
	return r, nil
}

// Close closes the admin pool.
func (is *Issuer) Close() error { return is.db.Close() }

// DB is the admin pool, for tests and health checks.
func (is *Issuer) DB() *sql.DB { return is.db }

// Roles lists the configured role names, sorted.
func (is *Issuer) Roles() []string { return sqltmpl.RoleNames(is.roles) }

// DefaultTTL is the role's default_ttl (0 when unset or unknown).
func (is *Issuer) DefaultTTL(role string) time.Duration { return is.roles[role].defaultTTL }

// nameLimit asks the server once whether it is MariaDB (80) or MySQL (32).
func (is *Issuer) nameLimit(ctx context.Context) (int, error) {
	is.mu.Lock()
	defer is.mu.Unlock()
	if is.maxName > 0 {
		return is.maxName, nil
	}
	var v string
	if err := is.db.QueryRowContext(ctx, `SELECT VERSION()`).Scan(&v); err != nil {
		return 0, fmt.Errorf("mysql: target %s: server version: %w", is.cfg.Name, err)
	}
	is.maxName = MaxNameMySQL
	if strings.Contains(strings.ToLower(v), "mariadb") {
		is.maxName = MaxNameMariaDB
	}
	return is.maxName, nil
}

// UserName is the user a lease gets; it depends only on the prefix, the
// role, the lease id and the server's flavour.
func (is *Issuer) UserName(ctx context.Context, role, leaseID string) (string, error) {
	limit, err := is.nameLimit(ctx)
	if err != nil {
		return "", err
	}
	hashLen := 16
	if limit > MaxNameMySQL {
		hashLen = 20
	}
	return sqltmpl.UserName(is.cfg.NamePrefix, role, leaseID, limit, hashLen)
}

type internal struct {
	Name string `json:"name"`
}

// Issue creates the user. Template errors (a missing attribute) are
// returned as core.Invalid before the server is touched.
func (is *Issuer) Issue(ctx context.Context, req issuer.Request) (issuer.Result, error) {
	r, ok := is.roles[req.Role]
	if !ok {
		return issuer.Result{}, core.Invalid("target %s has no role %q", is.cfg.Name, req.Role)
	}
	pw, err := sqltmpl.Password(40)
	if err != nil {
		return issuer.Result{}, err
	}
	data := sqltmpl.Data{
		Name: "probe", Password: pw, LeaseID: req.LeaseID, Role: req.Role,
		Expiration: sqltmpl.Expiration(req.ExpiresAt, sqltmpl.MySQL),
		Principal:  sqltmpl.Attributes(&req.Principal),
		Human:      sqltmpl.Attributes(req.Human),
	}
	// Render once before asking the server anything, so bad input touches
	// nothing at all.
	if _, err := r.creation.Execute(data); err != nil {
		return issuer.Result{}, core.E(core.KindInvalid, "", fmt.Sprintf("target %s role %s: creation template: %v", is.cfg.Name, req.Role, err), err)
	}
	name, err := is.UserName(ctx, req.Role, req.LeaseID)
	if err != nil {
		return issuer.Result{}, err
	}
	data.Name = name
	script, err := r.creation.Execute(data)
	if err != nil {
		return issuer.Result{}, core.E(core.KindInvalid, "", fmt.Sprintf("target %s role %s: creation template: %v", is.cfg.Name, req.Role, err), err)
	}
	stmts, err := sqltmpl.Split(script, sqltmpl.MySQL)
	if err != nil {
		return issuer.Result{}, core.E(core.KindInvalid, "", fmt.Sprintf("target %s role %s: creation statements: %v", is.cfg.Name, req.Role, err), err)
	}
	if err := is.exec(ctx, stmts); err != nil {
		return issuer.Result{}, fmt.Errorf("mysql: target %s: create user %s: %w", is.cfg.Name, name, sqltmpl.Redact(err, pw))
	}
	in, _ := json.Marshal(internal{Name: name})
	return issuer.Result{Credential: is.credential(name, pw), Internal: in, Renewable: true}, nil
}

// exec runs statements in order on one connection.
func (is *Issuer) exec(ctx context.Context, stmts []string) error {
	c, err := is.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	for i, s := range stmts {
		if _, err := c.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("statement %d: %w", i+1, err)
		}
	}
	return nil
}

func (is *Issuer) credential(name, pw string) core.Credential {
	hp := net.JoinHostPort(is.host, is.port)
	u := url.URL{Scheme: "mysql", User: url.UserPassword(name, pw), Host: hp, Path: "/" + is.dbn}
	return core.Credential{
		"username": name,
		"password": pw,
		"host":     is.host,
		"port":     is.port,
		"database": is.dbn,
		"dsn":      u.String(),
	}
}

func (is *Issuer) name(ctx context.Context, role, leaseID string, in []byte) (string, error) {
	var x internal
	if len(in) > 0 && json.Unmarshal(in, &x) == nil && x.Name != "" {
		return x.Name, nil
	}
	return is.UserName(ctx, role, leaseID)
}

func (is *Issuer) role(name string) role {
	if r, ok := is.roles[name]; ok {
		return r
	}
	return is.deflt
}

// Revoke locks the account (no new logins), kills its sessions, then runs
// the role's revocation statements. A user already gone is success.
// RevokesIdempotently marks Revoke as a success when the user is gone
// (issuer.IdempotentRevoke).
func (is *Issuer) RevokesIdempotently() {}

var _ issuer.IdempotentRevoke = (*Issuer)(nil)

func (is *Issuer) Revoke(ctx context.Context, req issuer.RevokeRequest) error {
	name, err := is.name(ctx, req.Role, req.LeaseID, req.Internal)
	if err != nil {
		return err
	}
	script, err := is.role(req.Role).revocation.Execute(sqltmpl.Data{Name: name, LeaseID: req.LeaseID, Role: req.Role})
	if err != nil {
		return fmt.Errorf("mysql: target %s: revocation template: %w", is.cfg.Name, err)
	}
	stmts, err := sqltmpl.Split(script, sqltmpl.MySQL)
	if err != nil {
		return fmt.Errorf("mysql: target %s: revocation statements: %w", is.cfg.Name, err)
	}
	if _, err := is.db.ExecContext(ctx, `ALTER USER IF EXISTS '`+name+`'@'%' ACCOUNT LOCK`); err != nil {
		return fmt.Errorf("mysql: target %s: lock user %s: %w", is.cfg.Name, name, err)
	}
	if err := is.killSessions(ctx, name); err != nil {
		return err
	}
	if err := is.exec(ctx, stmts); err != nil {
		return fmt.Errorf("mysql: target %s: drop user %s: %w", is.cfg.Name, name, err)
	}
	return nil
}

func (is *Issuer) killSessions(ctx context.Context, name string) error {
	rows, err := is.db.QueryContext(ctx, `SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ?`, name)
	if err != nil {
		return fmt.Errorf("mysql: target %s: list sessions of %s: %w", is.cfg.Name, name, err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return fmt.Errorf("mysql: target %s: list sessions: %w", is.cfg.Name, err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	for _, id := range ids {
		if _, err := is.db.ExecContext(ctx, fmt.Sprintf("KILL %d", id)); err != nil {
			var me *driver.MySQLError
			if errors.As(err, &me) && me.Number == 1094 { // unknown thread: already gone
				continue
			}
			return fmt.Errorf("mysql: target %s: kill session %d of %s: %w", is.cfg.Name, id, name, err)
		}
	}
	return nil
}

// Renew runs the role's renewal statements, if it has any.
func (is *Issuer) Renew(ctx context.Context, req issuer.RenewRequest) error {
	r := is.role(req.Role)
	if r.renewal == nil {
		return nil
	}
	name, err := is.name(ctx, req.Role, req.LeaseID, req.Internal)
	if err != nil {
		return err
	}
	script, err := r.renewal.Execute(sqltmpl.Data{Name: name, LeaseID: req.LeaseID, Role: req.Role,
		Expiration: sqltmpl.Expiration(req.ExpiresAt, sqltmpl.MySQL)})
	if err != nil {
		return fmt.Errorf("mysql: target %s: renewal template: %w", is.cfg.Name, err)
	}
	stmts, err := sqltmpl.Split(script, sqltmpl.MySQL)
	if err != nil {
		return fmt.Errorf("mysql: target %s: renewal statements: %w", is.cfg.Name, err)
	}
	if err := is.exec(ctx, stmts); err != nil {
		return fmt.Errorf("mysql: target %s: renew user %s: %w", is.cfg.Name, name, err)
	}
	return nil
}

var (
	_ issuer.Issuer  = (*Issuer)(nil)
	_ issuer.Renewer = (*Issuer)(nil)
)
