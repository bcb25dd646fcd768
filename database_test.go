package gatehouse

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// TestDatabaseResolve: defaults, placeholders, and the mistakes refused
// before anything is opened.
func TestDatabaseResolve(t *testing.T) {
	t.Setenv("GH_TEST_DSN", "postgres://gh:s3cret@127.0.0.1:5432/gh")
	t.Run("sqlite default", func(t *testing.T) {
		c := new(DatabaseConfig)
		if err := c.resolve(caddy.NewReplacer()); err != nil {
			t.Fatal(err)
		}
		want := filepath.Join(caddy.AppDataDir(), "gatehouse", "gatehouse.db")
		if c.Driver != "sqlite" || c.Path != want {
			t.Errorf("got %s %q, want sqlite %q", c.Driver, c.Path, want)
		}
	})
	t.Run("sqlite relative path is made absolute", func(t *testing.T) {
		c := &DatabaseConfig{Path: "x/gh.db"}
		if err := c.resolve(caddy.NewReplacer()); err != nil {
			t.Fatal(err)
		}
		if !filepath.IsAbs(c.Path) || !strings.HasSuffix(c.Path, filepath.Join("x", "gh.db")) {
			t.Errorf("path = %q", c.Path)
		}
	})
	t.Run("postgres dsn from the environment", func(t *testing.T) {
		c := &DatabaseConfig{Driver: "postgres", DSN: "{env.GH_TEST_DSN}"}
		if err := c.resolve(caddy.NewReplacer()); err != nil {
			t.Fatal(err)
		}
		if c.DSN != "postgres://gh:s3cret@127.0.0.1:5432/gh" {
			t.Errorf("dsn = %q", c.DSN)
		}
	})
	for _, tc := range []struct {
		name    string
		c       DatabaseConfig
		wantErr string
	}{
		{"unknown driver", DatabaseConfig{Driver: "mysql"}, `unsupported driver "mysql"`},
		{"postgres without dsn", DatabaseConfig{Driver: "postgres"}, "a dsn is required"},
		{"postgres with a path", DatabaseConfig{Driver: "postgres", DSN: "x", Path: "/a.db"}, "path is for sqlite"},
		{"sqlite with a dsn", DatabaseConfig{DSN: "postgres://x"}, "are for postgres, not sqlite"},
		{"sqlite with max_conns", DatabaseConfig{Path: "/a.db", MaxConns: 3}, "are for postgres, not sqlite"},
		{"unset variable", DatabaseConfig{Driver: "postgres", DSN: "{env.GH_TEST_UNSET_DSN}"}, "database dsn: a placeholder in it is unknown or empty"},
		{"negative max_conns", DatabaseConfig{Driver: "postgres", DSN: "x", MaxConns: -1}, "max_conns"},
		{"negative connect_timeout", DatabaseConfig{Driver: "postgres", DSN: "x", ConnectTimeout: -1}, "connect_timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.c.resolve(caddy.NewReplacer())
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("err = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestDatabaseKey: configs naming the same database the same way share a
// store; different pool settings open a new pool.
func TestDatabaseKey(t *testing.T) {
	a := DatabaseConfig{Driver: "postgres", DSN: "postgres://h/db"}
	b := a
	if a.key() != b.key() {
		t.Errorf("same config, keys %q and %q", a.key(), b.key())
	}
	b.MaxConns = 20
	if a.key() == b.key() {
		t.Errorf("max_conns change keeps the key %q", a.key())
	}
	b = a
	b.StatementTimeout = caddy.Duration(time.Second)
	if a.key() == b.key() {
		t.Errorf("statement_timeout change keeps the key %q", a.key())
	}
	s := DatabaseConfig{Driver: "sqlite", Path: "/db"}
	p := DatabaseConfig{Driver: "postgres", DSN: "/db"}
	if s.key() == p.key() {
		t.Error("a sqlite path and a postgres dsn share a key")
	}
}

// TestParseDatabaseFlag: the --from and --to forms of `caddy gatehouse
// migrate`.
func TestParseDatabaseFlag(t *testing.T) {
	t.Setenv("GH_TEST_DSN", "host=127.0.0.1 password=s3cret")
	for _, tc := range []struct {
		in, driver, where string
	}{
		{"sqlite:/var/lib/gh.db", "sqlite", "/var/lib/gh.db"},
		{"postgres:host=db dbname=gh", "postgres", "host=db dbname=gh"},
		{"postgres:postgres://u@db/gh", "postgres", "postgres://u@db/gh"},
		{"postgres://u@db/gh", "postgres", "postgres://u@db/gh"},
		{"postgresql://u@db/gh", "postgres", "postgresql://u@db/gh"},
		{"postgres:{env.GH_TEST_DSN}", "postgres", "host=127.0.0.1 password=s3cret"},
	} {
		c, err := parseDatabaseFlag(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		where := c.Path
		if c.Driver == "postgres" {
			where = c.DSN
		}
		if c.Driver != tc.driver || where != tc.where {
			t.Errorf("%q: got %s %q, want %s %q", tc.in, c.Driver, where, tc.driver, tc.where)
		}
	}
	for _, in := range []string{"", "sqlite:", "postgres:", "mysql://root:s3cret@db/gh", "gh.db", "postgres://gh:X{s3cret}@db/gh"} {
		_, err := parseDatabaseFlag(in)
		if err == nil {
			t.Errorf("%q accepted", in)
		} else if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%q: error %q shows the password", in, err)
		}
	}
}
