package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
)

// maxCachedStmts bounds the writer's statement cache. The store's writes
// use a handful of fixed queries; the bound only guards against a future
// caller that builds query text from data.
const maxCachedStmts = 64

// stmtCache keeps the group-commit writer's statements prepared on its
// one driver connection, so a lease insert is parsed once per process
// rather than once per write (preparing was ~14 % of a lone SQLite write's
// CPU). Only the writer goroutine uses it.
type stmtCache struct {
	conn  any // the driver connection the statements belong to
	stmts map[string]driver.Stmt
}

// cachedExecer runs ExecContext through the cache and everything else on
// the connection as usual.
type cachedExecer struct {
	*sql.Conn
	cache *stmtCache
}

// ExecContext runs q as a cached prepared statement on the writer's
// driver connection.
func (e cachedExecer) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	var res sql.Result
	err := e.Raw(func(dc any) error {
		st, err := e.cache.stmt(ctx, dc, q)
		if err != nil {
			return err
		}
		named, err := namedArgs(dc, args)
		if err != nil {
			return err
		}
		sx, ok := st.(driver.StmtExecContext)
		if !ok {
			return errors.New("driver statement cannot ExecContext")
		}
		r, err := sx.ExecContext(ctx, named)
		if err != nil {
			return err
		}
		res = r
		return nil
	})
	if errors.Is(err, errNoPrepare) {
		return e.Conn.ExecContext(ctx, q, args...)
	}
	return res, err
}

var errNoPrepare = errors.New("driver cannot prepare with a context")

// stmt returns q prepared on dc, preparing it on first use. A new driver
// connection (the old one was discarded) starts an empty cache; the old
// statements died with their connection.
func (c *stmtCache) stmt(ctx context.Context, dc any, q string) (driver.Stmt, error) {
	if c.conn != dc {
		c.conn, c.stmts = dc, map[string]driver.Stmt{}
	}
	if st, ok := c.stmts[q]; ok {
		return st, nil
	}
	p, ok := dc.(driver.ConnPrepareContext)
	if !ok {
		return nil, errNoPrepare
	}
	st, err := p.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	if len(c.stmts) >= maxCachedStmts {
		c.closeAll()
		c.conn, c.stmts = dc, map[string]driver.Stmt{}
	}
	c.stmts[q] = st
	return st, nil
}

// closeAll finalizes the cached statements; call it with the connection
// they belong to held (inside Raw) or after it is gone.
func (c *stmtCache) closeAll() {
	for q, st := range c.stmts {
		_ = st.Close()
		delete(c.stmts, q)
	}
}

// namedArgs converts args the way database/sql does for a driver call:
// a driver.Valuer gives its value, the driver's NamedValueChecker may
// take the value as it is, and anything else goes through the default
// converter (int → int64 and so on).
func namedArgs(dc any, args []any) ([]driver.NamedValue, error) {
	checker, _ := dc.(driver.NamedValueChecker)
	out := make([]driver.NamedValue, len(args))
	for i, a := range args {
		nv := driver.NamedValue{Ordinal: i + 1, Value: a}
		if v, ok := a.(driver.Valuer); ok {
			val, err := v.Value()
			if err != nil {
				return nil, fmt.Errorf("argument %d: %w", i+1, err)
			}
			nv.Value = val
		}
		if checker != nil {
			err := checker.CheckNamedValue(&nv)
			if err == nil {
				out[i] = nv
				continue
			}
			if !errors.Is(err, driver.ErrSkip) {
				return nil, fmt.Errorf("argument %d: %w", i+1, err)
			}
		}
		val, err := driver.DefaultParameterConverter.ConvertValue(nv.Value)
		if err != nil {
			return nil, fmt.Errorf("argument %d: %w", i+1, err)
		}
		nv.Value = val
		out[i] = nv
	}
	return out, nil
}
