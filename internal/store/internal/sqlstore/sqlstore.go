// Package sqlstore implements store.Store over database/sql once, for both
// SQLite and PostgreSQL; the two public packages only open connections and
// pick a Dialect. Keeping one implementation keeps the two stores' behaviour
// (and the conformance suite's verdict on it) identical.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/store"
)

// Dialect is what differs between the databases.
type Dialect struct {
	// Name prefixes every error ("sqlite", "postgres").
	Name string
	// Bytes is the binary column type (BLOB, BYTEA).
	Bytes string
	// Numbered makes placeholders $1, $2, … instead of ?.
	Numbered bool
	// MigrationLock, when set, runs first in the migration transaction so
	// that replicas starting together migrate one after the other.
	MigrationLock string
	// NowNanos is a SQL expression for the database clock in unix
	// nanoseconds. Empty: locks use DB.Now, passed as a parameter.
	NowNanos string
}

// DB is a store.Store over a writer and a reader pool, which may be the
// same *sql.DB.
type DB struct {
	w, r  *sql.DB
	d     Dialect
	now   func() time.Time
	group *committer // nil: each write is its own transaction
	reads *readStmts
}

// New returns a DB whose writes each run as their own statement on w,
// concurrently if w allows it. now is used only when the dialect has no
// NowNanos.
func New(w, r *sql.DB, d Dialect, now func() time.Time) *DB {
	if now == nil {
		now = time.Now
	}
	return &DB{w: w, r: r, d: d, now: now, reads: &readStmts{db: r}}
}

// NewGrouped returns a DB whose writes (CreateLease, UpdateLease, PutKey,
// PutMetaIfAbsent, AcquireLock, ReleaseLock) go through group commit: one
// writer goroutine runs every write queued at once in one transaction on
// w, a savepoint around each, and commits once. It suits a database with
// one writer and a costly commit (SQLite with synchronous=FULL); each
// caller still returns only after its own write is durable. Migrate and
// reads do not go through the queue.
func NewGrouped(w, r *sql.DB, d Dialect, now func() time.Time, o GroupOptions) *DB {
	db := New(w, r, d, now)
	db.group = newCommitter(w, o)
	return db
}

// GroupStats reports group commit's counters; all zero without it.
func (db *DB) GroupStats() GroupStats {
	if db.group == nil {
		return GroupStats{}
	}
	return db.group.stats()
}

// write runs fn through group commit when it is on, else directly on the
// writer pool.
func (db *DB) write(ctx context.Context, fn writeFn) error {
	if db.group == nil {
		return fn(ctx, db.w)
	}
	return db.group.do(ctx, fn)
}

// errorf prefixes the dialect's name, so messages read "sqlite: get lease …".
func (db *DB) errorf(format string, args ...any) error {
	return fmt.Errorf(db.d.Name+": "+format, args...)
}

