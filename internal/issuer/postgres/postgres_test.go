package postgres

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/issuer"
	"github.com/stint-dev/stint/internal/testenv"
)

// Names used here start with stpgi so parallel packages never collide.
const (
	testPrefix = "stpgi"
	testGroup  = "stpgi_readers"
	testTable  = "stpgi_orders"
	secretTbl  = "stpgi_secrets"
)

const readonlyCreation = `CREATE ROLE "{{.Name}}" LOGIN PASSWORD '{{.Password}}' VALID UNTIL '{{.Expiration}}';
GRANT ` + testGroup + ` TO "{{.Name}}";`

// setup creates the group role and tables and returns a ready issuer.
func setup(t *testing.T, roles map[string]RoleConfig) (*Issuer, string) {
	t.Helper()
	dsn := testenv.Require(t, "STINT_TEST_POSTGRES_URL")
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	for _, q := range []string{
		`DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '` + testGroup + `') THEN CREATE ROLE ` + testGroup + ` NOLOGIN; END IF; END $$`,
		`CREATE TABLE IF NOT EXISTS ` + testTable + ` (id int primary key, item text)`,
		`CREATE TABLE IF NOT EXISTS ` + secretTbl + ` (id int)`,
		`INSERT INTO ` + testTable + ` VALUES (1, 'book') ON CONFLICT DO NOTHING`,
		`GRANT SELECT ON ` + testTable + ` TO ` + testGroup,
		`GRANT CONNECT ON DATABASE ` + dbName(t, admin) + ` TO ` + testGroup,
	} {
		if _, err := admin.Exec(ctx, q); err != nil && !isDuplicate(err) {
			t.Fatalf("setup %q: %v", q, err)
		}
	}
	if roles == nil {
		roles = map[string]RoleConfig{"readonly": {Creation: readonlyCreation, DefaultTTL: time.Minute}}
	}
	is, err := New(ctx, Config{Name: "pg-test", DSN: dsn, NamePrefix: testPrefix, MaxConns: 4, Roles: roles})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		dropTestRoles(t, admin)
		is.Close()
	})
	return is, dsn
}

func isDuplicate(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "42710" || pe.Code == "23505" || pe.Code == "42P07")
}

func dbName(t *testing.T, c *pgx.Conn) string {
	var n string
	if err := c.QueryRow(context.Background(), `SELECT current_database()`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return `"` + n + `"`
}

// dropTestRoles removes every role this package's tests made, so a failed
// test leaves nothing behind.
func dropTestRoles(t testing.TB, admin *pgx.Conn) {
	ctx := context.Background()
	rows, err := admin.Query(ctx, `SELECT rolname FROM pg_roles WHERE rolname LIKE '`+testPrefix+`\_%' AND rolname <> '`+testGroup+`'`)
	if err != nil {
		t.Logf("cleanup: %v", err)
		return
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Logf("cleanup: %v", err)
		return
	}
	for _, n := range names {
		admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1`, n)
		if _, err := admin.Exec(ctx, `DROP ROLE IF EXISTS "`+n+`"`); err != nil {
			t.Logf("cleanup drop %s: %v", n, err)
		}
	}
}

func roleExists(t *testing.T, is *Issuer, name string) bool {
	var n int
	if err := is.Pool().QueryRow(context.Background(), `SELECT count(*) FROM pg_roles WHERE rolname = $1`, name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

func issue(t *testing.T, is *Issuer, role string, p core.Principal) (string, issuer.Result) {
	t.Helper()
	id := uuid.NewString()
	res, err := is.Issue(context.Background(), issuer.Request{
		LeaseID: id, Role: role, Principal: p, Rule: "test-rule",
		IssuedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour),
	})
	if err != nil {
		t.Fatalf("issue: %v", err)
	}
	return id, res
}

var bot = core.Principal{Provider: "prod-cluster", Kind: "kubernetes", Subject: "system:serviceaccount:agents:bot",
	Attributes: map[string]any{"namespace": "agents", "team": "support"}}

func TestMintedRoleReadsWhatTheGroupGrantsAndNothingElse(t *testing.T) {
	is, _ := setup(t, nil)
	ctx := context.Background()
	_, res := issue(t, is, "readonly", bot)
	c := res.Credential
	for _, k := range []string{"username", "password", "host", "port", "database", "dsn"} {
		if c[k] == "" {
			t.Errorf("credential lacks %s", k)
		}
	}
	if len(c["password"]) < 32 {
		t.Errorf("password has %d chars, want >= 32", len(c["password"]))
	}
	if !strings.HasPrefix(c["username"], testPrefix+"_readonly_") || len(c["username"]) > MaxNameLen {
		t.Errorf("username %q: want prefix and role, <= 63 bytes", c["username"])
	}
	conn, err := pgx.Connect(ctx, c["dsn"])
	if err != nil {
		t.Fatalf("login with minted credential: %v", err)
	}
	defer conn.Close(ctx)
	var item string
	if err := conn.QueryRow(ctx, `SELECT item FROM `+testTable+` WHERE id = 1`).Scan(&item); err != nil || item != "book" {
		t.Fatalf("read granted table: %q, %v", item, err)
	}
	_, err = conn.Exec(ctx, `SELECT * FROM `+secretTbl)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "42501" {
		t.Fatalf("read of ungranted table: want permission denied, got %v", err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO `+testTable+` VALUES (2, 'x')`); !errors.As(err, &pe) || pe.Code != "42501" {
		t.Fatalf("insert: want permission denied, got %v", err)
	}
	var comment string
	if err := is.Pool().QueryRow(ctx, `SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = $1`, c["username"]).Scan(&comment); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"stint lease", "prod-cluster/system:serviceaccount:agents:bot", "rule test-rule"} {
		if !strings.Contains(comment, want) {
			t.Errorf("role comment %q lacks %q", comment, want)
		}
	}
}

