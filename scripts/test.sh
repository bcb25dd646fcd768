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

# Chromium for the browser tests (integration/browser_test.go), from
# Debian's packages; chromedp drives it. Nothing is done when it is there.
# integration/chromium_test.go finds it at /usr/bin/chromium (or $CHROME_PATH).
if [ -n "${CHROME_PATH:-}" ] && [ -x "$CHROME_PATH" ]; then
	echo "== tools: chromium at $CHROME_PATH"
elif [ -x /usr/bin/chromium ]; then
	echo "== tools: chromium at /usr/bin/chromium"
else
	sudo=""
	if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
	echo "== tools: installing chromium: ${sudo:+$sudo }apt-get update; ${sudo:+$sudo }apt-get install -y --no-install-recommends chromium"
	$sudo apt-get update
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium
	/usr/bin/chromium --version
fi

# PostgreSQL server binaries for the PostgreSQL store's tests, from Debian's
# packages. The tests never use the cluster service the package sets up:
# store/postgres/pgtest runs initdb and postgres itself (as the postgres
# user when run as root), in a temporary directory on a free 127.0.0.1
# port. It finds them under /usr/lib/postgresql/*/bin (or $PG_BIN).
if [ -n "${PG_BIN:-}" ] && [ -x "$PG_BIN/initdb" ]; then
	echo "== tools: postgresql at $PG_BIN"
elif compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
	echo "== tools: postgresql at" /usr/lib/postgresql/*/bin
else
	sudo=""
	if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
	echo "== tools: installing postgresql: ${sudo:+$sudo }apt-get update; ${sudo:+$sudo }apt-get install -y --no-install-recommends postgresql"
	$sudo apt-get update
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql
	ls /usr/lib/postgresql/*/bin/initdb
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

# Every fuzz target, for FUZZTIME each beyond its seed corpus (testdata/fuzz,
# which the run above replayed): with 11 targets at 5s, about a minute and a
# half on two cores once the build cache is warm. go test lists the targets,
# so a new one is never left out; only the packages whose tests declare one
# are asked, because listing runs a package's TestMain (integration's builds
# Caddy). A failure leaves its input in the package's testdata/fuzz: commit
# it with the fix, as a seed.
FUZZTIME=${FUZZTIME:-5s}
echo "== fuzz ($FUZZTIME per target)"
fuzz_pkgs=$(git ls-files -co --exclude-standard '*_test.go' | xargs grep -l '^func Fuzz' | xargs -n1 dirname | sort -u | sed 's|^|./|')
fuzz_targets=$(go test -list '^Fuzz' $fuzz_pkgs |
	awk '/^Fuzz/ { names[n++] = $1 } /^ok/ { for (i = 0; i < n; i++) print $2, names[i]; n = 0 }')
while read -r pkg name; do
	[ -n "$name" ] || continue
	echo "-- $name ($pkg)"
	go test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" "$pkg"
done <<<"$fuzz_targets"
