package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" driver, for a real database under group commit
)

// groupDB opens a SQLite file with one table t(k) and group commit on, with
// the writer on one connection as package sqlite sets it up.
func groupDB(t *testing.T, o GroupOptions) *DB {
	t.Helper()
	w, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "g.db")+"?_journal_mode=WAL&_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	w.SetMaxOpenConns(1)
	if _, err := w.Exec(`CREATE TABLE t (k TEXT PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	o.Begin = "BEGIN IMMEDIATE"
	db := NewGrouped(w, w, Dialect{Name: "sqlite"}, nil, o)
	t.Cleanup(func() { db.Close() })
	return db
}

func insert(k string) writeFn {
	return func(ctx context.Context, ex execer) error {
		_, err := ex.ExecContext(ctx, `INSERT INTO t (k) VALUES (?)`, k)
		return err
	}
}

func keys(t *testing.T, db *DB) []string {
	t.Helper()
	rows, err := db.r.Query(`SELECT k FROM t ORDER BY k`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			t.Fatal(err)
		}
		out = append(out, k)
	}
	return out
}

// block queues a write that holds the writer inside its transaction until
// the returned release is called, so the writes queued meanwhile are
// certain to form the next batch together.
func block(t *testing.T, db *DB) (release func()) {
	t.Helper()
	started, unblock := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- db.write(context.Background(), func(ctx context.Context, ex execer) error {
			close(started)
			<-unblock
			return insert("blocker")(ctx, ex)
		})
	}()
	<-started
	return func() {
		close(unblock)
		if err := <-done; err != nil {
			t.Errorf("blocker write: %v", err)
		}
	}
}

// waitQueued waits until n writes wait in the queue.
func waitQueued(t *testing.T, db *DB, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for db.GroupStats().Queued < n {
		if time.Now().After(deadline) {
			t.Fatalf("queued = %d, want %d", db.GroupStats().Queued, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// submit runs each write in its own goroutine, in order of queueing, and
// returns a function that waits for and returns their errors.
func submit(t *testing.T, db *DB, fns ...writeFn) (wait func() []error) {
	t.Helper()
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	for i, fn := range fns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = db.write(context.Background(), fn)
		}()
		waitQueued(t, db, i+1) // keeps the queue order equal to fns's
	}
	return func() []error { wg.Wait(); return errs }
}

func TestGroupCommitRollsBackOnlyTheFailingWrite(t *testing.T) {
	db := groupDB(t, GroupOptions{})
	boom := errors.New("boom")
	release := block(t, db)
	wait := submit(t, db,
		insert("a"),
		// A write that fails after its first statement: the savepoint
		// must undo that statement too.
		func(ctx context.Context, ex execer) error {
			if err := insert("b")(ctx, ex); err != nil {
				return err
			}
			return boom
		},
		// A constraint error in the second statement.
		func(ctx context.Context, ex execer) error {
			if err := insert("c")(ctx, ex); err != nil {
				return err
			}
			return insert("a")(ctx, ex)
		},
		insert("d"),
	)
	before := db.GroupStats().Commits
	release()
	errs := wait()

	if errs[0] != nil || errs[3] != nil {
		t.Errorf("independent writes failed: %v, %v", errs[0], errs[3])
	}
	if !errors.Is(errs[1], boom) {
		t.Errorf("failing write = %v, want boom", errs[1])
	}
	if errs[2] == nil {
		t.Error("write hitting the primary key succeeded, want a constraint error")
	}
	if got, want := keys(t, db), []string{"a", "blocker", "d"}; !slices.Equal(got, want) {
		t.Errorf("stored keys = %v, want %v (b and c rolled back to their savepoints)", got, want)
	}
	// The blocker's batch, then the four queued writes in one more.
	if got := db.GroupStats().Commits - before; got != 2 {
		t.Errorf("commits for blocker + 4 queued writes = %d, want 2", got)
	}
}

func TestGroupCommitFailsTheWholeBatchWhenTheTransactionIsLost(t *testing.T) {
	db := groupDB(t, GroupOptions{})
	release := block(t, db)
	// The middle write ends the transaction, as SQLite does itself on an
	// I/O error or a full disk: its savepoint is gone, so nothing in the
	// batch may report success.
	wait := submit(t, db,
		insert("a"),
		func(ctx context.Context, ex execer) error {
			_, err := ex.ExecContext(ctx, `ROLLBACK`)
			return errors.Join(errors.New("lost"), err)
		},
		insert("c"),
	)
	release()
	for i, err := range wait() {
		if err == nil {
			t.Errorf("write %d succeeded in a lost transaction", i)
		}
	}
	if got, want := keys(t, db), []string{"blocker"}; !slices.Equal(got, want) {
		t.Errorf("stored keys = %v, want %v", got, want)
	}
	// The writer recovers for the next batch.
	if err := db.write(context.Background(), insert("e")); err != nil {
		t.Fatalf("write after a lost batch: %v", err)
	}
	if got, want := keys(t, db), []string{"blocker", "e"}; !slices.Equal(got, want) {
		t.Errorf("stored keys = %v, want %v", got, want)
	}
}

func TestGroupCommitSkipsWriteWhoseCallerLeftBeforeItsTurn(t *testing.T) {
	db := groupDB(t, GroupOptions{})
	release := block(t, db)
	ctx, cancel := context.WithCancel(context.Background())
	gone := make(chan error, 1)
	go func() { gone <- db.write(ctx, insert("gone")) }()
	waitQueued(t, db, 1)
	wait := submit(t, db, insert("stays"))
	cancel()
	if err := <-gone; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled caller got %v, want context.Canceled", err)
	}
	release()
	if errs := wait(); errs[0] != nil {
		t.Errorf("write batched with a cancelled one: %v", errs[0])
	}
	if got, want := keys(t, db), []string{"blocker", "stays"}; !slices.Equal(got, want) {
		t.Errorf("stored keys = %v, want %v", got, want)
	}
}

func TestGroupCommitQueueIsBounded(t *testing.T) {
	db := groupDB(t, GroupOptions{Queue: 2})
	release := block(t, db)
	wait := submit(t, db, insert("a"), insert("b"))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := db.write(ctx, insert("c")); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("write to a full queue = %v, want to block until its deadline", err)
	}
	release()
	for _, err := range wait() {
		if err != nil {
			t.Error(err)
		}
	}
	if got, want := keys(t, db), []string{"a", "b", "blocker"}; !slices.Equal(got, want) {
		t.Errorf("stored keys = %v, want %v (c never queued)", got, want)
	}
}

func TestCloseFinishesQueuedWritesAndRefusesNewOnes(t *testing.T) {
	db := groupDB(t, GroupOptions{})
	release := block(t, db)
	wait := submit(t, db, insert("a"), insert("b"))
	closed := make(chan struct{})
	go func() {
		// Only the writer stops here; the pools stay open to check the
		// rows afterwards.
		db.group.close()
		close(closed)
	}()
	<-db.group.quit
	if err := db.write(context.Background(), insert("late")); !errors.Is(err, ErrClosed) {
		t.Errorf("write after Close = %v, want ErrClosed", err)
	}
	release()
	<-closed
	for _, err := range wait() {
		if err != nil {
			t.Errorf("write queued before Close: %v", err)
		}
	}
	if got, want := keys(t, db), []string{"a", "b", "blocker"}; !slices.Equal(got, want) {
		t.Errorf("stored keys = %v, want %v", got, want)
	}
}

func TestLoneFailingWriteLeavesNoTrace(t *testing.T) {
	// A batch of one runs without a savepoint; its transaction's
	// rollback must undo the write's first statement all the same.
	db := groupDB(t, GroupOptions{})
	boom := errors.New("boom")
	err := db.write(context.Background(), func(ctx context.Context, ex execer) error {
		if err := insert("x")(ctx, ex); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("failing write = %v, want boom", err)
	}
	if err := db.write(context.Background(), insert("y")); err != nil {
		t.Fatalf("write after a failed one: %v", err)
	}
	if got, want := keys(t, db), []string{"y"}; !slices.Equal(got, want) {
		t.Errorf("stored keys = %v, want %v", got, want)
	}
}

// commits counts the batches the writer has committed.
func commits(db *DB) uint64 { return db.GroupStats().Commits }

func TestCommitDelay(t *testing.T) {
	// Each case first commits a batch of three (a blocker holds the writer
	// while they queue), so the writer is busy and its last batch was 3.
	tests := []struct {
		name        string
		delay, busy time.Duration
		submit      int // writes submitted one by one after that batch
		wantCommits uint64
		minWait     time.Duration // the first write's least wait
	}{
		{"a busy writer gathers as many writes as its last batch", time.Minute, time.Minute, 3, 1, 0},
		{"the delay ends the wait for writes that do not come", 50 * time.Millisecond, time.Minute, 1, 1, 50 * time.Millisecond},
		{"an idle writer commits at once", time.Minute, 0, 3, 3, 0},
		{"no delay, no wait", 0, time.Minute, 3, 3, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := groupDB(t, GroupOptions{CommitDelay: tt.delay})
			db.group.busy = tt.busy
			release := block(t, db)
			wait := submit(t, db, insert("a1"), insert("a2"), insert("a3"))
			release()
			for _, err := range wait() {
				if err != nil {
					t.Fatal(err)
				}
			}
			before := commits(db)
			start := time.Now()
			var fns []writeFn
			for i := range tt.submit {
				fns = append(fns, insert(fmt.Sprintf("b%d", i)))
			}
			var first time.Duration
			var wg sync.WaitGroup
			for i, fn := range fns {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := db.write(context.Background(), fn); err != nil {
						t.Error(err)
					}
					if i == 0 {
						first = time.Since(start)
					}
				}()
				switch {
				case i == len(fns)-1: // the last may complete the batch
				case tt.wantCommits == 1:
					waitQueuedOrGathered(t, db, i+1)
				default:
					wg.Wait() // one at a time: each its own commit
				}
			}
			wg.Wait()
			if got := commits(db) - before; got != tt.wantCommits {
				t.Errorf("%d writes took %d commits, want %d", tt.submit, got, tt.wantCommits)
			}
			if first < tt.minWait {
				t.Errorf("the first write waited %v, want at least the delay %v", first, tt.minWait)
			}
			if got := keys(t, db); len(got) != 4+tt.submit {
				t.Errorf("rows = %v, want %d", got, 4+tt.submit)
			}
		})
	}
}

// waitQueuedOrGathered waits until the writer holds n writes, queued or
// gathered into the batch it is waiting to fill.
func waitQueuedOrGathered(t *testing.T, db *DB, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for db.group.pendingCount() < n {
		if time.Now().After(deadline) {
			t.Fatalf("writer holds %d writes, want %d", db.group.pendingCount(), n)
		}
		time.Sleep(time.Millisecond)
	}
}