func TestRevokeEndsSessionsAndLogins(t *testing.T) {
	is, _ := setup(t, nil)
	ctx := context.Background()
	id, res := issue(t, is, "readonly", bot)
	conn, err := pgx.Connect(ctx, res.Credential["dsn"])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := is.Revoke(ctx, issuer.RevokeRequest{LeaseID: id, Role: "readonly", Internal: res.Internal}); err != nil {
		t.Fatal(err)
	}
	if err := conn.Ping(ctx); err == nil {
		t.Error("open session still works after revoke")
	}
	if c2, err := pgx.Connect(ctx, res.Credential["dsn"]); err == nil {
		c2.Close(ctx)
		t.Error("new login works after revoke")
	}
	if roleExists(t, is, res.Credential["username"]) {
		t.Error("role still exists after revoke")
	}
	// Idempotent, and works from the lease id alone (no stored data).
	if err := is.Revoke(ctx, issuer.RevokeRequest{LeaseID: id, Role: "readonly"}); err != nil {
		t.Errorf("second revoke: %v", err)
	}
}

func TestRevokeWithoutInternalDataFindsTheRole(t *testing.T) {
	is, _ := setup(t, nil)
	id, res := issue(t, is, "readonly", bot)
	if err := is.Revoke(context.Background(), issuer.RevokeRequest{LeaseID: id, Role: "readonly"}); err != nil {
		t.Fatal(err)
	}
	if roleExists(t, is, res.Credential["username"]) {
		t.Error("role derived from the lease id was not dropped")
	}
}

func TestRenewMovesValidUntil(t *testing.T) {
	is, _ := setup(t, nil)
	ctx := context.Background()
	id, res := issue(t, is, "readonly", bot)
	want := time.Now().Add(3 * time.Hour).Truncate(time.Second).UTC()
	if err := is.Renew(ctx, issuer.RenewRequest{LeaseID: id, Role: "readonly", Internal: res.Internal, ExpiresAt: want}); err != nil {
		t.Fatal(err)
	}
	var got time.Time
	if err := is.Pool().QueryRow(ctx, `SELECT rolvaliduntil FROM pg_roles WHERE rolname = $1`, res.Credential["username"]).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if !got.Equal(want) {
		t.Errorf("VALID UNTIL = %v, want %v", got, want)
	}
}

func TestQuoteInAttributeCannotInject(t *testing.T) {
	is, _ := setup(t, map[string]RoleConfig{
		"tagged": {Creation: `CREATE ROLE "{{.Name}}" LOGIN PASSWORD '{{.Password}}';
COMMENT ON ROLE "{{.Name}}" IS 'team {{.Principal.team}}';
SELECT {{literal .Principal.team}}, {{ident .Principal.subject}} IS NULL FROM (SELECT 1 AS {{ident .Principal.subject}}) s;`},
	})
	ctx := context.Background()
	evil := []string{
		`x'; CREATE ROLE stpgi_pwned SUPERUSER; --`,
		`x\'; CREATE ROLE stpgi_pwned SUPERUSER; --`,
		`x"; CREATE ROLE stpgi_pwned; --`,
	}
	for _, v := range evil {
		p := core.Principal{Provider: "p", Subject: v, Attributes: map[string]any{"team": v}}
		_, res := issue(t, is, "tagged", p)
		var comment string
		if err := is.Pool().QueryRow(ctx, `SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = $1`, res.Credential["username"]).Scan(&comment); err != nil {
			t.Fatal(err)
		}
		if roleExistsName(t, is, "stpgi_pwned") {
			t.Fatalf("attribute %q injected SQL", v)
		}
	}
}

func roleExistsName(t *testing.T, is *Issuer, n string) bool { return roleExists(t, is, n) }

func TestBadInputTouchesNothing(t *testing.T) {
	is, _ := setup(t, map[string]RoleConfig{
		"needs-team":  {Creation: `CREATE ROLE "{{.Name}}" LOGIN PASSWORD '{{.Password}}' IN ROLE {{ident .Principal.group}};`},
		"needs-human": {Creation: `CREATE ROLE "{{.Name}}" LOGIN; COMMENT ON ROLE "{{.Name}}" IS '{{.Human.email}}';`},
	})
	tests := []struct {
		name, role string
		want       string
	}{
		{"unknown role", "admin", `no role "admin"`},
		{"missing attribute", "needs-team", `no entry for key "group"`},
		{"no human", "needs-human", `no entry for key "email"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := uuid.NewString()
			_, err := is.Issue(context.Background(), issuer.Request{LeaseID: id, Role: tt.role, Principal: bot, ExpiresAt: time.Now().Add(time.Hour)})
			if core.KindOf(err) != core.KindInvalid || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want invalid containing %q", err, tt.want)
			}
			name, _ := is.UserName(tt.role, id)
			if roleExists(t, is, name) {
				t.Error("a role was created")
			}
		})
	}
}

func TestNewRejectsRevocationUsingAttributes(t *testing.T) {
	_, err := New(context.Background(), Config{Name: "x", DSN: "postgres://u@127.0.0.1:1/db", Roles: map[string]RoleConfig{
		"r": {Creation: "SELECT 1", Revocation: `DROP ROLE "{{.Principal.team}}"`},
	}})
	if err == nil || !strings.Contains(err.Error(), "revocation may use only") {
		t.Fatalf("err = %v", err)
	}
}
