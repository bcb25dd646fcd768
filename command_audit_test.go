package gatehouse

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// lockedBuffer is a bytes.Buffer safe for a logger and a reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// take returns the JSON lines written since the last take, each decoded,
// without its time.
func (l *lockedBuffer) take(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for line := range strings.Lines(l.b.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		delete(m, "time")
		out = append(out, m)
	}
	l.b.Reset()
	return out
}

// TestCommandAudit: given an audit logger, the commands' changes are
// recorded with actor_id "cli" and no address, while standard output and
// standard error stay exactly as without one. (In production the command
// has none: see caddyauth's audit.go.)
func TestCommandAudit(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var buf lockedBuffer
	cli := cliOptions{newHasher: cheapHasher, audit: slog.New(slog.NewJSONHandler(&buf, nil))}
	run := func(stdin string, args ...string) string {
		t.Helper()
		return runTree(t, newGatehouseCommand(cli), stdin, append(args, "--config", f.caddyfile)...).ok(t)
	}
	entry := func(event, userID string, kv ...any) map[string]any {
		m := map[string]any{"level": "INFO", "msg": "audit", "event": event, "outcome": "success",
			"user_id": userID, "actor_id": "cli"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	want := func(w ...map[string]any) {
		t.Helper()
		if got := buf.take(t); !reflect.DeepEqual(got, w) {
			t.Fatalf("audit entries:\n got %v\nwant %v", got, w)
		}
	}

	password := "a password typed at a terminal"
	id := strings.TrimSuffix(run(password+"\n", "user", "add", "--email", "ida@example.com", "--superuser", "--role", "ops"), "\n")
	want(entry("user_create", id, "is_active", true, "is_superuser", true, "is_verified", false, "roles", []any{"ops"}))

	if out := run("", "user", "set", "--email", "ida@example.com", "--inactive", "--role", "staff"); out != "" {
		t.Errorf("user set printed %q", out)
	}
	want(entry("user_update", id, "fields", []any{"is_active", "roles"}, "is_active", false, "roles", []any{"staff"},
		"sessions_ended", float64(0)))

	if out := run("another password at the terminal\n", "user", "passwd", "--email", "ida@example.com"); out != "" {
		t.Errorf("user passwd printed %q", out)
	}
	// Inactive still: deactivation's revocation ran again, with nothing left to end.
	want(entry("user_update", id, "fields", []any{"password"}, "sessions_ended", float64(0)))

	if out := run("", "sessions", "revoke", "--email", "ida@example.com"); out != "0 sessions ended\n" {
		t.Errorf("sessions revoke printed %q", out)
	}
	want(entry("sessions_revoke_all", id, "sessions_ended", float64(0)))

	if out := run("", "user", "delete", "--email", "ida@example.com"); out != "" {
		t.Errorf("user delete printed %q", out)
	}
	want(entry("user_delete", id))

	// Reading changes nothing and writes nothing.
	run("", "user", "list")
	want()
}
