package main

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"path/filepath"
	"slices"
	"time"
)

// storeResults compare the account endpoints on the two stores (issue 7):
// logins and registrations one after another, and registrations from
// many clients at once.
type storeResults struct {
	Ops     int // sequential logins, and registrations, per store
	Clients int // clients registering at once, per batch
	Each    int // registrations per client and batch
	// Order is the stores' order of the concurrent batches, by name.
	Order  []string
	SQLite storeFigures
	PG     storeFigures
}

// storeFigures are one store's.
type storeFigures struct {
	Name     string
	Login    []time.Duration // sequential JWT logins
	Register []time.Duration // sequential registrations
	// Batches are the concurrent registrations, Clients at a time.
	Batches []registerResults
	// Locked and LogErrors count lock messages and error-level lines in
	// the server's log over the whole phase.
	Locked, LogErrors int
}

// ConcurrentLatencies are the times of every registration answered 201
// in the batches.
func (f storeFigures) ConcurrentLatencies() []time.Duration {
	var out []time.Duration
	for _, b := range f.Batches {
		out = append(out, b.Latencies...)
	}
	return out
}

// BatchTimes summarises how long each batch took, first registration
// sent to last answered, in ms.
func (f storeFigures) BatchTimes() summary {
	var xs []float64
	for _, b := range f.Batches {
		xs = append(xs, ms(b.Elapsed))
	}
	return summarize(xs)
}

// Concurrent returns the batches' registrations answered 201, the
// attempts, and the errors (Errors of every batch, and the lock messages
// of the log).
func (f storeFigures) Concurrent() (created, attempts, errs int) {
	for _, b := range f.Batches {
		created += b.Statuses[http.StatusCreated]
		attempts += b.Attempts
		errs += b.Errors()
	}
	return created, attempts, errs + f.Locked
}

// latency is a set of request times: how many, and percentiles in ms.
type latency struct {
	N             int
	P50, P99, Max float64
}

