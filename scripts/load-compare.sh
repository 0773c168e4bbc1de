#!/usr/bin/env bash
# load-compare.sh QUICKSTART_BIN [ROUNDS]
#
# The comparison of issue #12, in one session: one standalone Plaid emulator
# shared by linkd (bbolt, its defaults) and by Plaid's quickstart Go backend
# (QUICKSTART_BIN, built by scripts/quickstart-emulator.sh), then ROUNDS
# (default 3) rounds of, at each concurrency in CS (default "16 64"), back
# to back, D (default 5s) per scenario (SCENARIOS, default all four):
#
#   create-link-token: the quickstart, linkd over REST, linkd over gRPC
#   noop: linkd over REST, over gRPC
#   exchange: the quickstart, linkd over REST, over gRPC
#   submit-connected: linkd over REST, over gRPC
#
# Each comparison's runs follow each other; before each run it waits for
# linkd's background jobs (the accounts refreshes that connected links
# queue) to finish. It prints every run's table, then, as a Markdown table,
# the median over the rounds of each throughput, p99, CPU per call (of the
# server under test, of the emulator and of the load driver itself, which
# shares the machine's cores, from /proc) and ratio to the
# quickstart's run in the same round. Raw results (JSON) stay in OUT
# (default: a new temporary directory). Ports: PORT_BASE (default 17000) + 70 emulator, + 80
# quickstart, + 51 linkd gRPC, + 81 linkd REST, + 90 linkd admin (pprof).
# Run it from the repository's root.
set -euo pipefail

qs=${1:?usage: load-compare.sh QUICKSTART_BIN [ROUNDS]}
rounds=${2:-3}
D=${D:-5s}
CS=${CS:-16 64}
SCENARIOS=${SCENARIOS:-create-link-token noop exchange submit-connected}
out=${OUT:-$(mktemp -d)}
base=${PORT_BASE:-17000}
emu=127.0.0.1:$((base + 70))
qsaddr=127.0.0.1:$((base + 80))
grpc=127.0.0.1:$((base + 51))
http=127.0.0.1:$((base + 81))
admin=127.0.0.1:$((base + 90))

mkdir -p "$out"
go build -o "$out/linkd" ./cmd/linkd
go build -o "$out/linkd-load" ./cmd/linkd-load

export PLAID_CLIENT_ID=linkd-emulator PLAID_SECRET=linkd-emulator-secret
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait' EXIT

"$out/linkd" emulator -addr "$emu" >/dev/null 2>&1 &
pids+=($!)
emu_pid=$!
PLAID_ENV=sandbox LINKD_API_KEYS=bench-key LINKD_USER_RATE=0 "$out/linkd" \
	-plaid-base-url "http://$emu" -link-url "http://$emu/link/v2/stable/link.html" \
	-data-dir "$out/data" -grpc-addr "$grpc" -http-addr "$http" -admin-addr "$admin" -drain-delay 0 \
	>/dev/null 2>"$out/linkd.err" &
pids+=($!)
linkd_pid=$!
PLAID_ENV=sandbox PLAID_BASE_URL="http://$emu" APP_PORT=$((base + 80)) GIN_MODE=release "$qs" >/dev/null 2>&1 &
pids+=($!)
qs_pid=$!

for url in "http://$http/healthz" "http://$emu/link/v2/stable/link.html"; do
	for _ in $(seq 100); do curl -fsS -o /dev/null "$url" 2>/dev/null && break; sleep 0.1; done
done
for _ in $(seq 100); do curl -s -o /dev/null -X POST "http://$qsaddr/api/info" && break; sleep 0.1; done

commits() { # linkd's group commits so far: count, writes, seconds
	curl -fsS "http://$admin/metrics" | awk '/^linkd_bbolt_commit_batch_size_(sum|count) |^linkd_bbolt_commit_duration_seconds_sum /{v[$1]=$2}
		END{print v["linkd_bbolt_commit_batch_size_count"]+0, v["linkd_bbolt_commit_batch_size_sum"]+0, v["linkd_bbolt_commit_duration_seconds_sum"]+0}'
}

idle() { # wait (up to 2 min) for a second with at most 10 linkd commits: the accounts refreshes
	# that links queue are done (the reconcile job goes on checking new Items at
	# -reconcile-rate, 5 a second, a commit each, for as long as there are unchecked ones)
	local prev now
	prev=$(commits)
	for _ in $(seq 120); do
		sleep 1
		now=$(commits)
		[ $(( ${now%% *} - ${prev%% *} )) -le 10 ] && return
		prev=$now
	done
}

