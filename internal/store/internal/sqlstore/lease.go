package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/store"
)

const leaseCols = `id, target, target_type, role, provider, subject, human, rule,
	issued_at, expires_at, max_expires_at, state, renewable, attempts, last_error,
	next_attempt_at, due_at, issuer_data, updated_at`

// DueQuery is the reaper's query. Its state predicate repeats the partial
// index's word for word (see migrations/0001_init.sql); tests EXPLAIN it.
const DueQuery = `SELECT ` + leaseCols + ` FROM leases
	WHERE state IN ('pending', 'active', 'revoking', 'failed') AND due_at <= ?
	ORDER BY due_at, id LIMIT ?`

// PruneQuery selects the revoked leases PruneLeases deletes: expired
// before a bound, oldest first, up to a limit. Its state predicate repeats
// the leases_revoked_expiry partial index's word for word (see
// migrations/0004_lease_retention.sql); tests EXPLAIN it.
const PruneQuery = `SELECT id FROM leases
	WHERE state = 'revoked' AND expires_at < ?
	ORDER BY expires_at, id LIMIT ?`

// leaseRow is a lease converted to column values.
type leaseRow struct {
	issued, expires, due     int64
	maxExpires, next, update sql.NullInt64
	renewable                int64
}

func (db *DB) toRow(l core.Lease) (leaseRow, error) {
	var r leaseRow
	var err error
	if l.ID == "" {
		return r, errors.New("id is required")
	}
	switch l.State {
	case core.LeasePending, core.LeaseActive, core.LeaseRevoking, core.LeaseRevoked, core.LeaseFailed:
	default:
		return r, fmt.Errorf("unknown state %q", l.State)
	}
	if r.issued, err = reqNanos(l.IssuedAt); err != nil {
		return r, errors.Join(errors.New("issued_at"), err)
	}
	if r.expires, err = reqNanos(l.ExpiresAt); err != nil {
		return r, errors.Join(errors.New("expires_at"), err)
	}
	if r.maxExpires, err = nanos(l.MaxExpires); err != nil {
		return r, errors.Join(errors.New("max_expires_at"), err)
	}
	if r.next, err = nanos(l.NextAttempt); err != nil {
		return r, errors.Join(errors.New("next_attempt_at"), err)
	}
	if r.update, err = nanos(l.UpdatedAt); err != nil {
		return r, errors.Join(errors.New("updated_at"), err)
	}
	r.due = r.expires
	if r.next.Valid {
		r.due = r.next.Int64
	}
	if l.Renewable {
		r.renewable = 1
	}
	return r, nil
}

