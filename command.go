package gatehouse

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"unicode"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/gatehouse-caddy/gatehouse/caddyauth"
	"github.com/gatehouse-caddy/gatehouse/handlers"
	"github.com/gatehouse-caddy/gatehouse/store"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "gatehouse",
		Usage: "user|sessions <subcommand> --config <path> [flags] | migrate --from <database> --to <database>",
		Short: "Manages Gatehouse accounts and sessions in a config's database",
		Long:  help(gatehouseLong),
		CobraFunc: func(cmd *cobra.Command) {
			buildGatehouseCommand(cmd, cliOptions{})
		},
	})
}

const gatehouseLong = `
Manages the accounts and sessions kept in the Gatehouse database of a Caddy
config, whether or not the server is running. The database is created and
migrated when it does not exist yet, so the first superuser can be made
before the first start:

  caddy gatehouse user add    --config <Caddyfile> --email <e> [--superuser] [--verified] [--role <r>]...
  caddy gatehouse user list   --config <Caddyfile> [--json]
  caddy gatehouse user set    --config <Caddyfile> --email <e> [--active|--inactive]
                              [--superuser|--no-superuser] [--verified|--unverified] [--role <r>...|--no-roles]
  caddy gatehouse user passwd --config <Caddyfile> --email <e>
  caddy gatehouse user delete --config <Caddyfile> --email <e>
  caddy gatehouse sessions revoke --config <Caddyfile> --email <e>
  caddy gatehouse migrate --from <database> --to <database>

Passwords are read from standard input (its first line, without the line
ending), never from the command line, where other users of the machine
could read them:

  printf '%s\n' "$PASSWORD" | caddy gatehouse user add --config Caddyfile --email admin@example.com --superuser

--config and --adapter work as for 'caddy run': a file named Caddyfile (or
*.caddyfile) is read with the caddyfile adapter. The database is the one
named by the gatehouse global option's 'database', or by default
gatehouse/gatehouse.db in Caddy's data directory of the user running the
command. A relative path is taken from the current directory, as the server
takes it: run these commands where the server is started. Placeholders such
as {env.GATEHOUSE_SECRET} are expanded from this command's environment.

'migrate' copies a whole installation (accounts, sessions, tokens, queued
mail and the generated secret) into a new, empty database, from SQLite to
PostgreSQL or back; it reads no config. A database is sqlite:<path> or
postgres:<dsn>. Stop the servers first: sessions made during the copy are
not copied. See 'caddy gatehouse migrate --help'.

Changes reach a running server within {staleness}: a deactivated user's or a
revoked session's credentials are refused by then.

Exit status is 0 on success; on failure it is 1, with one line on standard
error.
`

// help fills in a help text: {staleness} is how long a running server may
// take to notice a change made here.
func help(text string) string {
	return strings.ReplaceAll(strings.TrimSpace(text), "{staleness}", caddyauth.MaxStaleness.String())
}

// cliOptions is what the command tree takes from its surroundings; the
// zero value is production. Tests replace the hasher with a cheap one.
type cliOptions struct {
	// newHasher makes the password hasher. Default: newHasher with the
	// config's password_hash settings, as the server hashes.
	newHasher func() *caddyauth.Hasher
	// audit receives the audit log of the commands' changes, with
	// actor_id "cli". Default: none is kept, for the command's output is
	// its exit status and its one line (see caddyauth's audit.go).
	audit *slog.Logger
}

// hasher returns the password hasher for the config a.
func (o cliOptions) hasher(a *App) (*caddyauth.Hasher, error) {
	if o.newHasher != nil {
		return o.newHasher(), nil
	}
	return newHasher(a.PasswordHash)
}

// newGatehouseCommand returns the `gatehouse` command tree as Caddy
// builds it, for running in-process.
func newGatehouseCommand(o cliOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "gatehouse", Short: "Manages Gatehouse accounts", Long: help(gatehouseLong)}
	buildGatehouseCommand(cmd, o)
	return cmd
}

