// Package pgtest runs throwaway PostgreSQL servers for tests: Debian's
// postgresql package (which scripts/test.sh installs), never its cluster
// service. Each Cluster is a new data directory under the system's
// temporary directory, served by a postgres process of its own on a free
// 127.0.0.1 port, with its Unix socket in that directory; it is stopped
// and removed when the test (or, for Shared, the test binary) ends.
//
//	Start(tb) *Cluster          a cluster for one test (skips, or fails with CI=true, if not installed)
//	Shared(tb) *Cluster         one cluster for every test of the binary; StopShared in TestMain
//	c.NewDatabase(tb) string    a new empty database owned by a password role; its DSN
//	c.Stop(tb) / c.Start(tb)    stop the server (fast shutdown) and start it again, same port and data
//	c.Addr() string             127.0.0.1:port
//
// Programs that are not tests, such as the benchmark harness (bench/),
// use the same clusters through an API without testing.TB:
//
//	New(opts) (*Cluster, error)            a cluster (ErrNotInstalled without PostgreSQL); Options.Durable
//	c.CreateDatabase(ctx) (string, error)  as NewDatabase; the database stays until Close
//	c.ServerVersion(ctx) (string, error)   the server's version
//	c.Close() error                        stop the server and remove its directory
//
// PostgreSQL refuses to run as root: when the tests run as root, initdb and
// postgres run as the postgres system user that the Debian package
// creates. It is a normal package so that other packages' tests (the
// integration tests) and the harness can use it; production code must
// not import it. It imports the standard library and pgx only.
package pgtest
