-- 0004: counts of failed attempts for the brute-force limits, by an opaque
-- key (an HMAC digest of an account's folded email or of a client's
-- address, made by the core: the typed username, which is sometimes a
-- password typed in the wrong box, is never stored).
--
-- Times are INTEGER unix microseconds (UTC); banned_until 0: no ban.

CREATE TABLE login_limits (
	key            TEXT    NOT NULL PRIMARY KEY,
	failures       INTEGER NOT NULL,
	window_ends_at INTEGER NOT NULL,
	banned_until   INTEGER NOT NULL DEFAULT 0
) STRICT, WITHOUT ROWID;

-- DeleteExpiredLimits.
CREATE INDEX login_limits_window_ends_at ON login_limits (window_ends_at);
