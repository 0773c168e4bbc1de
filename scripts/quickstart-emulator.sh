#!/usr/bin/env bash
# quickstart-emulator.sh QUICKSTART_DIR [OUT]
#
# Builds the Go backend of Plaid's quickstart (github.com/plaid/quickstart,
# directory go/) so that it can talk to linkd's Plaid emulator instead of
# plaid.com, for the comparisons in BENCHMARKS.md. QUICKSTART_DIR is a
# checkout of that repository (or an export of it); nothing of it is copied
# into linkd. The one change: after the quickstart picks its Plaid
# environment from PLAID_ENV, a PLAID_BASE_URL environment variable, when
# set, replaces that URL. Its dependencies come from the Go module proxy at
# the versions its go.mod pins, except plaid-go when PLAID_GO_VERSION is set
# (the proxy answers 403 for v42.0.0, which quickstart 4af75a4 pins;
# PLAID_GO_VERSION=v42.2.0 is the version linkd uses, the same API). The
# binary goes to OUT (default QUICKSTART_DIR/go/quickstart-server). Run it
# with, e.g.:
#
#   PLAID_CLIENT_ID=linkd-emulator PLAID_SECRET=linkd-emulator-secret PLAID_ENV=sandbox \
#   PLAID_BASE_URL=http://127.0.0.1:7070 APP_PORT=8000 GIN_MODE=release OUT >/dev/null
set -euo pipefail

dir=${1:?usage: quickstart-emulator.sh QUICKSTART_DIR [OUT]}
src=$dir/go/server.go
out=${2:-$dir/go/quickstart-server}
anchor='configuration.UseEnvironment(environments[PLAID_ENV])'

if ! grep -qF "$anchor" "$src"; then
	echo "quickstart-emulator.sh: $src has no line '$anchor'; the quickstart changed, patch by hand" >&2
	exit 1
fi
if ! grep -qF 'PLAID_BASE_URL' "$src"; then
	sed -i "s|^\(\t*\)configuration.UseEnvironment(environments\[PLAID_ENV\])|&\n\1if u := os.Getenv(\"PLAID_BASE_URL\"); u != \"\" {\n\1\tconfiguration.UseEnvironment(plaid.Environment(u))\n\1}|" "$src"
fi
cd "$dir/go"
if [ -n "${PLAID_GO_VERSION:-}" ]; then
	go mod edit -require="github.com/plaid/plaid-go/v42@$PLAID_GO_VERSION"
fi
GOFLAGS=-mod=mod go build -o "$out" .
echo "$out"
