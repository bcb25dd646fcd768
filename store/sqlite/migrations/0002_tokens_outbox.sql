-- 0002: action tokens sent by mail, the outbox that carries them, and the
-- per-address log that bounds how much mail one address receives.
--
-- Times are INTEGER unix microseconds (UTC), as in 0001. email_key is
-- folded in Go with strings.ToLower, like users.email_key.

CREATE TABLE action_tokens (
	digest     BLOB    NOT NULL PRIMARY KEY, -- SHA-256 of the token; the token itself is never stored
	user_id    TEXT    NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	purpose    TEXT    NOT NULL,
	email      TEXT    NOT NULL, -- the address the token was sent to
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,
	used_at    INTEGER NOT NULL DEFAULT 0 -- 0: unused
) STRICT;

-- The ON DELETE CASCADE lookup and DeleteUserTokens.
CREATE INDEX action_tokens_user_id ON action_tokens (user_id, purpose);

-- DeleteExpiredTokens.
CREATE INDEX action_tokens_expires_at ON action_tokens (expires_at);

-- No foreign key to users: a message already queued is delivered even if
-- its recipient's account is deleted meanwhile (a notice of the deletion,
-- say), and the queue must not depend on the accounts table.
CREATE TABLE outbox (
	id              INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, -- never reused, so a stale id cannot name a newer message
	to_addr         TEXT    NOT NULL,
	subject         TEXT    NOT NULL,
	text_body       TEXT    NOT NULL,
	html_body       TEXT    NOT NULL,
	created_at      INTEGER NOT NULL,
	attempts        INTEGER NOT NULL DEFAULT 0,
	next_attempt_at INTEGER NOT NULL, -- due at this time, or leased to a sender until it
	last_error      TEXT    NOT NULL DEFAULT ''
) STRICT;

-- ClaimMessages: the due messages.
CREATE INDEX outbox_next_attempt_at ON outbox (next_attempt_at);

-- One row per mail IssueToken queued, kept for the length of the limit's
-- window: IssueToken counts an address's rows to enforce the limit and
-- prunes that address's older ones.
CREATE TABLE mail_log (
	email_key TEXT    NOT NULL,
	sent_at   INTEGER NOT NULL
) STRICT;

CREATE INDEX mail_log_email_key ON mail_log (email_key, sent_at);
