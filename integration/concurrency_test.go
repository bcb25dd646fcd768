package integration

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// loadConfig is the config of the load tests of this file and of
// crash_test.go: the API and nothing else (no upstream), and the cheapest
// password hashing the server accepts, with room for every request to
// wait for a hashing slot.
//
// These tests are about the database under concurrent writes, not about
// hashing cost or back-pressure (hashing_test.go covers those). With the
// production cost, about 100 ms of both CPUs of a 2-core machine per
// hash, a server spends nearly all its time hashing: the writes arrive
// one by one, a kill almost never lands during a commit, and hundreds of
// registrations take a minute. At 8 MiB and one pass a hash takes a few
// milliseconds, so the writes crowd together, and the "no 5xx"
// assertions are about the store, not about a full hashing queue (503).
func loadConfig(port int) string {
	return gatehouseConfig(port, `password_hash {
	memory 8MiB
	time 1
	threads 1
	queue 4096
	wait 2m
}`, "gatehouse_endpoints\nrespond 204")
}

// TestConcurrentRegistrationOfOneEmail releases 50 registrations of one
// address at once, each on its own connection and spelled in several
// cases: the store compares emails ignoring case, so exactly one may win.
// The others must get the contract's 400, never a 5xx (a UNIQUE violation
// surfacing as 500) nor a second 201 (a check-then-insert race), and the
// winner's password must be the one stored (no later insert or upsert
// replaced it).
func TestConcurrentRegistrationOfOneEmail(t *testing.T) {
	t.Parallel()
	c := startCaddy(t, loadConfig(freePort(t)))
	defer wantNoLockErrors(t, c) // also when the test stops early

	const n = 50
	spellings := []string{
		"race@example.com", "RACE@EXAMPLE.COM", "Race@Example.com", "race@EXAMPLE.com", "  rAcE@example.COM ",
	}
	results := make([]regResult, n)
	start := make(chan struct{})
	var ready, done sync.WaitGroup
	for i := range n {
		hc := oneConnClient()
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			// Open the connection before the barrier, so that the 50
			// requests leave together instead of queueing behind dials.
			warmUp(hc, c.URL)
			ready.Done()
			<-start
			results[i] = postRegistration(hc, c.URL, spellings[i%len(spellings)], fmt.Sprintf("race-password-%02d", i))
		}()
	}
	ready.Wait()
	close(start)
	done.Wait()

	winner := -1
	var exists int
	var other []string
	for i, r := range results {
		switch {
		case r.Err != nil:
			other = append(other, fmt.Sprintf("#%d: %v", i, r.Err))
		case r.Status == http.StatusCreated:
			if winner >= 0 {
				other = append(other, fmt.Sprintf("#%d: a second 201: %s", i, r))
				continue
			}
			winner = i
		case r.Status == http.StatusBadRequest && isDetail(r.Body, "REGISTER_USER_ALREADY_EXISTS"):
			exists++
		default:
			other = append(other, fmt.Sprintf("#%d: %s", i, r))
		}
	}
	t.Logf("%d requests: 201 for #%d (%q), %d × 400 REGISTER_USER_ALREADY_EXISTS, %d other",
		n, winner, spellings[max(winner, 0)%len(spellings)], exists, len(other))
	if winner < 0 || exists != n-1 || len(other) > 0 {
		t.Fatalf("want exactly one 201 and %d × 400 REGISTER_USER_ALREADY_EXISTS; got winner #%d, %d × 400, others:\n%s",
			n-1, winner, exists, strings.Join(other[:min(10, len(other))], "\n"))
	}
	var u apiUser
	if err := json.Unmarshal(results[winner].Body, &u); err != nil {
		t.Fatalf("201 body %s: %v", results[winner], err)
	}
	// The local part keeps its case, the domain is lower-cased.
	wantEmail := strings.TrimSpace(spellings[winner%len(spellings)])
	at := strings.LastIndexByte(wantEmail, '@')
	wantEmail = wantEmail[:at] + strings.ToLower(wantEmail[at:])
	if u.Email != wantEmail || len(u.ID) != 36 {
		t.Errorf("201 body = %s, want the user %q", results[winner].Body, wantEmail)
	}

	db := c.Path("gatehouse.db")
	if got := dbQuery(t, db, `SELECT count(*) FROM users`); len(got) != 1 || got[0] != "1" {
		t.Errorf("users in the database: %v, want 1", got)
	}
	if got := dbQuery(t, db, `SELECT id FROM users WHERE email_key = ?`, "race@example.com"); len(got) != 1 || got[0] != u.ID {
		t.Errorf("users with the email race@example.com: %v, want the winner %s", got, u.ID)
	}
	cl := newClient(c.URL)
	token := loginJWT(t, cl, "RACE@example.com", fmt.Sprintf("race-password-%02d", winner))
	if got := me(t, cl, bearer(token)); got.ID != u.ID {
		t.Errorf("the winner's token is %s's (%s), want %s", got.Email, got.ID, u.ID)
	}
	loser := (winner + 1) % n
	r := cl.postForm(t, "/auth/jwt/login", url.Values{"username": {"race@example.com"},
		"password": {fmt.Sprintf("race-password-%02d", loser)}})
	wantDetail(t, r, http.StatusBadRequest, "LOGIN_BAD_CREDENTIALS")
}

