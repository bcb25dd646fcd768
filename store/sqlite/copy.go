package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/gatehouse-caddy/gatehouse/store"
)

// The rows Export reads, table by table, in the order of store.Copier:
// each table in the order of its key, so that two copies of one store
// export alike (text and blobs compare as bytes, like PostgreSQL's "C"
// collation).
const (
	sqlExportSettings = `SELECT key, value FROM settings ORDER BY key`
	sqlExportUsers    = `SELECT ` + userColumns + ` FROM users ORDER BY id`
	sqlExportSessions = `SELECT ` + sessionColumns + ` FROM sessions ORDER BY id`
	sqlExportTokens   = `SELECT ` + tokenColumns + ` FROM action_tokens ORDER BY digest`
	sqlExportMessages = `SELECT ` + messageColumns + ` FROM outbox ORDER BY created_at, id`
	sqlExportMailLog  = `SELECT email_key, sent_at FROM mail_log ORDER BY email_key, sent_at`
	sqlExportLimits   = `SELECT key, failures, window_ends_at, banned_until FROM login_limits ORDER BY key`

	// Which tables hold a row: Import writes into an empty store only.
	sqlTablesUsed = `SELECT EXISTS (SELECT 1 FROM settings), EXISTS (SELECT 1 FROM users),
	EXISTS (SELECT 1 FROM sessions), EXISTS (SELECT 1 FROM action_tokens), EXISTS (SELECT 1 FROM outbox),
	EXISTS (SELECT 1 FROM mail_log), EXISTS (SELECT 1 FROM login_limits)`

	sqlImportSetting = `INSERT INTO settings (key, value) VALUES (?, ?)`
	sqlImportLimit   = `INSERT INTO login_limits (key, failures, window_ends_at, banned_until) VALUES (?, ?, ?, ?)`
)

// Export emits every row, read in one transaction on a reader: SQLite
// gives a read transaction in WAL mode one snapshot from its first read to
// its end, so writers (a server still running on the file) neither wait
// for the export nor show up in it half done. Rows are stepped through one
// by one, never loaded all at once.
func (s *Store) Export(ctx context.Context, emit func(store.Record) error) (err error) {
	tx, err := s.readers.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("exporting: %w", err)
	}
	// Nothing to commit: the transaction only read.
	defer func() {
		if rerr := ignoreDone(tx.Rollback()); rerr != nil && err == nil {
			err = fmt.Errorf("exporting: ending the read transaction: %w", rerr)
		}
	}()
	for _, table := range []struct {
		what, query string
		scan        func(scanner) (store.Record, error)
	}{
		{"settings", sqlExportSettings, scanSettingRecord},
		{"users", sqlExportUsers, scanUserRecord},
		{"sessions", sqlExportSessions, scanSessionRecord},
		{"tokens", sqlExportTokens, scanTokenRecord},
		{"messages", sqlExportMessages, scanMessageRecord},
		{"mail log", sqlExportMailLog, scanMailLogRecord},
		{"limits", sqlExportLimits, scanLimitRecord},
	} {
		if err := exportTable(ctx, tx, table.what, table.query, table.scan, emit); err != nil {
			return err
		}
	}
	return nil
}

// exportTable runs query in tx and emits each row as scan reads it. An
// error of emit is returned as it is.
func exportTable(ctx context.Context, tx *sql.Tx, what, query string, scan func(scanner) (store.Record, error), emit func(store.Record) error) (err error) {
	rows, err := tx.QueryContext(ctx, query)
	if err != nil {
		return fmt.Errorf("exporting %s: %w", what, err)
	}
	defer func() {
		if cerr := rows.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("exporting %s: %w", what, cerr))
		}
	}()
	for rows.Next() {
		rec, err := scan(rows)
		if err != nil {
			return fmt.Errorf("exporting %s: %w", what, err)
		}
		if err := emit(rec); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("exporting %s: %w", what, err)
	}
	return nil
}

func scanSettingRecord(row scanner) (store.Record, error) {
	var st store.Setting
	if err := row.Scan(&st.Key, &st.Value); err != nil {
		return store.Record{}, err
	}
	st.Value = nonNil(st.Value)
	return store.Record{Setting: &st}, nil
}

func scanUserRecord(row scanner) (store.Record, error) {
	u, err := scanUser(row)
	if err != nil {
		return store.Record{}, err
	}
	return store.Record{User: u}, nil
}

func scanSessionRecord(row scanner) (store.Record, error) {
	ss, err := scanSession(row)
	return store.Record{Session: ss}, err
}

func scanTokenRecord(row scanner) (store.Record, error) {
	tok, err := scanToken(row)
	return store.Record{Token: tok}, err
}

func scanMessageRecord(row scanner) (store.Record, error) {
	m, err := scanMessage(row)
	return store.Record{Message: m}, err
}

