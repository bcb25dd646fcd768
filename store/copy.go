package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrNotEmpty: Import was given a store that already holds data. A copy
// goes into a new, empty database only: merging two installations could
// mix two secrets and two users with one email.
var ErrNotEmpty = errors.New("database not empty")

// CopiedTables name the kinds of rows a store holds, in the order of
// Copier.Export, for messages: each store's emptiness check for Import
// asks about its tables in this order.
var CopiedTables = []string{"settings", "users", "sessions", "tokens", "messages", "mail log", "limits"}

// CheckEmpty is the end of Import's emptiness check: used[i] tells
// whether the table of CopiedTables[i] holds a row. It returns nil when
// none does, and otherwise an error wrapping ErrNotEmpty that names them.
func CheckEmpty(used []bool) error {
	var names []string
	for i, u := range used {
		if u {
			names = append(names, CopiedTables[i])
		}
	}
	if len(names) > 0 {
		return fmt.Errorf("importing: %w: it holds %s", ErrNotEmpty, strings.Join(names, ", "))
	}
	return nil
}

// Setting is one row of the installation's settings (SettingOrInit).
type Setting struct {
	Key   string
	Value []byte
}

// MailLogEntry records one mail counted against an address's MailLimit.
type MailLogEntry struct {
	EmailKey string // EmailKey of the address
	SentAt   time.Time
}

// LimitState is one key's count of failures for the brute-force limits
// (Limits).
type LimitState struct {
	Key          string
	Failures     int
	WindowEndsAt time.Time
	BannedUntil  time.Time // zero: no ban
}

// Record is one row of a store, as Export gives it and Import takes it:
// exactly one of its fields is set.
type Record struct {
	Setting *Setting
	User    *User
	Session *Session
	Token   *ActionToken
	Message *Message
	MailLog *MailLogEntry
	Limit   *LimitState
}

// The kinds of Record, as Kind names them, in the order Export gives them.
const (
	KindSetting = "setting"
	KindUser    = "user"
	KindSession = "session"
	KindToken   = "token"
	KindMessage = "message"
	KindMailLog = "mail log entry"
	KindLimit   = "limit"
)

// Kind names the field r carries, or returns "" when r carries none or
// more than one.
func (r Record) Kind() string {
	kind, n := "", 0
	for _, f := range []struct {
		set  bool
		kind string
	}{
		{r.Setting != nil, KindSetting},
		{r.User != nil, KindUser},
		{r.Session != nil, KindSession},
		{r.Token != nil, KindToken},
		{r.Message != nil, KindMessage},
		{r.MailLog != nil, KindMailLog},
		{r.Limit != nil, KindLimit},
	} {
		if f.set {
			kind, n = f.kind, n+1
		}
	}
	if n != 1 {
		return ""
	}
	return kind
}

// Copier copies a whole store into another, of the same implementation
// or not: `caddy gatehouse migrate` moves an installation from SQLite to
// PostgreSQL (or back) without losing an account, a session or the secret
// that signs them.
type Copier interface {
	// Export calls emit with every row of the store, read in one read
	// transaction, so that the rows are one consistent snapshot even while
	// the store is in use. The order respects the references between rows:
	// settings, users, sessions, action tokens, outbox messages (oldest
	// first), mail-log entries, limits. Rows are read as they are emitted,
	// never all at once. An error from emit ends the export and is returned
	// as it is.
	Export(ctx context.Context, emit func(Record) error) error
	// Import writes every record source emits into this store, in one
	// write transaction committed only if source returns nil: a failed copy
	// leaves the store as it was. The store must be empty (no row in any
	// table, settings included): otherwise Import returns an error wrapping
	// ErrNotEmpty and writes nothing. Records are written in the order
	// emitted, so a row must come after the rows it references (as Export
	// orders them). Messages get new IDs from this store, in the order
	// emitted; everything else, the settings' values included, is kept as
	// it is, times to the microsecond. An error from source is returned as
	// it is.
	Import(ctx context.Context, source func(emit func(Record) error) error) error
}