// TestConcurrentRegistrations: 64 clients, each on its own connection,
// register 4 distinct users each at the same time; every one gets 201,
// the database holds all 256 with the ids the 201s named and an argon2id
// hash each, and the single writer never reports "database is locked".
// Then the 64 clients log in at once, each as one of its users (64
// password checks and session writes: all 256 would double the run time
// on a busy machine, and the database check covers every row), and each
// sees itself on /users/me.
func TestConcurrentRegistrations(t *testing.T) {
	t.Parallel()
	c := startCaddy(t, loadConfig(freePort(t)))
	defer wantNoLockErrors(t, c) // also when the test stops early

	const clients, each = 64, 4
	type account struct {
		email, password string
		res             regResult
	}
	accounts := make([][each]account, clients)
	start := make(chan struct{})
	var ready, done sync.WaitGroup
	began := time.Now()
	for i := range clients {
		hc := oneConnClient()
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			warmUp(hc, c.URL)
			ready.Done()
			<-start
			for j := range each {
				a := &accounts[i][j]
				a.email = fmt.Sprintf("user-%02d-%d@example.com", i, j)
				a.password = fmt.Sprintf("password-%02d-%d", i, j)
				a.res = postRegistration(hc, c.URL, a.email, a.password)
			}
		}()
	}
	ready.Wait()
	close(start)
	done.Wait()
	registering := time.Since(began)

	ids := map[string]string{}
	var failures []string
	for i := range accounts {
		for _, a := range accounts[i] {
			var u apiUser
			switch {
			case a.res.Err != nil:
				failures = append(failures, fmt.Sprintf("%s: %v", a.email, a.res.Err))
			case a.res.Status != http.StatusCreated:
				failures = append(failures, fmt.Sprintf("%s: %s", a.email, a.res))
			case json.Unmarshal(a.res.Body, &u) != nil || u.Email != a.email || len(u.ID) != 36:
				failures = append(failures, fmt.Sprintf("%s: 201 with body %s", a.email, a.res.Body))
			case ids[u.ID] != "":
				failures = append(failures, fmt.Sprintf("%s: id %s already given to %s", a.email, u.ID, ids[u.ID]))
			default:
				ids[u.ID] = a.email
			}
		}
	}
	if len(failures) > 0 {
		t.Fatalf("%d of %d registrations failed:\n%s", len(failures), clients*each,
			strings.Join(failures[:min(10, len(failures))], "\n"))
	}
	stored := map[string]string{} // email -> id, of the users with an argon2id hash
	for _, row := range dbQuery(t, c.Path("gatehouse.db"), `SELECT email || ' ' || id FROM users WHERE hashed_password LIKE '$argon2id$%'`) {
		email, id, _ := strings.Cut(row, " ")
		stored[email] = id
	}
	if len(stored) != clients*each {
		t.Errorf("the database holds %d users with an argon2id hash, want %d", len(stored), clients*each)
	}
	for id, email := range ids {
		if stored[email] != id {
			t.Errorf("%s: 201 named id %s, the database holds %q", email, id, stored[email])
		}
	}

	began = time.Now()
	logins := make([]string, clients) // "" or what went wrong
	for i := range clients {
		done.Add(1)
		go func() {
			defer done.Done()
			a := accounts[i][i%each] // every j equally often
			logins[i] = loginAndCheck(oneConnClient(), c.URL, a.email, a.password, userIDOf(a.res))
		}()
	}
	done.Wait()
	var bad []string
	for _, e := range logins {
		if e != "" {
			bad = append(bad, e)
		}
	}
	if len(bad) > 0 {
		t.Errorf("%d of %d logins failed:\n%s", len(bad), clients, strings.Join(bad[:min(10, len(bad))], "\n"))
	}
	t.Logf("%d registrations from %d clients in %v; %d concurrent logins in %v",
		clients*each, clients, registering.Round(time.Millisecond), clients, time.Since(began).Round(time.Millisecond))
}

