package store

import "context"

type lazyKey struct{}

// Lazy marks the writes made with ctx as ones that need not be durable
// when they return: a crash may lose them, and they become durable with
// the next durable write (or the database's own checkpoint). The lease
// manager uses it only where losing the write is safe — a lease made
// active after its pending record, or a revocation's claim — so that a
// credential's life costs fewer flushes. Stores may ignore the hint and
// write durably (PostgreSQL does).
func Lazy(ctx context.Context) context.Context { return context.WithValue(ctx, lazyKey{}, true) }

// IsLazy reports whether ctx carries the Lazy hint.
func IsLazy(ctx context.Context) bool {
	v, _ := ctx.Value(lazyKey{}).(bool)
	return v
}
