package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/gatehouse-caddy/gatehouse/caddyauth"
)

// loginResults are the figures of the login phase.
type loginResults struct {
	Params      caddyauth.Argon2Params
	GOMAXPROCS  int     // of this process, on the same machine as Caddy
	Concurrency int     // Caddy's hashing slots, from its log
	HashAlone   summary // ms: one hash with nothing else hashing
	// HashLoaded is one hash's time, in ms, with Concurrency hashes
	// running at once, the state the server is in at saturation: sampled
	// before and after the logins, to straddle the machine's drift.
	HashLoaded summary
	Bound      float64 // logins/s: Concurrency ÷ HashLoaded's median
	BoundAlone float64 // Concurrency ÷ HashAlone's median, for comparison

	Clients    int
	Logins     loginCount
	LoginOther map[string]int
	Profile    *profile

	// Register is registration with the default settings, then with a
	// hashing queue that lets every client wait its turn.
	Register []registerResults
	Flood    floodResults
}

// loginCount is the outcome of the login throughput phase.
type loginCount struct {
	Total   int           // 200s in all
	Elapsed time.Duration // from the first login sent to the last answered
	// Window is the steady state: from Warm after the start to the
	// deadline, when every client has a login in the server's queue.
	// Steady counts the 200s answered within it.
	Warm, Window time.Duration
	Steady       int
}

// PerSec is the steady-state login throughput.
func (c loginCount) PerSec() float64 { return float64(c.Steady) / c.Window.Seconds() }

// LoginsPerSec is the measured login throughput.
func (l *loginResults) LoginsPerSec() float64 { return l.Logins.PerSec() }

// registerResults are the figures of concurrent registration.
type registerResults struct {
	Label             string // the password_hash settings
	Strict            bool   // the target applies (every client may wait)
	Clients, Attempts int
	Statuses          map[int]int // HTTP status → count
	Failed            int         // no HTTP answer at all
	Locked            int         // "database is locked" or SQLITE_BUSY in Caddy's log
	LogErrors         int         // error-level lines in Caddy's log
	FirstProblem      string
	Elapsed           time.Duration
	Latencies         []time.Duration // of each registration answered 201
}

// Errors counts every registration that did not end in 201, and every
// sign of lock contention in the log.
func (r registerResults) Errors() int {
	n := r.Failed + r.Locked
	for status, count := range r.Statuses {
		if status != http.StatusCreated {
			n += count
		}
	}
	return n
}

// floodResults are the figures of the simultaneous logins.
type floodResults struct {
	N           int
	Statuses    map[int]int
	Failed      int
	Idle        uint64 // Caddy's RSS after start, before any request
	Peak        uint64 // VmHWM over the flood
	Concurrency int
	Memory      uint64 // argon2id memory per hash, bytes
	Elapsed     time.Duration
}

// Growth is how far the peak rose above the idle size.
func (f floodResults) Growth() uint64 { return f.Peak - min(f.Peak, f.Idle) }

// Bound is the README's planning bound for the growth ("Password hashing
// and memory"): (3 × concurrency + 1) × memory + 64 KiB per connection.
func (f floodResults) Bound() uint64 {
	return hashingGrowthBound(f.Concurrency, f.Memory, f.N)
}

// hashingGrowthBound is the README's formula: the running hashes hold
// concurrency × memory, argon2id allocates it afresh for every hash and
// Go's collector lets the heap reach twice what it last found live, hence
// 3 × concurrency + 1; and each open connection costs about 64 KiB.
func hashingGrowthBound(concurrency int, memory uint64, conns int) uint64 {
	return (3*uint64(concurrency)+1)*memory + uint64(conns)*64<<10
}

// newDefaultHasher is the hasher Caddy builds without a password_hash
// block (zero config: the defaults), with conc slots.
func newDefaultHasher(conc int) (*caddyauth.Hasher, error) {
	return caddyauth.NewHasher(caddyauth.HasherConfig{Concurrency: conc}, rand.Reader)
}

// timeAlone returns the times, in ms, of n hashes one after another.
func timeAlone(ctx context.Context, h *caddyauth.Hasher, n int) ([]float64, error) {
	// One unmeasured hash: the first pays for growing the heap.
	if _, err := h.Hash(ctx, benchPassword); err != nil {
		return nil, err
	}
	var out []float64
	for range n {
		t := time.Now()
		if _, err := h.Hash(ctx, benchPassword); err != nil {
			return nil, err
		}
		out = append(out, ms(time.Since(t)))
	}
	return out, nil
}

