package sqlstore

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Migration is one numbered schema change.
type Migration struct {
	Version int
	Name    string
	SQL     string // {{bytes}} not yet replaced
}

// Migrations returns the embedded migrations in version order. Files are
// named NNNN_name.sql; versions must be unique.
func Migrations() ([]Migration, error) {
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []Migration
	seen := map[int]bool{}
	for _, n := range names {
		base := strings.TrimPrefix(n, "migrations/")
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration file %q is not named NNNN_name.sql", base)
		}
		if seen[v] {
			return nil, fmt.Errorf("migration version %d appears twice", v)
		}
		seen[v] = true
		b, err := migrationFS.ReadFile(n)
		if err != nil {
			return nil, err
		}
		ms = append(ms, Migration{Version: v, Name: base, SQL: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	return ms, nil
}

// Statements splits a migration into statements for the dialect: each ends
// with a ';' at the end of a line.
func (d Dialect) Statements(m Migration) []string {
	text := strings.ReplaceAll(m.SQL, "{{bytes}}", d.Bytes)
	var out []string
	var cur strings.Builder
	for line := range strings.Lines(text) {
		cur.WriteString(line)
		if strings.HasSuffix(strings.TrimSpace(line), ";") && !strings.HasPrefix(strings.TrimSpace(line), "--") {
			out = append(out, strings.TrimSpace(cur.String()))
			cur.Reset()
		}
	}
	return out
}

// Migrate implements store.Store: in one transaction (holding the
// dialect's migration lock, if any) it applies every migration newer than
// the highest version in schema_migrations. A database migrated by a newer
// binary is refused rather than used with a schema this code does not know.
func (db *DB) Migrate(ctx context.Context) error {
	ms, err := Migrations()
	if err != nil {
		return db.errorf("migrate: %w", err)
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return db.errorf("migrate: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if db.d.MigrationLock != "" {
		if _, err := tx.ExecContext(ctx, db.d.MigrationLock); err != nil {
			return db.errorf("migrate: lock: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at BIGINT NOT NULL)`); err != nil {
		return db.errorf("migrate: create schema_migrations: %w", err)
	}
	var cur int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&cur); err != nil {
		return db.errorf("migrate: read version: %w", err)
	}
	if latest := ms[len(ms)-1].Version; cur > latest {
		return db.errorf("migrate: database schema version %d is newer than this binary's %d", cur, latest)
	}
	for _, m := range ms {
		if m.Version <= cur {
			continue
		}
		for _, stmt := range db.d.Statements(m) {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return db.errorf("migrate: %s: %w", m.Name, err)
			}
		}
		if _, err := tx.ExecContext(ctx, db.d.Rebind(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`),
			m.Version, db.now().UnixNano()); err != nil {
			return db.errorf("migrate: %s: record version: %w", m.Name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return db.errorf("migrate: commit: %w", err)
	}
	return nil
}
