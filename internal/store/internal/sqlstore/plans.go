package sqlstore

import (
	"time"

	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/store"
)

// IndexedQuery is a hot query and the index it must use, so that its cost
// follows the leases it is about rather than every lease ever stored.
// Each store's tests check the database's plan against it.
type IndexedQuery struct {
	Name, Query string // Query has ? placeholders
	Args        []any
	Index       string
}

// IndexedQueries lists the reaper's, the limits', the gauges' and the
// partial leases_human index's queries.
func IndexedQueries(now time.Time) []IndexedQuery {
	live := []core.LeaseState{core.LeaseActive, core.LeasePending}
	count := func(name string, f store.LeaseFilter, index string) IndexedQuery {
		q, args := CountQuery(f)
		return IndexedQuery{name, q, args, index}
	}
	return []IndexedQuery{
		{"due leases, in order", DueQuery, []any{now.UnixNano(), 10}, "leases_due"},
		count("a principal's live leases", store.LeaseFilter{Provider: "k8s", Subject: "sa", States: live}, "leases_live_subject"),
		count("a role's live leases", store.LeaseFilter{Target: "db", Role: "ro", States: live}, "leases_live_role"),
		count("a target's live leases (gauge)", store.LeaseFilter{Target: "db", States: live}, "leases_live_role"),
		count("a human's leases", store.LeaseFilter{Human: "alice@example.com"}, "leases_human"),
		count("failed leases (gauge)", store.LeaseFilter{States: []core.LeaseState{core.LeaseFailed}}, "leases_failed"),
		{"revoked leases to prune, in order", PruneQuery, []any{now.UnixNano(), 1000}, "leases_revoked_expiry"},
	}
}
