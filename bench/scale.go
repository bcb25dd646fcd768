package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"time"
)

// seedResult is the JSON line bench/seed prints.
type seedResult struct {
	Users    int     `json:"users"`
	Sessions int     `json:"sessions"`
	Seconds  float64 `json:"seconds"`
	Bytes    int64   `json:"bytes"`
}

// parseSeedResult reads the last non-empty line of the seeder's
// standard output.
func parseSeedResult(out string) (seedResult, error) {
	var r seedResult
	line := lastLines(out, 1)
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		return r, fmt.Errorf("reading bench/seed's result line %q: %w", line, err)
	}
	if r.Users <= 0 || r.Bytes <= 0 {
		return r, fmt.Errorf("bench/seed's result line %q has no users or bytes", line)
	}
	return r, nil
}

// seedEmail is the email of seeded user i, as bench/seed makes them.
func seedEmail(i int) string { return fmt.Sprintf("user%07d@seed.example", i) }

// scaleResults compares a database of many users with an empty one.
type scaleResults struct {
	Seed      seedResult
	EmptySize int64 // bytes of the empty database (after its few logins)
	// Login latencies, ms, of sequential logins, alternating between the
	// two servers.
	EmptyLogin, SeededLogin summary
	// Guard throughput, req/s, per transport ("cookie", "jwt"), over
	// the rounds; Ratio is seeded ÷ empty, round by round.
	Empty, Seeded, Ratio map[string]summary
}

// LoginRatio is the seeded database's median login latency ÷ the empty
// one's.
func (s *scaleResults) LoginRatio() float64 { return s.SeededLogin.Median / s.EmptyLogin.Median }

// seedAvailable reports whether bench/seed is in the repository.
func (h *harness) seedAvailable() bool {
	_, err := os.Stat(filepath.Join(h.root, "bench", "seed", "main.go"))
	return err == nil
}

// scaleServer is one side of the comparison.
type scaleServer struct {
	name   string
	c      *caddyProc
	db     string
	cookie request
	jwt    request
}

