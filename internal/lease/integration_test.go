package lease

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/issuer"
	"github.com/stint-dev/stint/internal/issuer/mysql"
	"github.com/stint-dev/stint/internal/issuer/postgres"
	"github.com/stint-dev/stint/internal/store"
	pgstore "github.com/stint-dev/stint/internal/store/postgres"
	"github.com/stint-dev/stint/internal/testenv"
)

// Every role and user made here starts with stlt, so parallel packages
// never collide; the group roles are stlt_readers.
const (
	ltPrefix = "stlt"
	ltGroup  = "stlt_readers"
	ltTable  = "stlt_orders"
)

func pgSetup(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '` + ltGroup + `') THEN CREATE ROLE ` + ltGroup + ` NOLOGIN; END IF; END $$`,
		`CREATE TABLE IF NOT EXISTS ` + ltTable + ` (id int primary key)`,
		`GRANT SELECT ON ` + ltTable + ` TO ` + ltGroup,
	} {
		if _, err := admin.Exec(ctx, q); err != nil && !strings.Contains(err.Error(), "already exists") && !strings.Contains(err.Error(), "duplicate key") {
			t.Fatalf("setup %q: %v", q, err)
		}
	}
	t.Cleanup(func() {
		pgDropAll(t, admin)
		admin.Close(context.Background())
	})
	return admin
}

// newPG makes an issuer for dsn (which may point through a proxy).
func newPG(t *testing.T, dsn string) *postgres.Issuer {
	t.Helper()
	is, err := postgres.New(context.Background(), postgres.Config{Name: "pg", DSN: dsn, NamePrefix: ltPrefix, MaxConns: 8, Roles: map[string]postgres.RoleConfig{
		"ro": {Creation: `CREATE ROLE "{{.Name}}" LOGIN PASSWORD '{{.Password}}' VALID UNTIL '{{.Expiration}}' IN ROLE ` + ltGroup + `;`, DefaultTTL: time.Minute},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(is.Close)
	return is
}

func pgDropAll(t *testing.T, admin *pgx.Conn) {
	ctx := context.Background()
	rows, err := admin.Query(ctx, `SELECT rolname FROM pg_roles WHERE rolname LIKE '`+ltPrefix+`\_%' AND rolname <> '`+ltGroup+`'`)
	if err != nil {
		t.Logf("cleanup: %v", err)
		return
	}
	names, _ := pgx.CollectRows(rows, pgx.RowTo[string])
	for _, n := range names {
		admin.Exec(ctx, `DROP ROLE IF EXISTS "`+n+`"`)
	}
}

func pgCount(t *testing.T, admin *pgx.Conn) int {
	var n int
	if err := admin.QueryRow(context.Background(), `SELECT count(*) FROM pg_roles WHERE rolname LIKE '`+ltPrefix+`\_ro\_%'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func realEnv(t *testing.T, st store.Store, is issuer.Issuer, tweak func(*Options)) *env {
	t.Helper()
	e := &env{st: st, rec: &recorder{}, ctx: context.Background()}
	o := Options{
		Store: st, Issuers: map[string]issuer.Issuer{"db": is}, TargetTypes: map[string]string{"db": "postgres"},
		Sealer: xorSealer{}, Audit: e.rec, Holder: "r1",
		ReapInterval: 100 * time.Millisecond, LockTTL: time.Second, BaseBackoff: 100 * time.Millisecond, MaxBackoff: 400 * time.Millisecond,
		MaxAttempts: 50, RevokeTimeout: 2 * time.Second, IssueTimeout: 500 * time.Millisecond,
	}
	if tweak != nil {
		tweak(&o)
	}
	m, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	e.m = m
	return e
}

func (e *env) issueDB(t *testing.T, ttl time.Duration) (core.Lease, core.Credential) {
	t.Helper()
	l, c, err := e.m.Issue(e.ctx, IssueRequest{Target: "db", Role: "ro", Rule: "r", Principal: bot, TTL: ttl, MaxTTL: time.Hour})
	if err != nil {
		t.Fatalf("issue: %v", err)
	}
	return l, c
}

