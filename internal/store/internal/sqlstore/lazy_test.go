package sqlstore

import (
	"context"
	"sync"
	"testing"

	"github.com/stint-dev/stint/internal/store"
)

// syncLevel is a write that records the connection's synchronous setting
// as its batch runs (SQLite: 1 NORMAL, 2 FULL) and inserts k.
func syncLevel(k string, got *int) writeFn {
	return func(ctx context.Context, ex execer) error {
		if err := ex.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(got); err != nil {
			return err
		}
		return insert(k)(ctx, ex)
	}
}

func TestLazyWritesCommitWithoutAFlushOnlyWhenTheWholeBatchIsLazy(t *testing.T) {
	const normal, full = 1, 2
	lazy := store.Lazy(context.Background())
	tests := []struct {
		name      string
		ctxs      []context.Context // queued together as one batch
		want      int
		wantLazy  uint64 // lazy commits, the blocker's batch excluded
		noSupport bool   // GroupOptions without the switch statements
	}{
		{"a lone lazy write", []context.Context{lazy}, normal, 1, false},
		{"a lone durable write", []context.Context{context.Background()}, full, 0, false},
		{"lazy writes together", []context.Context{lazy, lazy, lazy}, normal, 1, false},
		{"one durable write makes the batch durable", []context.Context{lazy, context.Background(), lazy}, full, 0, false},
		{"a store that cannot commit lazily", []context.Context{lazy}, full, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := GroupOptions{LazySync: "PRAGMA synchronous = NORMAL", DurableSync: "PRAGMA synchronous = FULL"}
			if tt.noSupport {
				o = GroupOptions{}
			}
			db := groupDB(t, o)
			if _, err := db.w.Exec(`PRAGMA synchronous = FULL`); err != nil {
				t.Fatal(err)
			}
			release := block(t, db)
			levels := make([]int, len(tt.ctxs))
			errs := make([]error, len(tt.ctxs))
			var wg sync.WaitGroup
			for i, ctx := range tt.ctxs {
				wg.Go(func() { errs[i] = db.write(ctx, syncLevel(string(rune('a'+i)), &levels[i])) })
				waitQueued(t, db, i+1)
			}
			before := db.GroupStats()
			release()
			wg.Wait()
			for i := range tt.ctxs {
				if errs[i] != nil {
					t.Fatalf("write %d: %v", i, errs[i])
				}
				if levels[i] != tt.want {
					t.Errorf("write %d ran with synchronous %d, want %d", i, levels[i], tt.want)
				}
			}
			if got := db.GroupStats().LazyCommits - before.LazyCommits; got != tt.wantLazy {
				t.Errorf("lazy commits = %d, want %d", got, tt.wantLazy)
			}
			// Whatever the batch was, the next durable write flushes again.
			var after int
			if err := db.write(context.Background(), syncLevel("z", &after)); err != nil || after != full {
				t.Fatalf("next durable write ran with synchronous %d (%v), want %d", after, err, full)
			}
			if got := len(keys(t, db)); got != len(tt.ctxs)+2 {
				t.Fatalf("%d rows, want %d", got, len(tt.ctxs)+2)
			}
		})
	}
}

func TestAFailedLazyBatchLeavesTheWriterDurable(t *testing.T) {
	db := groupDB(t, GroupOptions{LazySync: "PRAGMA synchronous = NORMAL", DurableSync: "PRAGMA synchronous = FULL"})
	if _, err := db.w.Exec(`PRAGMA synchronous = FULL`); err != nil {
		t.Fatal(err)
	}
	lazy := store.Lazy(context.Background())
	if err := db.write(lazy, insert("dup")); err != nil {
		t.Fatal(err)
	}
	if err := db.write(lazy, insert("dup")); err == nil {
		t.Fatal("a duplicate key was written")
	}
	var level int
	if err := db.write(context.Background(), syncLevel("after", &level)); err != nil || level != 2 {
		t.Fatalf("the durable write after a failed lazy batch ran with synchronous %d (%v), want 2 (FULL)", level, err)
	}
	if got := keys(t, db); len(got) != 2 {
		t.Fatalf("rows = %q, want dup and after", got)
	}
}
