package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gatehouse-caddy/gatehouse/store/postgres/pgtest"
)

// startPostgres starts the run's PostgreSQL cluster: a server of its own
// on 127.0.0.1, in a directory under the system's temporary directory,
// made by pgtest as the store's tests make theirs, but durable (fsync and
// synchronous_commit on), since the SQLite store it is compared with
// commits with synchronous=FULL. Debian's postgresql is installed with
// apt-get if it is missing and this process may (it runs as root). It
// returns the cluster and the server's version.
func startPostgres(ctx context.Context, logf func(string, ...any)) (*pgtest.Cluster, string, error) {
	opts := pgtest.Options{Durable: true}
	c, err := pgtest.New(opts)
	if errors.Is(err, pgtest.ErrNotInstalled) {
		if os.Geteuid() != 0 {
			return nil, "", fmt.Errorf("%w: install it with `sudo apt-get install postgresql` (Debian/Ubuntu) or set PG_BIN to the directory of its initdb and postgres, and run again; or run with -skip-pg", err)
		}
		logf("PostgreSQL is missing: apt-get install -y postgresql")
		if err := aptInstall(ctx, logf, "postgresql"); err != nil {
			return nil, "", fmt.Errorf("installing postgresql (or run with -skip-pg): %w", err)
		}
		c, err = pgtest.New(opts)
	}
	if err != nil {
		return nil, "", fmt.Errorf("starting PostgreSQL: %w", err)
	}
	version, err := c.ServerVersion(ctx)
	if err != nil {
		return nil, "", errors.Join(fmt.Errorf("asking PostgreSQL its version: %w", err), c.Close())
	}
	return c, version, nil
}

// needsPostgres reports whether the run measures anything on PostgreSQL.
func (o options) needsPostgres() bool {
	if o.SkipPG {
		return false
	}
	return !o.SkipStores || (!o.SkipGuard && hasPostgres(o.Setups))
}

// newDatabase returns a fresh database for a Gatehouse: a new database in
// the run's PostgreSQL cluster if pg, else an SQLite file in dir.
func (h *harness) newDatabase(ctx context.Context, pg bool, dir string) (database, error) {
	if !pg {
		return sqliteAt(filepath.Join(dir, "gatehouse.db")), nil
	}
	if h.pg == nil {
		return database{}, errors.New("a PostgreSQL database without the run's cluster (-skip-pg?)")
	}
	dsn, err := h.pg.CreateDatabase(ctx)
	if err != nil {
		return database{}, fmt.Errorf("creating a PostgreSQL database: %w", err)
	}
	return postgresAt(dsn), nil
}
