package gatehouse

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/spf13/cobra"

	"github.com/gatehouse-caddy/gatehouse/store"
)

func (o cliOptions) migrate() *cobra.Command {
	var from, to string
	cmd := leaf("migrate --from <database> --to <database>",
		"Copies every account, session and token into a new database",
		`
Copies everything the --from database holds into the --to database, which
must be new and empty: users, sessions, the tokens of mailed links, queued
mail, the mail and login limits' counts, and the installation's generated
secret, without which every session token would be refused. Either may be
SQLite or PostgreSQL, so an installation grows from one machine to several
(or comes back) without losing an account or logging anyone out:

  caddy gatehouse migrate --from sqlite:/var/lib/caddy/gatehouse.db --to 'postgres:{env.GATEHOUSE_DATABASE_URL}'

A database is sqlite:<path> or postgres:<dsn>, where the DSN is a
postgres:// URL or libpq's keyword=value list; a postgres:// URL may also be
given as it is. Placeholders such as {env.GATEHOUSE_DATABASE_URL} are
expanded, so the password need not be on the command line, where other
users of the machine could read it. The --from SQLite file must exist. No
--config is read.

Both schemas are created or brought up to date first. The copy is read in
one transaction and written in one: if it fails, --to is left empty and the
command can be run again. Stop the servers using --from before the copy:
logins, logouts and password changes made while it runs are not copied.
Then point the config's database at --to and start them.

Prints how many rows of each kind were copied, on one line.
`,
		func(cmd *cobra.Command) error {
			switch {
			case from == "":
				return usageErrorf("--from is required")
			case to == "":
				return usageErrorf("--to is required")
			}
			src, err := parseDatabaseFlag(from)
			if err != nil {
				return usageErrorf("--from: %v", err)
			}
			dst, err := parseDatabaseFlag(to)
			if err != nil {
				return usageErrorf("--to: %v", err)
			}
			if sameDatabase(src, dst) {
				return usageErrorf("--from and --to name the same database")
			}
			// Opening a missing SQLite file would create an empty one, and
			// copy nothing: a mistyped path must not look like success.
			if src.Driver == driverSQLite {
				switch st, err := os.Stat(src.Path); {
				case errors.Is(err, fs.ErrNotExist):
					return fmt.Errorf("--from: no database at %s", src.Path)
				case err != nil:
					return fmt.Errorf("--from: %w", err)
				case st.IsDir():
					return fmt.Errorf("--from: %s is a directory", src.Path)
				}
			}
			counts, err := migrateDatabase(cmd.Context(), src, dst)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), "copied "+counts.String())
			return err
		})
	cmd.Flags().StringVar(&from, "from", "", "Database to copy: sqlite:<path> or postgres:<dsn> (required)")
	cmd.Flags().StringVar(&to, "to", "", "New, empty database to copy into: sqlite:<path> or postgres:<dsn> (required)")
	return cmd
}

// sameDatabase reports whether a and b name one database: the same SQLite
// file, or the same PostgreSQL server and database however the DSNs are
// spelled. It need not catch every spelling: copying a database into
// itself fails anyway, as the target is not empty.
func sameDatabase(a, b *DatabaseConfig) bool {
	if a.Driver != b.Driver {
		return false
	}
	if a.Driver == driverSQLite {
		if a.Path == b.Path {
			return true
		}
		sa, errA := os.Stat(a.Path)
		sb, errB := os.Stat(b.Path)
		return errA == nil && errB == nil && os.SameFile(sa, sb)
	}
	if a.DSN == b.DSN {
		return true
	}
	ca, errA := pgconn.ParseConfig(a.DSN)
	cb, errB := pgconn.ParseConfig(b.DSN)
	return errA == nil && errB == nil &&
		ca.Host == cb.Host && ca.Port == cb.Port && ca.Database == cb.Database
}

// copyCounts is how many records of each kind (store.Record.Kind) a copy
// wrote.
type copyCounts map[string]int

// String lists the counts, the accounts first: "3 users, 1 session, …".
func (c copyCounts) String() string {
	var parts []string
	for _, k := range []struct{ kind, one, many string }{
		{store.KindUser, "user", "users"},
		{store.KindSession, "session", "sessions"},
		{store.KindToken, "token", "tokens"},
		{store.KindMessage, "message", "messages"},
		{store.KindMailLog, "mail log entry", "mail log entries"},
		{store.KindLimit, "limit", "limits"},
		{store.KindSetting, "setting", "settings"},
	} {
		noun := k.many
		if c[k.kind] == 1 {
			noun = k.one
		}
		parts = append(parts, fmt.Sprintf("%d %s", c[k.kind], noun))
	}
	return strings.Join(parts, ", ")
}

// migrateDatabase opens both databases (creating or migrating their
// schemas) and copies src into dst. Errors name the database by its flag,
// never by its DSN, which may hold a password.
func migrateDatabase(ctx context.Context, src, dst *DatabaseConfig) (_ copyCounts, err error) {
	from, err := openCopier(ctx, src)
	if err != nil {
		return nil, fmt.Errorf("--from: %w", err)
	}
	defer func() {
		if cerr := from.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("--from: closing database: %w", cerr)
		}
	}()
	to, err := openCopier(ctx, dst)
	if err != nil {
		return nil, fmt.Errorf("--to: %w", err)
	}
	defer func() {
		if cerr := to.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("--to: closing database: %w", cerr)
		}
	}()
	counts := copyCounts{}
	err = to.Import(ctx, func(emit func(store.Record) error) error {
		err := from.Export(ctx, func(r store.Record) error {
			if err := emit(r); err != nil {
				return err
			}
			counts[r.Kind()]++
			return nil
		})
		if err == nil && counts[store.KindUser] == 0 && counts[store.KindSetting] == 0 {
			// A mistyped database name would otherwise "succeed" with
			// nothing, and the servers be pointed at an empty target.
			// Returning an error rolls the import back.
			return errNothingToCopy
		}
		return err
	})
	if errors.Is(err, errNothingToCopy) {
		return nil, err
	}
	if errors.Is(err, store.ErrNotEmpty) {
		return nil, fmt.Errorf("--to: %w (migrate copies into a new, empty database only)", err)
	}
	if err != nil {
		return nil, fmt.Errorf("copying: %w", err)
	}
	return counts, nil
}

// errNothingToCopy: the --from database holds neither a user nor a
// setting (the generated secret): a new database, or the wrong one.
var errNothingToCopy = errors.New("--from: holds no user and no secret, so nothing was copied: is it the right database?")

// copierStore is a store that can be copied from and into.
type copierStore interface {
	store.Store
	store.Copier
}

// openCopier opens the database c names as a copierStore.
func openCopier(ctx context.Context, c *DatabaseConfig) (copierStore, error) {
	st, err := c.open(ctx)
	if err != nil {
		return nil, err
	}
	cs, ok := st.(copierStore)
	if !ok {
		st.Close()
		return nil, fmt.Errorf("the %s store cannot be copied", c.Driver)
	}
	return cs, nil
}
