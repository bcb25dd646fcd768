package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/gatehouse-caddy/gatehouse/store"
)

// The rows Export reads, table by table, in the order of store.Copier:
// each table in the order of its key ("C" collation: bytes, as SQLite
// compares), so that two copies of one store export alike.
const (
	sqlExportSettings = `SELECT key, value FROM settings ORDER BY key`
	sqlExportUsers    = `SELECT ` + userColumns + ` FROM users ORDER BY id`
	sqlExportSessions = `SELECT ` + sessionColumns + ` FROM sessions ORDER BY id`
	sqlExportTokens   = `SELECT ` + tokenColumns + ` FROM action_tokens ORDER BY digest`
	sqlExportMessages = `SELECT id, to_addr, subject, text_body, html_body, created_at, attempts, next_attempt_at,
	last_error, expires_at
FROM outbox ORDER BY created_at, id`
	sqlExportMailLog = `SELECT email_key, sent_at FROM mail_log ORDER BY email_key, sent_at`
	sqlExportLimits  = `SELECT key, failures, window_ends_at, banned_until FROM login_limits ORDER BY key`

	// A copy may rightly outlast the statement timeout meant for requests
	// (a million users stream through one SELECT, at the pace of the
	// target): ctx bounds it instead. LOCAL: until the transaction ends.
	sqlNoStatementTimeout = `SET LOCAL statement_timeout = 0`

	// EXCLUSIVE lets others read but not write until the import commits:
	// an instance started on the target meanwhile waits, and then finds
	// the copied secret rather than making its own.
	sqlLockTables = `LOCK TABLE settings, users, sessions, action_tokens, outbox, mail_log, login_limits IN EXCLUSIVE MODE`
	// Which tables hold a row: Import writes into an empty store only.
	sqlTablesUsed = `SELECT EXISTS (SELECT 1 FROM settings), EXISTS (SELECT 1 FROM users),
	EXISTS (SELECT 1 FROM sessions), EXISTS (SELECT 1 FROM action_tokens), EXISTS (SELECT 1 FROM outbox),
	EXISTS (SELECT 1 FROM mail_log), EXISTS (SELECT 1 FROM login_limits)`
)

// copyBatch is how many rows Import sends in one COPY: large enough that a
// million users take a hundred round trips, small enough that a batch
// (some megabytes) is all of the copy held in memory.
const copyBatch = 10_000