// timeLoaded runs conc goroutines of warm and then each hashes one after
// another and returns the time of every hash after the warm ones, in ms:
// how long one hash takes while conc hash at once. The first hashes at
// once take up to three times as long: the heap must first grow to hold
// them all (page faults, zeroed pages, the collector's pacing), which a
// server that has been hashing for a while has long done.
func timeLoaded(ctx context.Context, h *caddyauth.Hasher, conc, warm, each int) ([]float64, error) {
	var mu sync.Mutex
	var out []float64
	var failed error
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for i := range warm + each {
				t := time.Now()
				_, err := h.Hash(ctx, benchPassword)
				d := ms(time.Since(t))
				mu.Lock()
				if err != nil {
					failed = err
				}
				if i >= warm {
					out = append(out, d)
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	return out, failed
}

// runLogin measures hashing, logins, registration and memory.
func (h *harness) runLogin(ctx context.Context) (*loginResults, error) {
	res := &loginResults{GOMAXPROCS: runtime.GOMAXPROCS(0), Clients: h.opts.LoginClients}

	dir := filepath.Join(h.tmp, "login")
	c, err := h.startAccounts(ctx, dir, "")
	if err != nil {
		return nil, err
	}
	defer c.Stop()
	if res.Concurrency, _, err = hashingSettings(c.Log()); err != nil {
		return nil, err
	}
	hasher, err := newDefaultHasher(res.Concurrency)
	if err != nil {
		return nil, err
	}
	res.Params = hasher.Config().Params

	h.logf("login: timing argon2id in this process, alone and %d at once", res.Concurrency)
	alone, err := timeAlone(ctx, hasher, 5)
	if err != nil {
		return nil, fmt.Errorf("timing a hash: %w", err)
	}
	loaded, err := timeLoaded(ctx, hasher, res.Concurrency, 2, 6)
	if err != nil {
		return nil, fmt.Errorf("timing a hash: %w", err)
	}
	// Hand the hashes' memory back before Caddy needs the machine.
	runtime.GC()

	h.logf("login: %d clients for %s", h.opts.LoginClients, h.opts.LoginTime)
	emails := make([]string, h.opts.LoginClients)
	for i := range emails {
		emails[i] = fmt.Sprintf("login%02d@bench.example", i)
		if err := register(ctx, h.hc, c.URL, emails[i], benchPassword); err != nil {
			return nil, err
		}
	}
	drive := func() error {
		res.Logins, res.LoginOther = driveLogins(ctx, c.URL, emails, h.opts.LoginTime)
		return nil
	}
	if h.opts.Profile {
		if res.Profile, err = h.profileUnder(ctx, c, "login (argon2id)", "login", h.opts.LoginTime, false, drive); err != nil {
			return nil, err
		}
	} else {
		_ = drive()
	}

	more, err := timeLoaded(ctx, hasher, res.Concurrency, 2, 6)
	if err != nil {
		return nil, fmt.Errorf("timing a hash: %w", err)
	}
	runtime.GC()
	res.HashAlone, res.HashLoaded = summarize(alone), summarize(append(loaded, more...))
	res.Bound = float64(res.Concurrency) / (res.HashLoaded.Median / 1000)
	res.BoundAlone = float64(res.Concurrency) / (res.HashAlone.Median / 1000)
	h.logf("  %d logins in the steady %s: %.1f/s; bound %.1f/s (one hash %.0f ms with %d at once)",
		res.Logins.Steady, res.Logins.Window, res.LoginsPerSec(), res.Bound, res.HashLoaded.Median, res.Concurrency)

	h.logf("login: %d clients registering %d users each, default settings", h.opts.RegClients, h.opts.RegEach)
	reg := registerConcurrently(ctx, c.URL, "reg", h.opts.RegClients, h.opts.RegEach)
	reg.Label = "defaults"
	reg.Locked, reg.LogErrors = scanLog(c.Log())
	res.Register = append(res.Register, reg)
	h.logf("  %s, %d failed, %d lock messages", statusList(reg.Statuses), reg.Failed, reg.Locked)
	c.Stop()

	// The default queue refuses, by design, what its slots could not
	// serve within 3 s; on two cores that is most of 64 registrations
	// at once. To see whether the database keeps up with every client,
	// the second run lets each of them wait its turn.
	h.logf("login: %d clients registering %d users each, wait 60s", h.opts.RegClients, h.opts.RegEach)
	c2, err := h.startAccounts(ctx, filepath.Join(h.tmp, "register"), patientHashing)
	if err != nil {
		return nil, err
	}
	reg = registerConcurrently(ctx, c2.URL, "reg", h.opts.RegClients, h.opts.RegEach)
	reg.Label, reg.Strict = patientLabel, true
	reg.Locked, reg.LogErrors = scanLog(c2.Log())
	c2.Stop()
	res.Register = append(res.Register, reg)
	h.logf("  %s, %d failed, %d lock messages", statusList(reg.Statuses), reg.Failed, reg.Locked)

	h.logf("login: %d simultaneous logins, memory", h.opts.Flood)
	if res.Flood, err = h.flood(ctx, h.opts.Flood); err != nil {
		return nil, err
	}
	h.logf("  %s; RSS idle %.0f MiB, peak %.0f MiB, growth %.0f MiB, bound %.0f MiB",
		statusList(res.Flood.Statuses), mib(res.Flood.Idle), mib(res.Flood.Peak), mib(res.Flood.Growth()), mib(res.Flood.Bound()))
	return res, nil
}

// patientHashing is a gatehouse option that lets every client wait its
// turn for a hashing slot: no registration or login is turned away with
// 503, whatever the number of clients at once. patientLabel names it in
// the report.
const (
	patientHashing = "password_hash {\n\twait 60s\n}\n"
	patientLabel   = "password_hash { wait 60s }"
)

// startAccounts starts a Caddy that serves only the account endpoints,
// with a fresh SQLite database in dir; see startAccountsOn.
func (h *harness) startAccounts(ctx context.Context, dir, options string) (*caddyProc, error) {
	return h.startAccountsOn(ctx, dir, sqliteAt(filepath.Join(dir, "gatehouse.db")), options)
}

// startAccountsOn starts a Caddy that serves only the account endpoints,
// with its files in dir, its accounts in db and Gatehouse's defaults
// (password_hash, login_limit: the server as installed) but for options,
// lines of the gatehouse block. The benchmark logs in with right
// passwords only, which never count as failures.
func (h *harness) startAccountsOn(ctx context.Context, dir string, db database, options string) (*caddyProc, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	admin, err := freePort()
	if err != nil {
		return nil, err
	}
	cfg := caddyfile{
		AdminPort: admin, Port: port,
		Global: gatehouseGlobal(db, options),
		Site:   "gatehouse_endpoints\nrespond 204",
	}
	return startCaddy(ctx, h.caddy, dir, "caddy", cfg, "/")
}

// hashingSettings reads the hashing slots and memory from Caddy's
// "password hashing" log line (JSON, as Caddy logs when its output is
// not a terminal).
func hashingSettings(log string) (concurrency int, memory string, err error) {
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line struct {
			Msg         string `json:"msg"`
			Concurrency int    `json:"concurrency"`
			Memory      string `json:"memory"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "password hashing" && line.Concurrency > 0 {
			return line.Concurrency, line.Memory, nil
		}
	}
	return 0, "", errors.New(`caddy's log has no "password hashing" line with the concurrency`)
}

// scanLog counts lock contention messages and error-level lines in a
// Caddy log.
func scanLog(log string) (locked, errs int) {
	for line := range strings.SplitSeq(log, "\n") {
		if strings.Contains(line, "database is locked") || strings.Contains(line, "SQLITE_BUSY") {
			locked++
		}
		if strings.Contains(line, `"level":"error"`) {
			errs++
		}
	}
	return locked, errs
}

// driveLogins logs in as emails[i] from client i, one login after the
// other, until d has passed. Once each client's first login is in, the
// server's queue always holds one login per client, so after a short
// warm-up the answers come at the server's steady rate; the report
// counts those answered between the warm-up and d.
func driveLogins(ctx context.Context, base string, emails []string, d time.Duration) (loginCount, map[string]int) {
	var mu sync.Mutex
	other := map[string]int{}
	var ends []time.Duration
	began := time.Now()
	deadline := began.Add(d)
	var wg sync.WaitGroup
	for _, email := range emails {
		wg.Go(func() {
			hc := newHTTPClient(1)
			for time.Now().Before(deadline) && ctx.Err() == nil {
				_, err := loginJWT(ctx, hc, base, email, benchPassword)
				end := time.Since(began)
				var ae *apiError
				mu.Lock()
				switch {
				case err == nil:
					ends = append(ends, end)
				case errors.As(err, &ae):
					other[fmt.Sprint(ae.Status)]++
				default:
					other["no answer"]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return countLogins(ends, d), other
}

// countLogins counts the answers (times since the start) within the
// steady state: from a warm-up of a tenth of d, at most 2 s, to d.
func countLogins(ends []time.Duration, d time.Duration) loginCount {
	c := loginCount{Total: len(ends), Warm: min(d/10, 2*time.Second)}
	c.Window = d - c.Warm
	for _, e := range ends {
		c.Elapsed = max(c.Elapsed, e)
		if e > c.Warm && e <= d {
			c.Steady++
		}
	}
	return c
}

// registerConcurrently has clients goroutines register each users one
// after the other, all starting at once. The emails start with prefix.
func registerConcurrently(ctx context.Context, base, prefix string, clients, each int) registerResults {
	res := registerResults{Clients: clients, Attempts: clients * each, Statuses: map[int]int{}}
	var mu sync.Mutex
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			hc := newHTTPClient(1)
			<-start
			for j := range each {
				t := time.Now()
				err := register(ctx, hc, base, fmt.Sprintf("%s%03d-%03d@bench.example", prefix, i, j), benchPassword)
				d := time.Since(t)
				var ae *apiError
				mu.Lock()
				switch {
				case err == nil:
					res.Statuses[http.StatusCreated]++
					res.Latencies = append(res.Latencies, d)
				case errors.As(err, &ae):
					res.Statuses[ae.Status]++
				default:
					res.Failed++
				}
				if err != nil && res.FirstProblem == "" {
					res.FirstProblem = err.Error()
				}
				mu.Unlock()
			}
		})
	}
	began := time.Now()
	close(start)
	wg.Wait()
	res.Elapsed = time.Since(began)
	return res
}

// flood starts a fresh accounts server, measures its idle size, and
// sends n logins at once, each on a connection of its own, reading the
// peak resident size over them.
func (h *harness) flood(ctx context.Context, n int) (floodResults, error) {
	res := floodResults{N: n, Statuses: map[int]int{}, Memory: uint64(caddyauth.DefaultArgon2Params.Memory) * 1024}
	c, err := h.startAccounts(ctx, filepath.Join(h.tmp, "flood"), "")
	if err != nil {
		return res, err
	}
	defer c.Stop()
	var memory string
	if res.Concurrency, memory, err = hashingSettings(c.Log()); err != nil {
		return res, err
	}
	// The bound is computed with the default memory; make sure it is
	// the server's.
	if want := humanize.IBytes(res.Memory); memory != want {
		return res, fmt.Errorf("caddy hashes with %s per hash, the harness assumed %s", memory, want)
	}
	idle, err := processMemory(c.Pid)
	if err != nil {
		return res, err
	}
	res.Idle = idle.RSS
	const email = "flood@bench.example"
	if err := register(ctx, h.hc, c.URL, email, benchPassword); err != nil {
		return res, err
	}
	// Registering hashed once: the peak so far is that hash's. Reset it
	// to the current size (proc(5), clear_refs "5"), so that VmHWM is
	// the flood's.
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", c.Pid), []byte("5"), 0); err != nil {
		return res, fmt.Errorf("resetting caddy's peak resident size: %w", err)
	}

	statuses := make([]int, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			tr := &http.Transport{Proxy: nil, DisableKeepAlives: true}
			defer tr.CloseIdleConnections()
			hc := &http.Client{Transport: tr, Timeout: 60 * time.Second}
			<-start
			req, err := loginRequest(ctx, c.URL, "/auth/jwt/login", email, benchPassword)
			if err == nil {
				statuses[i], _, _, err = do(hc, req)
			}
			if err != nil {
				statuses[i] = 0
			}
		})
	}
	began := time.Now()
	close(start)
	wg.Wait()
	res.Elapsed = time.Since(began)
	for _, s := range statuses {
		if s == 0 {
			res.Failed++
		} else {
			res.Statuses[s]++
		}
	}
	mem, err := processMemory(c.Pid)
	if err != nil {
		return res, err
	}
	res.Peak = mem.Peak
	return res, nil
}

// statusList renders status counts as "200 × 12, 503 × 3", by status.
func statusList(m map[int]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%d × %d", k, m[k]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
