package integration

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestCrashDuringRegistration kills the server with SIGKILL while several
// clients are registering users, then checks what a crash may and may not
// do to the database:
//
//   - the file passes PRAGMA integrity_check before anything else opens it;
//   - every registration answered 201 before the kill is in the file, and
//     after a restart on the same directory its user logs in with its
//     password and is the user the 201 named (an acknowledged write that
//     was lost, or was only in memory, is the failure this test is for);
//   - a registration in flight at the kill either got no answer or was
//     acknowledged; unanswered ones may or may not have been committed,
//     and if one was, its user is whole (logs in with its password);
//   - the file holds no user that was never asked for, nor one whose
//     registration was answered with a refusal.
//
// A SIGKILL loses what the process had not yet handed to the kernel: an
// answer sent before the commit, a write kept in memory or queued. It
// does not lose what was written but not synced, so it cannot tell
// synchronous FULL from NORMAL; only a power cut could.
func TestCrashDuringRegistration(t *testing.T) {
	t.Parallel()
	c := startCaddy(t, loadConfig(freePort(t)))

	// Each worker registers users one after another on its own
	// connection, more workers than hashing slots (one per CPU): at any
	// moment some requests wait for a slot, some hash, one writes. The
	// load runs for loadFor, and longer (up to loadMax) until minAcked
	// registrations are acknowledged, for a saturated machine. The kill
	// comes while the workers go on: a request is in flight at the kill
	// if it was sent before and got no answer. A worker ends at its first
	// request that fails after the kill.
	const (
		workers  = 8
		loadFor  = 2500 * time.Millisecond
		loadMax  = time.Minute
		minAcked = 10
	)
	type attempt struct {
		email, password string
		sentAfterKill   bool // the kill had come when the request was sent
		endedAfterKill  bool // the kill had come when the answer or the error did
		res             regResult
	}
	var (
		stop, killed atomic.Bool
		acks         atomic.Int64
		mu           sync.Mutex
		attempts     []*attempt
		wg           sync.WaitGroup
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := oneConnClient()
			for i := 0; !stop.Load(); i++ {
				a := &attempt{
					email:         fmt.Sprintf("crash-%d-%d@example.com", w, i),
					password:      fmt.Sprintf("crash-password-%d-%d", w, i),
					sentAfterKill: killed.Load(),
				}
				mu.Lock()
				attempts = append(attempts, a)
				mu.Unlock()
				res := postRegistration(hc, c.URL, a.email, a.password)
				if res.Err == nil && res.Status == http.StatusCreated {
					acks.Add(1)
				}
				endedAfterKill := killed.Load()
				mu.Lock()
				a.res, a.endedAfterKill = res, endedAfterKill
				mu.Unlock()
				if res.Err != nil && endedAfterKill {
					return // the server is gone
				}
			}
		}()
	}
	began := time.Now()
	time.Sleep(loadFor)
	for acks.Load() < minAcked && time.Since(began) < loadMax && !c.Exited() {
		time.Sleep(20 * time.Millisecond)
	}
	loaded := time.Since(began)
	if c.Exited() {
		stop.Store(true)
		wg.Wait()
		t.Fatal("caddy exited during the load")
	}
	killed.Store(true)
	state := c.Kill()
	stop.Store(true)
	wg.Wait()
	if state.ExitCode() != -1 {
		t.Fatalf("caddy ended with %s, not by the SIGKILL", state)
	}

	// Classify. An answer must be a 201: anything else is a failure under
	// load, not of the crash (and such a user must not be stored). No
	// answer is expected only for the requests in flight at the kill, and
	// for those sent after it.
	var acked, inFlight, refused []*attempt
	var failures []string
	sentAfter := 0
	for _, a := range attempts {
		switch {
		case a.res.Err == nil && a.res.Status == http.StatusCreated:
			acked = append(acked, a)
		case a.res.Err != nil && a.sentAfterKill:
			sentAfter++
		case a.res.Err != nil && a.endedAfterKill:
			inFlight = append(inFlight, a)
		default:
			failures = append(failures, fmt.Sprintf("%s: %s", a.email, a.res))
			if a.res.Err == nil {
				refused = append(refused, a)
			}
		}
	}
	if len(failures) > 0 {
		t.Errorf("%d of %d registrations failed other than by the kill:\n%s", len(failures), len(attempts),
			strings.Join(failures[:min(10, len(failures))], "\n"))
	}
	if len(acked) == 0 || len(inFlight) == 0 {
		t.Fatalf("the load proved nothing: %d acknowledged, %d in flight at the kill", len(acked), len(inFlight))
	}

	// The file as the crash left it, before a server opens it again.
	db := c.Path("gatehouse.db")
	walSize := int64(-1)
	if fi, err := os.Stat(db + "-wal"); err == nil {
		walSize = fi.Size()
	}
	if got := dbQuery(t, db, `PRAGMA integrity_check`); len(got) != 1 || got[0] != "ok" {
		t.Fatalf("integrity_check after SIGKILL: %v", got)
	}
	stored := map[string]string{} // email -> id
	for _, row := range dbQuery(t, db, `SELECT email || ' ' || id FROM users`) {
		email, id, _ := strings.Cut(row, " ")
		stored[email] = id
	}
	var lost []string
	for _, a := range acked {
		if id := userIDOf(a.res); stored[a.email] != id {
			lost = append(lost, fmt.Sprintf("%s (201 with id %s; in the file: %q)", a.email, id, stored[a.email]))
		}
	}
	if len(lost) > 0 {
		t.Errorf("%d of %d acknowledged registrations are not in the database after SIGKILL:\n%s",
			len(lost), len(acked), strings.Join(lost[:min(10, len(lost))], "\n"))
	}
	for _, a := range refused {
		if stored[a.email] != "" {
			t.Errorf("%s was refused with %s, yet it is in the database", a.email, a.res)
		}
	}
	var committed []*attempt // in flight, unanswered, but in the file
	for _, a := range inFlight {
		if stored[a.email] != "" {
			committed = append(committed, a)
		}
	}
	if want := len(acked) + len(committed); len(stored) != want {
		t.Errorf("the database holds %d users; %d were acknowledged and %d more in flight were committed",
			len(stored), len(acked), len(committed))
	}

	// Restart on the same directory: every acknowledged user, and every
	// committed unanswered one, logs in with its password.
	c.Start()
	check := append(append([]*attempt(nil), acked...), committed...)
	problems := make([]string, len(check))
	next := atomic.Int64{}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := newLoadClient()
			for i := int(next.Add(1)) - 1; i < len(check); i = int(next.Add(1)) - 1 {
				a := check[i]
				problems[i] = loginAndCheck(hc, c.URL, a.email, a.password, stored[a.email])
			}
		}()
	}
	wg.Wait()
	var bad []string
	for _, p := range problems {
		if p != "" {
			bad = append(bad, p)
		}
	}
	if len(bad) > 0 {
		t.Errorf("%d of %d acknowledged or committed users cannot log in after the restart:\n%s",
			len(bad), len(check), strings.Join(bad[:min(10, len(bad))], "\n"))
	}
	t.Logf("load of %v: %d registrations acknowledged, %d in flight at the kill (%d of them committed), %d sent after it; WAL left by the crash: %d bytes",
		loaded.Round(time.Millisecond), len(acked), len(inFlight), len(committed), sentAfter, walSize)
}

// Kill ends the server with SIGKILL, as a crash or the OOM killer would:
// no shutdown, no Cleanup, no final WAL checkpoint. (It is not a power
// cut: what the process had written is in the kernel's page cache and
// survives, fsync or not.) It waits until the process is gone, so that
// Start can run the server again on the same directory, and returns how
// it ended. It fails the test if the server was not running.
func (c *caddyProc) Kill() *os.ProcessState {
	c.t.Helper()
	c.mu.Lock()
	cmd, done, logf := c.cmd, c.done, c.log
	c.cmd = nil
	c.mu.Unlock()
	if cmd == nil {
		c.t.Fatal("Kill: caddy is not running")
	}
	defer logf.Close()
	// On Unix, Process.Kill sends SIGKILL. It fails if the process has
	// already ended.
	if err := cmd.Process.Kill(); err != nil {
		c.t.Fatalf("killing caddy: %v", err)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		c.t.Fatal("caddy still running 30s after SIGKILL")
	}
	fmt.Fprintf(logf, "=== killed (%s): %s\n", time.Now().Format(time.RFC3339Nano), cmd.ProcessState)
	return cmd.ProcessState
}