// buildGatehouseCommand adds the subcommands to the `gatehouse` command
// that Caddy made.
//
// Every failure is reported by fail, as one line on standard error, and
// cobra's own report is silenced on every command of the tree, so that the
// line appears once. Hence arguments, required flags and exclusive flags
// are checked in RunE, not with cobra's Args, MarkFlagRequired or
// MarkFlagsMutuallyExclusive, whose errors would not pass through fail.
// Flag syntax errors do not reach RunE: FlagErrorFunc reports them.
func buildGatehouseCommand(root *cobra.Command, o cliOptions) {
	group(root)

	user := &cobra.Command{
		Use:   "user <add|list|set|passwd|delete>",
		Short: "Manages accounts",
	}
	group(user)
	user.AddCommand(o.userAdd(), o.userList(), o.userSet(), o.userPasswd(), o.userDelete())

	sessions := &cobra.Command{
		Use:   "sessions <revoke>",
		Short: "Manages sessions",
	}
	group(sessions)
	sessions.AddCommand(o.sessionsRevoke())

	root.AddCommand(user, sessions, o.migrate())
}

// group makes cmd a command that only holds subcommands: run without one,
// or with an unknown one, it fails (cobra would print the help and exit 0).
func group(cmd *cobra.Command) {
	silence(cmd)
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return fail(cmd, usageErrorf("missing subcommand"))
		}
		return fail(cmd, usageErrorf("unknown subcommand %q", args[0]))
	}
}

func silence(cmd *cobra.Command) {
	cmd.SilenceErrors = true
	cmd.SilenceUsage = true
	cmd.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return fail(cmd, &usageError{err})
	})
}

// leaf makes a subcommand whose body is run; the caller adds its flags.
func leaf(use, short, long string, run func(cmd *cobra.Command) error) *cobra.Command {
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long:  help(long),
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return fail(cmd, usageErrorf("unexpected argument %q", args[0]))
			}
			// Whatever the command changes, the command line did it.
			cmd.SetContext(caddyauth.WithActor(cmd.Context(), caddyauth.ActorCLI))
			if err := run(cmd); err != nil {
				return fail(cmd, err)
			}
			return nil
		},
	}
	silence(cmd)
	return cmd
}

// usageError is a mistake in the command line; its report points to the
// command's help.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// fail reports err as one line on standard error and returns it, so that
// Caddy's Main exits with status 1 (cobra's own "Error: …" is silenced).
// Control characters, newlines included, become spaces: the report is one
// line whatever the error wraps, and input echoed in it cannot drive the
// terminal.
func fail(cmd *cobra.Command, err error) error {
	msg := strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, err.Error()))
	if _, ok := errors.AsType[*usageError](err); ok {
		msg += fmt.Sprintf(" (see '%s --help')", cmd.CommandPath())
	}
	fmt.Fprintln(cmd.ErrOrStderr(), "gatehouse: "+msg)
	return fmt.Errorf("gatehouse: %w", err)
}

// target is where a subcommand acts: the database of a config.
type target struct {
	config  string
	adapter string
	email   string
}

func (t *target) addConfigFlags(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&t.config, "config", "c", "", "Configuration file whose gatehouse database to use (required)")
	cmd.Flags().StringVarP(&t.adapter, "adapter", "a", "", "Name of config adapter to apply (default: by file name, as caddy run)")
}

func (t *target) addEmailFlag(cmd *cobra.Command) {
	cmd.Flags().StringVar(&t.email, "email", "", "Email of the account (required)")
}

// check reports a missing --config or --email; stdinUsed: the command
// reads a password from standard input, so the config cannot come from
// there.
func (t *target) check(needEmail, stdinUsed bool) error {
	if t.config == "" {
		return usageErrorf("--config is required")
	}
	if t.config == "-" && stdinUsed {
		return usageErrorf("--config -: standard input carries the password; name a config file")
	}
	t.email = strings.TrimSpace(t.email)
	if needEmail && t.email == "" {
		return usageErrorf("--email is required")
	}
	return nil
}

