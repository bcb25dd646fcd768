package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse-caddy/gatehouse/store"
)

const (
	userColumns = `id, email, hashed_password, is_active, is_superuser, is_verified, full_name, roles, created_at, updated_at`

	sqlCreateUser = `INSERT INTO users (id, email, email_key, hashed_password, is_active, is_superuser, is_verified, full_name, roles, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`
	sqlUserByID    = `SELECT ` + userColumns + ` FROM users WHERE id = $1`
	sqlUserByEmail = `SELECT ` + userColumns + ` FROM users WHERE email_key = $1`
	// FOR UPDATE locks the row until the transaction ends: a concurrent
	// UpdateUser, from this process or another, waits here and then reads
	// the row as this one leaves it.
	sqlUserForUpdate = `SELECT ` + userColumns + ` FROM users WHERE id = $1 FOR UPDATE`
	sqlUpdateUser    = `UPDATE users SET email = $1, email_key = $2, hashed_password = $3, is_active = $4, is_superuser = $5,
	is_verified = $6, full_name = $7, roles = $8, updated_at = $9
WHERE id = $10`
	sqlDeleteUser = `DELETE FROM users WHERE id = $1`
	// email_key and id are COLLATE "C": byte order, as in SQLite.
	sqlListUsers = `SELECT ` + userColumns + ` FROM users ORDER BY email_key, id`
)

// CreateUser inserts u; store.ErrConflict when its email (ignoring case) or
// id is taken. The unique index decides between concurrent registrations
// of one email, in this process or another: the server makes the second
// insert wait for the first transaction and then fails it.
func (s *Store) CreateUser(ctx context.Context, u *store.User) error {
	_, err := s.pool.Exec(ctx, sqlCreateUser,
		u.ID, u.Email, store.EmailKey(u.Email), u.HashedPassword, u.IsActive, u.IsSuperuser, u.IsVerified,
		u.FullName, roles(u.Roles), u.CreatedAt, u.UpdatedAt)
	if isUnique(err) {
		return fmt.Errorf("creating user: %w", store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("creating user: %w", err)
	}
	return nil
}

// UserByID returns the user with that id, or store.ErrNotFound.
func (s *Store) UserByID(ctx context.Context, id string) (*store.User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, sqlUserByID, id))
	if err != nil {
		return nil, fmt.Errorf("looking up user by id: %w", err)
	}
	return u, nil
}

// UserByEmail returns the user with that email, ignoring case, or
// store.ErrNotFound.
func (s *Store) UserByEmail(ctx context.Context, email string) (*store.User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, sqlUserByEmail, store.EmailKey(email)))
	if err != nil {
		return nil, fmt.Errorf("looking up user by email: %w", err)
	}
	return u, nil
}

// UpdateUser reads the row FOR UPDATE, changes it and writes it back in one
// transaction: the row lock, held until the commit, serialises updates of
// one user across every instance, so none is lost; updates of other users
// do not wait. A new email taken meanwhile by another user fails on the
// unique index: store.ErrConflict.
func (s *Store) UpdateUser(ctx context.Context, id string, change func(*store.User) error) (*store.User, error) {
	var u *store.User
	err := s.inTx(ctx, "updating user", func(tx pgx.Tx) error {
		var err error
		u, err = scanUser(tx.QueryRow(ctx, sqlUserForUpdate, id))
		if err != nil {
			return fmt.Errorf("updating user: %w", err)
		}
		createdAt := u.CreatedAt
		if err := change(u); err != nil {
			return err // as it is: the caller's own error
		}
		u.ID, u.CreatedAt = id, createdAt
		_, err = tx.Exec(ctx, sqlUpdateUser,
			u.Email, store.EmailKey(u.Email), u.HashedPassword, u.IsActive, u.IsSuperuser, u.IsVerified,
			u.FullName, roles(u.Roles), u.UpdatedAt, u.ID)
		if isUnique(err) {
			return fmt.Errorf("updating user: %w", store.ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("updating user: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	u.Roles = roles(u.Roles)
	return u, nil
}

// DeleteUser removes the user; their sessions and tokens go with them (ON
// DELETE CASCADE, in the same statement).
func (s *Store) DeleteUser(ctx context.Context, id string) error {
	return s.writeOne(ctx, "deleting user", sqlDeleteUser, id)
}

// ListUsers returns every user ordered by email, ignoring case.
func (s *Store) ListUsers(ctx context.Context) ([]store.User, error) {
	rows, err := s.pool.Query(ctx, sqlListUsers)
	if err != nil {
		return nil, fmt.Errorf("listing users: %w", err)
	}
	defer rows.Close()
	users := []store.User{}
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("listing users: %w", err)
		}
		users = append(users, *u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing users: %w", err)
	}
	return users, nil
}

// scanUser reads the columns of userColumns; store.ErrNotFound when there
// is no row.
func scanUser(row pgx.Row) (*store.User, error) {
	var u store.User
	err := row.Scan(&u.ID, &u.Email, &u.HashedPassword, &u.IsActive, &u.IsSuperuser, &u.IsVerified,
		&u.FullName, &u.Roles, &u.CreatedAt, &u.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	u.Roles = roles(u.Roles)
	u.CreatedAt, u.UpdatedAt = utc(u.CreatedAt), utc(u.UpdatedAt)
	return &u, nil
}

// roles returns r, or an empty list for nil: pgx would send nil as NULL,
// and a user read from a store never has nil roles.
func roles(r []string) []string {
	if r == nil {
		return []string{}
	}
	return r
}