func TestPostgresLeaseLifecycle(t *testing.T) {
	dsn := testenv.Require(t, "STINT_TEST_POSTGRES_URL")
	admin := pgSetup(t, dsn)
	e := realEnv(t, openSQLite(t), newPG(t, dsn), nil)
	ctx := context.Background()

	// Renew moves VALID UNTIL; revoke ends the session and the role.
	l, c := e.issueDB(t, time.Minute)
	conn, err := pgx.Connect(ctx, c["dsn"])
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `SELECT * FROM `+ltTable); err != nil {
		t.Fatalf("read granted table: %v", err)
	}
	r, err := e.m.Renew(ctx, l.ID, 30*time.Minute, bot)
	if err != nil {
		t.Fatal(err)
	}
	var until time.Time
	admin.QueryRow(ctx, `SELECT rolvaliduntil FROM pg_roles WHERE rolname = $1`, c["username"]).Scan(&until)
	if d := until.Sub(r.ExpiresAt); d > time.Second || d < -time.Second {
		t.Errorf("VALID UNTIL %v, lease expires %v", until, r.ExpiresAt)
	}
	if _, err := e.m.Revoke(ctx, l.ID); err != nil {
		t.Fatal(err)
	}
	if conn.Ping(ctx) == nil {
		t.Error("session survived revoke")
	}
	if c2, err := pgx.Connect(ctx, c["dsn"]); err == nil {
		c2.Close(ctx)
		t.Error("login after revoke")
	}

	// After the TTL the reaper removes the role.
	l2, c2 := e.issueDB(t, time.Second)
	e.run(t)
	waitFor(t, 4*time.Second, "reaper", func() bool { return e.state(t, l2.ID).State == core.LeaseRevoked })
	var n int
	admin.QueryRow(ctx, `SELECT count(*) FROM pg_roles WHERE rolname = $1`, c2["username"]).Scan(&n)
	if n != 0 {
		t.Error("expired role still exists")
	}
}