func scanMailLogRecord(row scanner) (store.Record, error) {
	var (
		e    store.MailLogEntry
		sent int64
	)
	if err := row.Scan(&e.EmailKey, &sent); err != nil {
		return store.Record{}, err
	}
	e.SentAt = fromMicros(sent)
	return store.Record{MailLog: &e}, nil
}

func scanLimitRecord(row scanner) (store.Record, error) {
	var (
		l                  store.LimitState
		windowEnds, banned int64
	)
	if err := row.Scan(&l.Key, &l.Failures, &windowEnds, &banned); err != nil {
		return store.Record{}, err
	}
	l.WindowEndsAt = fromMicros(windowEnds)
	if banned != 0 {
		l.BannedUntil = fromMicros(banned)
	}
	return store.Record{Limit: &l}, nil
}

// Import writes what source emits in one IMMEDIATE transaction on the
// writer, committed only when source returns nil. The write lock is held
// from BEGIN: the emptiness check and the copy cannot be split by another
// process writing to the file (a server started on it meanwhile waits,
// and then finds the copied secret). Each table's insert is prepared once.
func (s *Store) Import(ctx context.Context, source func(emit func(store.Record) error) error) (err error) {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("importing: %w", err)
	}
	defer func() {
		if err != nil {
			if rerr := ignoreDone(tx.Rollback()); rerr != nil {
				err = errors.Join(err, rerr)
			}
		}
	}()
	if err := checkEmpty(ctx, tx); err != nil {
		return err
	}
	// Prepared statements of a transaction are closed when it ends.
	stmts := map[string]*sql.Stmt{}
	emit := func(r store.Record) error {
		kind := r.Kind()
		if kind == "" {
			return errors.New("importing: a record must carry exactly one row")
		}
		query, args, err := importArgs(r)
		if err != nil {
			return fmt.Errorf("importing %s: %w", kind, err)
		}
		stmt := stmts[kind]
		if stmt == nil {
			if stmt, err = tx.PrepareContext(ctx, query); err != nil {
				return fmt.Errorf("importing %s: %w", kind, err)
			}
			stmts[kind] = stmt
		}
		if _, err := stmt.ExecContext(ctx, args...); err != nil {
			return fmt.Errorf("importing %s: %w", kind, err)
		}
		return nil
	}
	if err := source(emit); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("importing: committing: %w", err)
	}
	return nil
}

// checkEmpty returns an error wrapping store.ErrNotEmpty, naming the
// tables that hold rows, unless every table is empty. sqlTablesUsed asks
// about them in the order of store.CopiedTables.
func checkEmpty(ctx context.Context, tx *sql.Tx) error {
	used := make([]bool, len(store.CopiedTables))
	dest := make([]any, len(used))
	for i := range used {
		dest[i] = &used[i]
	}
	if err := tx.QueryRowContext(ctx, sqlTablesUsed).Scan(dest...); err != nil {
		return fmt.Errorf("importing: checking that the database is empty: %w", err)
	}
	return store.CheckEmpty(used)
}

// importArgs returns the insert of r's row and its arguments, encoded as
// the store's other writes encode them.
func importArgs(r store.Record) (string, []any, error) {
	switch {
	case r.Setting != nil:
		st := r.Setting
		return sqlImportSetting, []any{st.Key, nonNil(st.Value)}, nil
	case r.User != nil:
		u := r.User
		roles, err := encodeRoles(u.Roles)
		if err != nil {
			return "", nil, err
		}
		return sqlCreateUser, []any{u.ID, u.Email, store.EmailKey(u.Email), u.HashedPassword, u.IsActive,
			u.IsSuperuser, u.IsVerified, u.FullName, roles, micros(u.CreatedAt), micros(u.UpdatedAt)}, nil
	case r.Session != nil:
		ss := r.Session
		return sqlCreateSession, []any{ss.ID, ss.UserID, nonNil(ss.TokenDigest), string(ss.Transport),
			micros(ss.CreatedAt), micros(ss.LastSeenAt), micros(ss.ExpiresAt), ss.UserAgent, ss.IP}, nil
	case r.Token != nil:
		tok := r.Token
		return sqlCreateToken, []any{nonNil(tok.Digest), tok.UserID, string(tok.Purpose), tok.Email,
			micros(tok.CreatedAt), micros(tok.ExpiresAt), optMicros(tok.UsedAt)}, nil
	case r.Message != nil:
		m := r.Message
		return sqlQueueMessage, []any{m.To, m.Subject, m.Text, m.HTML, micros(m.CreatedAt), m.Attempts,
			micros(m.NextAttemptAt), m.LastError, optMicros(m.ExpiresAt)}, nil
	case r.MailLog != nil:
		return sqlLogMail, []any{r.MailLog.EmailKey, micros(r.MailLog.SentAt)}, nil
	default:
		l := r.Limit
		return sqlImportLimit, []any{l.Key, l.Failures, micros(l.WindowEndsAt), optMicros(l.BannedUntil)}, nil
	}
}

// Interface guard.
var _ store.Copier = (*Store)(nil)
