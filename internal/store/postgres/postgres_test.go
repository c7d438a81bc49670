package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/store"
	"github.com/stint-dev/stint/internal/store/internal/sqlstore"
	"github.com/stint-dev/stint/internal/store/storetest"
	"github.com/stint-dev/stint/internal/testenv"
)

// freshSchema returns a new schema name that is dropped when t ends.
func freshSchema(t *testing.T, url string) string {
	t.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	schema := "stint_store_test_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return schema
}

func openFresh(t *testing.T) *Store {
	t.Helper()
	url := testenv.Require(t, "STINT_TEST_POSTGRES_URL")
	schema := freshSchema(t, url)
	s, err := OpenSchema(context.Background(), url, schema)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() }) // runs before the schema is dropped
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openFresh(t) })
}

func TestReplicasMigrateConcurrently(t *testing.T) {
	url := testenv.Require(t, "STINT_TEST_POSTGRES_URL")
	schema := freshSchema(t, url)
	ctx := context.Background()
	const replicas = 4
	stores := make([]*Store, replicas)
	for i := range stores {
		s, err := OpenSchema(ctx, url, schema)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		stores[i] = s
	}
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for i, s := range stores {
		wg.Go(func() { errs[i] = s.Migrate(ctx) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: Migrate: %v", i, err)
		}
	}
	var n int
	if err := stores[0].pool.QueryRow(ctx, "SELECT count(*) FROM schema_migrations").Scan(&n); err != nil {
		t.Fatal(err)
	}
	ms, _ := sqlstore.Migrations()
	if n != len(ms) {
		t.Fatalf("schema_migrations has %d rows, want %d (one per migration)", n, len(ms))
	}
}

func TestSearchPathInURL(t *testing.T) {
	url := testenv.Require(t, "STINT_TEST_POSTGRES_URL")
	schema := freshSchema(t, url)
	ctx := context.Background()
	setup, err := OpenSchema(ctx, url, schema) // creates the schema
	if err != nil {
		t.Fatal(err)
	}
	setup.Close()
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	s, err := Open(ctx, url+sep+"search_path="+schema)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'leases'", schema).Scan(&n); err != nil || n != 1 {
		t.Fatalf("leases table in %s: count %d, %v; want 1", schema, n, err)
	}
}

func TestOpenRejectsBadInput(t *testing.T) {
	if _, err := Open(context.Background(), "postgres://u:s3cret@[::1"); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("bad URL error = %v; want an error without the password", err)
	}
	if _, err := OpenSchema(context.Background(), "postgres://127.0.0.1/x", `x"; DROP`); err == nil {
		t.Fatal("unsafe schema name accepted")
	}
}

func TestReaperAndLimitQueriesUseTheirIndexes(t *testing.T) {
	s := openFresh(t)
	ctx := context.Background()
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i := range 50 {
		l := core.Lease{ID: "l" + string(rune('a'+i%26)) + hex.EncodeToString([]byte{byte(i)}), Target: "t", Role: "r",
			IssuedAt: now, ExpiresAt: now.Add(time.Duration(i-25) * time.Minute), State: core.LeaseActive}
		if i%5 == 0 {
			l.State = core.LeaseRevoked
		}
		if err := s.CreateLease(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	// The table is tiny, so the planner would rightly prefer a scan.
	if _, err := tx.Exec(ctx, "SET LOCAL enable_seqscan = off"); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "ANALYZE leases"); err != nil {
		t.Fatal(err)
	}
	for _, tt := range sqlstore.IndexedQueries(now) {
		rows, err := tx.Query(ctx, "EXPLAIN "+dialect.Rebind(tt.Query), tt.Args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, line)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		text := strings.Join(plan, "\n")
		if !strings.Contains(text, "using "+tt.Index) || strings.Contains(text, "Sort") {
			t.Errorf("%s: plan does not use %s (without a sort):\n%s", tt.Name, tt.Index, text)
		}
	}
}