func TestPostgresMissingAttributeTouchesNothing(t *testing.T) {
	dsn := testenv.Require(t, "STINT_TEST_POSTGRES_URL")
	admin := pgSetup(t, dsn)
	is, err := postgres.New(context.Background(), postgres.Config{Name: "pg", DSN: dsn, NamePrefix: ltPrefix, Roles: map[string]postgres.RoleConfig{
		"ro": {Creation: `CREATE ROLE "{{.Name}}" LOGIN IN ROLE {{ident .Principal.group}};`},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer is.Close()
	e := realEnv(t, openSQLite(t), is, nil)
	_, _, err = e.m.Issue(e.ctx, IssueRequest{Target: "db", Role: "ro", Principal: bot, TTL: time.Minute})
	if core.KindOf(err) != core.KindInvalid || !strings.Contains(err.Error(), `no entry for key "group"`) {
		t.Fatalf("err = %v", err)
	}
	if pgCount(t, admin) != 0 {
		t.Error("a role was created")
	}
	if e.rec.count("credential.issue", "failure") != 1 {
		t.Error("not audited")
	}
}

func TestPostgresCrashBetweenPhasesLeavesNoRole(t *testing.T) {
	dsn := testenv.Require(t, "STINT_TEST_POSTGRES_URL")
	admin := pgSetup(t, dsn)
	st := openSQLite(t)
	is := newPG(t, dsn)
	crash := errors.New("killed")
	for _, hook := range []string{"after pending", "after issue"} {
		t.Run(hook, func(t *testing.T) {
			h := &TestHooks{}
			if hook == "after pending" {
				h.AfterPending = func(string) error { return crash }
			} else {
				h.AfterIssue = func(string) error { return crash }
			}
			e := realEnv(t, st, is, func(o *Options) { o.Hooks = h })
			if _, _, err := e.m.Issue(e.ctx, IssueRequest{Target: "db", Role: "ro", Principal: bot, TTL: time.Hour}); !errors.Is(err, crash) {
				t.Fatal(err)
			}
			if hook == "after issue" && pgCount(t, admin) != 1 {
				t.Fatal("the crash hook ran before the role existed")
			}
			restarted := realEnv(t, st, is, func(o *Options) { o.Holder = "restarted" })
			restarted.run(t)
			waitFor(t, 5*time.Second, "recovery", func() bool {
				n, _ := st.CountLeases(e.ctx, store.LeaseFilter{States: []core.LeaseState{core.LeasePending, core.LeaseRevoking}})
				return n == 0
			})
			if n := pgCount(t, admin); n != 0 {
				t.Errorf("%d roles left after recovery", n)
			}
		})
	}
}

// proxy forwards TCP to a backend and can be stopped and started again on
// the same address, to play a target that goes down.
type proxy struct {
	addr, backend string
	mu            sync.Mutex
	ln            net.Listener
	conns         map[net.Conn]bool
}

func startProxy(t *testing.T, backend string) *proxy {
	p := &proxy{backend: backend, conns: map[net.Conn]bool{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.stop)
	return p
}

func (p *proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", p.backend)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[b] = true, true
			p.mu.Unlock()
			go func() { io.Copy(b, c); b.Close() }()
			go func() { io.Copy(c, b); c.Close() }()
		}
	}()
}

func (p *proxy) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	p.conns = map[net.Conn]bool{}
}

func (p *proxy) start(t *testing.T) {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	p.serve(ln)
}

func TestPostgresTargetDownDuringRevocationIsRetried(t *testing.T) {
	dsn := testenv.Require(t, "STINT_TEST_POSTGRES_URL")
	admin := pgSetup(t, dsn)
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	px := startProxy(t, fmt.Sprintf("%s:%d", cfg.Host, cfg.Port))
	viaProxy := fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable&connect_timeout=1", cfg.User, px.addr, cfg.Database)
	e := realEnv(t, openSQLite(t), newPG(t, viaProxy), nil)
	l, _ := e.issueDB(t, 500*time.Millisecond)
	px.stop()
	e.run(t)
	waitFor(t, 5*time.Second, "failed attempts", func() bool { return e.state(t, l.ID).Attempts >= 2 })
	if got := e.state(t, l.ID); got.State != core.LeaseRevoking || got.LastError == "" || pgCount(t, admin) != 1 {
		t.Fatalf("while down: %+v", got)
	}
	px.start(t)
	waitFor(t, 5*time.Second, "revocation once back", func() bool { return e.state(t, l.ID).State == core.LeaseRevoked })
	if n := pgCount(t, admin); n != 0 {
		t.Errorf("%d roles left", n)
	}
	if e.rec.count("credential.revoke_failed", "failure") < 2 {
		t.Error("failed attempts not audited")
	}
}

func issueMany(t *testing.T, e *env, n int, ttl time.Duration) {
	t.Helper()
	var g errgroup.Group
	g.SetLimit(8)
	for range n {
		g.Go(func() error {
			_, _, err := e.m.Issue(e.ctx, IssueRequest{Target: "db", Role: "ro", Principal: bot, TTL: ttl, MaxTTL: time.Hour})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
}

func TestPostgresKillSwitchRevokesAThousand(t *testing.T) {
	dsn := testenv.Require(t, "STINT_TEST_POSTGRES_URL")
	admin := pgSetup(t, dsn)
	e := realEnv(t, openSQLite(t), newPG(t, dsn), nil)
	issueMany(t, e, 1000, time.Hour)
	if n := pgCount(t, admin); n != 1000 {
		t.Fatalf("%d roles", n)
	}
	e.run(t)
	start := time.Now()
	n, err := e.m.RevokeMatching(e.ctx, store.LeaseFilter{Subject: bot.Subject})
	if err != nil || n != 1000 {
		t.Fatalf("count %d, %v", n, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("kill switch took %s to return", d)
	}
	waitFor(t, 30*time.Second, "all revoked", func() bool { return pgCount(t, admin) == 0 })
	t.Logf("1000 leases revoked in %s", time.Since(start))
	waitFor(t, 5*time.Second, "leases revoked", func() bool {
		c, _ := e.st.CountLeases(e.ctx, store.LeaseFilter{States: []core.LeaseState{core.LeaseRevoked}})
		return c == 1000
	})
}

// countingIssuer counts Revoke calls per lease.
type countingIssuer struct {
	issuer.Issuer
	mu sync.Mutex
	n  map[string]int
}

func (c *countingIssuer) Revoke(ctx context.Context, r issuer.RevokeRequest) error {
	c.mu.Lock()
	c.n[r.LeaseID]++
	c.mu.Unlock()
	return c.Issuer.Revoke(ctx, r)
}

func TestTwoReplicasReaperFailover(t *testing.T) {
	dsn := testenv.Require(t, "STINT_TEST_POSTGRES_URL")
	admin := pgSetup(t, dsn)
	ctx := context.Background()
	schema := fmt.Sprintf("stlt_store_%d", time.Now().UnixNano())
	t.Cleanup(func() { admin.Exec(context.Background(), `DROP SCHEMA IF EXISTS `+schema+` CASCADE`) })
	open := func() store.Store {
		st, err := pgstore.OpenSchema(ctx, dsn, schema)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	stA, stB := open(), open()
	ci := &countingIssuer{Issuer: newPG(t, dsn), n: map[string]int{}}
	a := realEnv(t, stA, ci, func(o *Options) { o.Holder = "replica-a"; o.LockTTL = 800 * time.Millisecond })
	b := realEnv(t, stB, ci, func(o *Options) { o.Holder = "replica-b"; o.LockTTL = 800 * time.Millisecond })

	// Leases expire in a spread over 3 s, so A revokes some and B the rest.
	var g errgroup.Group
	g.SetLimit(8)
	var issued atomic.Int64
	for i := range 200 {
		g.Go(func() error {
			m := a.m
			if i%2 == 1 {
				m = b.m
			}
			_, _, err := m.Issue(ctx, IssueRequest{Target: "db", Role: "ro", Principal: bot, TTL: time.Second + time.Duration(i)*15*time.Millisecond})
			issued.Add(1)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	actx, killA := context.WithCancel(ctx)
	aDone := make(chan struct{})
	go func() { a.m.Run(actx); close(aDone) }()
	waitFor(t, 3*time.Second, "A leads", func() bool {
		ok, _ := stA.AcquireLock(ctx, LockName, "probe", time.Millisecond)
		return !ok
	})
	b.run(t)
	waitFor(t, 5*time.Second, "A revokes some", func() bool {
		c, _ := stA.CountLeases(ctx, store.LeaseFilter{States: []core.LeaseState{core.LeaseRevoked}})
		return c >= 20
	})
	killA()
	<-aDone
	revokedByA, _ := stA.CountLeases(ctx, store.LeaseFilter{States: []core.LeaseState{core.LeaseRevoked}})
	waitFor(t, 15*time.Second, "B revokes the rest", func() bool {
		c, _ := stB.CountLeases(ctx, store.LeaseFilter{States: []core.LeaseState{core.LeaseRevoked}})
		return c == 200
	})
	if revokedByA >= 200 {
		t.Fatalf("A revoked all %d before it was killed; the test shows nothing", revokedByA)
	}
	ci.mu.Lock()
	defer ci.mu.Unlock()
	for id, n := range ci.n {
		if n != 1 {
			t.Errorf("lease %s revoked %d times", id, n)
		}
	}
	if len(ci.n) != 200 {
		t.Errorf("%d leases revoked, want 200", len(ci.n))
	}
	if n := pgCount(t, admin); n != 0 {
		t.Errorf("%d roles left", n)
	}
	t.Logf("A revoked %d before it died, B the other %d", revokedByA, 200-revokedByA)
}

func TestMySQLLeaseLifecycle(t *testing.T) {
	dsn := testenv.Require(t, "STINT_TEST_MYSQL_URL")
	admin, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	for _, q := range []string{`CREATE ROLE IF NOT EXISTS ` + ltGroup, `CREATE TABLE IF NOT EXISTS ` + ltTable + ` (id int primary key)`, `GRANT SELECT ON ` + ltTable + ` TO ` + ltGroup} {
		if _, err := admin.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	count := func() int {
		var n int
		admin.QueryRow(`SELECT count(*) FROM mysql.user WHERE User LIKE 'stlt\_ro\_%'`).Scan(&n)
		return n
	}
	t.Cleanup(func() {
		rows, _ := admin.Query(`SELECT User FROM mysql.user WHERE User LIKE 'stlt\_ro\_%'`)
		var us []string
		for rows != nil && rows.Next() {
			var u string
			rows.Scan(&u)
			us = append(us, u)
		}
		for _, u := range us {
			admin.Exec(`DROP USER IF EXISTS '` + u + `'@'%'`)
		}
	})
	is, err := mysql.New(mysql.Config{Name: "my", DSN: dsn, NamePrefix: ltPrefix, MaxConns: 8, Roles: map[string]mysql.RoleConfig{"ro": {
		Creation: `CREATE USER '{{.Name}}'@'%' IDENTIFIED BY '{{.Password}}'; GRANT ` + ltGroup + ` TO '{{.Name}}'@'%'; SET DEFAULT ROLE ` + ltGroup + ` FOR '{{.Name}}'@'%';`,
	}}})
	if err != nil {
		t.Fatal(err)
	}
	defer is.Close()
	e := realEnv(t, openSQLite(t), is, nil)
	_, c := e.issueDB(t, time.Second)
	if c["username"] == "" || count() != 1 {
		t.Fatal("no user")
	}
	e.run(t)
	waitFor(t, 4*time.Second, "reaper removes the user", func() bool { return count() == 0 })

	issueMany(t, e, 1000, time.Hour)
	if n := count(); n != 1000 {
		t.Fatalf("%d users", n)
	}
	if n, err := e.m.RevokeMatching(e.ctx, store.LeaseFilter{Target: "db"}); err != nil || n != 1000 {
		t.Fatalf("kill switch: %d %v", n, err)
	}
	waitFor(t, 30*time.Second, "kill switch removes all", func() bool { return count() == 0 })
}
