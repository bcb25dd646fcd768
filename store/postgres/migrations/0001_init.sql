-- 0001: the schema of the SQLite store's migrations 0001 to 0004, for
-- PostgreSQL: users and their sessions, installation settings, action
-- tokens and the outbox that carries them, the per-address mail log, and
-- the failure counts of the brute-force limits.
--
-- Times are timestamptz, kept to the microsecond; NULL where the SQLite
-- store writes 0 for "none".
--
-- Keys compared or ordered as text use COLLATE "C", byte order: a
-- database created with a linguistic locale (en_US, ICU) would otherwise
-- sort ListUsers differently from the SQLite store, and key lookups would
-- use the slower linguistic comparison. email_key is folded in Go with
-- strings.ToLower, not with lower(), whose result depends on the
-- database's locale: "ÉLOISE@x.io" and "éloise@x.io" must collide here as
-- they do in SQLite, and a copy of one store into the other must keep the
-- same keys.

CREATE TABLE users (
	id              text COLLATE "C" NOT NULL PRIMARY KEY,
	email           text             NOT NULL,
	email_key       text COLLATE "C" NOT NULL UNIQUE,
	hashed_password text             NOT NULL,
	is_active       boolean          NOT NULL,
	is_superuser    boolean          NOT NULL,
	is_verified     boolean          NOT NULL,
	full_name       text             NOT NULL DEFAULT '',
	roles           text[]           NOT NULL DEFAULT '{}', -- in the order given
	created_at      timestamptz      NOT NULL,
	updated_at      timestamptz      NOT NULL
);

CREATE TABLE sessions (
	id           text COLLATE "C" NOT NULL PRIMARY KEY,
	user_id      text COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	token_digest bytea            NOT NULL UNIQUE, -- SHA-256 of the token; the token itself is never stored
	transport    text             NOT NULL,
	created_at   timestamptz      NOT NULL,
	last_seen_at timestamptz      NOT NULL,
	expires_at   timestamptz      NOT NULL,
	user_agent   text             NOT NULL DEFAULT '',
	ip           text             NOT NULL DEFAULT ''
);

-- Leads with user_id: serves the ON DELETE CASCADE lookup, per-user
-- deletes, and UserSessions' newest-first listing.
CREATE INDEX sessions_user_id ON sessions (user_id, created_at);

-- DeleteExpiredSessions.
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE TABLE settings (
	key   text COLLATE "C" NOT NULL PRIMARY KEY,
	value bytea            NOT NULL
);

CREATE TABLE action_tokens (
	digest     bytea            NOT NULL PRIMARY KEY, -- SHA-256 of the token; the token itself is never stored
	user_id    text COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	purpose    text             NOT NULL,
	email      text             NOT NULL, -- the address the token was sent to
	created_at timestamptz      NOT NULL,
	expires_at timestamptz      NOT NULL,
	used_at    timestamptz               -- NULL: unused
);

-- The ON DELETE CASCADE lookup and DeleteUserTokens.
CREATE INDEX action_tokens_user_id ON action_tokens (user_id, purpose);

-- DeleteExpiredTokens.
CREATE INDEX action_tokens_expires_at ON action_tokens (expires_at);

-- No foreign key to users: a message already queued is delivered even if
-- its recipient's account is deleted meanwhile, and the queue must not
-- depend on the accounts table.
CREATE TABLE outbox (
	-- An identity is drawn from a sequence and never handed out twice, even
	-- by a rolled-back insert, so a stale id cannot name a newer message.
	id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	to_addr         text        NOT NULL,
	subject         text        NOT NULL,
	text_body       text        NOT NULL,
	html_body       text        NOT NULL,
	created_at      timestamptz NOT NULL,
	attempts        integer     NOT NULL DEFAULT 0,
	next_attempt_at timestamptz NOT NULL, -- due at this time, or leased to a sender until it
	last_error      text        NOT NULL DEFAULT '',
	expires_at      timestamptz           -- not sent from this time on; NULL: no deadline
);

-- ClaimMessages: the due messages.
CREATE INDEX outbox_next_attempt_at ON outbox (next_attempt_at);

-- One row per mail IssueToken queued (or NoteMailRequest counted), kept
-- for the length of the limit's window.
CREATE TABLE mail_log (
	email_key text COLLATE "C" NOT NULL,
	sent_at   timestamptz      NOT NULL
);

CREATE INDEX mail_log_email_key ON mail_log (email_key, sent_at);

-- Counts of failed attempts, by an opaque key (an HMAC digest made by the
-- core: the typed username, sometimes a password typed in the wrong box,
-- is never stored).
CREATE TABLE login_limits (
	key            text COLLATE "C" NOT NULL PRIMARY KEY,
	failures       integer          NOT NULL,
	window_ends_at timestamptz      NOT NULL,
	banned_until   timestamptz               -- NULL: no ban
);

-- DeleteExpiredLimits.
CREATE INDEX login_limits_window_ends_at ON login_limits (window_ends_at);