// CreateLease implements store.Store. A lease whose id exists already is a
// core.KindConflict error and leaves the stored lease as it was.
func (db *DB) CreateLease(ctx context.Context, l core.Lease) error {
	r, err := db.toRow(l)
	if err != nil {
		return db.errorf("create lease %q: %w", l.ID, err)
	}
	err = db.write(ctx, func(ctx context.Context, ex execer) error {
		res, err := ex.ExecContext(ctx, db.d.Rebind(`INSERT INTO leases (`+leaseCols+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO NOTHING`),
			l.ID, l.Target, l.TargetType, l.Role, l.Provider, l.Subject, l.Human, l.Rule,
			r.issued, r.expires, r.maxExpires, string(l.State), r.renewable, l.Attempts, l.LastError,
			r.next, r.due, l.IssuerData, r.update)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return core.E(core.KindConflict, "", "lease id already exists", nil)
		}
		return nil
	})
	if err != nil {
		return db.errorf("create lease %q: %w", l.ID, err)
	}
	return nil
}

// GetLease implements store.Store.
func (db *DB) GetLease(ctx context.Context, id string) (core.Lease, error) {
	row := db.queryRow(ctx, db.d.Rebind(`SELECT `+leaseCols+` FROM leases WHERE id = ?`), id)
	l, err := scanLease(row)
	if errors.Is(err, sql.ErrNoRows) {
		return core.Lease{}, db.errorf("get lease %q: %w", id, core.ErrNotFound)
	}
	if err != nil {
		return core.Lease{}, db.errorf("get lease %q: %w", id, err)
	}
	return l, nil
}

// UpdateLease implements store.Store. The state test is in the UPDATE's
// WHERE, so the database decides atomically which of several concurrent
// writers wins; PostgreSQL re-checks it after waiting on the row lock.
func (db *DB) UpdateLease(ctx context.Context, l core.Lease, from ...core.LeaseState) (bool, error) {
	return db.updateLease(ctx, l, "", nil, from...)
}

// ClaimExpiredLease implements store.Store: UpdateLease from active, and
// only while the stored expiry is still at or before now.
func (db *DB) ClaimExpiredLease(ctx context.Context, l core.Lease, now time.Time) (bool, error) {
	n, err := reqNanos(now)
	if err != nil {
		return false, db.errorf("claim lease %q: %w", l.ID, err)
	}
	return db.updateLease(ctx, l, ` AND expires_at <= ?`, []any{n}, core.LeaseActive)
}

// updateLease is UpdateLease with one more WHERE term (cond, with its
// arguments), "" for none.
func (db *DB) updateLease(ctx context.Context, l core.Lease, cond string, condArgs []any, from ...core.LeaseState) (bool, error) {
	r, err := db.toRow(l)
	if err != nil {
		return false, db.errorf("update lease %q: %w", l.ID, err)
	}
	// Only the fields a lease's life changes are written. Its identity
	// (target, role, principal, human, rule, issued_at) is fixed at
	// CreateLease, and leaving those columns out of the SET keeps SQLite
	// from rewriting the five indexes built on them on every update.
	q := `UPDATE leases SET expires_at = ?, max_expires_at = ?, state = ?,
		renewable = ?, attempts = ?, last_error = ?, next_attempt_at = ?, due_at = ?,
		issuer_data = ?, updated_at = ? WHERE id = ?`
	args := []any{r.expires, r.maxExpires, string(l.State), r.renewable, l.Attempts, l.LastError,
		r.next, r.due, l.IssuerData, r.update, l.ID}
	if len(from) > 0 {
		q += ` AND state IN (` + placeholders(len(from)) + `)`
		for _, s := range from {
			args = append(args, string(s))
		}
	}
	q += cond
	args = append(args, condArgs...)
	var wrote bool
	err = db.write(ctx, func(ctx context.Context, ex execer) error {
		res, err := ex.ExecContext(ctx, db.d.Rebind(q), args...)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		wrote = n == 1
		return err
	})
	if err != nil {
		return false, db.errorf("update lease %q: %w", l.ID, err)
	}
	return wrote, nil
}

// expireChunk bounds the ids one ExpireLeases statement names (SQLite
// allows 32,766 parameters, PostgreSQL 65,535).
const expireChunk = 500

// ExpireLeases implements store.Store: one UPDATE … RETURNING per chunk of
// ids, all in one write (with SQLite, one transaction of the group commit).
func (db *DB) ExpireLeases(ctx context.Context, ids []string, at time.Time) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	upd, err := reqNanos(at)
	if err != nil {
		return nil, db.errorf("expire leases: %w", err)
	}
	var changed []string
	err = db.write(ctx, func(ctx context.Context, ex execer) error {
		changed = changed[:0] // a batch that failed runs its writes again
		for start := 0; start < len(ids); start += expireChunk {
			chunk := ids[start:min(start+expireChunk, len(ids))]
			args := make([]any, 0, 1+len(chunk))
			args = append(args, upd)
			for _, id := range chunk {
				args = append(args, id)
			}
			rows, err := ex.QueryContext(ctx, db.d.Rebind(`UPDATE leases SET state = 'revoked', last_error = '',
				next_attempt_at = NULL, due_at = expires_at, updated_at = ?
				WHERE state = 'active' AND id IN (`+placeholders(len(chunk))+`) RETURNING id`), args...)
			if err != nil {
				return err
			}
			for rows.Next() {
				var id string
				if err := rows.Scan(&id); err != nil {
					rows.Close()
					return err
				}
				changed = append(changed, id)
			}
			if err := errors.Join(rows.Err(), rows.Close()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, db.errorf("expire leases: %w", err)
	}
	return changed, nil
}

// ListLeases implements store.Store. AfterID names the last lease of the
// previous page; pagination continues after its (issued_at, id), and a
// lease id that does not exist is core.ErrNotFound rather than an empty
// page, which would silently end the caller's iteration.
func (db *DB) ListLeases(ctx context.Context, f store.LeaseFilter) ([]core.Lease, error) {
	if f.Limit < 0 {
		return nil, db.errorf("list leases: negative limit")
	}
	where, args := filterSQL(f)
	if f.AfterID != "" {
		var issued int64
		err := db.queryRow(ctx, db.d.Rebind(`SELECT issued_at FROM leases WHERE id = ?`), f.AfterID).Scan(&issued)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, db.errorf("list leases: after id %q: %w", f.AfterID, core.ErrNotFound)
		}
		if err != nil {
			return nil, db.errorf("list leases: after id %q: %w", f.AfterID, err)
		}
		where = append(where, `(issued_at > ? OR (issued_at = ? AND id > ?))`)
		args = append(args, issued, issued, f.AfterID)
	}
	q := `SELECT ` + leaseCols + ` FROM leases` + whereSQL(where) + ` ORDER BY issued_at, id`
	if f.Limit > 0 {
		q += ` LIMIT ?`
		args = append(args, f.Limit)
	}
	ls, err := db.queryLeases(ctx, q, args...)
	if err != nil {
		return nil, db.errorf("list leases: %w", err)
	}
	return ls, nil
}

// DueLeases implements store.Store.
func (db *DB) DueLeases(ctx context.Context, now time.Time, limit int) ([]core.Lease, error) {
	if limit <= 0 {
		return nil, db.errorf("due leases: limit must be positive")
	}
	n, err := reqNanos(now)
	if err != nil {
		return nil, db.errorf("due leases: %w", err)
	}
	ls, err := db.queryLeases(ctx, DueQuery, n, limit)
	if err != nil {
		return nil, db.errorf("due leases: %w", err)
	}
	return ls, nil
}

// PruneLeases implements store.Store. The ids are chosen in a subquery:
// PostgreSQL has no DELETE … LIMIT, and SQLite only with a compile option.
func (db *DB) PruneLeases(ctx context.Context, expiredBefore time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, db.errorf("prune leases: limit must be positive")
	}
	n, err := reqNanos(expiredBefore)
	if err != nil {
		return 0, db.errorf("prune leases: %w", err)
	}
	var pruned int64
	err = db.write(ctx, func(ctx context.Context, ex execer) error {
		res, err := ex.ExecContext(ctx, db.d.Rebind(`DELETE FROM leases WHERE id IN (`+PruneQuery+`)`), n, limit)
		if err != nil {
			return err
		}
		pruned, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, db.errorf("prune leases: %w", err)
	}
	return int(pruned), nil
}

// CountLeases implements store.Store. Limit and AfterID are paging, not
// matching, and are ignored.
func (db *DB) CountLeases(ctx context.Context, f store.LeaseFilter) (int, error) {
	q, args := CountQuery(f)
	var n int
	if err := db.queryRow(ctx, db.d.Rebind(q), args...).Scan(&n); err != nil {
		return 0, db.errorf("count leases: %w", err)
	}
	return n, nil
}

func (db *DB) queryLeases(ctx context.Context, q string, args ...any) ([]core.Lease, error) {
	rows, err := db.query(ctx, db.d.Rebind(q), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []core.Lease
	for rows.Next() {
		l, err := scanLease(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// CountQuery is CountLeases' query for f, with ? placeholders (exported
// for the stores' query-plan tests).
func CountQuery(f store.LeaseFilter) (string, []any) {
	where, args := filterSQL(f)
	return `SELECT COUNT(*) FROM leases` + whereSQL(where), args
}

// stateOrder is the order in which statesSQL lists states; every partial
// index's predicate on state (migrations/*.sql) and DueQuery list theirs
// in this order too.
var stateOrder = []core.LeaseState{core.LeasePending, core.LeaseActive, core.LeaseRevoking, core.LeaseRevoked, core.LeaseFailed}

// statesSQL is the WHERE term selecting states. The states are known
// constants, so they are written as literals — `state = 'failed'`, or
// `state IN ('pending', 'active')` in stateOrder — and not placeholders:
// SQLite uses a partial index only when the query repeats its predicate's
// terms word for word, and a bound parameter never does. A state that is
// not a known constant (only a caller's mistake) goes in as a parameter.
func statesSQL(states []core.LeaseState) (string, []any) {
	var lits []string
	for _, st := range stateOrder {
		if slices.Contains(states, st) {
			lits = append(lits, "'"+string(st)+"'")
		}
	}
	for _, st := range states {
		if !slices.Contains(stateOrder, st) {
			args := make([]any, len(states))
			for i, s := range states {
				args[i] = string(s)
			}
			return `state IN (` + placeholders(len(states)) + `)`, args
		}
	}
	if len(lits) == 1 {
		return `state = ` + lits[0], nil
	}
	return `state IN (` + strings.Join(lits, ", ") + `)`, nil
}

// filterSQL returns the WHERE terms and arguments for f's matching fields.
func filterSQL(f store.LeaseFilter) ([]string, []any) {
	var where []string
	var args []any
	eq := func(col, v string) {
		if v != "" {
			where = append(where, col+` = ?`)
			args = append(args, v)
		}
	}
	eq("subject", f.Subject)
	eq("provider", f.Provider)
	eq("human", f.Human)
	if f.Human != "" {
		// Repeats leases_human's predicate, so SQLite uses that index.
		where = append(where, `human <> ''`)
	}
	eq("target", f.Target)
	eq("role", f.Role)
	eq("rule", f.Rule)
	if len(f.IDs) > 0 {
		where = append(where, `id IN (`+placeholders(len(f.IDs))+`)`)
		for _, id := range f.IDs {
			args = append(args, id)
		}
	}
	if len(f.States) > 0 {
		term, sargs := statesSQL(f.States)
		where = append(where, term)
		args = append(args, sargs...)
	}
	if !f.ExpiresAfter.IsZero() {
		where = append(where, `expires_at > ?`)
		args = append(args, clampNanos(f.ExpiresAfter))
	}
	return where, args
}

// clampNanos is t in the store's nanoseconds, clamped to the storable
// range, for comparisons (a bound far in the past or future still works).
func clampNanos(t time.Time) int64 {
	switch {
	case t.Before(minTime):
		return minTime.UnixNano()
	case t.After(maxTime):
		return maxTime.UnixNano()
	}
	return t.UnixNano()
}

func whereSQL(terms []string) string {
	if len(terms) == 0 {
		return ""
	}
	return ` WHERE ` + strings.Join(terms, ` AND `)
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

type scanner interface{ Scan(dest ...any) error }

func scanLease(s scanner) (core.Lease, error) {
	var l core.Lease
	var state string
	var issued, expires, due, renewable int64
	var maxExpires, next, updated sql.NullInt64
	err := s.Scan(&l.ID, &l.Target, &l.TargetType, &l.Role, &l.Provider, &l.Subject, &l.Human, &l.Rule,
		&issued, &expires, &maxExpires, &state, &renewable, &l.Attempts, &l.LastError,
		&next, &due, &l.IssuerData, &updated)
	if err != nil {
		return core.Lease{}, err
	}
	l.IssuedAt = time.Unix(0, issued).UTC()
	l.ExpiresAt = time.Unix(0, expires).UTC()
	l.MaxExpires = fromNanos(maxExpires)
	l.State = core.LeaseState(state)
	l.Renewable = renewable != 0
	l.NextAttempt = fromNanos(next)
	l.UpdatedAt = fromNanos(updated)
	return l, nil
}
