package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	driver "github.com/go-sql-driver/mysql"
	"github.com/google/uuid"

	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/issuer"
	"github.com/stint-dev/stint/internal/testenv"
)

// Names used here start with stmyi so parallel packages never collide.
const (
	testPrefix = "stmyi"
	testGroup  = "stmyi_readers"
	testTable  = "stmyi_orders"
	secretTbl  = "stmyi_secrets"
)

const readonlyCreation = `CREATE USER '{{.Name}}'@'%' IDENTIFIED BY '{{.Password}}';
GRANT ` + testGroup + ` TO '{{.Name}}'@'%';
SET DEFAULT ROLE ` + testGroup + ` FOR '{{.Name}}'@'%';`

func setup(t *testing.T, roles map[string]RoleConfig) *Issuer {
	t.Helper()
	dsn := testenv.Require(t, "STINT_TEST_MYSQL_URL")
	admin, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	for _, q := range []string{
		`CREATE ROLE IF NOT EXISTS ` + testGroup,
		`CREATE TABLE IF NOT EXISTS ` + testTable + ` (id int primary key, item text)`,
		`CREATE TABLE IF NOT EXISTS ` + secretTbl + ` (id int)`,
		`INSERT IGNORE INTO ` + testTable + ` VALUES (1, 'book')`,
		`GRANT SELECT ON ` + testTable + ` TO ` + testGroup,
	} {
		if _, err := admin.Exec(q); err != nil {
			t.Fatalf("setup %q: %v", q, err)
		}
	}
	if roles == nil {
		roles = map[string]RoleConfig{"readonly": {Creation: readonlyCreation, DefaultTTL: time.Minute}}
	}
	is, err := New(Config{Name: "my-test", DSN: dsn, NamePrefix: testPrefix, Roles: roles})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		DropTestUsers(t, admin, testPrefix)
		is.Close()
	})
	return is
}

// DropTestUsers removes every user whose name starts with prefix_.
func DropTestUsers(t testing.TB, admin *sql.DB, prefix string) {
	rows, err := admin.Query(`SELECT User, Host FROM mysql.user WHERE User LIKE ?`, prefix+`\_%`)
	if err != nil {
		t.Logf("cleanup: %v", err)
		return
	}
	var users [][2]string
	for rows.Next() {
		var u, h string
		rows.Scan(&u, &h)
		users = append(users, [2]string{u, h})
	}
	rows.Close()
	for _, u := range users {
		if u[0] == testGroup {
			continue
		}
		if _, err := admin.Exec(fmt.Sprintf("DROP USER IF EXISTS '%s'@'%s'", u[0], u[1])); err != nil {
			t.Logf("cleanup %s: %v", u[0], err)
		}
	}
}

