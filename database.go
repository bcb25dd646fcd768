package gatehouse

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/gatehouse-caddy/gatehouse/store"
	"github.com/gatehouse-caddy/gatehouse/store/postgres"
	"github.com/gatehouse-caddy/gatehouse/store/sqlite"
)

// The store drivers.
const (
	driverSQLite   = "sqlite"
	driverPostgres = "postgres"
)

// DatabaseConfig names the store: an SQLite file (the default, for one
// machine) or a PostgreSQL database that several Caddy instances share.
type DatabaseConfig struct {
	// The store implementation: "sqlite" (default) or "postgres".
	Driver string `json:"driver,omitempty"`
	// sqlite: the database file. Placeholders are expanded. Default
	// gatehouse/gatehouse.db in Caddy's data directory.
	Path string `json:"path,omitempty"`
	// postgres: the connection string, a postgres:// URL or libpq's
	// keyword=value list. Placeholders are expanded, so the password can
	// stay out of the config: {env.GATEHOUSE_DATABASE_URL}.
	DSN string `json:"dsn,omitempty"`
	// postgres: the most connections this instance opens; requests beyond
	// them wait for a free one. Every instance has its own pool, so the
	// server's max_connections must cover the sum. Default 10, or the
	// DSN's pool_max_conns.
	MaxConns int `json:"max_conns,omitempty"`
	// postgres: how long establishing a connection may take (TCP, TLS,
	// authentication). Default 5s, or the DSN's connect_timeout.
	ConnectTimeout caddy.Duration `json:"connect_timeout,omitempty"`
	// postgres: the server cancels a statement that runs longer, so that a
	// stuck lock fails requests rather than piling them up. Negative: none.
	// Default 10s, or the DSN's statement_timeout.
	StatementTimeout caddy.Duration `json:"statement_timeout,omitempty"`
}

// resolve checks the driver, expands placeholders and fills in the
// defaults. repl expands placeholders; an unknown or empty one is an
// error, so that a missing environment variable is not taken for an empty
// password or a database in the current directory.
func (c *DatabaseConfig) resolve(repl *caddy.Replacer) error {
	if c.Driver == "" {
		c.Driver = driverSQLite
	}
	var err error
	switch c.Driver {
	case driverSQLite:
		if c.DSN != "" || c.MaxConns != 0 || c.ConnectTimeout != 0 || c.StatementTimeout != 0 {
			return fmt.Errorf("database: dsn, max_conns, connect_timeout and statement_timeout are for postgres, not sqlite")
		}
		if c.Path == "" {
			c.Path = filepath.Join(caddy.AppDataDir(), "gatehouse", "gatehouse.db")
		}
		path, err := repl.ReplaceOrErr(c.Path, true, true)
		if err != nil {
			return fmt.Errorf("database path: %w", err)
		}
		if c.Path, err = filepath.Abs(path); err != nil {
			return fmt.Errorf("database path: %w", err)
		}
	case driverPostgres:
		if c.Path != "" {
			return fmt.Errorf("database: path is for sqlite; postgres takes a dsn")
		}
		if c.DSN == "" {
			return fmt.Errorf("database postgres: a dsn is required")
		}
		// The DSN holds the password: it never appears in an error, here
		// or from the store (postgres.Open's errors name host and port
		// only). The replacer's error would quote the text between the
		// braces, which may be part of a password, so it is not passed on.
		if c.DSN, err = repl.ReplaceOrErr(c.DSN, true, true); err != nil {
			return fmt.Errorf("database dsn: a placeholder in it is unknown or empty (an unset {env.*} variable?)")
		}
		if c.MaxConns < 0 {
			return fmt.Errorf("database max_conns: %d is not a positive number", c.MaxConns)
		}
		if c.ConnectTimeout < 0 {
			return fmt.Errorf("database connect_timeout: must be positive")
		}
	default:
		return fmt.Errorf("database: unsupported driver %q (want sqlite or postgres)", c.Driver)
	}
	return nil
}

// key identifies the database and the way it is opened, for storePool: two
// configs naming the same one share one store and one session cache. A
// reload that changes the pool settings opens a new pool.
func (c *DatabaseConfig) key() string {
	if c.Driver == driverPostgres {
		return fmt.Sprintf("postgres:%d:%d:%d:%s", c.MaxConns, c.ConnectTimeout, c.StatementTimeout, c.DSN)
	}
	return "sqlite:" + c.Path
}

