#!/usr/bin/env bash
# The whole test suite: hygiene checks, then every test, with the race
# detector. README's test command and what CI runs (.ci/run).
#
# Integration tests build the real binary and run it on 127.0.0.1. Tests that
# need a system component install or start it themselves; with CI=true a
# missing component fails the run instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."

# Tools the integration tests run as real processes, installed into the
# repository's .tools/bin (git-ignored) unless that version is already
# there. A `go install`ed mailpit calls itself "dev", so the version is
# read from the module information in the binary.
MAILPIT_VERSION=v1.33.1
echo "== tools: mailpit $MAILPIT_VERSION"
if ! go version -m .tools/bin/mailpit 2>/dev/null |
	grep -E "^[[:space:]]+mod[[:space:]]+github\.com/axllent/mailpit[[:space:]]+${MAILPIT_VERSION}([[:space:]]|\$)" >/dev/null; then
	GOBIN="$PWD/.tools/bin" go install "github.com/axllent/mailpit@$MAILPIT_VERSION"
fi

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files -co --exclude-standard '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

echo "== go vet"
go vet ./...

echo "== go mod tidy"
go mod tidy -diff

echo "== go test -race"
go test -race -count=1 -timeout 25m ./...