func userExists(t *testing.T, is *Issuer, name string) bool {
	var n int
	if err := is.DB().QueryRow(`SELECT count(*) FROM mysql.user WHERE User = ?`, name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n > 0
}

func login(c core.Credential) (*sql.DB, error) {
	cfg := driver.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = c["username"], c["password"], "tcp", c["host"]+":"+c["port"], c["database"]
	conn, err := driver.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(1)
	return db, db.Ping()
}

var bot = core.Principal{Provider: "prod-cluster", Subject: "agents:bot", Attributes: map[string]any{"team": "support"}}

func issue(t *testing.T, is *Issuer, role string, p core.Principal) (string, issuer.Result) {
	t.Helper()
	id := uuid.NewString()
	res, err := is.Issue(context.Background(), issuer.Request{LeaseID: id, Role: role, Principal: p, ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatalf("issue: %v", err)
	}
	return id, res
}

func TestMintedUserReadsWhatTheRoleGrantsAndNothingElse(t *testing.T) {
	is := setup(t, nil)
	_, res := issue(t, is, "readonly", bot)
	c := res.Credential
	if n := c["username"]; !strings.HasPrefix(n, testPrefix+"_readonly_") || len(n) > MaxNameMariaDB {
		t.Errorf("username %q", n)
	}
	if len(c["password"]) < 32 || !strings.HasPrefix(c["dsn"], "mysql://") {
		t.Errorf("credential %v", c["dsn"] != "")
	}
	db, err := login(c)
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	defer db.Close()
	var item string
	if err := db.QueryRow(`SELECT item FROM ` + testTable + ` WHERE id = 1`).Scan(&item); err != nil || item != "book" {
		t.Fatalf("read granted table: %q %v", item, err)
	}
	var me *driver.MySQLError
	if _, err := db.Exec(`SELECT * FROM ` + secretTbl); !errors.As(err, &me) || me.Number != 1142 {
		t.Errorf("read of ungranted table: %v", err)
	}
	if _, err := db.Exec(`INSERT INTO ` + testTable + ` VALUES (9, 'x')`); !errors.As(err, &me) || me.Number != 1142 {
		t.Errorf("insert: %v", err)
	}
}

func TestRevokeKillsSessionsAndLogins(t *testing.T) {
	is := setup(t, nil)
	ctx := context.Background()
	id, res := issue(t, is, "readonly", bot)
	db, err := login(res.Credential)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx) // pin the one open session
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := is.Revoke(ctx, issuer.RevokeRequest{LeaseID: id, Role: "readonly", Internal: res.Internal}); err != nil {
		t.Fatal(err)
	}
	if err := conn.PingContext(ctx); err == nil {
		t.Error("open session still works after revoke")
	}
	if db2, err := login(res.Credential); err == nil {
		db2.Close()
		t.Error("new login works after revoke")
	}
	if userExists(t, is, res.Credential["username"]) {
		t.Error("user still exists")
	}
	if err := is.Revoke(ctx, issuer.RevokeRequest{LeaseID: id, Role: "readonly"}); err != nil {
		t.Errorf("second revoke (no stored data): %v", err)
	}
}

func TestQuoteInAttributeCannotInject(t *testing.T) {
	is := setup(t, map[string]RoleConfig{"tagged": {Creation: `CREATE USER '{{.Name}}'@'%' IDENTIFIED BY '{{.Password}}';
SELECT '{{.Principal.team}}', "{{.Principal.team}}", {{literal .Principal.team}}, {{ident .Principal.subject}} FROM (SELECT 1 AS {{ident .Principal.subject}}) s;`}})
	for _, v := range []string{
		`x'; CREATE USER 'stmyi_pwned'@'%'; -- `,
		`x\'; CREATE USER 'stmyi_pwned'@'%'; -- `,
		"x`; CREATE USER 'stmyi_pwned'@'%'; -- ",
	} {
		issue(t, is, "tagged", core.Principal{Provider: "p", Subject: v, Attributes: map[string]any{"team": v}})
		if userExists(t, is, "stmyi_pwned") {
			t.Fatalf("attribute %q injected SQL", v)
		}
	}
}

func TestBadInputTouchesNothing(t *testing.T) {
	is := setup(t, map[string]RoleConfig{"needs-team": {Creation: `CREATE USER '{{.Name}}'@'%'; SELECT '{{.Principal.group}}';`}})
	for _, tt := range []struct{ role, want string }{
		{"nope", `no role "nope"`},
		{"needs-team", `no entry for key "group"`},
	} {
		id := uuid.NewString()
		_, err := is.Issue(context.Background(), issuer.Request{LeaseID: id, Role: tt.role, Principal: bot})
		if core.KindOf(err) != core.KindInvalid || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v", tt.role, err)
		}
		n, _ := is.UserName(context.Background(), tt.role, id)
		if userExists(t, is, n) {
			t.Errorf("%s: a user was created", tt.role)
		}
	}
}

func TestNamesFitTheServerLimit(t *testing.T) {
	is := setup(t, nil)
	n, err := is.UserName(context.Background(), "a-very-long-role-name-that-goes-on-and-on-and-on-and-on-forever", uuid.NewString())
	if err != nil {
		t.Fatal(err)
	}
	lim, _ := is.nameLimit(context.Background())
	if len(n) > lim {
		t.Errorf("%q is %d bytes, limit %d", n, len(n), lim)
	}
	// A MySQL server (limit 32) gets a shorter name from the same inputs.
	is.maxName = MaxNameMySQL
	n, _ = is.UserName(context.Background(), "a-very-long-role-name", uuid.NewString())
	if len(n) > MaxNameMySQL || !strings.HasPrefix(n, testPrefix+"_a_very") {
		t.Errorf("mysql name %q", n)
	}
}
