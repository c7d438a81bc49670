package postgres

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	"github.com/stint-dev/stint/internal/issuer"
	"github.com/stint-dev/stint/internal/testenv"
)

// With grants through a group role, thousands of live users cost one
// pg_auth_members row each and never grow the table's ACL.
func TestFiveThousandLiveUsers(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode")
	}
	is, _ := setup(t, nil)
	ctx := context.Background()
	const n = 5000
	ids := make([]string, n)
	var g errgroup.Group
	g.SetLimit(8)
	for i := range ids {
		ids[i] = uuid.NewString()
		g.Go(func() error {
			_, err := is.Issue(ctx, issuer.Request{LeaseID: ids[i], Role: "readonly", Principal: bot, ExpiresAt: time.Now().Add(time.Hour)})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("issue: %v", err)
	}
	var live int
	if err := is.Pool().QueryRow(ctx, `SELECT count(*) FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE g.rolname = $1`, testGroup).Scan(&live); err != nil {
		t.Fatal(err)
	}
	if live < n {
		t.Fatalf("%d members of the group, want %d", live, n)
	}
	// The last user still logs in and reads.
	name, _ := is.UserName("readonly", ids[n-1])
	var ok bool
	if err := is.Pool().QueryRow(ctx, `SELECT has_table_privilege($1, '`+testTable+`', 'SELECT')`, name).Scan(&ok); err != nil || !ok {
		t.Fatalf("user %d cannot read: %v", n, err)
	}
	for i := range ids {
		g.Go(func() error { return is.Revoke(ctx, issuer.RevokeRequest{LeaseID: ids[i], Role: "readonly"}) })
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("revoke: %v", err)
	}
}

// benchConns is the connection count both benchmarks use.
const benchConns = 4

// BenchmarkIssueRevokePostgres measures one issue + revoke through the
// issuer (template rendering, name, password, comment) with benchConns
// admin connections.
func BenchmarkIssueRevokePostgres(b *testing.B) {
	dsn := testenv.Require(b, "STINT_TEST_POSTGRES_URL")
	ctx := context.Background()
	is, err := New(ctx, Config{Name: "bench", DSN: dsn, NamePrefix: testPrefix, MaxConns: benchConns, Roles: map[string]RoleConfig{
		"readonly": {Creation: readonlyCreation},
	}})
	if err != nil {
		b.Fatal(err)
	}
	defer is.Close()
	benchSetup(b, dsn)
	b.SetParallelism(benchConns)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := uuid.NewString()
			res, err := is.Issue(ctx, issuer.Request{LeaseID: id, Role: "readonly", Principal: bot, ExpiresAt: time.Now().Add(time.Hour)})
			if err != nil {
				b.Error(err)
				return
			}
			if err := is.Revoke(ctx, issuer.RevokeRequest{LeaseID: id, Role: "readonly", Internal: res.Internal}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkRawCreateDropPostgres runs the same creation and revocation SQL
// (with the role comment) over plain pgx with the same connection count:
// the database's own limit, against which the issuer is measured.
func BenchmarkRawCreateDropPostgres(b *testing.B) {
	dsn := testenv.Require(b, "STINT_TEST_POSTGRES_URL")
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxConns = benchConns
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	benchSetup(b, dsn)
	exp := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	b.SetParallelism(benchConns)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			name := testPrefix + "_raw_" + strings.ReplaceAll(uuid.NewString(), "-", "")[:20]
			create := `CREATE ROLE "` + name + `" LOGIN PASSWORD 'Abcdefghijklmnopqrstuvwxyz0123456789ABCD' VALID UNTIL '` + exp + `';
GRANT ` + testGroup + ` TO "` + name + `";
;
COMMENT ON ROLE "` + name + `" IS 'stint lease x; target bench role readonly; principal prod-cluster/system:serviceaccount:agents:bot';`
			if _, err := pool.Exec(ctx, create); err != nil {
				b.Error(err)
				return
			}
			drop := `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '` + name + `';
DROP ROLE IF EXISTS "` + name + `";`
			if _, err := pool.Exec(ctx, drop); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func benchSetup(b *testing.B, dsn string) {
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	admin.Exec(ctx, `DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '`+testGroup+`') THEN CREATE ROLE `+testGroup+` NOLOGIN; END IF; END $$`)
	b.Cleanup(func() {
		dropTestRoles(b, admin)
		admin.Close(context.Background())
	})
}
