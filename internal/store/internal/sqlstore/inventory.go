package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/stint-dev/stint/internal/store"
)

const findingCols = `source, fingerprint, file_path, rule, line_no, commit_id, redacted,
	first_seen, last_seen, remediated_at, present_at_head`

// upsertChunk is how many findings one INSERT carries: 11 parameters each
// keeps a statement far below SQLite's 32766 and PostgreSQL's 65535.
const upsertChunk = 500

// querier reads several rows; *sql.DB, *sql.Tx and *sql.Conn satisfy it.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// findingKey is the inventory's identity of a finding within a source.
type findingKey struct{ fingerprint, file string }

// writeTx runs fn as one transaction: through group commit (whose batch
// transaction and savepoint make it one unit) or, without it, in a
// transaction of its own on the writer pool.
func (db *DB) writeTx(ctx context.Context, fn writeFn) error {
	if db.group != nil {
		return db.group.do(ctx, fn)
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if err := fn(ctx, tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// UpsertFindings implements store.Store. It reads the source's rows, then
// upserts the report in chunks and marks the open rows it lacks as
// remediated, all in one transaction. Two reports of one source racing on
// PostgreSQL both apply row by row (the later write wins per row); their
// diffs may then count a row twice.
func (db *DB) UpsertFindings(ctx context.Context, source string, findings []store.Finding, now time.Time) (store.InventoryDiff, error) {
	var diff store.InventoryDiff
	if source == "" {
		return diff, db.errorf("upsert findings: source is required")
	}
	at, err := reqNanos(now)
	if err != nil {
		return diff, db.errorf("upsert findings %q: now: %w", source, err)
	}
	report, order, err := dedupe(findings)
	if err != nil {
		return diff, db.errorf("upsert findings %q: %w", source, err)
	}
	err = db.writeTx(ctx, func(ctx context.Context, ex execer) error {
		diff = store.InventoryDiff{} // a retried fn starts over
		q, ok := ex.(querier)
		if !ok {
			return errors.New("writer cannot query rows")
		}
		open, err := db.openState(ctx, q, source)
		if err != nil {
			return err
		}
		for _, k := range order {
			f := report[k]
			wasOpen, seen := open[k]
			switch {
			case !seen:
				diff.New++
			case f.PresentAtHead && wasOpen:
				diff.Present++
			case f.PresentAtHead && !wasOpen:
				diff.Reopened++
			case !f.PresentAtHead && wasOpen:
				diff.Remediated++
			}
		}
		for i := 0; i < len(order); i += upsertChunk {
			if err := db.upsertChunk(ctx, ex, source, report, order[i:min(i+upsertChunk, len(order))], at); err != nil {
				return err
			}
		}
		for k, wasOpen := range open {
			if _, reported := report[k]; reported || !wasOpen {
				continue
			}
			if _, err := ex.ExecContext(ctx, db.d.Rebind(`UPDATE inventory SET remediated_at = ?, present_at_head = 0
				WHERE source = ? AND fingerprint = ? AND file_path = ?`), at, source, k.fingerprint, k.file); err != nil {
				return fmt.Errorf("mark remediated: %w", err)
			}
			diff.Remediated++
		}
		return nil
	})
	if err != nil {
		return store.InventoryDiff{}, db.errorf("upsert findings %q: %w", source, err)
	}
	return diff, nil
}

// dedupe checks the report and keeps one finding per key, the one with the
// lowest line, since a secret repeated in a file is one credential to
// replace. It returns the findings by key and the keys in report order.
func dedupe(findings []store.Finding) (map[findingKey]store.Finding, []findingKey, error) {
	report := make(map[findingKey]store.Finding, len(findings))
	order := make([]findingKey, 0, len(findings))
	for i, f := range findings {
		if f.Fingerprint == "" || f.File == "" || f.Rule == "" {
			return nil, nil, fmt.Errorf("finding %d: fingerprint, file and rule are required", i)
		}
		k := findingKey{f.Fingerprint, f.File}
		prev, dup := report[k]
		switch {
		case !dup:
			order = append(order, k)
		case prev.Line <= f.Line:
			f.PresentAtHead = f.PresentAtHead || prev.PresentAtHead
			f.Line, f.Commit, f.Rule, f.Redacted = prev.Line, prev.Commit, prev.Rule, prev.Redacted
		default:
			f.PresentAtHead = f.PresentAtHead || prev.PresentAtHead
		}
		report[k] = f
	}
	return report, order, nil
}

// openState reads, for each stored finding of source, whether it is open.
func (db *DB) openState(ctx context.Context, q querier, source string) (map[findingKey]bool, error) {
	rows, err := q.QueryContext(ctx, db.d.Rebind(`SELECT fingerprint, file_path, remediated_at IS NULL
		FROM inventory WHERE source = ?`), source)
	if err != nil {
		return nil, fmt.Errorf("read source: %w", err)
	}
	defer rows.Close()
	out := map[findingKey]bool{}
	for rows.Next() {
		var k findingKey
		var open bool
		if err := rows.Scan(&k.fingerprint, &k.file, &open); err != nil {
			return nil, fmt.Errorf("read source: %w", err)
		}
		out[k] = open
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read source: %w", err)
	}
	return out, nil
}

// upsertChunk writes keys in one multi-row upsert. first_seen is kept on
// conflict; a row seen only in history keeps the time it was first
// remediated, and one seen at HEAD is (re)opened.
func (db *DB) upsertChunk(ctx context.Context, ex execer, source string, report map[findingKey]store.Finding, keys []findingKey, at int64) error {
	var b strings.Builder
	b.WriteString(`INSERT INTO inventory (` + findingCols + `) VALUES `)
	args := make([]any, 0, len(keys)*11)
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
		f := report[k]
		remediated := sql.NullInt64{Int64: at, Valid: !f.PresentAtHead}
		head := 0
		if f.PresentAtHead {
			head = 1
		}
		args = append(args, source, k.fingerprint, k.file, f.Rule, f.Line, f.Commit, f.Redacted,
			at, at, remediated, head)
	}
	b.WriteString(` ON CONFLICT (source, fingerprint, file_path) DO UPDATE SET
		rule = excluded.rule, line_no = excluded.line_no, commit_id = excluded.commit_id,
		redacted = excluded.redacted, last_seen = excluded.last_seen,
		present_at_head = excluded.present_at_head,
		remediated_at = CASE WHEN excluded.remediated_at IS NULL THEN NULL
			ELSE COALESCE(inventory.remediated_at, excluded.remediated_at) END`)
	if _, err := ex.ExecContext(ctx, db.d.Rebind(b.String()), args...); err != nil {
		return fmt.Errorf("upsert: %w", err)
	}
	return nil
}

// ListFindings implements store.Store.
func (db *DB) ListFindings(ctx context.Context, f store.FindingFilter) ([]store.Finding, error) {
	var where []string
	var args []any
	add := func(cond string, v any) {
		where = append(where, cond)
		args = append(args, v)
	}
	if f.Source != "" {
		add("source = ?", f.Source)
	}
	if f.Rule != "" {
		add("rule = ?", f.Rule)
	}
	if f.Fingerprint != "" {
		add("fingerprint = ?", f.Fingerprint)
	}
	switch f.State {
	case "":
	case store.FindingOpen:
		where = append(where, "remediated_at IS NULL")
	case store.FindingRemediated:
		where = append(where, "remediated_at IS NOT NULL")
	default:
		return nil, db.errorf("list findings: unknown state %q", f.State)
	}
	q := `SELECT ` + findingCols + ` FROM inventory`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY source, first_seen, fingerprint, file_path"
	if f.Limit > 0 {
		q += " LIMIT ?"
		args = append(args, f.Limit)
	}
	rows, err := db.r.QueryContext(ctx, db.d.Rebind(q), args...)
	if err != nil {
		return nil, db.errorf("list findings: %w", err)
	}
	defer rows.Close()
	var out []store.Finding
	for rows.Next() {
		var x store.Finding
		var first, last int64
		var remediated sql.NullInt64
		var head int64
		if err := rows.Scan(&x.Source, &x.Fingerprint, &x.File, &x.Rule, &x.Line, &x.Commit, &x.Redacted,
			&first, &last, &remediated, &head); err != nil {
			return nil, db.errorf("list findings: %w", err)
		}
		x.FirstSeen, x.LastSeen = time.Unix(0, first).UTC(), time.Unix(0, last).UTC()
		x.RemediatedAt, x.PresentAtHead = fromNanos(remediated), head == 1
		out = append(out, x)
	}
	if err := rows.Err(); err != nil {
		return nil, db.errorf("list findings: %w", err)
	}
	return out, nil
}
