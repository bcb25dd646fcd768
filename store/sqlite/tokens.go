package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse-caddy/gatehouse/store"
)

const (
	tokenColumns = `digest, user_id, purpose, email, created_at, expires_at, used_at`

	sqlCreateToken   = `INSERT INTO action_tokens (` + tokenColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?)`
	sqlTokenByDigest = `SELECT ` + tokenColumns + ` FROM action_tokens WHERE digest = ? AND purpose = ?`
	// used_at = 0 in the WHERE clause makes the check and the mark one
	// statement: of two concurrent callers, the second finds no unused row.
	sqlUseToken            = `UPDATE action_tokens SET used_at = ? WHERE purpose = ? AND digest = ? AND used_at = 0`
	sqlDeleteUserTokens    = `DELETE FROM action_tokens WHERE user_id = ? AND purpose = ?`
	sqlDeleteExpiredTokens = `DELETE FROM action_tokens WHERE expires_at <= ?`

	// The mails one address was sent within the window: those sent after
	// now − window.
	sqlCountMail = `SELECT count(*) FROM mail_log WHERE email_key = ? AND sent_at > ?`
	sqlLogMail   = `INSERT INTO mail_log (email_key, sent_at) VALUES (?, ?)`
	// The rows that no longer count: pruned per address, on the index.
	sqlPruneMail = `DELETE FROM mail_log WHERE email_key = ? AND sent_at <= ?`
	// Every address's records older than the retention.
	sqlPruneMailLog = `DELETE FROM mail_log WHERE sent_at <= ?`
)

// IssueToken stores tok, queues msg and logs the mail in one IMMEDIATE
// transaction on the writer, unless msg.To has had limit.Max mails within
// limit.Window before now. The write lock is held from BEGIN, so the count
// and the insert cannot be split by another IssueToken, from this process
// or another one: concurrent callers never exceed the limit together.
func (s *Store) IssueToken(ctx context.Context, tok *store.ActionToken, msg *store.Message, limit store.MailLimit, now time.Time) (_ bool, err error) {
	key := store.EmailKey(msg.To)
	cutoff := micros(now.Add(-limit.Window))
	created, next, expires := store.IssuedMessageTimes(tok, msg, now)

	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("issuing token: %w", err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, ignoreDone(tx.Rollback()))
		}
	}()

	if limit.Max > 0 {
		var sent int
		if err := tx.QueryRowContext(ctx, sqlCountMail, key, cutoff).Scan(&sent); err != nil {
			return false, fmt.Errorf("issuing token: counting mail: %w", err)
		}
		if sent >= limit.Max {
			if _, err := tx.ExecContext(ctx, sqlPruneMail, key, cutoff); err != nil {
				return false, fmt.Errorf("issuing token: pruning mail log: %w", err)
			}
			if err := tx.Commit(); err != nil {
				return false, fmt.Errorf("issuing token: committing: %w", err)
			}
			return false, nil
		}
	}

	usedAt := int64(0)
	if !tok.UsedAt.IsZero() {
		usedAt = micros(tok.UsedAt)
	}
	_, err = tx.ExecContext(ctx, sqlCreateToken,
		nonNil(tok.Digest), tok.UserID, string(tok.Purpose), tok.Email,
		micros(tok.CreatedAt), micros(tok.ExpiresAt), usedAt)
	switch {
	case err == nil:
	case isUnique(err):
		return false, fmt.Errorf("issuing token: %w", store.ErrConflict)
	case isForeignKey(err):
		return false, fmt.Errorf("issuing token: user: %w", store.ErrNotFound)
	default:
		return false, fmt.Errorf("issuing token: %w", err)
	}
	res, err := tx.ExecContext(ctx, sqlQueueMessage,
		msg.To, msg.Subject, msg.Text, msg.HTML, micros(created), msg.Attempts, micros(next), msg.LastError,
		micros(expires))
	if err != nil {
		return false, fmt.Errorf("issuing token: queueing message: %w", err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return false, fmt.Errorf("issuing token: queueing message: %w", err)
	}
	if _, err := tx.ExecContext(ctx, sqlLogMail, key, micros(now)); err != nil {
		return false, fmt.Errorf("issuing token: logging mail: %w", err)
	}
	if _, err := tx.ExecContext(ctx, sqlPruneMail, key, cutoff); err != nil {
		return false, fmt.Errorf("issuing token: pruning mail log: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("issuing token: committing: %w", err)
	}
	msg.ID, msg.CreatedAt, msg.NextAttemptAt, msg.ExpiresAt = id, created, next, expires
	return true, nil
}

// NoteMailRequest counts and logs a request for mail, like IssueToken,
// in a write transaction of the same shape (count, insert, prune, commit
// with its sync), minus the token and message rows.
func (s *Store) NoteMailRequest(ctx context.Context, address string, limit store.MailLimit, now time.Time) (_ bool, err error) {
	key := store.EmailKey(address)
	cutoff := micros(now.Add(-limit.Window))
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("noting mail request: %w", err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, ignoreDone(tx.Rollback()))
		}
	}()
	under := true
	if limit.Max > 0 {
		var sent int
		if err := tx.QueryRowContext(ctx, sqlCountMail, key, cutoff).Scan(&sent); err != nil {
			return false, fmt.Errorf("noting mail request: counting mail: %w", err)
		}
		under = sent < limit.Max
	}
	if under {
		if _, err := tx.ExecContext(ctx, sqlLogMail, key, micros(now)); err != nil {
			return false, fmt.Errorf("noting mail request: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, sqlPruneMail, key, cutoff); err != nil {
		return false, fmt.Errorf("noting mail request: pruning mail log: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("noting mail request: committing: %w", err)
	}
	return under, nil
}

// TokenByDigest returns the token with that digest and purpose, used or
// not, expired or not; store.ErrNotFound if none.
func (s *Store) TokenByDigest(ctx context.Context, purpose store.Purpose, digest []byte) (*store.ActionToken, error) {
	tok, err := scanToken(s.readers.QueryRowContext(ctx, sqlTokenByDigest, nonNil(digest), string(purpose)))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("looking up token: %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("looking up token: %w", err)
	}
	return tok, nil
}

// scanToken reads a row of tokenColumns.
func scanToken(row scanner) (*store.ActionToken, error) {
	var (
		tok                      store.ActionToken
		purpose                  string
		created, expires, usedAt int64
	)
	if err := row.Scan(&tok.Digest, &tok.UserID, &purpose, &tok.Email, &created, &expires, &usedAt); err != nil {
		return nil, err
	}
	tok.Purpose = store.Purpose(purpose)
	tok.CreatedAt, tok.ExpiresAt = fromMicros(created), fromMicros(expires)
	if usedAt != 0 {
		tok.UsedAt = fromMicros(usedAt)
	}
	return &tok, nil
}

// UseToken marks the unused token with that purpose and digest used at
// at; store.ErrNotFound if there is none (unknown, or used already). The
// check and the mark are one UPDATE, so exactly one of concurrent callers
// changes the row.
func (s *Store) UseToken(ctx context.Context, purpose store.Purpose, digest []byte, at time.Time) error {
	return s.writeOne(ctx, "using token", sqlUseToken, micros(at), string(purpose), nonNil(digest))
}

// DeleteUserTokens removes userID's tokens of that purpose and returns how
// many went.
func (s *Store) DeleteUserTokens(ctx context.Context, userID string, purpose store.Purpose) (int, error) {
	return s.write(ctx, "deleting user tokens", sqlDeleteUserTokens, userID, string(purpose))
}

// DeleteExpiredTokens removes the tokens whose ExpiresAt is not after now,
// used or not, and returns how many went.
func (s *Store) DeleteExpiredTokens(ctx context.Context, now time.Time) (int, error) {
	n, err := s.write(ctx, "deleting expired tokens", sqlDeleteExpiredTokens, micros(now))
	if err != nil {
		return 0, err
	}
	// Addresses not written to for longer than any limit's window are
	// forgotten, those of deleted accounts included.
	if _, err := s.writer.ExecContext(ctx, sqlPruneMailLog, micros(now.Add(-store.MailLogRetention))); err != nil {
		return n, fmt.Errorf("pruning mail log: %w", err)
	}
	return n, nil
}
