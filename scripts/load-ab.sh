#!/usr/bin/env bash
# load-ab.sh ROUNDS SCENARIO TRANSPORT C BIN...
#
# An A/B of linkd binaries under load on one machine: ROUNDS rounds, each
# running every BIN in turn (alternating, so that a neighbour's load or the
# machine's mood falls on all of them alike), each run a fresh linkd on its
# embedded defaults (bbolt in a new data directory, the embedded emulator)
# driven by linkd-load for D (default 5s) at concurrency C. Per run it
# prints the binary, throughput, p50 and p99 in ms, linkd's CPU per call in
# the window (µs, from /proc), the Items the refresh job refreshed inside the
# window (UpdateRefreshedItem's count in /metrics), and, once the run ends,
# the CPU linkd spends until it is idle (the refresh queue's drain) and the
# Items it refreshed meanwhile. Env: D, LOAD_ARGS (more linkd-load flags,
# e.g. "-rate 1000"), LINKD_ENV (environment for linkd, e.g. "GOGC=off"),
# PORT_BASE (default 26000: +51 gRPC, +81 HTTP, +90 admin), LOAD (the
# linkd-load binary; built from this tree when unset). Linux only (/proc).
# Run it from the repository's root.
set -euo pipefail
rounds=${1:?usage: load-ab.sh ROUNDS SCENARIO TRANSPORT C BIN...}
scenario=${2:?scenario}
transport=${3:?transport}
c=${4:?concurrency}
shift 4
[ $# -gt 0 ] || { echo "load-ab.sh: no binaries" >&2; exit 2; }
base=${PORT_BASE:-26000}
grpc=127.0.0.1:$((base + 51)) http=127.0.0.1:$((base + 81)) admin=127.0.0.1:$((base + 90))
load=${LOAD:-}
if [ -z "$load" ]; then
	load=$(mktemp -d)/linkd-load
	go build -o "$load" ./cmd/linkd-load
fi

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
refreshed() {
	curl -fsS "http://$admin/metrics" | awk '/^linkd_store_operation_duration_seconds_count\{operation="UpdateRefreshedItem"/ {n += $2} END {print n + 0}'
}
hz=$(getconf CLK_TCK)

for _ in $(seq "$rounds"); do
	for bin in "$@"; do
		dir=$(mktemp -d)
		# shellcheck disable=SC2086 # LINKD_ENV is a list of assignments
		env ${LINKD_ENV:-} LINKD_API_KEYS=bench-key LINKD_USER_RATE=0 "$bin" -data-dir "$dir" -drain-delay 0 \
			-grpc-addr "$grpc" -http-addr "$http" -admin-addr "$admin" >/dev/null 2>&1 &
		pid=$!
		for _ in $(seq 100); do curl -fsS -o /dev/null "http://$http/healthz" 2>/dev/null && break; sleep 0.1; done
		# shellcheck disable=SC2086 # LOAD_ARGS is a list of flags
		row=$("$load" -transport "$transport" -grpc-addr "$grpc" -http-addr "$http" -api-key bench-key \
			-c "$c" -d "${D:-5s}" -scenario "$scenario" -cpu-of "linkd=$pid" ${LOAD_ARGS:-} | tail -1)
		inside=$(refreshed)
		before=$(ticks "$pid")
		idle=0
		for _ in $(seq 120); do
			a=$(ticks "$pid")
			sleep 1
			b=$(ticks "$pid")
			if [ $((b - a)) -lt $((hz / 30 + 1)) ]; then
				idle=$((idle + 1))
				[ "$idle" -ge 2 ] && break
			else
				idle=0
			fi
		done
		drain_ms=$((($(ticks "$pid") - before) * 1000 / hz))
		after=$(($(refreshed) - inside))
		echo "$row" | awk -v bin="$(basename "$bin")" -v inside="$inside" -v drain="$drain_ms" -v after="$after" \
			'{printf "%-12s req/s %6s  p50 %7s  p99 %7s  %s  refreshed_in_window %s  drain_cpu_ms %s  refreshed_after %s\n", bin, $8, $9, $11, $NF, inside, drain, after}'
		kill "$pid"
		wait "$pid" 2>/dev/null || true
		rm -rf "$dir"
	done
done
