#!/usr/bin/env bash
# The figure BENCHMARKS.md gives for resuming paused executions: for each
# number of connections, RUNS runs, each on a fresh release server (`sync`
# WAL, its data in a temporary folder) of `peregrine-loadtest --resume`:
# EXECUTIONS executions of flows/pause.yaml started and PAUSED, then all
# resumed through the API, then waited for until all have ended SUCCESS.
# Prints every run and the medians. Everything targets 127.0.0.1 and stops
# by itself (each wait is bounded by --drain-secs).
#
# Usage: resume-figures.sh BIN_DIR [RUNS]
#   BIN_DIR holds release builds of `peregrine` and `peregrine-loadtest`.
# Environment: EXECUTIONS (10000), CONNECTIONS ("16 64"),
#   RESUME_PATH (actions, or legacy: Kestra 0.22's 204 path).
set -euo pipefail

BIN=${1:?bin dir}
RUNS=${2:-3}
EXECUTIONS=${EXECUTIONS:-10000}
CONNECTIONS=${CONNECTIONS:-"16 64"}
RESUME_PATH=${RESUME_PATH:-actions}
WORK=$(mktemp -d)
SERVER_PID=""
trap 'kill_server; rm -rf "$WORK"' EXIT

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

echo "machine: $(nproc) cores, $(uname -r); $(date -u +%Y-%m-%dT%H:%MZ); load average $(cut -d' ' -f1-3 /proc/loadavg)"
for connections in $CONNECTIONS; do
  for run in $(seq 1 "$RUNS"); do
    data="$WORK/data-$connections-$run"
    serve "$BIN/peregrine" "$data" "$WORK/server.log"
    "$BIN/peregrine-loadtest" --mode http --url "$URL" --resume \
      --resume-path "$RESUME_PATH" --executions "$EXECUTIONS" \
      --connections "$connections" --server-pid "$SERVER_PID" --drain-secs 60 \
      --quiet --json "$WORK/resume-$connections-$run.json" >"$WORK/run.txt" 2>&1 ||
      { cat "$WORK/run.txt" >&2; exit 1; }
    kill_server
    rm -rf "$data"
  done
done

python3 - "$WORK" "$CONNECTIONS" "$RUNS" <<'PY'
import json, statistics, sys
work, connections, runs = sys.argv[1], sys.argv[2].split(), int(sys.argv[3])
cols = [
    ("resumes /s", lambda r: r["resume_rate"]),
    ("resume p50 ms", lambda r: r["resume_p50_ms"]),
    ("resume p99 ms", lambda r: r["resume_p99_ms"]),
    ("first resume to all SUCCESS s", lambda r: r["ended_secs"]),
    ("SUCCESS", lambda r: r["succeeded"]),
    ("RSS fresh MiB", lambda r: r["server"]["rss_before_mib"]),
    ("RSS paused MiB", lambda r: r["server"]["rss_paused_mib"]),
    ("of which anon MiB", lambda r: r["server"]["rss_anon_paused_mib"]),
    ("CPU µs/resume to ack", lambda r: r["server"]["cpu_us_per_resume"]),
    ("CPU µs/resume to end", lambda r: r["server"]["cpu_us_per_resume_to_end"]),
    ("started /s", lambda r: round(r["started"] / r["start_secs"]) if r["start_secs"] else None),
]
print("| connections | run | " + " | ".join(name for name, _ in cols) + " |")
print("|---|---|" + "---|" * len(cols))
for c in connections:
    reports = [json.load(open(f"{work}/resume-{c}-{n}.json"))["resume"] for n in range(1, runs + 1)]
    for n, r in enumerate(reports, 1):
        print(f"| {c} | {n} | " + " | ".join(str(get(r)) for _, get in cols) + " |")
    def median(get):
        values = [get(r) for r in reports]
        return "?" if None in values else round(statistics.median(values), 2)
    print(f"| **{c}** | **median** | " + " | ".join(f"**{median(get)}**" for _, get in cols) + " |")
PY
