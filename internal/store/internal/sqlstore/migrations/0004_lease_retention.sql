-- Revoked leases are deleted once they have been expired for the
-- retention (leases.retention); leases_revoked_expiry serves that prune,
-- oldest expiry first, without walking live history. The reaper's gauge of
-- failed leases counts through leases_failed instead of scanning the
-- table. Both predicates must match the queries in lease.go (PruneQuery,
-- statesSQL) word for word: SQLite only uses a partial index when the
-- query repeats its terms.
CREATE INDEX leases_revoked_expiry ON leases (expires_at, id)
	WHERE state = 'revoked';
CREATE INDEX leases_failed ON leases (target)
	WHERE state = 'failed';