// loadApp reads the config as `caddy run` would and returns its gatehouse
// app with the defaults filled in and checked, exactly as the server's
// Provision and Validate would see it. It opens nothing.
func (t *target) loadApp() (*App, error) {
	cfgJSON, err := loadConfig(t.config, t.adapter)
	if err != nil {
		return nil, err
	}
	var cfg struct {
		Apps map[string]json.RawMessage `json:"apps"`
	}
	if len(cfgJSON) > 0 {
		if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
			return nil, fmt.Errorf("reading config: %w", err)
		}
	}
	a := new(App)
	if raw := cfg.Apps["gatehouse"]; len(raw) > 0 {
		if err := caddy.StrictUnmarshalJSON(raw, a); err != nil {
			return nil, fmt.Errorf("reading the gatehouse app of the config: %w", err)
		}
	}
	if err := a.resolve(); err != nil {
		return nil, fmt.Errorf("gatehouse config: %w", err)
	}
	if err := a.Validate(); err != nil {
		return nil, fmt.Errorf("gatehouse config: %w", err)
	}
	return a, nil
}

// loadConfig adapts the config file with caddycmd.LoadConfig, the
// function behind `caddy run --config --adapter`.
//
// LoadConfig reports its progress ("using config from file", "adapted
// config to JSON") and the adapter's warnings through Caddy's default
// logger, on standard error. Those lines would break this command's
// promise of one line on failure and silence on success, so the default
// logger buffers them during the call and they are dropped.
//
// The default logger is process-wide: loadConfigMu keeps two loads in one
// process (tests) from swapping it under each other.
func loadConfig(path, adapter string) ([]byte, error) {
	loadConfigMu.Lock()
	defer loadConfigMu.Unlock()
	_, orig, buffered := caddy.BufferedLog()
	defer caddy.UnbufferDefaultLogger(orig)
	defer buffered.FlushTo(zap.NewNop())
	cfg, _, _, err := caddycmd.LoadConfig(path, adapter)
	return cfg, err
}

var loadConfigMu sync.Mutex

// withService opens the app's store (creating and migrating the database
// when it does not exist yet) and runs do with the core built on it as the
// server builds it: same options, same secret, same password hashing. The
// store is this process's own, not the server's pool, and is closed at the
// end. SQLite in WAL mode with a busy timeout lets this process write while
// a server holds the same file open.
func (o cliOptions) withService(ctx context.Context, a *App, do func(*caddyauth.Service) error) (err error) {
	st, err := a.Database.open(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := st.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("closing database: %w", cerr)
		}
	}()
	// The core's warnings would add lines to standard error; the command's
	// outcome is its exit status and its one line.
	hasher, err := o.hasher(a)
	if err != nil {
		return err
	}
	svc, err := a.newService(ctx, st, caddyauth.NewSessionCache(), hasher, slog.New(slog.DiscardHandler), serviceHooks{audit: o.audit})
	if err != nil {
		return err
	}
	return do(svc)
}

// maxPasswordLine is the longest first line read from standard input:
// room for the longest acceptable password in 4-byte characters and a
// CRLF. A longer line is cut, and the policy refuses what remains.
const maxPasswordLine = 4*caddyauth.MaxPasswordLength + 2

// readPassword returns the first line of r without its line ending (LF or
// CRLF). Nothing else is trimmed: spaces may be part of a password.
// Passwords never come from the command line, which other users of the
// machine can read (ps, /proc/<pid>/cmdline).
func readPassword(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, maxPasswordLine)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading the password from standard input: %w", err)
	}
	line = strings.TrimSuffix(line, "\n")
	line = strings.TrimSuffix(line, "\r")
	if line == "" {
		return "", errors.New("no password on standard input (its first line is the password)")
	}
	// A browser sends UTF-8; a password in another encoding could never
	// be typed into the login form.
	if !utf8.ValidString(line) {
		return "", errors.New("the password on standard input is not valid UTF-8")
	}
	return line, nil
}

