package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/gatehouse-caddy/gatehouse/store"
)

const (
	tokenColumns = `digest, user_id, purpose, email, created_at, expires_at, used_at`

	sqlCreateToken   = `INSERT INTO action_tokens (` + tokenColumns + `) VALUES ($1, $2, $3, $4, $5, $6, $7)`
	sqlTokenByDigest = `SELECT ` + tokenColumns + ` FROM action_tokens WHERE digest = $1 AND purpose = $2`
	// used_at IS NULL in the WHERE clause makes the check and the mark one
	// statement: of two concurrent callers, the second waits for the first's
	// row lock, then finds the row no longer matches and changes nothing.
	sqlUseToken            = `UPDATE action_tokens SET used_at = $1 WHERE purpose = $2 AND digest = $3 AND used_at IS NULL`
	sqlDeleteUserTokens    = `DELETE FROM action_tokens WHERE user_id = $1 AND purpose = $2`
	sqlDeleteExpiredTokens = `DELETE FROM action_tokens WHERE expires_at <= $1`

	// Serialises the writers of one address's mail log until the end of
	// the transaction, across every instance: see lockMail.
	sqlLockMail = `SELECT pg_advisory_xact_lock($1, $2)`
	// The mails one address was sent within the window: those sent after
	// now − window.
	sqlCountMail = `SELECT count(*) FROM mail_log WHERE email_key = $1 AND sent_at > $2`
	sqlLogMail   = `INSERT INTO mail_log (email_key, sent_at) VALUES ($1, $2)`
	// The rows that no longer count: pruned per address, on the index.
	sqlPruneMail = `DELETE FROM mail_log WHERE email_key = $1 AND sent_at <= $2`
	// Every address's records older than the retention.
	sqlPruneMailLog = `DELETE FROM mail_log WHERE sent_at <= $1`
)

// lockMail takes the transaction-level advisory lock of one address's mail
// log. Counting an address's mails and adding one must not be split by
// another IssueToken for the same address: row locks cannot do it, since
// the row that would conflict is the one not inserted yet, so every writer
// of the address takes this lock first and holds it to its commit. The key
// is a hash of the folded address: two addresses that share it merely take
// turns. The lock goes with the transaction, committed or rolled back, and
// with the connection if that breaks.
func lockMail(ctx context.Context, tx pgx.Tx, key string) error {
	h := fnv.New32a()
	h.Write([]byte(key))
	_, err := tx.Exec(ctx, sqlLockMail, lockSpaceMail, int32(h.Sum32()))
	return err
}

// IssueToken stores tok, queues msg and logs the mail in one transaction,
// unless msg.To has had limit.Max mails within limit.Window before now.
// The address's advisory lock is held from before the count to the
// commit, so concurrent callers, in this process or another, never exceed
// the limit together.
func (s *Store) IssueToken(ctx context.Context, tok *store.ActionToken, msg *store.Message, limit store.MailLimit, now time.Time) (bool, error) {
	key := store.EmailKey(msg.To)
	cutoff := now.Add(-limit.Window)
	created, next, expires := store.IssuedMessageTimes(tok, msg, now)

	var (
		id     int64
		issued bool
	)
	err := s.inTx(ctx, "issuing token", func(tx pgx.Tx) error {
		if limit.Max > 0 {
			if err := lockMail(ctx, tx, key); err != nil {
				return fmt.Errorf("issuing token: locking the mail log: %w", err)
			}
			var sent int
			if err := tx.QueryRow(ctx, sqlCountMail, key, cutoff).Scan(&sent); err != nil {
				return fmt.Errorf("issuing token: counting mail: %w", err)
			}
			if sent >= limit.Max {
				if _, err := tx.Exec(ctx, sqlPruneMail, key, cutoff); err != nil {
					return fmt.Errorf("issuing token: pruning mail log: %w", err)
				}
				return nil // committed: only the prune
			}
		}
		_, err := tx.Exec(ctx, sqlCreateToken,
			nonNil(tok.Digest), tok.UserID, string(tok.Purpose), tok.Email,
			tok.CreatedAt, tok.ExpiresAt, optTime(tok.UsedAt))
		switch {
		case err == nil:
		case isUnique(err):
			return fmt.Errorf("issuing token: %w", store.ErrConflict)
		case isForeignKey(err):
			return fmt.Errorf("issuing token: user: %w", store.ErrNotFound)
		default:
			return fmt.Errorf("issuing token: %w", err)
		}
		err = tx.QueryRow(ctx, sqlQueueMessage,
			msg.To, msg.Subject, msg.Text, msg.HTML, created, msg.Attempts, next, msg.LastError,
			optTime(expires)).Scan(&id)
		if err != nil {
			return fmt.Errorf("issuing token: queueing message: %w", err)
		}
		if _, err := tx.Exec(ctx, sqlLogMail, key, now); err != nil {
			return fmt.Errorf("issuing token: logging mail: %w", err)
		}
		if _, err := tx.Exec(ctx, sqlPruneMail, key, cutoff); err != nil {
			return fmt.Errorf("issuing token: pruning mail log: %w", err)
		}
		issued = true
		return nil
	})
	if err != nil || !issued {
		return false, err
	}
	msg.ID, msg.CreatedAt, msg.NextAttemptAt, msg.ExpiresAt = id, created, next, expires
	return true, nil
}

