-- The active-lease limits (leases.max_active_per_principal and
-- max_active_per_role) count a principal's or a role's live leases on
-- every issue. Without these partial indexes that count walked every lease
-- the principal ever held, revoked ones included (16 ms at 20,000), under
-- the limit's lock. They hold live leases only. The predicate must match
-- what statesSQL in lease.go writes word for word: SQLite only uses a partial
-- index when the query repeats its terms.
CREATE INDEX leases_live_subject ON leases (subject, provider)
	WHERE state IN ('pending', 'active');
CREATE INDEX leases_live_role ON leases (target, role)
	WHERE state IN ('pending', 'active');