// explain puts a core error in the terms of the command line: flags rather
// than JSON fields, and the email as given.
func explain(err error, email string) error {
	if errors.Is(err, caddyauth.ErrNotFound) {
		return fmt.Errorf("no user with email %s", email)
	}
	if errors.Is(err, caddyauth.ErrEmailTaken) || errors.Is(err, caddyauth.ErrUserExists) {
		return fmt.Errorf("a user with email %s already exists", email)
	}
	if pe, ok := errors.AsType[*caddyauth.PasswordError](err); ok {
		return fmt.Errorf("password refused: %s", pe.Reason)
	}
	if fe, ok := errors.AsType[*caddyauth.FieldError](err); ok {
		name := map[string]string{"email": "--email", "roles": "--role"}[fe.Field]
		if name == "" {
			name = fe.Field
		}
		return usageErrorf("invalid %s: %s", name, strings.TrimPrefix(fe.Msg, "Value error, "))
	}
	return err
}

// userByEmail looks an account up, ignoring case as every lookup does.
func userByEmail(ctx context.Context, svc *caddyauth.Service, email string) (*store.User, error) {
	u, err := svc.UserByEmail(ctx, email)
	if err != nil {
		return nil, explain(err, email)
	}
	return u, nil
}

// withUser loads t's config, opens its database and runs do on the
// account named by --email.
func (o cliOptions) withUser(ctx context.Context, t *target, do func(*caddyauth.Service, *store.User) error) error {
	a, err := t.loadApp()
	if err != nil {
		return err
	}
	return o.withService(ctx, a, func(svc *caddyauth.Service) error {
		u, err := userByEmail(ctx, svc, t.email)
		if err != nil {
			return err
		}
		return do(svc, u)
	})
}

func (o cliOptions) userAdd() *cobra.Command {
	var (
		t                   target
		superuser, verified bool
		roles               []string
	)
	cmd := leaf("add --config <Caddyfile> --email <email> [--superuser] [--verified] [--role <role>]...",
		"Creates an account; the password is read from standard input",
		`
Creates an active account and prints its id. The password is the first line
of standard input; it must satisfy the config's password policy.

  printf '%s\n' "$PASSWORD" | caddy gatehouse user add --config Caddyfile --email admin@example.com --superuser
`,
		func(cmd *cobra.Command) error {
			if err := t.check(true, true); err != nil {
				return err
			}
			// Checked before anything is opened or read, so that a typo
			// creates no database.
			if _, err := caddyauth.NormalizeEmail(t.email); err != nil {
				return explain(err, t.email)
			}
			if err := caddyauth.ValidateRoles("roles", roles); err != nil {
				return explain(err, t.email)
			}
			a, err := t.loadApp()
			if err != nil {
				return err
			}
			password, err := readPassword(cmd.InOrStdin())
			if err != nil {
				return err
			}
			return o.withService(cmd.Context(), a, func(svc *caddyauth.Service) error {
				u, err := svc.CreateUser(cmd.Context(), caddyauth.NewUser{
					Email:       t.email,
					Password:    password,
					IsActive:    true,
					IsSuperuser: superuser,
					IsVerified:  verified,
					Roles:       roles,
				})
				if err != nil {
					return explain(err, t.email)
				}
				_, err = fmt.Fprintln(cmd.OutOrStdout(), u.ID)
				return err
			})
		})
	t.addConfigFlags(cmd)
	t.addEmailFlag(cmd)
	cmd.Flags().BoolVar(&superuser, "superuser", false, "Make the account a superuser")
	cmd.Flags().BoolVar(&verified, "verified", false, "Mark the email as verified")
	cmd.Flags().StringArrayVar(&roles, "role", nil, "Give the account a role (repeat for several)")
	return cmd
}

