package sqlstore

import (
	"context"
	"database/sql"
	"sync"
)

// maxReadStmts bounds the reader's prepared statements. The store's reads
// come from a small fixed set (a lease filter's combinations of fields);
// past the bound a query simply runs unprepared.
const maxReadStmts = 128

// readStmts keeps the read queries prepared on the reader pool, so a
// lease lookup is not parsed and planned again on every call (preparing
// was about a twentieth of the server's CPU on the create-and-revoke
// benchmark, which reads each lease before revoking it). database/sql
// prepares a statement again on each pooled connection that runs it.
type readStmts struct {
	mu     sync.Mutex
	db     *sql.DB
	stmts  map[string]*sql.Stmt
	closed bool
}

// get returns q prepared, preparing it on first use; nil when the cache is
// full or q could not be prepared, so the caller runs it unprepared and
// sees the error (if any) from that.
//
// The lock is not held while preparing, which may wait for a pooled
// connection: reads of statements already prepared never wait for it.
func (c *readStmts) get(ctx context.Context, q string) *sql.Stmt {
	c.mu.Lock()
	st, ok := c.stmts[q]
	full := len(c.stmts) >= maxReadStmts
	c.mu.Unlock()
	if ok {
		return st
	}
	if full {
		return nil
	}
	st, err := c.db.PrepareContext(ctx, q)
	if err != nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.stmts[q]; ok { // prepared meanwhile by another caller
		_ = st.Close()
		return prev
	}
	if len(c.stmts) >= maxReadStmts || c.closed {
		_ = st.Close()
		return nil
	}
	if c.stmts == nil {
		c.stmts = map[string]*sql.Stmt{}
	}
	c.stmts[q] = st
	return st
}

// close finalizes the statements; the pool closes after it.
func (c *readStmts) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for q, st := range c.stmts {
		_ = st.Close()
		delete(c.stmts, q)
	}
}

// queryRow runs a single-row read on the reader pool, prepared.
func (db *DB) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	if st := db.reads.get(ctx, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return db.r.QueryRowContext(ctx, q, args...)
}

// query runs a read on the reader pool, prepared.
func (db *DB) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if st := db.reads.get(ctx, q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return db.r.QueryContext(ctx, q, args...)
}
