#!/usr/bin/env bash
# The ceiling table of BENCHMARKS.md in under 10 minutes: the highest rate
# of seed executions whose p99 stays within SLO_MS, embedded and over HTTP
# (a fresh release server on loopback), RUNS times each, alternating, with
# the generator's and the server's CPU while searching. Not part of CI.
#
# Usage: ceiling.sh BIN_DIR [RUNS]
#   BIN_DIR holds release builds of `peregrine` and `peregrine-loadtest`
#   (`cargo build --release -p peregrine-server -p peregrine-loadtest`,
#   then `target/release`).
# Environment: SLO_MS (20), SEARCH_SECS (120 per search), WAL_WRITES
#   (mapped or pwrite, for both modes).
set -euo pipefail

BIN=${1:?bin dir}
RUNS=${2:-2}
SLO_MS=${SLO_MS:-20}
SEARCH_SECS=${SEARCH_SECS:-120}
WAL_WRITES=${WAL_WRITES:-mapped}
FLOW="$(cd "$(dirname "$0")/.." && pwd)/flows/seed.yaml"
TICKS=$(getconf CLK_TCK)
WORK=$(mktemp -d)
SERVER_PID=""
trap 'kill_server; rm -rf "$WORK"' EXIT

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

# CPU seconds (user + system) process PID has used.
cpu_secs() {
  awk -v t="$TICKS" '{printf "%.1f", ($14 + $15) / t}' "/proc/$1/stat"
}

echo "## ceilings with p99 <= $SLO_MS ms (find-max, ${SEARCH_SECS}s per search, wal.writes $WAL_WRITES)"
echo "| run | mode | max rate (exec/s) | generator CPU s | server CPU s |"
echo "|---|---|---|---|---|"
for run in $(seq 1 "$RUNS"); do
  "$BIN/peregrine-loadtest" --find-max --slo-p99-ms "$SLO_MS" --max-secs "$SEARCH_SECS" \
    --wal-writes "$WAL_WRITES" --json "$WORK/embedded-$run.json" >"$WORK/embedded-$run.txt" 2>&1 &
  gen=$!
  wait "$gen"
  rate=$(json_field "$WORK/embedded-$run.json" "r['find_max']['max_rate']")
  echo "| $run | embedded | $rate | (in-process) | - |"

  PEREGRINE_WAL_WRITES=$WAL_WRITES serve "$BIN/peregrine" "$WORK/data-$run" "$WORK/server.log"
  server_before=$(cpu_secs "$SERVER_PID")
  "$BIN/peregrine-loadtest" --mode http --url "$URL" --flow "$FLOW" --find-max \
    --slo-p99-ms "$SLO_MS" --max-secs "$SEARCH_SECS" \
    --json "$WORK/http-$run.json" >"$WORK/http-$run.txt" 2>&1 &
  gen=$!
  gen_cpu=0
  while kill -0 "$gen" 2>/dev/null; do
    gen_cpu=$(cpu_secs "$gen" 2>/dev/null || echo "$gen_cpu")
    sleep 1
  done
  wait "$gen" || true
  server_after=$(cpu_secs "$SERVER_PID")
  kill_server
  rm -rf "$WORK/data-$run"
  rate=$(json_field "$WORK/http-$run.json" "r['find_max']['max_rate']")
  server_cpu=$(python3 -c "print(round($server_after - $server_before, 1))")
  echo "| $run | HTTP | $rate | $gen_cpu | $server_cpu |"
done
