-- Shared by SQLite and PostgreSQL. {{bytes}} becomes BLOB or BYTEA; every
-- other type is spelled the same on both. Times are BIGINT unix nanoseconds
-- (UTC): they sort and index identically on both databases and round-trip
-- a Go time.Time exactly; NULL means the zero time.

CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value {{bytes}} NOT NULL
);

CREATE TABLE keys (
	id         TEXT PRIMARY KEY,
	purpose    TEXT NOT NULL,
	algorithm  TEXT NOT NULL,
	private    {{bytes}},
	public     {{bytes}},
	created_at BIGINT NOT NULL,
	not_after  BIGINT
);

CREATE INDEX keys_purpose_created ON keys (purpose, created_at);

CREATE TABLE leases (
	id              TEXT PRIMARY KEY,
	target          TEXT NOT NULL,
	target_type     TEXT NOT NULL,
	role            TEXT NOT NULL,
	provider        TEXT NOT NULL,
	subject         TEXT NOT NULL,
	human           TEXT NOT NULL,
	rule            TEXT NOT NULL,
	issued_at       BIGINT NOT NULL,
	expires_at      BIGINT NOT NULL,
	max_expires_at  BIGINT,
	state           TEXT NOT NULL,
	renewable       INTEGER NOT NULL,
	attempts        INTEGER NOT NULL,
	last_error      TEXT NOT NULL,
	next_attempt_at BIGINT,
	-- due_at is next_attempt_at when set, else expires_at; written with
	-- every row so the reaper's query is one range scan of due_idx.
	due_at          BIGINT NOT NULL,
	issuer_data     {{bytes}},
	updated_at      BIGINT
);

-- The predicate must match the one in the DueLeases query word for word:
-- SQLite only uses a partial index when the query repeats its terms.
CREATE INDEX leases_due ON leases (due_at, id)
	WHERE state IN ('pending', 'active', 'revoking', 'failed');
CREATE INDEX leases_issued ON leases (issued_at, id);
CREATE INDEX leases_subject ON leases (subject, issued_at);
CREATE INDEX leases_target_role ON leases (target, role, issued_at);
CREATE INDEX leases_human ON leases (human, issued_at);
CREATE INDEX leases_rule ON leases (rule, issued_at);

CREATE TABLE locks (
	name       TEXT PRIMARY KEY,
	holder     TEXT NOT NULL,
	expires_at BIGINT NOT NULL
);
