#!/usr/bin/env bash
# commit-watch.sh ADMIN_ADDR [INTERVAL]
#
# Watches a running linkd's group committer from its /metrics, one line per
# INTERVAL (default 0.5 s) while linkd answers: connected links stored per
# second (PutItem), commits per second, writes per commit, the mean commit
# (transaction, page writes and both fsyncs), the share of wall time the
# committer spent committing (1.00: back to back), and linkd's CPU in
# cores. Run it beside a load (linkd-load, load-ab.sh) to see whether the
# commit path or the processors are what a burst waits for. Stop it with
# Ctrl-C; it also ends when linkd does.
set -euo pipefail
admin=${1:?usage: commit-watch.sh ADMIN_ADDR [INTERVAL]}
interval=${2:-0.5}

sample() {
	# shellcheck disable=SC2016 # awk's own $ fields
	curl -fs "http://$admin/metrics" | awk -v now="$(date +%s.%N)" '
		/^linkd_store_operation_duration_seconds_count\{operation="PutItem"/ { links += $2 }
		/^linkd_bbolt_commit_duration_seconds_count / { commits = $2 }
		/^linkd_bbolt_commit_duration_seconds_sum / { busy = $2 }
		/^linkd_bbolt_commit_batch_size_sum / { writes = $2 }
		/^process_cpu_seconds_total / { cpu = $2 }
		END { printf "%s %d %d %.6f %d %.3f\n", now, links, commits, busy, writes, cpu }'
}

prev=$(sample)
while sleep "$interval"; do
	cur=$(sample) || exit 0
	echo "$prev $cur" | awk '{
		dt = $7 - $1; commits = $9 - $3
		printf "links/s %6.0f  commits/s %5.0f  writes/commit %5.1f  commit ms %5.2f  busy %4.2f  cpu %4.2f\n",
			($8 - $2) / dt, commits / dt, commits ? ($11 - $5) / commits : 0,
			commits ? 1000 * ($10 - $4) / commits : 0, ($10 - $4) / dt, ($12 - $6) / dt }'
	prev=$cur
done