// open opens the store, creating and migrating its schema when needed.
// ctx bounds the opening only. The server opens each database once,
// through storePool; the `caddy gatehouse` commands open it directly.
func (c *DatabaseConfig) open(ctx context.Context) (store.Store, error) {
	switch c.Driver {
	case driverPostgres:
		st, err := postgres.Open(ctx, c.DSN, postgres.Options{
			MaxConns:         int32(min(c.MaxConns, 1<<30)),
			ConnectTimeout:   time.Duration(c.ConnectTimeout),
			StatementTimeout: time.Duration(c.StatementTimeout),
		})
		if err != nil {
			// postgres.Open's error names the server (host and port) and
			// the cause, without the password.
			return nil, fmt.Errorf("opening database: %w", err)
		}
		return st, nil
	default:
		st, err := sqlite.Open(ctx, c.Path)
		if err != nil {
			return nil, fmt.Errorf("opening database %s: %w", c.Path, err)
		}
		return st, nil
	}
}

// parseDatabase parses the `database` option of the global block:
//
//	database sqlite <path>
//	database postgres <dsn> {
//		max_conns <n>
//		connect_timeout <duration>
//		statement_timeout <duration>|off
//	}
func parseDatabase(d *caddyfile.Dispenser) (*DatabaseConfig, error) {
	var driver, where string
	if !d.AllArgs(&driver, &where) {
		return nil, d.ArgErr()
	}
	c := &DatabaseConfig{Driver: driver}
	switch driver {
	case driverSQLite:
		c.Path = where
		if d.NextBlock(d.Nesting()) {
			return nil, d.Errf("database sqlite: takes no block")
		}
		return c, nil
	case driverPostgres:
		c.DSN = where
	default:
		return nil, d.Errf("database: unsupported driver %q (want sqlite or postgres)", driver)
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if seen[opt] {
			return nil, d.Errf("database: duplicate subdirective %q", opt)
		}
		seen[opt] = true
		var err error
		switch opt {
		case "max_conns":
			c.MaxConns, err = positiveInt(d, "database max_conns")
		case "connect_timeout":
			c.ConnectTimeout, err = duration(d)
		case "statement_timeout":
			var v string
			if err = oneArg(d, &v); err == nil {
				if v == "off" {
					c.StatementTimeout = -1
					break
				}
				dur, perr := caddy.ParseDuration(v)
				if perr != nil || dur <= 0 {
					return nil, d.Errf("database statement_timeout: %q is neither a positive duration nor off", v)
				}
				c.StatementTimeout = caddy.Duration(dur)
			}
		default:
			return nil, d.Errf("database: unrecognized subdirective %q", opt)
		}
		if err != nil {
			return nil, err
		}
	}
	return c, nil
}

// parseDatabaseFlag reads a database named on the command line:
// sqlite:<path> or postgres:<dsn> (a bare postgres:// or postgresql:// URL
// is taken as it is). Placeholders are expanded as in a config.
func parseDatabaseFlag(s string) (*DatabaseConfig, error) {
	var c *DatabaseConfig
	switch {
	case strings.HasPrefix(s, "postgres://"), strings.HasPrefix(s, "postgresql://"):
		c = &DatabaseConfig{Driver: driverPostgres, DSN: s}
	case strings.HasPrefix(s, driverSQLite+":"):
		c = &DatabaseConfig{Driver: driverSQLite, Path: strings.TrimPrefix(s, driverSQLite+":")}
		if c.Path == "" {
			return nil, fmt.Errorf("sqlite: needs a path")
		}
	case strings.HasPrefix(s, driverPostgres+":"):
		c = &DatabaseConfig{Driver: driverPostgres, DSN: strings.TrimPrefix(s, driverPostgres+":")}
		if c.DSN == "" {
			return nil, fmt.Errorf("postgres: needs a connection string")
		}
	default:
		// Not echoed: it may be a DSN with a password, mistyped.
		return nil, fmt.Errorf("a database is sqlite:<path> or postgres:<dsn>")
	}
	if err := c.resolve(caddy.NewReplacer()); err != nil {
		return nil, err
	}
	return c, nil
}
