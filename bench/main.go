package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/gatehouse-caddy/gatehouse/store/postgres/pgtest"
)

// options are the command-line settings of a run.
type options struct {
	Setups       []setup // the guard phase's, the baseline first
	Rounds       int
	Slices       int           // slices per phase, interleaved between the setups
	Saturated    time.Duration // wrk's duration per setup and round
	Fixed        time.Duration // the fixed-rate phase's duration
	Rate         int           // requests per second of the fixed-rate phase
	Conns        int           // wrk connections
	Threads      int           // wrk threads
	LoginTime    time.Duration // the login throughput phase
	LoginClients int
	RegClients   int // concurrent registering clients
	RegEach      int // registrations per client
	Flood        int // simultaneous logins of the memory phase
	ScaleUsers   int // users and sessions of the seeded database
	ScaleLogins  int // sequential logins per database for the latency
	StoreOps     int // sequential logins and registrations per store
	SkipGuard    bool
	SkipLogin    bool
	SkipScale    bool
	SkipPG       bool // no PostgreSQL: its guard setups and the stores phase
	SkipStores   bool
	Profile      bool
	Chart        string
	OutDir       string
	Keep         bool
	Quick        bool
}

func main() {
	var o options
	setups := flag.String("setups", "", "comma-separated setups of the guard phase besides the baseline, or all (default: "+setupKeys(defaultSetups[1:])+"; also: strip); a PostgreSQL setup (-pg) brings its SQLite twin")
	flag.IntVar(&o.Rounds, "rounds", 4, "rounds; each runs every setup once, in an order rotated per round")
	flag.IntVar(&o.Slices, "slices", 4, "slices of each phase, the setups' slices interleaved")
	flag.DurationVar(&o.Saturated, "saturated", 8*time.Second, "duration of a setup's saturated (wrk) phase per round")
	flag.DurationVar(&o.Fixed, "fixed", 10*time.Second, "duration of a setup's fixed-rate phase per round")
	flag.IntVar(&o.Rate, "rate", 1000, "requests per second of the fixed-rate phase")
	flag.IntVar(&o.Conns, "connections", 64, "wrk connections")
	flag.IntVar(&o.Threads, "threads", 2, "wrk threads")
	flag.DurationVar(&o.LoginTime, "login", 15*time.Second, "duration of the login throughput phase")
	flag.IntVar(&o.LoginClients, "login-clients", 8, "concurrent clients of the login throughput phase")
	flag.IntVar(&o.RegClients, "register-clients", 64, "concurrent clients of the registration phase")
	flag.IntVar(&o.RegEach, "register-each", 1, "registrations per client")
	flag.IntVar(&o.Flood, "flood", 500, "simultaneous logins of the memory phase")
	flag.IntVar(&o.ScaleUsers, "scale-users", 1_000_000, "users (and sessions) in the seeded database of the scale phase")
	flag.IntVar(&o.ScaleLogins, "scale-logins", 20, "sequential logins per database for the scale phase's latency")
	flag.IntVar(&o.StoreOps, "store-ops", 50, "sequential logins, and registrations, per store in the stores phase")
	flag.BoolVar(&o.SkipGuard, "skip-guard", false, "skip the guard setups")
	flag.BoolVar(&o.SkipLogin, "skip-login", false, "skip the login phase")
	flag.BoolVar(&o.SkipScale, "skip-scale", false, "skip the scale phase")
	flag.BoolVar(&o.SkipPG, "skip-pg", false, "leave PostgreSQL out: its guard setups and the stores phase")
	flag.BoolVar(&o.SkipStores, "skip-stores", false, "skip the stores phase (logins and registrations on SQLite and PostgreSQL)")
	flag.BoolVar(&o.Profile, "profile", true, "fetch CPU profiles from Caddy (guard with a cookie, baseline, login)")
	flag.StringVar(&o.Chart, "chart", "", "write an SVG chart of the guard figures to this file")
	flag.StringVar(&o.OutDir, "out", "", "directory for the report and profiles (default bench/results in the repository)")
	flag.BoolVar(&o.Keep, "keep", false, "keep the temporary directory (configs, logs, databases)")
	flag.BoolVar(&o.Quick, "quick", false, "a short smoke run of every phase: figures not for reporting")
	flag.Parse()
	var err error
	if o.Setups, err = parseSetups(*setups, !o.SkipPG); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	if o.Quick {
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		quick(&o, set)
	}
	if err := o.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// quick shortens every phase that the command line did not set: enough
// to exercise each code path in a minute or two.
func quick(o *options, set map[string]bool) {
	defaults := []struct {
		name string
		f    func()
	}{
		{"rounds", func() { o.Rounds = 2 }},
		{"slices", func() { o.Slices = 2 }},
		{"saturated", func() { o.Saturated = 2 * time.Second }},
		{"fixed", func() { o.Fixed = 2 * time.Second }},
		{"rate", func() { o.Rate = 500 }},
		{"login", func() { o.LoginTime = 3 * time.Second }},
		{"flood", func() { o.Flood = 100 }},
		{"scale-users", func() { o.ScaleUsers = 20_000 }},
		{"scale-logins", func() { o.ScaleLogins = 4 }},
		{"store-ops", func() { o.StoreOps = 10 }},
	}
	for _, d := range defaults {
		if !set[d.name] {
			d.f()
		}
	}
}

func (o options) validate() error {
	switch {
	case o.Rounds < 1 || o.Slices < 1:
		return errors.New("-rounds and -slices must be at least 1")
	case o.Saturated < time.Second || o.Fixed < time.Second || o.LoginTime < time.Second:
		return errors.New("-saturated, -fixed and -login must be at least 1s")
	case o.Rate < 1 || o.Conns < 1 || o.Threads < 1 || o.Threads > o.Conns:
		return errors.New("-rate, -connections and -threads must be positive, threads at most connections")
	case o.LoginClients < 1 || o.RegClients < 1 || o.RegEach < 1 || o.Flood < 1:
		return errors.New("-login-clients, -register-clients, -register-each and -flood must be positive")
	case o.ScaleUsers < o.ScaleLogins || o.ScaleLogins < 1:
		return errors.New("-scale-users must be at least -scale-logins, which must be positive")
	case o.StoreOps < 1:
		return errors.New("-store-ops must be positive")
	}
	return nil
}

// harness is what every phase shares.
type harness struct {
	opts    options
	root    string // the repository
	tmp     string // configs, logs and databases of this run
	results string // where the report and profiles go
	stamp   string // this run's name in results
	caddy   string // the built binary
	wrk     string
	fix     fixture
	pg      *pgtest.Cluster // the run's PostgreSQL, or nil
	hc      *http.Client
	log     io.Writer
}

// logf prints progress to standard error, with the time since start.
func (h *harness) logf(format string, args ...any) {
	fmt.Fprintf(h.log, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func run(ctx context.Context, o options, args []string) error {
	if runtime.GOOS != "linux" {
		return errors.New("the harness reads /proc and runs on Linux only")
	}
	began := time.Now()
	h := &harness{opts: o, log: os.Stderr, hc: newHTTPClient(16), stamp: began.Format("20060102-150405")}
	var err error
	if h.root, err = findRepoRoot(); err != nil {
		return err
	}
	h.results = o.OutDir
	if h.results == "" {
		h.results = filepath.Join(h.root, "bench", "results")
	}
	if err := os.MkdirAll(h.results, 0o755); err != nil {
		return err
	}
	if h.tmp, err = os.MkdirTemp("", "gatehouse-bench-"); err != nil {
		return err
	}
	if o.Keep {
		h.logf("keeping %s", h.tmp)
	} else {
		defer os.RemoveAll(h.tmp)
	}

	rep := &report{
		Command: "go run ./bench " + strings.Join(args, " "),
		Began:   began,
		Opts:    o,
		Machine: machineInfo(),
	}
	load := startLoadSampler(5 * time.Second)
	defer load.Stop()

	h.logf("building ./cmd/caddy")
	if h.caddy, err = buildCaddy(ctx, h.root, h.tmp); err != nil {
		return err
	}
	if !o.SkipGuard || !o.SkipScale {
		if h.wrk, err = ensureWrk(ctx, h.logf); err != nil {
			return err
		}
		rep.Machine.Wrk = wrkVersion(h.wrk)
	}
	if err := h.startServers(); err != nil {
		return err
	}
	if o.needsPostgres() {
		h.logf("starting PostgreSQL")
		if h.pg, rep.Postgres, err = startPostgres(ctx, h.logf); err != nil {
			return err
		}
		defer h.closePostgres()
		h.logf("  PostgreSQL %s on %s", rep.Postgres, h.pg.Addr())
	}

	if !o.SkipGuard {
		if rep.Guard, err = h.runGuard(ctx); err != nil {
			return fmt.Errorf("guard phase: %w", err)
		}
		if o.Profile {
			if rep.GuardProfiles, err = h.profileGuard(ctx); err != nil {
				return fmt.Errorf("profiling the guard: %w", err)
			}
		}
	}
	if !o.SkipLogin {
		if rep.Login, err = h.runLogin(ctx); err != nil {
			return fmt.Errorf("login phase: %w", err)
		}
	}
	if !o.SkipPG && !o.SkipStores {
		if rep.Stores, err = h.runStores(ctx); err != nil {
			return fmt.Errorf("stores phase: %w", err)
		}
	}
	// The scale phase is SQLite's: no idle server beside it.
	h.closePostgres()
	if !o.SkipScale {
		if rep.Scale, err = h.runScale(ctx); err != nil {
			return fmt.Errorf("scale phase: %w", err)
		}
	}

	rep.Took = time.Since(began)
	rep.Load = load.Stop()
	md := rep.markdown()
	fmt.Print(md)
	out := filepath.Join(h.results, h.stamp+".md")
	if err := os.WriteFile(out, []byte(md), 0o644); err != nil {
		return err
	}
	h.logf("report written to %s", out)
	if o.Chart != "" && rep.Guard != nil {
		if err := os.WriteFile(o.Chart, []byte(guardChart(rep.Guard.rows(), o.Rate)), 0o644); err != nil {
			return err
		}
		h.logf("chart written to %s", o.Chart)
	}
	h.logf("done in %s", rep.Took.Round(time.Second))
	return nil
}

// closePostgres stops the run's PostgreSQL, if it runs, and removes its
// data.
func (h *harness) closePostgres() {
	if h.pg == nil {
		return
	}
	if err := h.pg.Close(); err != nil {
		h.logf("closing PostgreSQL: %v", err)
	}
	h.pg = nil
}

// startServers starts the upstream and the forward-auth service in this
// process, and makes the bcrypt hash for basic_auth.
func (h *harness) startServers() error {
	up, err := serveLocal(upstreamHandler())
	if err != nil {
		return fmt.Errorf("starting the upstream: %w", err)
	}
	token := randomToken()
	auth, err := serveLocal(authServiceHandler(forwardCookie, token, forwardUser))
	if err != nil {
		return fmt.Errorf("starting the auth service: %w", err)
	}
	// Cost 14 is what `caddy hash-password` writes. basic_auth caches
	// the outcome of a comparison, so the cost is paid on the first
	// request only (the check), as in production.
	hash, err := bcrypt.GenerateFromPassword([]byte(benchPassword), 14)
	if err != nil {
		return err
	}
	h.fix = fixture{Upstream: up.Addr, AuthService: auth.Addr, AuthToken: token, BasicHash: string(hash)}
	return nil
}
