-- 0001: users, their sessions, and installation settings.
--
-- Times are INTEGER unix microseconds (UTC). email_key is the email
-- case-folded in Go with strings.ToLower, not with SQLite's lower(), which
-- folds ASCII only: "ÉLOISE@x.io" and "éloise@x.io" must collide.

CREATE TABLE users (
	id              TEXT    NOT NULL PRIMARY KEY,
	email           TEXT    NOT NULL,
	email_key       TEXT    NOT NULL UNIQUE,
	hashed_password TEXT    NOT NULL,
	is_active       INTEGER NOT NULL,
	is_superuser    INTEGER NOT NULL,
	is_verified     INTEGER NOT NULL,
	full_name       TEXT    NOT NULL DEFAULT '',
	roles           TEXT    NOT NULL DEFAULT '[]', -- JSON array of strings
	created_at      INTEGER NOT NULL,
	updated_at      INTEGER NOT NULL
) STRICT;

CREATE TABLE sessions (
	id           TEXT    NOT NULL PRIMARY KEY,
	user_id      TEXT    NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	token_digest BLOB    NOT NULL UNIQUE, -- SHA-256 of the token; the token itself is never stored
	transport    TEXT    NOT NULL,
	created_at   INTEGER NOT NULL,
	last_seen_at INTEGER NOT NULL,
	expires_at   INTEGER NOT NULL,
	user_agent   TEXT    NOT NULL DEFAULT '',
	ip           TEXT    NOT NULL DEFAULT ''
) STRICT;

-- Leads with user_id: serves the ON DELETE CASCADE lookup, per-user
-- deletes, and UserSessions' newest-first listing without a sort.
CREATE INDEX sessions_user_id ON sessions (user_id, created_at);

-- DeleteExpiredSessions.
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE TABLE settings (
	key   TEXT NOT NULL PRIMARY KEY,
	value BLOB NOT NULL
) STRICT;
