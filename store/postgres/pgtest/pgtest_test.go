package pgtest

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// New, CreateDatabase, ServerVersion and Close, the API without a
// testing.TB: the databases are Role's and reachable over TCP with the
// DSN, Durable decides the server's durability settings, and Close stops
// the server and removes its directory, twice without complaint.
func TestNewWithoutTB(t *testing.T) {
	t.Parallel()
	for _, durable := range []bool{false, true} {
		want := map[string]string{"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
		if durable {
			want = map[string]string{"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		c, err := New(Options{Durable: durable})
		if err != nil {
			notInstalled(t, err)
			t.Fatalf("New(Durable: %v): %v", durable, err)
		}
		closed := false
		t.Cleanup(func() {
			if !closed {
				_ = c.Close()
			}
		})

		var dsns []string
		for range 2 {
			dsn, err := c.CreateDatabase(ctx)
			if err != nil {
				t.Fatalf("CreateDatabase: %v", err)
			}
			dsns = append(dsns, dsn)
		}
		if dsns[0] == dsns[1] {
			t.Errorf("two databases with one DSN %s", dsns[0])
		}
		for _, dsn := range dsns {
			if !strings.HasPrefix(dsn, "postgres://"+Role+":") || !strings.Contains(dsn, "@"+c.Addr()+"/") {
				t.Errorf("DSN %s: want Role over TCP to %s", dsn, c.Addr())
			}
		}
		conn, err := pgx.Connect(ctx, dsns[1])
		if err != nil {
			t.Fatalf("connecting with the DSN: %v", err)
		}
		var user, owner string
		if err := conn.QueryRow(ctx, `SELECT current_user, pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()`).Scan(&user, &owner); err != nil {
			t.Fatal(err)
		}
		if user != Role || owner != Role {
			t.Errorf("connected as %s to a database of %s, want %s for both", user, owner, Role)
		}
		for name, value := range want {
			var got string
			if err := conn.QueryRow(ctx, "SHOW "+name).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != value {
				t.Errorf("Durable %v: %s = %s, want %s", durable, name, got, value)
			}
		}
		_ = conn.Close(ctx)

		v, err := c.ServerVersion(ctx)
		if err != nil || v == "" || v[0] < '1' || v[0] > '9' {
			t.Errorf("ServerVersion = %q, %v; want a version number", v, err)
		}

		dir := c.dir
		if err := c.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		closed = true
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("after Close, %s: %v; want it removed", dir, err)
		}
		if err := c.Close(); err != nil {
			t.Errorf("Close again: %v", err)
		}
		short, cancelShort := context.WithTimeout(ctx, 5*time.Second)
		if conn, err := pgx.Connect(short, dsns[0]); err == nil {
			_ = conn.Close(ctx)
			t.Error("the server still answers after Close")
		}
		cancelShort()
	}
}

// The tests' server stays without durability: Start and Shared take the
// zero Options.
func TestServerArgs(t *testing.T) {
	t.Parallel()
	fast := (&Cluster{dir: "/d", port: 5433}).serverArgs()
	for _, want := range []string{"fsync=off", "synchronous_commit=off", "full_page_writes=off", "listen_addresses=127.0.0.1", "unix_socket_directories=/d"} {
		if !slices.Contains(fast, want) {
			t.Errorf("zero Options: no %s in %q", want, fast)
		}
	}
	durable := (&Cluster{opts: Options{Durable: true}, dir: "/d", port: 5433}).serverArgs()
	for _, arg := range durable {
		if strings.HasPrefix(arg, "fsync=") || strings.HasPrefix(arg, "synchronous_commit=") || strings.HasPrefix(arg, "full_page_writes=") {
			t.Errorf("Durable: %s overrides PostgreSQL's default", arg)
		}
	}
	if !slices.Contains(durable, "listen_addresses=127.0.0.1") {
		t.Errorf("Durable: not on 127.0.0.1 only: %q", durable)
	}
}