// runScale seeds a database, starts a guarded Caddy on it and one on an
// empty database, and compares login latency and guard throughput.
func (h *harness) runScale(ctx context.Context) (*scaleResults, error) {
	if !h.seedAvailable() {
		return nil, errors.New("bench/seed is not in the repository; run with -skip-scale")
	}
	res := &scaleResults{Empty: map[string]summary{}, Seeded: map[string]summary{}, Ratio: map[string]summary{}}
	dir := filepath.Join(h.tmp, "scale")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	seedBin := filepath.Join(h.tmp, "seed")
	h.logf("scale: building bench/seed")
	build := exec.CommandContext(ctx, "go", "build", "-o", seedBin, "./bench/seed")
	build.Dir = h.root
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build ./bench/seed: %w\n%s", err, out)
	}
	seededDB := filepath.Join(dir, "seeded.db")
	n := h.opts.ScaleUsers
	h.logf("scale: seeding %d users and sessions", n)
	seed := exec.CommandContext(ctx, seedBin, "-db", seededDB, "-users", strconv.Itoa(n), "-sessions", strconv.Itoa(n), "-password", benchPassword)
	seed.Stderr = h.log
	out, err := seed.Output()
	if err != nil {
		return nil, fmt.Errorf("bench/seed: %w", err)
	}
	if res.Seed, err = parseSeedResult(string(out)); err != nil {
		return nil, err
	}
	h.logf("  %d users, %d sessions in %.1f s, %d bytes", res.Seed.Users, res.Seed.Sessions, res.Seed.Seconds, res.Seed.Bytes)

	empty := &scaleServer{name: "empty", db: filepath.Join(dir, "empty.db")}
	seeded := &scaleServer{name: "seeded", db: seededDB}
	for _, s := range []*scaleServer{empty, seeded} {
		if err := h.startScaleServer(ctx, dir, s); err != nil {
			return nil, err
		}
		defer s.c.Stop()
	}
	// The empty database gets the one user that logs in; the seeded one
	// has its own. Either way the user has the server's default hash.
	const freshEmail = "fresh@bench.example"
	if err := register(ctx, h.hc, empty.c.URL, freshEmail, benchPassword); err != nil {
		return nil, err
	}
	emptyUser := func(int) string { return freshEmail }
	// Seeded users spread over the whole table, not one hot row: each
	// login looks up an index entry far from the last one's.
	seededUser := func(i int) string { return seedEmail((i*7919 + n/2) % n) }

	h.logf("scale: %d sequential logins per database, alternating", h.opts.ScaleLogins)
	var emptyMS, seededMS []float64
	for i := range h.opts.ScaleLogins {
		for _, side := range []struct {
			s    *scaleServer
			user func(int) string
			into *[]float64
		}{{empty, emptyUser, &emptyMS}, {seeded, seededUser, &seededMS}} {
			began := time.Now()
			if _, err := loginJWT(ctx, h.hc, side.s.c.URL, side.user(i), benchPassword); err != nil {
				return nil, fmt.Errorf("%s database: %w", side.s.name, err)
			}
			*side.into = append(*side.into, ms(time.Since(began)))
		}
	}
	res.EmptyLogin, res.SeededLogin = summarize(emptyMS), summarize(seededMS)
	h.logf("  login p50: empty %.1f ms, seeded %.1f ms", res.EmptyLogin.Median, res.SeededLogin.Median)

	for _, s := range []*scaleServer{empty, seeded} {
		user := freshEmail
		if s == seeded {
			user = seedEmail(n - 1)
		}
		if err := s.credentials(ctx, h.hc, user); err != nil {
			return nil, fmt.Errorf("%s database: %w", s.name, err)
		}
	}

	// As in the guard phase: in each round, slices of every database and
	// transport in turn, so that both databases see the same drift of
	// the machine; which database goes first alternates.
	satSlice, _ := h.sliceDurations()
	rps := map[string]map[string][]float64{"empty": {}, "seeded": {}}
	ratios := map[string][]float64{}
	for r := range h.opts.Rounds {
		order := []*scaleServer{empty, seeded}
		if r%2 == 1 {
			slices.Reverse(order)
		}
		h.logf("scale: round %d/%d", r+1, h.opts.Rounds)
		sums := map[string]map[string]*wrkSum{"empty": {"cookie": {}, "jwt": {}}, "seeded": {"cookie": {}, "jwt": {}}}
		for range h.opts.Slices {
			for _, s := range order {
				for _, tr := range []struct {
					key string
					req request
				}{{"cookie", s.cookie}, {"jwt", s.jwt}} {
					w, err := runWrk(ctx, h.wrk, h.opts.Threads, h.opts.Conns, satSlice, s.c.URL+tr.req.Path, tr.req.headerLines())
					if err != nil {
						return nil, err
					}
					if w.Non2xx > 0 {
						return nil, fmt.Errorf("%s database, %s: %d of %d answers were not 2xx", s.name, tr.key, w.Non2xx, w.Requests)
					}
					sums[s.name][tr.key].add(w)
				}
			}
		}
		for _, k := range []string{"cookie", "jwt"} {
			e, sd := sums["empty"][k].result().ReqPerSec, sums["seeded"][k].result().ReqPerSec
			rps["empty"][k] = append(rps["empty"][k], e)
			rps["seeded"][k] = append(rps["seeded"][k], sd)
			ratios[k] = append(ratios[k], sd/e)
		}
		h.logf("  cookie %.0f vs %.0f req/s, jwt %.0f vs %.0f req/s (seeded vs empty)",
			rps["seeded"]["cookie"][r], rps["empty"]["cookie"][r], rps["seeded"]["jwt"][r], rps["empty"]["jwt"][r])
	}
	for _, k := range []string{"cookie", "jwt"} {
		res.Empty[k], res.Seeded[k], res.Ratio[k] = summarize(rps["empty"][k]), summarize(rps["seeded"][k]), summarize(ratios[k])
	}
	res.EmptySize = fileSize(empty.db) + fileSize(empty.db+"-wal")
	return res, nil
}

// startScaleServer starts a guarded Caddy on s.db.
func (h *harness) startScaleServer(ctx context.Context, dir string, s *scaleServer) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	admin, err := freePort()
	if err != nil {
		return err
	}
	// A directory each: the two processes must not share a HOME.
	dir = filepath.Join(dir, s.name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	cfg := caddyfile{AdminPort: admin, Port: port, Global: gatehouseGlobal(sqliteAt(s.db)), Site: guardSite(h.fix.Upstream)}
	s.c, err = startCaddy(ctx, h.caddy, dir, "caddy", cfg, "/")
	return err
}

// credentials logs user in on s with a cookie and a JWT, and checks that
// both reach the upstream as user.
func (s *scaleServer) credentials(ctx context.Context, hc *http.Client, user string) error {
	cookie, err := loginCookie(ctx, hc, s.c.URL, user, benchPassword)
	if err != nil {
		return err
	}
	token, err := loginJWT(ctx, hc, s.c.URL, user, benchPassword)
	if err != nil {
		return err
	}
	s.cookie = request{Path: "/app", Header: http.Header{"Cookie": {sessionCookie + "=" + cookie}}, User: user, Protected: true}
	s.jwt = request{Path: "/app", Header: http.Header{"Authorization": {"Bearer " + token}}, User: user, Protected: true}
	for _, req := range []request{s.cookie, s.jwt} {
		if err := check(ctx, hc, s.c.URL, req); err != nil {
			return err
		}
	}
	return nil
}

// fileSize is the size of the file at path, 0 if there is none.
func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}
