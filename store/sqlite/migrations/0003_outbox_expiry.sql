-- 0003: a queued mail may carry a deadline, the expiry of the token in its
-- link: a link that no longer works is not worth delivering.
-- 0 means no deadline. Times are INTEGER unix microseconds (UTC).

ALTER TABLE outbox ADD COLUMN expires_at INTEGER NOT NULL DEFAULT 0;
