-- The credential inventory (`stint scan --report-to`): one row per static
-- credential of a source, found by fingerprint in a file. No secret is
-- stored: only the scanner's HMAC fingerprint and redacted form. Times are
-- BIGINT unix nanoseconds as in 0001; remediated_at NULL means open.

CREATE TABLE inventory (
	source          TEXT NOT NULL,
	fingerprint     TEXT NOT NULL,
	file_path       TEXT NOT NULL,
	rule            TEXT NOT NULL,
	line_no         INTEGER NOT NULL,
	commit_id       TEXT NOT NULL,
	redacted        TEXT NOT NULL,
	first_seen      BIGINT NOT NULL,
	last_seen       BIGINT NOT NULL,
	remediated_at   BIGINT,
	present_at_head INTEGER NOT NULL,
	PRIMARY KEY (source, fingerprint, file_path)
);

CREATE INDEX inventory_rule ON inventory (rule, source);
CREATE INDEX inventory_fingerprint ON inventory (fingerprint);
