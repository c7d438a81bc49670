-- Most leases act for no human (human = ''), and every index on leases is
-- written by every issue: leases_human now holds only the leases that do
-- act for one, which is all a query by human needs. The predicate must
-- match the term filterSQL in lease.go writes word for word: SQLite only
-- uses a partial index when the query repeats its terms.
DROP INDEX leases_human;
CREATE INDEX leases_human ON leases (human, issued_at)
	WHERE human <> '';
