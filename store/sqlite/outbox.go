package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/gatehouse-caddy/gatehouse/store"
)

const (
	messageColumns = `id, to_addr, subject, text_body, html_body, created_at, attempts, next_attempt_at, last_error, expires_at`

	sqlQueueMessage = `INSERT INTO outbox (to_addr, subject, text_body, html_body, created_at, attempts, next_attempt_at, last_error, expires_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`
	// One statement picks the due messages and leases them. The subquery
	// chooses the oldest n (this SQLite has no UPDATE … ORDER BY … LIMIT);
	// RETURNING (SQLite ≥ 3.35) gives back the leased rows, in no
	// particular order, with their new attempts and next_attempt_at.
	sqlClaimMessages = `UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?
WHERE id IN (SELECT id FROM outbox WHERE next_attempt_at <= ? ORDER BY created_at, id LIMIT ?)
RETURNING ` + messageColumns
	sqlDeleteMessage = `DELETE FROM outbox WHERE id = ?`
	sqlRetryMessage  = `UPDATE outbox SET next_attempt_at = ?, last_error = ? WHERE id = ?`
)

// QueueMessage adds msg to the outbox and sets msg.ID. A zero
// NextAttemptAt is stored as it is: it is before any now, so the message
// is due at once.
func (s *Store) QueueMessage(ctx context.Context, msg *store.Message) error {
	res, err := s.writer.ExecContext(ctx, sqlQueueMessage,
		msg.To, msg.Subject, msg.Text, msg.HTML, micros(msg.CreatedAt), msg.Attempts,
		micros(msg.NextAttemptAt), msg.LastError, optMicros(msg.ExpiresAt))
	if err != nil {
		return fmt.Errorf("queueing message: %w", err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return fmt.Errorf("queueing message: %w", err)
	}
	msg.ID = id
	return nil
}

// ClaimMessages leases up to n due messages, oldest first, until
// leaseUntil. The UPDATE … RETURNING runs in an IMMEDIATE transaction on
// the writer: the selection and the lease happen under the write lock, so
// two senders, in this process or another, never claim the same message;
// and the lease is committed only once every leased row has been read, so
// a failed read leaves nothing leased that the caller does not know of.
func (s *Store) ClaimMessages(ctx context.Context, now, leaseUntil time.Time, n int) (_ []store.Message, err error) {
	if n <= 0 {
		return []store.Message{}, nil
	}
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("claiming messages: %w", err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, ignoreDone(tx.Rollback()))
		}
	}()
	msgs, err := claim(ctx, tx, now, leaseUntil, n)
	if err != nil {
		return nil, fmt.Errorf("claiming messages: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("claiming messages: committing: %w", err)
	}
	slices.SortFunc(msgs, func(a, b store.Message) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return msgs, nil
}

// claim runs sqlClaimMessages in tx and reads every row it returns.
func claim(ctx context.Context, tx *sql.Tx, now, leaseUntil time.Time, n int) (_ []store.Message, err error) {
	rows, err := tx.QueryContext(ctx, sqlClaimMessages, micros(leaseUntil), micros(now), n)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, rows.Close()) }()
	msgs := []store.Message{}
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, *m)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return msgs, nil
}

// DeleteMessage removes the message; store.ErrNotFound if it is gone.
func (s *Store) DeleteMessage(ctx context.Context, id int64) error {
	return s.writeOne(ctx, "deleting message", sqlDeleteMessage, id)
}

// RetryMessage makes the message due again at next and records lastError;
// store.ErrNotFound if it is gone.
func (s *Store) RetryMessage(ctx context.Context, id int64, next time.Time, lastError string) error {
	return s.writeOne(ctx, "retrying message", sqlRetryMessage, micros(next), lastError, id)
}

// optMicros encodes an optional time: 0 for the zero time.
func optMicros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return micros(t)
}

// scanMessage reads a row of messageColumns.
func scanMessage(row scanner) (*store.Message, error) {
	var (
		m                      store.Message
		created, next, expires int64
	)
	if err := row.Scan(&m.ID, &m.To, &m.Subject, &m.Text, &m.HTML, &created, &m.Attempts, &next,
		&m.LastError, &expires); err != nil {
		return nil, err
	}
	m.CreatedAt, m.NextAttemptAt = fromMicros(created), fromMicros(next)
	if expires != 0 {
		m.ExpiresAt = fromMicros(expires)
	}
	return &m, nil
}
