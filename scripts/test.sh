#!/usr/bin/env bash
# The whole test suite: hygiene checks, then every test, with the race
# detector. README's test command and what CI runs (.ci/run).
#
# Integration tests build the real binary and run it on 127.0.0.1. Tests that
# need a system component install or start it themselves; with CI=true a
# missing component fails the run instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."

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