func (o cliOptions) userList() *cobra.Command {
	var (
		t      target
		asJSON bool
	)
	cmd := leaf("list --config <Caddyfile> [--json]",
		"Lists the accounts",
		`
Lists every account, ordered by email: a table of email, id, active,
superuser, verified and roles, or with --json an array of the API's user
objects.
`,
		func(cmd *cobra.Command) error {
			if err := t.check(false, false); err != nil {
				return err
			}
			a, err := t.loadApp()
			if err != nil {
				return err
			}
			return o.withService(cmd.Context(), a, func(svc *caddyauth.Service) error {
				users, err := svc.Users(cmd.Context())
				if err != nil {
					return err
				}
				if asJSON {
					return writeUsersJSON(cmd.OutOrStdout(), users)
				}
				return writeUsersTable(cmd.OutOrStdout(), users)
			})
		})
	t.addConfigFlags(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "Print a JSON array of user objects")
	return cmd
}

func writeUsersJSON(w io.Writer, users []store.User) error {
	// The API's user objects, so that scripts read one shape from both.
	out := make([]handlers.UserJSON, 0, len(users))
	for i := range users {
		out = append(out, handlers.ToUserJSON(&users[i]))
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func writeUsersTable(w io.Writer, users []store.User) error {
	yesNo := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "EMAIL\tID\tACTIVE\tSUPERUSER\tVERIFIED\tROLES")
	for _, u := range users {
		roles := strings.Join(u.Roles, ",")
		if roles == "" {
			roles = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", u.Email, u.ID,
			yesNo(u.IsActive), yesNo(u.IsSuperuser), yesNo(u.IsVerified), roles)
	}
	return tw.Flush()
}

func (o cliOptions) userSet() *cobra.Command {
	var (
		t                      target
		active, inactive       bool
		superuser, noSuperuser bool
		verified, unverified   bool
		roles                  []string
		noRoles                bool
	)
	cmd := leaf("set --config <Caddyfile> --email <email> [--active|--inactive] [--superuser|--no-superuser] [--verified|--unverified] [--role <role>...|--no-roles]",
		"Changes an account's status and roles",
		`
Changes an account. --inactive ends all the user's sessions (a running
server refuses them within {staleness}); the account stays, and --active
lets the user log in again. --role replaces the user's roles with the ones
given (repeat it for several); --no-roles removes them all.
`,
		func(cmd *cobra.Command) error {
			if err := t.check(true, false); err != nil {
				return err
			}
			var patch caddyauth.UserPatch
			for _, pair := range []struct {
				on, off       bool
				onName, other string
				field         **bool
			}{
				{active, inactive, "--active", "--inactive", &patch.IsActive},
				{superuser, noSuperuser, "--superuser", "--no-superuser", &patch.IsSuperuser},
				{verified, unverified, "--verified", "--unverified", &patch.IsVerified},
			} {
				if pair.on && pair.off {
					return usageErrorf("%s and %s exclude each other", pair.onName, pair.other)
				}
				if pair.on || pair.off {
					v := pair.on
					*pair.field = &v
				}
			}
			switch {
			case noRoles && cmd.Flags().Changed("role"):
				return usageErrorf("--role and --no-roles exclude each other")
			case noRoles:
				patch.Roles = &[]string{}
			case cmd.Flags().Changed("role"):
				if err := caddyauth.ValidateRoles("roles", roles); err != nil {
					return explain(err, t.email)
				}
				r := slices.Clone(roles)
				patch.Roles = &r
			}
			if patch.IsActive == nil && patch.IsSuperuser == nil && patch.IsVerified == nil && patch.Roles == nil {
				return usageErrorf("nothing to change: give --active, --inactive, --superuser, --no-superuser, --verified, --unverified, --role or --no-roles")
			}
			return o.withUser(cmd.Context(), &t, func(svc *caddyauth.Service, u *store.User) error {
				// "" keeps no session: this change is made by no session
				// of the user's, and deactivation ends them all.
				if _, err := svc.UpdateUser(cmd.Context(), u.ID, patch, ""); err != nil {
					return explain(err, t.email)
				}
				return nil
			})
		})
	t.addConfigFlags(cmd)
	t.addEmailFlag(cmd)
	cmd.Flags().BoolVar(&active, "active", false, "Let the user log in")
	cmd.Flags().BoolVar(&inactive, "inactive", false, "Stop the user from logging in and end all their sessions")
	cmd.Flags().BoolVar(&superuser, "superuser", false, "Make the user a superuser")
	cmd.Flags().BoolVar(&noSuperuser, "no-superuser", false, "Make the user an ordinary user")
	cmd.Flags().BoolVar(&verified, "verified", false, "Mark the email as verified")
	cmd.Flags().BoolVar(&unverified, "unverified", false, "Mark the email as not verified")
	cmd.Flags().StringArrayVar(&roles, "role", nil, "Replace the user's roles with these (repeat for several)")
	cmd.Flags().BoolVar(&noRoles, "no-roles", false, "Remove all the user's roles")
	return cmd
}

func (o cliOptions) userPasswd() *cobra.Command {
	var t target
	cmd := leaf("passwd --config <Caddyfile> --email <email>",
		"Sets an account's password, read from standard input",
		`
Sets a user's password to the first line of standard input and ends all
their sessions (a running server refuses them within {staleness}). The
password must satisfy the config's password policy.

  printf '%s\n' "$PASSWORD" | caddy gatehouse user passwd --config Caddyfile --email alice@example.com
`,
		func(cmd *cobra.Command) error {
			if err := t.check(true, true); err != nil {
				return err
			}
			a, err := t.loadApp()
			if err != nil {
				return err
			}
			password, err := readPassword(cmd.InOrStdin())
			if err != nil {
				return err
			}
			return o.withService(cmd.Context(), a, func(svc *caddyauth.Service) error {
				u, err := userByEmail(cmd.Context(), svc, t.email)
				if err != nil {
					return err
				}
				// keepSession "": a new password ends every session.
				if _, err := svc.UpdateUser(cmd.Context(), u.ID, caddyauth.UserPatch{Password: &password}, ""); err != nil {
					return explain(err, t.email)
				}
				return nil
			})
		})
	t.addConfigFlags(cmd)
	t.addEmailFlag(cmd)
	return cmd
}

func (o cliOptions) userDelete() *cobra.Command {
	var t target
	cmd := leaf("delete --config <Caddyfile> --email <email>",
		"Deletes an account and its sessions",
		`
Deletes an account and all its sessions (a running server refuses them
within {staleness}).
`,
		func(cmd *cobra.Command) error {
			if err := t.check(true, false); err != nil {
				return err
			}
			return o.withUser(cmd.Context(), &t, func(svc *caddyauth.Service, u *store.User) error {
				if err := svc.DeleteUser(cmd.Context(), u.ID); err != nil {
					return explain(err, t.email)
				}
				return nil
			})
		})
	t.addConfigFlags(cmd)
	t.addEmailFlag(cmd)
	return cmd
}

func (o cliOptions) sessionsRevoke() *cobra.Command {
	var t target
	cmd := leaf("revoke --config <Caddyfile> --email <email>",
		"Logs a user out everywhere",
		`
Ends every session of a user, cookie and bearer alike, and prints how many
ended. A running server refuses them within {staleness}. The account is left
as it is: the user can log in again.
`,
		func(cmd *cobra.Command) error {
			if err := t.check(true, false); err != nil {
				return err
			}
			return o.withUser(cmd.Context(), &t, func(svc *caddyauth.Service, u *store.User) error {
				n, err := svc.RevokeUserSessions(cmd.Context(), u.ID, "")
				if err != nil {
					return explain(err, t.email)
				}
				noun := "sessions"
				if n == 1 {
					noun = "session"
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "%d %s ended\n", n, noun)
				return err
			})
		})
	t.addConfigFlags(cmd)
	t.addEmailFlag(cmd)
	return cmd
}
