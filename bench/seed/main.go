package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// usageError is an error in the flags: exit status 2, as the flag package
// gives for an unknown flag.
type usageError string

func (e usageError) Error() string { return string(e) }

// run parses args, seeds, and prints the result line to stdout; it returns
// the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		// The flag package has already reported its own errors.
		if ue, ok := errors.AsType[usageError](err); ok {
			fmt.Fprintf(stderr, "seed: %v\n", ue)
			fmt.Fprintln(stderr, "usage: seed -db PATH [-users N] [-sessions N] -password PW [-force]")
		}
		return 2
	}
	cfg.rand = rand.Reader
	cfg.now = time.Now
	cfg.progress = stderr
	res, err := seed(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "seed: %v\n", err)
		return 1
	}
	line, err := json.Marshal(res)
	if err != nil {
		fmt.Fprintf(stderr, "seed: encoding the result: %v\n", err)
		return 1
	}
	if _, err := fmt.Fprintf(stdout, "%s\n", line); err != nil {
		fmt.Fprintf(stderr, "seed: writing the result: %v\n", err)
		return 1
	}
	return 0
}

// parseFlags reads the command line into a config (without its rand, now
// and progress). Errors in the values are usageErrors; the flag package
// reports its own to stderr.
func parseFlags(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("seed", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg config
	fs.StringVar(&cfg.path, "db", "", "the SQLite `file` to create (required)")
	fs.IntVar(&cfg.users, "users", 1_000_000, "how many users to create")
	fs.IntVar(&cfg.sessions, "sessions", 1_000_000, "how many sessions to create, spread round-robin over the users")
	fs.StringVar(&cfg.password, "password", "", "the password of every user (required)")
	fs.BoolVar(&cfg.force, "force", false, "delete the database first if it exists and is not empty")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	bad := func(format string, a ...any) (config, error) {
		return config{}, usageError(fmt.Sprintf(format, a...))
	}
	switch {
	case fs.NArg() > 0:
		return bad("unexpected argument %q", fs.Arg(0))
	case cfg.path == "":
		return bad("-db is required")
	case cfg.password == "":
		return bad("-password is required")
	case cfg.users < 0:
		return bad("-users %d is negative", cfg.users)
	case cfg.sessions < 0:
		return bad("-sessions %d is negative", cfg.sessions)
	case cfg.sessions > 0 && cfg.users == 0:
		return bad("-sessions %d needs at least one user to belong to", cfg.sessions)
	}
	return cfg, nil
}
