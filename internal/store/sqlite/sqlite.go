// Package sqlite is the embedded store: one SQLite file, driven by the pure
// Go modernc.org/sqlite, for `stint dev` and single-node servers.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/stint-dev/stint/internal/store"
	"github.com/stint-dev/stint/internal/store/internal/sqlstore"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Options tune Open; the zero value is the production setting.
type Options struct {
	// Now is the clock for lock expiry (default time.Now).
	Now func() time.Time
	// BusyTimeout is how long a connection waits for another process's
	// lock on the file before failing (default 5s).
	BusyTimeout time.Duration
	// ReadConns is the size of the read pool (default GOMAXPROCS, at least 2).
	ReadConns int
	// Synchronous is FULL (default) or NORMAL. In WAL mode NORMAL skips the
	// fsync on each commit: the file never corrupts, but a power loss can
	// drop the last commits. stint writes a lease as pending before it
	// touches a target, so a lost commit could leave a credential that no
	// lease will revoke; FULL is therefore the default. NORMAL suits
	// throwaway dev databases.
	Synchronous string
	// WriteQueue is how many writes may wait for the writer (default
	// 1024); further callers block until there is room or their context
	// ends.
	WriteQueue int
	// MaxBatch caps the writes committed together (default 512).
	MaxBatch int
	// CommitDelay bounds how long a busy writer waits to gather a batch
	// as large as its previous one before it commits (see
	// sqlstore.GroupOptions). Default: 1ms under FULL, where every commit
	// flushes; none under NORMAL. Negative: never wait.
	CommitDelay time.Duration
}

// DefaultCommitDelay is Options.CommitDelay's default under FULL.
const DefaultCommitDelay = time.Millisecond

// Store is a store.Store in one SQLite file. Writes go through a single
// connection, because SQLite serializes writers anyway and one Go-side
// queue is cheaper than connections spinning on SQLITE_BUSY; reads use a
// pool, which WAL lets run beside the writer.
//
// Writes use group commit: concurrent CreateLease, UpdateLease, PutKey,
// PutMetaIfAbsent, AcquireLock and ReleaseLock calls are queued to one
// writer goroutine, which runs all that is queued in one transaction (a
// savepoint around each, so one write's failure, such as a duplicate lease
// id, fails only its caller) and commits once. Under synchronous=FULL that
// is one fsync for the whole batch instead of one per write, and every
// caller still returns only after its write is durable. A caller whose
// context ends while its write is queued gets the context's error without
// knowing whether the write committed, as with a network timeout.
type Store struct {
	*sqlstore.DB
	w, r *sql.DB
}

// Open opens (creating if needed) the database at path with default Options.
// Call Migrate before use.
func Open(ctx context.Context, path string) (*Store, error) {
	return OpenOptions(ctx, path, Options{})
}

// OpenOptions opens the database at path. The file's directory is created
// with mode 0700 and the file with 0600, since it holds sealed keys and
// lease data; SQLite gives the -wal and -shm files the same mode.
func OpenOptions(ctx context.Context, path string, o Options) (*Store, error) {
	if path == "" || strings.ContainsAny(path, "?#") || strings.HasPrefix(path, "file:") || path == ":memory:" {
		return nil, fmt.Errorf("sqlite: open: %q is not a plain file path", path)
	}
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = 5 * time.Second
	}
	if o.ReadConns <= 0 {
		o.ReadConns = max(runtime.GOMAXPROCS(0), 2)
	}
	switch strings.ToUpper(o.Synchronous) {
	case "":
		o.Synchronous = "FULL"
	case "FULL", "NORMAL":
	default:
		return nil, fmt.Errorf("sqlite: open: synchronous must be FULL or NORMAL, not %q", o.Synchronous)
	}
	switch {
	case o.CommitDelay < 0:
		o.CommitDelay = 0
	case o.CommitDelay == 0 && strings.EqualFold(o.Synchronous, "FULL"):
		o.CommitDelay = DefaultCommitDelay
	}
	if err := createFile(path); err != nil {
		return nil, err
	}

	common := url.Values{}
	common.Set("_busy_timeout", strconv.FormatInt(o.BusyTimeout.Milliseconds(), 10))
	common.Set("_foreign_keys", "1")
	common.Set("_synchronous", o.Synchronous)

	wq := url.Values{}
	for k, v := range common {
		wq[k] = v
	}
	wq.Set("_journal_mode", "WAL")
	// IMMEDIATE takes the write lock at BEGIN, so a transaction never has
	// to upgrade a read lock, which fails at once (busy_timeout does not
	// apply) when another process writes to the same file.
	wq.Set("_txlock", "immediate")
	w, err := sql.Open("sqlite", path+"?"+wq.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	// The writer connects first so the file is in WAL mode before any reader.
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}

	rq := common
	rq.Set("_query_only", "1")
	r, err := sql.Open("sqlite", path+"?"+rq.Encode())
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	r.SetMaxOpenConns(o.ReadConns)
	r.SetMaxIdleConns(o.ReadConns)
	if err := r.PingContext(ctx); err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	g := sqlstore.GroupOptions{
		Begin:       "BEGIN IMMEDIATE",
		Queue:       o.WriteQueue,
		MaxBatch:    o.MaxBatch,
		CommitDelay: o.CommitDelay,
	}
	if strings.EqualFold(o.Synchronous, "FULL") {
		// In WAL mode a NORMAL commit skips the flush and stays
		// consistent; the next FULL commit's flush of the WAL makes it
		// durable too (store.Lazy).
		g.LazySync, g.DurableSync = "PRAGMA synchronous = NORMAL", "PRAGMA synchronous = FULL"
	}
	db := sqlstore.NewGrouped(w, r, dialect, o.Now, g)
	return &Store{DB: db, w: w, r: r}, nil
}

// dialect is SQLite's flavour of the shared schema and queries.
var dialect = sqlstore.Dialect{Name: "sqlite", Bytes: "BLOB"}

// createFile makes the directory (0700) and an empty file (0600) before
// SQLite does, so neither is ever created with the process umask.
func createFile(path string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("sqlite: create directory %s: %w", dir, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sqlite: create %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("sqlite: create %s: %w", path, err)
	}
	return nil
}

var _ store.Store = (*Store)(nil)