// Export emits every row, read in one REPEATABLE READ, READ ONLY
// transaction: every query sees the snapshot of the first, so the export
// is consistent while other instances go on writing. pgx reads a result as
// it arrives, so rows are emitted as the server sends them.
func (s *Store) Export(ctx context.Context, emit func(store.Record) error) (err error) {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("exporting: beginning transaction: %w", err)
	}
	defer func() {
		// Nothing to commit: the transaction only read. If the rollback
		// cannot be sent, pgx closes the connection, which ends it too.
		_ = tx.Rollback(context.WithoutCancel(ctx))
	}()
	if _, err := tx.Exec(ctx, sqlNoStatementTimeout); err != nil {
		return fmt.Errorf("exporting: %w", err)
	}
	for _, table := range []struct {
		what, query string
		scan        func(pgx.Row) (store.Record, error)
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
func exportTable(ctx context.Context, tx pgx.Tx, what, query string, scan func(pgx.Row) (store.Record, error), emit func(store.Record) error) error {
	rows, err := tx.Query(ctx, query)
	if err != nil {
		return fmt.Errorf("exporting %s: %w", what, err)
	}
	defer rows.Close()
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

func scanSettingRecord(row pgx.Row) (store.Record, error) {
	var st store.Setting
	if err := row.Scan(&st.Key, &st.Value); err != nil {
		return store.Record{}, err
	}
	st.Value = nonNil(st.Value)
	return store.Record{Setting: &st}, nil
}

func scanUserRecord(row pgx.Row) (store.Record, error) {
	u, err := scanUser(row)
	if err != nil {
		return store.Record{}, err
	}
	return store.Record{User: u}, nil
}

func scanSessionRecord(row pgx.Row) (store.Record, error) {
	ss, err := scanSession(row)
	return store.Record{Session: ss}, err
}

func scanTokenRecord(row pgx.Row) (store.Record, error) {
	tok, err := scanToken(row)
	return store.Record{Token: tok}, err
}

func scanMessageRecord(row pgx.Row) (store.Record, error) {
	m, err := scanMessage(row)
	return store.Record{Message: m}, err
}

func scanMailLogRecord(row pgx.Row) (store.Record, error) {
	var e store.MailLogEntry
	if err := row.Scan(&e.EmailKey, &e.SentAt); err != nil {
		return store.Record{}, err
	}
	e.SentAt = utc(e.SentAt)
	return store.Record{MailLog: &e}, nil
}

func scanLimitRecord(row pgx.Row) (store.Record, error) {
	var (
		l      store.LimitState
		banned pgtype.Timestamptz
	)
	if err := row.Scan(&l.Key, &l.Failures, &l.WindowEndsAt, &banned); err != nil {
		return store.Record{}, err
	}
	l.WindowEndsAt = utc(l.WindowEndsAt)
	l.BannedUntil = optUTC(banned)
	return store.Record{Limit: &l}, nil
}

// copyTable is where COPY puts the rows of one kind of record.
type copyTable struct {
	name    string
	columns []string
	values  func(store.Record) []any
}

// copyTables, by store.Record kind. Values are encoded as the store's
// other writes encode them: the email's key folded in Go, NULL for "none".
// The outbox's id is left out, so that the server numbers the messages in
// the order they come.
var copyTables = map[string]copyTable{
	store.KindSetting: {"settings", []string{"key", "value"}, func(r store.Record) []any {
		return []any{r.Setting.Key, nonNil(r.Setting.Value)}
	}},
	store.KindUser: {"users", []string{"id", "email", "email_key", "hashed_password", "is_active", "is_superuser",
		"is_verified", "full_name", "roles", "created_at", "updated_at"}, func(r store.Record) []any {
		u := r.User
		return []any{u.ID, u.Email, store.EmailKey(u.Email), u.HashedPassword, u.IsActive, u.IsSuperuser,
			u.IsVerified, u.FullName, roles(u.Roles), u.CreatedAt, u.UpdatedAt}
	}},
	store.KindSession: {"sessions", []string{"id", "user_id", "token_digest", "transport", "created_at",
		"last_seen_at", "expires_at", "user_agent", "ip"}, func(r store.Record) []any {
		ss := r.Session
		return []any{ss.ID, ss.UserID, nonNil(ss.TokenDigest), string(ss.Transport), ss.CreatedAt, ss.LastSeenAt,
			ss.ExpiresAt, ss.UserAgent, ss.IP}
	}},
	store.KindToken: {"action_tokens", []string{"digest", "user_id", "purpose", "email", "created_at",
		"expires_at", "used_at"}, func(r store.Record) []any {
		tok := r.Token
		return []any{nonNil(tok.Digest), tok.UserID, string(tok.Purpose), tok.Email, tok.CreatedAt, tok.ExpiresAt,
			optTime(tok.UsedAt)}
	}},
	store.KindMessage: {"outbox", []string{"to_addr", "subject", "text_body", "html_body", "created_at",
		"attempts", "next_attempt_at", "last_error", "expires_at"}, func(r store.Record) []any {
		m := r.Message
		return []any{m.To, m.Subject, m.Text, m.HTML, m.CreatedAt, int32(m.Attempts), m.NextAttemptAt,
			m.LastError, optTime(m.ExpiresAt)}
	}},
	store.KindMailLog: {"mail_log", []string{"email_key", "sent_at"}, func(r store.Record) []any {
		return []any{r.MailLog.EmailKey, r.MailLog.SentAt}
	}},
	store.KindLimit: {"login_limits", []string{"key", "failures", "window_ends_at", "banned_until"}, func(r store.Record) []any {
		l := r.Limit
		return []any{l.Key, int32(l.Failures), l.WindowEndsAt, optTime(l.BannedUntil)}
	}},
}

// Import writes what source emits in one transaction, committed only when
// source returns nil. It locks every table against writers first (see
// sqlLockTables), so that nothing comes between the emptiness check and
// the commit. Rows go in with COPY, in batches of one kind: a run of
// records of one kind fills a batch, which is sent when full or when a
// record of another kind comes, so that rows are written in the order
// emitted (a user before its sessions).
func (s *Store) Import(ctx context.Context, source func(emit func(store.Record) error) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("importing: beginning transaction: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			// If the rollback cannot be sent, pgx closes the connection, and
			// the server rolls back when it sees it close.
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	for _, stmt := range []string{sqlNoStatementTimeout, sqlLockTables} {
		if _, err := tx.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("importing: %w", err)
		}
	}
	if err := checkEmpty(ctx, tx); err != nil {
		return err
	}
	b := &batch{}
	emit := func(r store.Record) error {
		kind := r.Kind()
		if kind == "" {
			return errors.New("importing: a record must carry exactly one row")
		}
		if kind != b.kind {
			if err := b.flush(ctx, tx); err != nil {
				return err
			}
			b.kind = kind
		}
		b.rows = append(b.rows, copyTables[kind].values(r))
		if len(b.rows) >= copyBatch {
			return b.flush(ctx, tx)
		}
		return nil
	}
	if err := source(emit); err != nil {
		return err
	}
	if err := b.flush(ctx, tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("importing: committing: %w", err)
	}
	committed = true
	return nil
}

// batch holds the rows of one kind not sent yet.
type batch struct {
	kind string
	rows [][]any
}

// flush sends the batch's rows with one COPY and empties it.
func (b *batch) flush(ctx context.Context, tx pgx.Tx) error {
	if len(b.rows) == 0 {
		return nil
	}
	t := copyTables[b.kind]
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{t.name}, t.columns, pgx.CopyFromRows(b.rows)); err != nil {
		return fmt.Errorf("importing %s: %w", t.name, err)
	}
	clear(b.rows)
	b.rows = b.rows[:0]
	return nil
}

// checkEmpty returns an error wrapping store.ErrNotEmpty, naming the
// tables that hold rows, unless every table is empty. sqlTablesUsed asks
// about them in the order of store.CopiedTables.
func checkEmpty(ctx context.Context, tx pgx.Tx) error {
	used := make([]bool, len(store.CopiedTables))
	dest := make([]any, len(used))
	for i := range used {
		dest[i] = &used[i]
	}
	if err := tx.QueryRow(ctx, sqlTablesUsed).Scan(dest...); err != nil {
		return fmt.Errorf("importing: checking that the database is empty: %w", err)
	}
	return store.CheckEmpty(used)
}

// Interface guard.
var _ store.Copier = (*Store)(nil)