// Rebind turns ? placeholders into $n for dialects that number them. The
// queries here never hold a literal '?', so a plain scan is exact.
func (d Dialect) Rebind(q string) string {
	if !d.Numbered || !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	n := 0
	for _, c := range q {
		if c == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

// GetMeta implements store.Store.
func (db *DB) GetMeta(ctx context.Context, key string) ([]byte, error) {
	var v []byte
	err := db.queryRow(ctx, db.d.Rebind(`SELECT value FROM meta WHERE key = ?`), key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, db.errorf("get meta %q: %w", key, core.ErrNotFound)
	}
	if err != nil {
		return nil, db.errorf("get meta %q: %w", key, err)
	}
	return v, nil
}

// PutMetaIfAbsent implements store.Store. Rows in meta are never deleted,
// so the value read after the conditional insert is the one that won.
func (db *DB) PutMetaIfAbsent(ctx context.Context, key string, value []byte) ([]byte, error) {
	if value == nil {
		value = []byte{}
	}
	var v []byte
	err := db.write(ctx, func(ctx context.Context, ex execer) error {
		if _, err := ex.ExecContext(ctx, db.d.Rebind(
			`INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING`), key, value); err != nil {
			return err
		}
		// Read through the writer: it has certainly seen the winning insert.
		if err := ex.QueryRowContext(ctx, db.d.Rebind(`SELECT value FROM meta WHERE key = ?`), key).Scan(&v); err != nil {
			return fmt.Errorf("read back: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, db.errorf("put meta %q: %w", key, err)
	}
	return v, nil
}

// PutKey implements store.Store.
func (db *DB) PutKey(ctx context.Context, k store.KeyRecord) error {
	if k.ID == "" || k.Purpose == "" {
		return db.errorf("put key: id and purpose are required")
	}
	created, err := reqNanos(k.CreatedAt)
	if err != nil {
		return db.errorf("put key %q: created_at: %w", k.ID, err)
	}
	notAfter, err := nanos(k.NotAfter)
	if err != nil {
		return db.errorf("put key %q: not_after: %w", k.ID, err)
	}
	err = db.write(ctx, func(ctx context.Context, ex execer) error {
		_, err := ex.ExecContext(ctx, db.d.Rebind(`
		INSERT INTO keys (id, purpose, algorithm, private, public, created_at, not_after)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET purpose = excluded.purpose, algorithm = excluded.algorithm,
			private = excluded.private, public = excluded.public,
			created_at = excluded.created_at, not_after = excluded.not_after`),
			k.ID, k.Purpose, k.Algorithm, k.Private, k.Public, created, notAfter)
		return err
	})
	if err != nil {
		return db.errorf("put key %q: %w", k.ID, err)
	}
	return nil
}

// ListKeys implements store.Store; ties on created_at are broken by id so
// the order is stable.
func (db *DB) ListKeys(ctx context.Context, purpose string) ([]store.KeyRecord, error) {
	rows, err := db.query(ctx, db.d.Rebind(`
		SELECT id, purpose, algorithm, private, public, created_at, not_after
		FROM keys WHERE purpose = ? ORDER BY created_at DESC, id DESC`), purpose)
	if err != nil {
		return nil, db.errorf("list keys %q: %w", purpose, err)
	}
	defer rows.Close()
	var out []store.KeyRecord
	for rows.Next() {
		var k store.KeyRecord
		var created int64
		var notAfter sql.NullInt64
		if err := rows.Scan(&k.ID, &k.Purpose, &k.Algorithm, &k.Private, &k.Public, &created, &notAfter); err != nil {
			return nil, db.errorf("list keys %q: %w", purpose, err)
		}
		k.CreatedAt = time.Unix(0, created).UTC()
		k.NotAfter = fromNanos(notAfter)
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, db.errorf("list keys %q: %w", purpose, err)
	}
	return out, nil
}

// AcquireLock implements store.Store with one upsert: it inserts a free
// lock, and updates a held one only when holder already holds it or it has
// expired. A row count of one means holder now holds the lock.
func (db *DB) AcquireLock(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	if name == "" || holder == "" {
		return false, db.errorf("acquire lock: name and holder are required")
	}
	if ttl <= 0 {
		return false, db.errorf("acquire lock %q: ttl must be positive", name)
	}
	var held bool
	err := db.write(ctx, func(ctx context.Context, ex execer) error {
		var q string
		var args []any
		if db.d.NowNanos != "" {
			q = fmt.Sprintf(`
			INSERT INTO locks (name, holder, expires_at) VALUES (?, ?, %[1]s + ?)
			ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
			WHERE locks.holder = excluded.holder OR locks.expires_at <= %[1]s`, db.d.NowNanos)
			args = []any{name, holder, int64(ttl)}
		} else {
			// Read the clock when the write runs, not when it was queued.
			now, err := reqNanos(db.now())
			if err != nil {
				return err
			}
			q = `
			INSERT INTO locks (name, holder, expires_at) VALUES (?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
			WHERE locks.holder = excluded.holder OR locks.expires_at <= ?`
			args = []any{name, holder, now + int64(ttl), now}
		}
		res, err := ex.ExecContext(ctx, db.d.Rebind(q), args...)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		held = n == 1
		return err
	})
	if err != nil {
		return false, db.errorf("acquire lock %q: %w", name, err)
	}
	return held, nil
}

// ReleaseLock implements store.Store.
func (db *DB) ReleaseLock(ctx context.Context, name, holder string) error {
	err := db.write(ctx, func(ctx context.Context, ex execer) error {
		_, err := ex.ExecContext(ctx, db.d.Rebind(`DELETE FROM locks WHERE name = ? AND holder = ?`), name, holder)
		return err
	})
	if err != nil {
		return db.errorf("release lock %q: %w", name, err)
	}
	return nil
}

// Flush implements store.Store: one durable write (a meta row holding the
// time) flushes every write committed before it, Lazy ones included — an
// empty transaction would write nothing and flush nothing.
func (db *DB) Flush(ctx context.Context) error {
	err := db.write(ctx, func(ctx context.Context, ex execer) error {
		_, err := ex.ExecContext(ctx, db.d.Rebind(`INSERT INTO meta (key, value) VALUES (?, ?)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value`),
			"store_flushed_at", []byte(strconv.FormatInt(db.now().UnixNano(), 10)))
		return err
	})
	if err != nil {
		return db.errorf("flush: %w", err)
	}
	return nil
}

// Close finishes the writes already queued for group commit, refuses new
// ones (ErrClosed), and closes both pools.
func (db *DB) Close() error {
	if db.group != nil {
		db.group.close()
	}
	db.reads.close()
	err := db.w.Close()
	if db.r != db.w {
		err = errors.Join(err, db.r.Close())
	}
	if err != nil {
		return db.errorf("close: %w", err)
	}
	return nil
}

var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// reqNanos converts a time that must be set to unix nanoseconds.
func reqNanos(t time.Time) (int64, error) {
	if t.IsZero() {
		return 0, errors.New("time is required")
	}
	if t.Before(minTime) || t.After(maxTime) {
		return 0, fmt.Errorf("time %s is outside the storable range (years 1678 to 2262)", t.UTC().Format(time.RFC3339))
	}
	return t.UnixNano(), nil
}

// nanos converts an optional time; the zero time is stored as NULL.
func nanos(t time.Time) (sql.NullInt64, error) {
	if t.IsZero() {
		return sql.NullInt64{}, nil
	}
	n, err := reqNanos(t)
	return sql.NullInt64{Int64: n, Valid: err == nil}, err
}

func fromNanos(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64).UTC()
}

var _ store.Store = (*DB)(nil)
