// Package postgres is the production store: PostgreSQL through pgx v5,
// shared by every stint replica.
package postgres

import (
	"context"
	"fmt"
	"regexp"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/stint-dev/stint/internal/store"
	"github.com/stint-dev/stint/internal/store/internal/sqlstore"
)

// Options tune Open; the zero value is the production setting.
type Options struct {
	// MaxConns caps the pool (default: pgxpool's, max(4, CPUs)).
	MaxConns int32
	// Schema, when set, is created if missing and becomes the connections'
	// search_path, so the tables live in it. Tests use one schema per run;
	// a deployment may use it to share a database with other software.
	// (A search_path query parameter in the URL works as well.)
	Schema string
}

// Store is a store.Store in PostgreSQL. The shared SQL runs through
// database/sql on top of a pgxpool.Pool; lock expiry uses the database
// clock, so replicas with skewed clocks still agree on who holds a lock.
type Store struct {
	*sqlstore.DB
	pool *pgxpool.Pool
}

// Open connects to the database at url (postgres://…). Call Migrate
// before use.
func Open(ctx context.Context, url string) (*Store, error) {
	return OpenOptions(ctx, url, Options{})
}

// OpenSchema connects to url with its tables in schema, created if missing.
func OpenSchema(ctx context.Context, url, schema string) (*Store, error) {
	return OpenOptions(ctx, url, Options{Schema: schema})
}

var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// OpenOptions connects to url with o.
func OpenOptions(ctx context.Context, url string, o Options) (*Store, error) {
	// The URL carries the password: it never appears in an error.
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: invalid connection URL")
	}
	if o.MaxConns > 0 {
		cfg.MaxConns = o.MaxConns
	}
	if o.Schema != "" {
		if !schemaName.MatchString(o.Schema) {
			return nil, fmt.Errorf("postgres: open: schema %q must match %s", o.Schema, schemaName)
		}
		cfg.ConnConfig.RuntimeParams["search_path"] = o.Schema
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open %s:%d/%s: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database, err)
	}
	if o.Schema != "" {
		_, err = pool.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{o.Schema}.Sanitize())
	} else {
		err = pool.Ping(ctx)
	}
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: open %s:%d/%s: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database, err)
	}
	db := stdlib.OpenDBFromPool(pool)
	return &Store{DB: sqlstore.New(db, db, dialect, nil), pool: pool}, nil
}

// Close closes the pool.
func (s *Store) Close() error {
	err := s.DB.Close()
	s.pool.Close()
	return err
}

var dialect = sqlstore.Dialect{
	Name:     "postgres",
	Bytes:    "BYTEA",
	Numbered: true,
	// Replicas starting together queue here; the lock is per schema (so
	// parallel test schemas do not wait on each other) and is released
	// when the migration transaction ends. 0x7374696e is "stin".
	MigrationLock: `SELECT pg_advisory_xact_lock(x'7374696e'::int, hashtext(COALESCE(current_schema(), '')))`,
	NowNanos:      `(EXTRACT(EPOCH FROM now()) * 1000000000)::BIGINT`,
}

var _ store.Store = (*Store)(nil)
