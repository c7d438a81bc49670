package app_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stint-dev/stint/internal/testenv"
)

// pgConfig adds a postgres target whose role grants membership in a group
// role, and an admin-free policy for it.
func pgConfig(dsn string) string {
	return strings.Replace(testConfig, "policies:\n", `  - name: orders-db
    type: postgres
    dsn: `+dsn+`
    roles:
      readonly:
        creation: |
          CREATE ROLE "{{.Name}}" LOGIN PASSWORD '{{.Password}}' VALID UNTIL '{{.Expiration}}';
          GRANT stint_e2e_readers TO "{{.Name}}";
        default_ttl: 2m
policies:
  - name: agents-read-orders
    grants: [orders-db/readonly]
    max_ttl: 10m
    when: identity.namespace == "agents"
`, 1)
}

// A workload gets a temporary PostgreSQL user through the HTTP API, logs
// in with it, reads what the group role grants, and after revocation can
// no longer log in; the password never reaches the audit record or logs.
func TestPostgresCredentialEndToEnd(t *testing.T) {
	dsn := testenv.Require(t, "STINT_TEST_POSTGRES_URL")
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	setup := `DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'stint_e2e_readers') THEN CREATE ROLE stint_e2e_readers NOLOGIN; END IF; END $$;
		CREATE TABLE IF NOT EXISTS stint_e2e_orders (id int); GRANT SELECT ON stint_e2e_orders TO stint_e2e_readers;`
	if _, err := admin.Exec(ctx, setup); err != nil {
		t.Fatal(err)
	}
	e := newEnvConfig(t, pgConfig(dsn))
	agent := e.workload("agents", "support-bot")
	code, res := e.post("/v1/credentials", agent, map[string]any{"target": "orders-db", "role": "readonly", "ttl": "5m"})
	if code != 200 {
		t.Fatalf("%d %v", code, res)
	}
	cred := res["credential"].(map[string]any)
	user, pw := cred["username"].(string), cred["password"].(string)
	if user == "" || len(pw) < 32 || !strings.HasPrefix(cred["dsn"].(string), "postgres") {
		t.Fatalf("credential %v", cred)
	}
	t.Cleanup(func() { _, _ = admin.Exec(context.Background(), fmt.Sprintf(`DROP ROLE IF EXISTS %q`, user)) })
	login := func() (*pgx.Conn, error) {
		return pgx.Connect(ctx, cred["dsn"].(string))
	}
	c, err := login()
	if err != nil {
		t.Fatalf("login with the minted credential: %v", err)
	}
	var n int
	if err := c.QueryRow(ctx, "SELECT count(*) FROM stint_e2e_orders").Scan(&n); err != nil {
		t.Fatalf("read granted table: %v", err)
	}
	if _, err := c.Exec(ctx, "INSERT INTO stint_e2e_orders VALUES (1)"); err == nil {
		t.Fatal("insert succeeded: the role grants only SELECT")
	}
	c.Close(ctx)

	code, res = e.post("/v1/leases/"+res["lease_id"].(string)+"/revoke", agent, nil)
	if code != 200 || res["state"] != "revoked" {
		t.Fatalf("revoke: %d %v", code, res)
	}
	if c, err := login(); err == nil {
		c.Close(ctx)
		t.Fatal("login works after revocation")
	}
	var exists bool
	_ = admin.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)", user).Scan(&exists)
	if exists {
		t.Fatal("role still in pg_roles after revocation")
	}
	// A TTL above the rule's max_ttl is refused and touches nothing.
	if code, _ := e.post("/v1/credentials", agent, map[string]any{"target": "orders-db", "role": "readonly", "ttl": "1h"}); code != 400 {
		t.Fatalf("ttl above max_ttl: %d", code)
	}

	e.app.Audit.Close()
	raw, _ := os.ReadFile(filepath.Join(e.dir, "audit.jsonl"))
	if strings.Contains(string(raw), pw) || strings.Contains(e.logBuf.String(), pw) {
		t.Fatal("the minted password is in the audit record or the log")
	}
	if !strings.Contains(string(raw), `"credential.revoke"`) {
		t.Fatal("no credential.revoke event")
	}
}

// The kill switch revokes every lease of a subject, for an admin only.
func TestKillSwitchRevokesBySubject(t *testing.T) {
	dsn := testenv.Require(t, "STINT_TEST_POSTGRES_URL")
	e := newEnvConfig(t, pgConfig(dsn))
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	go func() { _ = e.app.Leases.Run(t.Context()) }()
	agent := e.workload("agents", "runaway")
	var users []string
	for range 5 {
		code, res := e.post("/v1/credentials", agent, map[string]any{"target": "orders-db", "role": "readonly"})
		if code != 200 {
			t.Fatalf("%d %v", code, res)
		}
		users = append(users, res["credential"].(map[string]any)["username"].(string))
	}
	sel := map[string]any{"subject": "system:serviceaccount:agents:runaway"}
	if code, _ := e.post("/v1/leases/revoke", agent, sel); code != 403 {
		t.Fatalf("non-admin kill switch: %d", code)
	}
	code, res := e.post("/v1/leases/revoke", e.human("root", "stint-admins"), sel)
	if code != http.StatusAccepted || res["revoking"] != float64(5) {
		t.Fatalf("kill switch: %d %v", code, res)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		var n int
		if err := admin.QueryRow(ctx, "SELECT count(*) FROM pg_roles WHERE rolname = ANY($1)", users).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d users still exist after the kill switch", n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
