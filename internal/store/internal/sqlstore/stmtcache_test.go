package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
)

func TestWriterPreparesEachQueryOnce(t *testing.T) {
	tests := []struct {
		name      string
		queries   int // distinct query texts
		writes    int
		wantCache int // the queries plus BEGIN IMMEDIATE and COMMIT
	}{
		{"one query, many writes", 1, 50, 1 + 2},
		{"a few queries", 3, 30, 3 + 2},
		// The cache starts over when full: 62 queries and the two control
		// statements fill it, so the last 22 queries remain, with BEGIN
		// and COMMIT prepared again after them.
		{"more queries than the bound", maxCachedStmts + 20, maxCachedStmts + 20, 22 + 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := groupDB(t, GroupOptions{})
			ctx := context.Background()
			for i := range tt.writes {
				q := fmt.Sprintf(`INSERT INTO t (k) VALUES (?) -- query %d`, i%tt.queries)
				err := db.write(ctx, func(ctx context.Context, ex execer) error {
					_, err := ex.ExecContext(ctx, q, fmt.Sprintf("k%03d", i))
					return err
				})
				if err != nil {
					t.Fatalf("write %d: %v", i, err)
				}
			}
			if got := len(keys(t, db)); got != tt.writes {
				t.Fatalf("%d rows, want %d", got, tt.writes)
			}
			// The writer is idle between writes; its cache is not in use.
			if got := len(db.group.stmts.stmts); got != tt.wantCache || got > maxCachedStmts {
				t.Fatalf("%d statements cached, want %d (bound %d)", got, tt.wantCache, maxCachedStmts)
			}
		})
	}
}

func TestCachedStatementErrorsAndArgumentsAreTheDriversOwn(t *testing.T) {
	db := groupDB(t, GroupOptions{})
	ctx := context.Background()
	exec := func(q string, args ...any) error {
		return db.write(ctx, func(ctx context.Context, ex execer) error {
			_, err := ex.ExecContext(ctx, q, args...)
			return err
		})
	}
	if err := exec(`INSERT INTO t (k) VALUES (?)`, "a"); err != nil {
		t.Fatal(err)
	}
	if err := exec(`INSERT INTO t (k) VALUES (?)`, "a"); err == nil {
		t.Fatal("a duplicate key through the cached statement succeeded")
	}
	// database/sql's conversions still apply: a Valuer, an int, a nil.
	if err := exec(`INSERT INTO t (k) VALUES (?)`, sql.NullString{String: "b", Valid: true}); err != nil {
		t.Fatalf("Valuer argument: %v", err)
	}
	if err := exec(`INSERT INTO t (k) VALUES (CAST(? AS TEXT))`, 7); err != nil {
		t.Fatalf("int argument: %v", err)
	}
	if err := exec(`INSERT INTO t (k) VALUES (?)`, struct{}{}); err == nil {
		t.Fatal("an unsupported argument type was accepted")
	}
	if got := keys(t, db); len(got) != 3 || got[0] != "7" || got[1] != "a" || got[2] != "b" {
		t.Fatalf("rows %v", got)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(db.group.stmts.stmts); n != 0 {
		t.Fatalf("%d statements left unfinalized after Close", n)
	}
}
