package sqlstore

import (
	"context"
	"fmt"
	"testing"
)

func TestReaderPreparesEachQueryOnceWithinItsBound(t *testing.T) {
	tests := []struct {
		name      string
		queries   int // distinct query texts
		wantCache int
	}{
		{"one query", 1, 1},
		{"a few queries", 3, 3},
		{"more queries than the bound", maxReadStmts + 20, maxReadStmts},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := groupDB(t, GroupOptions{})
			ctx := context.Background()
			if err := db.write(ctx, insert("a")); err != nil {
				t.Fatal(err)
			}
			for round := range 2 {
				for i := range tt.queries {
					q := fmt.Sprintf(`SELECT k FROM t WHERE k = ? -- query %d`, i)
					var k string
					if err := db.queryRow(ctx, q, "a").Scan(&k); err != nil || k != "a" {
						t.Fatalf("round %d query %d: %q, %v", round, i, k, err)
					}
					rows, err := db.query(ctx, q, "a")
					if err != nil {
						t.Fatalf("round %d query %d: %v", round, i, err)
					}
					n := 0
					for rows.Next() {
						n++
					}
					if err := rows.Close(); err != nil || n != 1 {
						t.Fatalf("round %d query %d: %d rows, %v", round, i, n, err)
					}
				}
			}
			if got := len(db.reads.stmts); got != tt.wantCache {
				t.Fatalf("%d statements prepared, want %d (bound %d)", got, tt.wantCache, maxReadStmts)
			}
		})
	}
}

func TestReaderRunsAQueryThatCannotBePreparedAndReportsItsError(t *testing.T) {
	db := groupDB(t, GroupOptions{})
	var k string
	err := db.queryRow(context.Background(), `SELECT k FROM no_such_table`).Scan(&k)
	if err == nil {
		t.Fatal("a query on a missing table succeeded")
	}
	if len(db.reads.stmts) != 0 {
		t.Fatalf("a failed preparation was cached: %d statements", len(db.reads.stmts))
	}
}