// ---------------------------------------------------------------------------
// Helpers of the load tests (this file and crash_test.go). They run in
// goroutines, so they report errors instead of failing the test.

// regResult is the outcome of one POST /auth/register.
type regResult struct {
	Status int    // 0 when there was no answer
	Body   []byte // the response body
	Err    error  // no answer (connection refused or reset, timeout)
}

func (r regResult) String() string {
	if r.Err != nil {
		return r.Err.Error()
	}
	return fmt.Sprintf("%d %s", r.Status, truncate(string(r.Body), 300))
}

// loadTimeout bounds one request of the load tests: generous, as a
// request may queue behind hundreds of others on a busy 2-core machine.
const loadTimeout = 2 * time.Minute

// newLoadClient returns an HTTP client with its own connection pool and
// the generous loadTimeout.
func newLoadClient() *http.Client {
	return &http.Client{Timeout: loadTimeout, Transport: &http.Transport{}}
}

// oneConnClient is newLoadClient limited to a single connection to the
// server, reused for every request.
func oneConnClient() *http.Client {
	return &http.Client{Timeout: loadTimeout, Transport: &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1}}
}

// warmUp makes one cheap request so that hc has an open connection to
// base; errors are left to the requests that follow.
func warmUp(hc *http.Client, base string) {
	req, _ := http.NewRequest(http.MethodGet, base+"/", nil)
	req.Header.Set(probeHeader, "1")
	if resp, err := hc.Do(req); err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// postRegistration posts {"email", "password"} to base/auth/register.
func postRegistration(hc *http.Client, base, email, password string) regResult {
	body, _ := json.Marshal(map[string]string{"email": email, "password": password})
	resp, err := hc.Post(base+"/auth/register", "application/json", bytes.NewReader(body))
	if err != nil {
		return regResult{Err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return regResult{Status: resp.StatusCode, Err: fmt.Errorf("reading the %d response: %w", resp.StatusCode, err)}
	}
	return regResult{Status: resp.StatusCode, Body: b}
}

// userIDOf returns the id of the user in a 201 body ("" if none).
func userIDOf(r regResult) string {
	var u apiUser
	_ = json.Unmarshal(r.Body, &u)
	return u.ID
}

// loginAndCheck logs in through POST /auth/jwt/login and fetches
// /users/me with the token. It returns "" if both answered 200 and the
// user is the one with id wantID, or else what happened.
func loginAndCheck(hc *http.Client, base, email, password, wantID string) string {
	form := url.Values{"username": {email}, "password": {password}}
	resp, err := hc.PostForm(base+"/auth/jwt/login", form)
	if err != nil {
		return fmt.Sprintf("login %s: %v", email, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &tok) != nil || tok.AccessToken == "" {
		return fmt.Sprintf("login %s: %d %s", email, resp.StatusCode, truncate(string(b), 300))
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/users/me", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err = hc.Do(req)
	if err != nil {
		return fmt.Sprintf("/users/me of %s: %v", email, err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	var u apiUser
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &u) != nil || u.ID != wantID || u.Email != email {
		return fmt.Sprintf("/users/me of %s (id %s): %d %s", email, wantID, resp.StatusCode, truncate(string(b), 300))
	}
	return ""
}

// isDetail reports whether body is exactly {"detail": want}.
func isDetail(body []byte, want string) bool {
	var got map[string]any
	return json.Unmarshal(body, &got) == nil && len(got) == 1 && got["detail"] == want
}

// wantNoLockErrors fails the test if the server logged SQLite lock
// contention: with one writer connection per process, writes queue in
// database/sql and must never meet SQLITE_BUSY ("database is locked").
func wantNoLockErrors(t testing.TB, c *caddyProc) {
	t.Helper()
	var hits []string
	for _, line := range strings.Split(c.Log(), "\n") {
		if strings.Contains(line, "database is locked") || strings.Contains(line, "SQLITE_BUSY") {
			hits = append(hits, truncate(line, 400))
		}
	}
	if len(hits) > 0 {
		t.Errorf("caddy logged %d lock errors; first:\n%s", len(hits), strings.Join(hits[:min(5, len(hits))], "\n"))
	}
}

// dbQuery runs query on the SQLite database at path over a read-only
// connection (the server may have it open) and returns the first column
// of every row as text (NULL as "NULL").
func dbQuery(t testing.TB, path, query string, args ...any) []string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatalf("opening %s: %v", path, err)
	}
	defer db.Close()
	rows, err := db.Query(query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v sql.NullString
		if err := rows.Scan(&v); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		if !v.Valid {
			v.String = "NULL"
		}
		out = append(out, v.String)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return out
}
