package sqlite

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stint-dev/stint/internal/store"
	"github.com/stint-dev/stint/internal/store/internal/sqlstore"
	"github.com/stint-dev/stint/internal/store/storetest"
)

func openTemp(t testing.TB, o Options) *Store {
	t.Helper()
	s, err := OpenOptions(context.Background(), filepath.Join(t.TempDir(), "stint.db"), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openTemp(t, Options{}) })
}

func TestOpenCreatesPrivateFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "stint")
	path := filepath.Join(dir, "stint.db")
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutMetaIfAbsent(context.Background(), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path string
		mode os.FileMode
	}{
		{dir, 0o700}, {filepath.Dir(dir), 0o700},
		{path, 0o600}, {path + "-wal", 0o600}, {path + "-shm", 0o600},
	} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != c.mode {
			t.Errorf("%s mode = %o, want %o", c.path, got, c.mode)
		}
	}
}

func TestOpenSetsPragmas(t *testing.T) {
	s := openTemp(t, Options{})
	ctx := context.Background()
	cases := []struct {
		pragma string
		want   string
	}{
		{"journal_mode", "wal"},
		{"synchronous", "2"}, // FULL
		{"foreign_keys", "1"},
		{"busy_timeout", "5000"},
	}
	for _, c := range cases {
		for _, db := range []struct {
			name string
			q    func() (string, error)
		}{
			{"writer", func() (v string, err error) { err = s.w.QueryRowContext(ctx, "PRAGMA "+c.pragma).Scan(&v); return }},
			{"reader", func() (v string, err error) { err = s.r.QueryRowContext(ctx, "PRAGMA "+c.pragma).Scan(&v); return }},
		} {
			got, err := db.q()
			if err != nil {
				t.Fatal(err)
			}
			if !strings.EqualFold(got, c.want) {
				t.Errorf("%s PRAGMA %s = %q, want %q", db.name, c.pragma, got, c.want)
			}
		}
	}
	if _, err := s.r.ExecContext(ctx, "CREATE TABLE x (a)"); err == nil {
		t.Error("reader pool accepted a write; want query_only")
	}
}

func TestOpenRejectsNonPaths(t *testing.T) {
	for _, p := range []string{"", ":memory:", "file:x.db", "/tmp/x.db?mode=ro"} {
		if s, err := Open(context.Background(), p); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded, want an error", p)
		}
	}
	if _, err := OpenOptions(context.Background(), filepath.Join(t.TempDir(), "x.db"), Options{Synchronous: "OFF"}); err == nil {
		t.Error("Synchronous OFF accepted, want an error")
	}
}

func TestReaperAndLimitQueriesUseTheirIndexes(t *testing.T) {
	s := openTemp(t, Options{})
	ctx := context.Background()
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tt := range sqlstore.IndexedQueries(time.Now()) {
		t.Run(tt.Name, func(t *testing.T) {
			rows, err := s.r.QueryContext(ctx, "EXPLAIN QUERY PLAN "+tt.Query, tt.Args...)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var plan []string
			for rows.Next() {
				var id, parent, notused int
				var detail string
				if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, detail)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			text := strings.Join(plan, "\n")
			if !strings.Contains(text, "INDEX "+tt.Index) || strings.Contains(text, "TEMP B-TREE") {
				t.Fatalf("plan does not use %s (without a sort):\n%s", tt.Index, text)
			}
		})
	}
}

func TestMigrateRefusesNewerSchema(t *testing.T) {
	s := openTemp(t, Options{})
	ctx := context.Background()
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(ctx, "INSERT INTO schema_migrations (version, applied_at) VALUES (9999, 0)"); err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Migrate on a newer schema = %v, want a refusal", err)
	}
}