// NoteMailRequest counts and logs a request for mail, like IssueToken, in
// a transaction of the same shape (lock, count, insert, prune, commit),
// minus the token and message rows.
func (s *Store) NoteMailRequest(ctx context.Context, address string, limit store.MailLimit, now time.Time) (bool, error) {
	key := store.EmailKey(address)
	cutoff := now.Add(-limit.Window)
	under := true
	err := s.inTx(ctx, "noting mail request", func(tx pgx.Tx) error {
		if limit.Max > 0 {
			if err := lockMail(ctx, tx, key); err != nil {
				return fmt.Errorf("noting mail request: locking the mail log: %w", err)
			}
			var sent int
			if err := tx.QueryRow(ctx, sqlCountMail, key, cutoff).Scan(&sent); err != nil {
				return fmt.Errorf("noting mail request: counting mail: %w", err)
			}
			under = sent < limit.Max
		}
		if under {
			if _, err := tx.Exec(ctx, sqlLogMail, key, now); err != nil {
				return fmt.Errorf("noting mail request: %w", err)
			}
		}
		if _, err := tx.Exec(ctx, sqlPruneMail, key, cutoff); err != nil {
			return fmt.Errorf("noting mail request: pruning mail log: %w", err)
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	return under, nil
}

// TokenByDigest returns the token with that digest and purpose, used or
// not, expired or not; store.ErrNotFound if none.
func (s *Store) TokenByDigest(ctx context.Context, purpose store.Purpose, digest []byte) (*store.ActionToken, error) {
	tok, err := scanToken(s.pool.QueryRow(ctx, sqlTokenByDigest, nonNil(digest), string(purpose)))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("looking up token: %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("looking up token: %w", err)
	}
	return tok, nil
}

// scanToken reads a row of tokenColumns.
func scanToken(row pgx.Row) (*store.ActionToken, error) {
	var (
		tok     store.ActionToken
		purpose string
		usedAt  pgtype.Timestamptz
	)
	if err := row.Scan(&tok.Digest, &tok.UserID, &purpose, &tok.Email, &tok.CreatedAt, &tok.ExpiresAt, &usedAt); err != nil {
		return nil, err
	}
	tok.Purpose = store.Purpose(purpose)
	tok.CreatedAt, tok.ExpiresAt = utc(tok.CreatedAt), utc(tok.ExpiresAt)
	tok.UsedAt = optUTC(usedAt)
	return &tok, nil
}

// UseToken marks the unused token with that purpose and digest used at
// at; store.ErrNotFound if there is none (unknown, or used already). The
// check and the mark are one UPDATE, so exactly one of concurrent callers,
// in any instance, changes the row.
func (s *Store) UseToken(ctx context.Context, purpose store.Purpose, digest []byte, at time.Time) error {
	return s.writeOne(ctx, "using token", sqlUseToken, at, string(purpose), nonNil(digest))
}

// DeleteUserTokens removes userID's tokens of that purpose and returns how
// many went.
func (s *Store) DeleteUserTokens(ctx context.Context, userID string, purpose store.Purpose) (int, error) {
	return s.write(ctx, "deleting user tokens", sqlDeleteUserTokens, userID, string(purpose))
}

// DeleteExpiredTokens removes the tokens whose ExpiresAt is not after now,
// used or not, and returns how many went.
func (s *Store) DeleteExpiredTokens(ctx context.Context, now time.Time) (int, error) {
	n, err := s.write(ctx, "deleting expired tokens", sqlDeleteExpiredTokens, now)
	if err != nil {
		return 0, err
	}
	// Addresses not written to for longer than any limit's window are
	// forgotten, those of deleted accounts included. Without the address's
	// lock: these rows count in no window any more.
	if _, err := s.pool.Exec(ctx, sqlPruneMailLog, now.Add(-store.MailLogRetention)); err != nil {
		return n, fmt.Errorf("pruning mail log: %w", err)
	}
	return n, nil
}