load() { # load FILE ARGS...: one linkd-load run, its table to stdout, its JSON to FILE
	local f=$1 before after cpu="linkd=$linkd_pid"
	shift
	[[ " $* " == *" -transport quickstart "* ]] && cpu="quickstart=$qs_pid"
	idle
	before=$(commits)
	# CPU per successful call of the server under test and of the emulator
	# in the timed phase, which contention moves far less than wall time.
	"$out/linkd-load" -c "$c" -d "$D" -json -cpu-of "$cpu,emulator=$emu_pid,driver=self" "$@" >"$f"
	after=$(commits)
	jq --argjson round "$r" 'map(. + {round: $round, server_cpu_us: (.cpu_us_per_call | (.linkd // .quickstart) | round?), emulator_cpu_us: (.cpu_us_per_call.emulator | round?), driver_cpu_us: (.cpu_us_per_call.driver | round?)})' "$f" >"$f.tmp" && mv "$f.tmp" "$f"
	jq -r '.[] | "\(.transport)\t\(.scenario)\tc=\(.concurrency)\t\(.throughput_rps|floor)/s\tp50 \(.p50_ms)\tp99 \(.p99_ms)\tcpu µs/call: server \(.server_cpu_us), emulator \(.emulator_cpu_us), driver \(.driver_cpu_us)\terrors \(.errors // {} | tostring)\(if .exhausted then "\tEXHAUSTED" else "" end)"' "$f"
	# linkd's commits in that run (minting included): how long fsync took
	echo "$before $after" | awk '{n=$4-$1; if (n>0) printf "\tlinkd commits: %d, %.1f writes each, %.1f ms each\n", n, ($5-$2)/n, 1000*($6-$3)/n}'
}

for r in $(seq "$rounds"); do
	for c in $CS; do
		echo "# round $r, c=$c, $(date -u +%H:%M:%S)"
		for s in $SCENARIOS; do
			case $s in create-link-token | exchange)
				load "$out/r$r-c$c-$s-quickstart.json" -transport quickstart -quickstart-addr "$qsaddr" -plaid-url "http://$emu" -scenario "$s"
			esac
			for t in rest grpc; do
				load "$out/r$r-c$c-$s-$t.json" -transport "$t" -grpc-addr "$grpc" -http-addr "$http" -api-key bench-key -scenario "$s"
			done
		done
	done
done

echo
echo "Medians over $rounds rounds: requests/s (each round's), p99 ms, and linkd / quickstart in the same round:"
jq -rs -f /dev/stdin "$out"/r*.json <<'EOF'
def median: sort | .[(length - 1) / 2 | floor];
def ref: if .scenario == "create-link-token" then "create-link-token" elif .scenario == "exchange" or .scenario == "submit-connected" then "exchange" else null end;
def r2: . * 100 | round / 100;
add
| (map(select(.transport == "quickstart")) | map({key: "\(.round)/\(.concurrency)/\(.scenario)", value: .throughput_rps}) | from_entries) as $qs
| map(. + {ratio: (ref as $s | if .transport == "quickstart" or $s == null then null else .throughput_rps / $qs["\(.round)/\(.concurrency)/\($s)"] end)})
| group_by([.concurrency, .transport != "quickstart", .transport, .scenario])
| map({c: .[0].concurrency, t: .[0].transport, s: .[0].scenario, ref: (.[0] | ref),
       rps: (map(.throughput_rps) | median | floor), all: (map(.throughput_rps | floor | tostring) | join(", ")),
       p99: (map(.p99_ms) | median), cpu: (map(.server_cpu_us) | median), emucpu: (map(.emulator_cpu_us) | median), drvcpu: (map(.driver_cpu_us) | median), ratio: (map(.ratio) | if .[0] == null then null else median | r2 end),
       ratios: (map(.ratio | select(. != null) | r2 | tostring) | join(", "))})
| ["| c | target | scenario | req/s, median (rounds) | p99 ms | CPU µs/call: server, emulator, driver | linkd / quickstart, median (rounds) |", "|---|---|---|---|---|---|---|"]
  + map("| \(.c) | \(.t) | \(.s) | \(.rps) (\(.all)) | \(.p99) | \(.cpu), \(.emucpu), \(.drvcpu) | " + (if .ratio == null then "" else "**\(.ratio)×** \(.ref) (\(.ratios))" end) + " |")
| .[]
EOF
echo "raw results: $out"
