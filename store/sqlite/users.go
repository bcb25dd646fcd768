package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/gatehouse-caddy/gatehouse/store"
)

const (
	userColumns = `id, email, hashed_password, is_active, is_superuser, is_verified, full_name, roles, created_at, updated_at`

	sqlCreateUser = `INSERT INTO users (id, email, email_key, hashed_password, is_active, is_superuser, is_verified, full_name, roles, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	sqlUserByID    = `SELECT ` + userColumns + ` FROM users WHERE id = ?`
	sqlUserByEmail = `SELECT ` + userColumns + ` FROM users WHERE email_key = ?`
	sqlUpdateUser  = `UPDATE users SET email = ?, email_key = ?, hashed_password = ?, is_active = ?, is_superuser = ?,
	is_verified = ?, full_name = ?, roles = ?, updated_at = ?
WHERE id = ?`
	sqlDeleteUser = `DELETE FROM users WHERE id = ?`
	sqlListUsers  = `SELECT ` + userColumns + ` FROM users ORDER BY email_key, id`
)

// CreateUser inserts u; store.ErrConflict when its email (ignoring case) or
// id is taken.
func (s *Store) CreateUser(ctx context.Context, u *store.User) error {
	roles, err := encodeRoles(u.Roles)
	if err != nil {
		return fmt.Errorf("creating user: %w", err)
	}
	_, err = s.writer.ExecContext(ctx, sqlCreateUser,
		u.ID, u.Email, store.EmailKey(u.Email), u.HashedPassword, u.IsActive, u.IsSuperuser, u.IsVerified,
		u.FullName, roles, micros(u.CreatedAt), micros(u.UpdatedAt))
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
	u, err := scanUser(s.readers.QueryRowContext(ctx, sqlUserByID, id))
	if err != nil {
		return nil, fmt.Errorf("looking up user by id: %w", err)
	}
	return u, nil
}

// UserByEmail returns the user with that email, ignoring case, or
// store.ErrNotFound.
func (s *Store) UserByEmail(ctx context.Context, email string) (*store.User, error) {
	u, err := scanUser(s.readers.QueryRowContext(ctx, sqlUserByEmail, store.EmailKey(email)))
	if err != nil {
		return nil, fmt.Errorf("looking up user by email: %w", err)
	}
	return u, nil
}

// UpdateUser reads, changes and writes the user back in one IMMEDIATE
// transaction on the writer: the write lock is taken at BEGIN, so no other
// write, from this process or another, can come between the read and the
// write.
func (s *Store) UpdateUser(ctx context.Context, id string, change func(*store.User) error) (*store.User, error) {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("updating user: %w", err)
	}
	defer tx.Rollback()
	u, err := scanUser(tx.QueryRowContext(ctx, sqlUserByID, id))
	if err != nil {
		return nil, fmt.Errorf("updating user: %w", err)
	}
	createdAt := u.CreatedAt
	if err := change(u); err != nil {
		return nil, err
	}
	u.ID, u.CreatedAt = id, createdAt
	roles, err := encodeRoles(u.Roles)
	if err != nil {
		return nil, fmt.Errorf("updating user: %w", err)
	}
	_, err = tx.ExecContext(ctx, sqlUpdateUser,
		u.Email, store.EmailKey(u.Email), u.HashedPassword, u.IsActive, u.IsSuperuser, u.IsVerified,
		u.FullName, roles, micros(u.UpdatedAt), u.ID)
	if isUnique(err) {
		return nil, fmt.Errorf("updating user: %w", store.ErrConflict)
	}
	if err != nil {
		return nil, fmt.Errorf("updating user: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("updating user: %w", err)
	}
	if u.Roles == nil {
		u.Roles = []string{}
	}
	return u, nil
}

// DeleteUser removes the user; their sessions go with them (ON DELETE
// CASCADE, in the same statement).
func (s *Store) DeleteUser(ctx context.Context, id string) error {
	return s.writeOne(ctx, "deleting user", sqlDeleteUser, id)
}

// ListUsers returns every user ordered by email, ignoring case.
func (s *Store) ListUsers(ctx context.Context) (_ []store.User, err error) {
	rows, err := s.readers.QueryContext(ctx, sqlListUsers)
	if err != nil {
		return nil, fmt.Errorf("listing users: %w", err)
	}
	defer func() { err = errors.Join(err, rows.Close()) }()
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

// scanner is a *sql.Row or *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}

// scanUser reads the columns of userColumns; store.ErrNotFound when there
// is no row.
func scanUser(row scanner) (*store.User, error) {
	var (
		u                    store.User
		roles                string
		createdAt, updatedAt int64
	)
	err := row.Scan(&u.ID, &u.Email, &u.HashedPassword, &u.IsActive, &u.IsSuperuser, &u.IsVerified,
		&u.FullName, &roles, &createdAt, &updatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	if u.Roles, err = decodeRoles(roles); err != nil {
		return nil, err
	}
	u.CreatedAt, u.UpdatedAt = fromMicros(createdAt), fromMicros(updatedAt)
	return &u, nil
}

// encodeRoles stores roles as a JSON array; nil becomes [].
func encodeRoles(roles []string) (string, error) {
	if roles == nil {
		roles = []string{}
	}
	b, err := json.Marshal(roles)
	if err != nil {
		return "", fmt.Errorf("encoding roles: %w", err)
	}
	return string(b), nil
}

// decodeRoles reads a JSON array of roles, never returning nil.
func decodeRoles(s string) ([]string, error) {
	roles := []string{}
	if err := json.Unmarshal([]byte(s), &roles); err != nil {
		return nil, fmt.Errorf("decoding roles: %w", err)
	}
	if roles == nil { // the column held "null"
		roles = []string{}
	}
	return roles, nil
}