// latencyOf returns the percentiles of ds (nearest rank; NaN for none).
func latencyOf(ds []time.Duration) latency {
	if len(ds) == 0 {
		return latency{P50: math.NaN(), P99: math.NaN(), Max: math.NaN()}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return latency{N: len(s), P50: ms(quantile(s, 0.5)), P99: ms(quantile(s, 0.99)), Max: ms(s[len(s)-1])}
}

// storeSide is one store's server during the phase.
type storeSide struct {
	fig *storeFigures
	c   *caddyProc
}

// runStores starts two Caddys serving the account endpoints, one on a
// fresh SQLite file and one on a fresh database of the run's PostgreSQL
// cluster, both letting every client wait for a hashing slot (so that no
// request is turned away and every figure is a completed one). It times
// sequential registrations and logins, alternating between the stores so
// that both see the same drift of the machine, then batches of clients
// registering at once, in the order SQLite, PostgreSQL, PostgreSQL,
// SQLite.
func (h *harness) runStores(ctx context.Context) (*storeResults, error) {
	res := &storeResults{
		Ops: h.opts.StoreOps, Clients: h.opts.RegClients, Each: h.opts.RegEach,
		SQLite: storeFigures{Name: "SQLite"}, PG: storeFigures{Name: "PostgreSQL"},
	}
	sqlite := &storeSide{fig: &res.SQLite}
	pg := &storeSide{fig: &res.PG}
	for _, side := range []struct {
		s   *storeSide
		key string
		pg  bool
	}{{sqlite, "sqlite", false}, {pg, "postgres", true}} {
		dir := filepath.Join(h.tmp, "stores-"+side.key)
		db, err := h.newDatabase(ctx, side.pg, dir)
		if err != nil {
			return nil, err
		}
		if side.s.c, err = h.startAccountsOn(ctx, dir, db, patientHashing); err != nil {
			return nil, fmt.Errorf("%s: %w", side.s.fig.Name, err)
		}
		defer side.s.c.Stop()
	}
	sides := []*storeSide{sqlite, pg}

	// One registration and login each, unmeasured: the first request pays
	// for the hasher's memory, the pool's first connection, cold caches.
	for _, s := range sides {
		if err := register(ctx, h.hc, s.c.URL, "warm@bench.example", benchPassword); err != nil {
			return nil, fmt.Errorf("%s: %w", s.fig.Name, err)
		}
		if _, err := loginJWT(ctx, h.hc, s.c.URL, "warm@bench.example", benchPassword); err != nil {
			return nil, fmt.Errorf("%s: %w", s.fig.Name, err)
		}
	}

	h.logf("stores: %d sequential registrations, then logins, per store, alternating", h.opts.StoreOps)
	email := func(i int) string { return fmt.Sprintf("seq%04d@bench.example", i) }
	for i := range h.opts.StoreOps {
		for _, s := range alternate(sides, i) {
			t := time.Now()
			if err := register(ctx, h.hc, s.c.URL, email(i), benchPassword); err != nil {
				return nil, fmt.Errorf("%s: %w", s.fig.Name, err)
			}
			s.fig.Register = append(s.fig.Register, time.Since(t))
		}
	}
	for i := range h.opts.StoreOps {
		for _, s := range alternate(sides, i) {
			t := time.Now()
			if _, err := loginJWT(ctx, h.hc, s.c.URL, email(i), benchPassword); err != nil {
				return nil, fmt.Errorf("%s: %w", s.fig.Name, err)
			}
			s.fig.Login = append(s.fig.Login, time.Since(t))
		}
	}
	for _, s := range sides {
		reg, login := latencyOf(s.fig.Register), latencyOf(s.fig.Login)
		h.logf("  %-10s register p50 %.1f ms, p99 %.1f ms; login p50 %.1f ms, p99 %.1f ms", s.fig.Name, reg.P50, reg.P99, login.P50, login.P99)
	}

	// The first hashes at once are slow while Caddy's heap grows to hold
	// them (see timeLoaded): a burst of a few registrations at once per
	// server, unmeasured, so that the first batch does not pay for it.
	for _, s := range sides {
		conc, _, err := hashingSettings(s.c.Log())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.fig.Name, err)
		}
		if w := registerConcurrently(ctx, s.c.URL, "warm-", 4*conc, 1); w.Errors() > 0 {
			return nil, fmt.Errorf("%s: warming up: %s, %d failed; first problem: %s", s.fig.Name, statusList(w.Statuses), w.Failed, w.FirstProblem)
		}
	}
	for k, s := range []*storeSide{sqlite, pg, pg, sqlite} {
		h.logf("stores: %s, %d clients registering %s at once", s.fig.Name, h.opts.RegClients, users(h.opts.RegEach))
		b := registerConcurrently(ctx, s.c.URL, fmt.Sprintf("batch%d-", k), h.opts.RegClients, h.opts.RegEach)
		b.Label, b.Strict = patientLabel, true
		l := latencyOf(b.Latencies)
		h.logf("  %s, %d failed, in %s; each p50 %.0f ms, p99 %.0f ms", statusList(b.Statuses), b.Failed, b.Elapsed.Round(time.Millisecond), l.P50, l.P99)
		s.fig.Batches = append(s.fig.Batches, b)
		res.Order = append(res.Order, s.fig.Name)
	}
	for _, s := range sides {
		s.fig.Locked, s.fig.LogErrors = scanLog(s.c.Log())
	}
	return res, nil
}

// users renders "1 user each", "3 users each".
func users(n int) string {
	if n == 1 {
		return "1 user each"
	}
	return fmt.Sprintf("%d users each", n)
}

// alternate returns the sides in turn i's order: as given in even turns,
// reversed in odd ones, so that neither store always goes first.
func alternate(sides []*storeSide, i int) []*storeSide {
	if i%2 == 0 {
		return sides
	}
	r := slices.Clone(sides)
	slices.Reverse(r)
	return r
}
