package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/gatehouse-caddy/gatehouse/store"
)

const (
	sqlQueueMessage = `INSERT INTO outbox (to_addr, subject, text_body, html_body, created_at, attempts, next_attempt_at, last_error, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
RETURNING id`
	// due picks the oldest n due messages and locks them; SKIP LOCKED
	// passes over rows another sender has locked in its own claim, instead
	// of waiting for it and then finding them leased. A row another sender
	// leased and committed after this statement's snapshot is locked at its
	// newest version and checked again (READ COMMITTED's re-check), and
	// then no longer due: it is left out. So a message is leased to one
	// sender only. MATERIALIZED keeps the locking subquery a step of its
	// own, run once, before the UPDATE that leases what it locked.
	sqlClaimMessages = `WITH due AS MATERIALIZED (
	SELECT id FROM outbox
	WHERE next_attempt_at <= $1
	ORDER BY created_at, id
	LIMIT $2
	FOR UPDATE SKIP LOCKED
)
UPDATE outbox AS o SET attempts = o.attempts + 1, next_attempt_at = $3
FROM due WHERE o.id = due.id
RETURNING o.id, o.to_addr, o.subject, o.text_body, o.html_body, o.created_at, o.attempts, o.next_attempt_at,
	o.last_error, o.expires_at`
	sqlDeleteMessage = `DELETE FROM outbox WHERE id = $1`
	sqlRetryMessage  = `UPDATE outbox SET next_attempt_at = $1, last_error = $2 WHERE id = $3`
)

// QueueMessage adds msg to the outbox and sets msg.ID. A zero
// NextAttemptAt is stored as it is (year 1, which timestamptz holds): it
// is before any now, so the message is due at once.
func (s *Store) QueueMessage(ctx context.Context, msg *store.Message) error {
	var id int64
	err := s.pool.QueryRow(ctx, sqlQueueMessage,
		msg.To, msg.Subject, msg.Text, msg.HTML, msg.CreatedAt, msg.Attempts,
		msg.NextAttemptAt, msg.LastError, optTime(msg.ExpiresAt)).Scan(&id)
	if err != nil {
		return fmt.Errorf("queueing message: %w", err)
	}
	msg.ID = id
	return nil
}

// ClaimMessages leases up to n due messages, oldest first, until
// leaseUntil, with one statement (see sqlClaimMessages for why two senders
// never get the same message). It runs in a transaction committed only
// once every leased row has been read, so a failed read leaves nothing
// leased that the caller does not know of. Several senders claim side by
// side without waiting for each other; each gets the oldest of the
// messages the others have not locked.
func (s *Store) ClaimMessages(ctx context.Context, now, leaseUntil time.Time, n int) ([]store.Message, error) {
	if n <= 0 {
		return []store.Message{}, nil
	}
	var msgs []store.Message
	err := s.inTx(ctx, "claiming messages", func(tx pgx.Tx) error {
		var err error
		msgs, err = claim(ctx, tx, now, leaseUntil, n)
		if err != nil {
			return fmt.Errorf("claiming messages: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// RETURNING gives the rows in no particular order.
	slices.SortFunc(msgs, func(a, b store.Message) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return msgs, nil
}

// claim runs sqlClaimMessages in tx and reads every row it returns.
func claim(ctx context.Context, tx pgx.Tx, now, leaseUntil time.Time, n int) ([]store.Message, error) {
	rows, err := tx.Query(ctx, sqlClaimMessages, now, n, leaseUntil)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
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
	return s.writeOne(ctx, "retrying message", sqlRetryMessage, next, lastError, id)
}

// scanMessage reads a row of the outbox's columns in the order
// sqlClaimMessages returns them: id, to_addr, subject, text_body,
// html_body, created_at, attempts, next_attempt_at, last_error,
// expires_at.
func scanMessage(row pgx.Row) (*store.Message, error) {
	var (
		m       store.Message
		expires pgtype.Timestamptz
	)
	if err := row.Scan(&m.ID, &m.To, &m.Subject, &m.Text, &m.HTML, &m.CreatedAt, &m.Attempts,
		&m.NextAttemptAt, &m.LastError, &expires); err != nil {
		return nil, err
	}
	m.CreatedAt, m.NextAttemptAt = utc(m.CreatedAt), utc(m.NextAttemptAt)
	m.ExpiresAt = optUTC(expires)
	return &m, nil
}
