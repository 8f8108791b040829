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
#   (mapped or pwrite, for both modes), OHA (the `oha` binary, default the
#   one on PATH: `cargo install oha`; empty skips it), OHA_PROBE_SECS (10).
#
# With oha, each run also searches the HTTP ceiling with an independent
# open-loop generator: probes of `oha -q RATE --latency-correction` (64
# connections, the same order in every request to `?wait=true`), doubling
# from 500/s until one fails (p99 over SLO_MS, a non-200 answer, or less
# than 95% of the rate achieved), then three bisections.
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

OHA=${OHA-$(command -v oha || true)}
OHA_PROBE_SECS=${OHA_PROBE_SECS:-10}

# oha_probe RATE: 0 when RATE holds within the SLO on the server at $URL;
# prints the probe's p99 in ms.
oha_probe() {
  local out="$WORK/oha-$1.json"
  "$OHA" -q "$1" -z "${OHA_PROBE_SECS}s" -c 64 --latency-correction --no-tui \
    --output-format json -m POST -H 'content-type: application/json' \
    -d '{"order":{"order_id":7,"first_name":"Ada","last_name":"Lovelace","address":{"city":"Lyon","country":"FR"},"items":[{"product_id":"p-7","quantity":4,"price_per_unit":5.0}]}}' \
    "$URL/api/v1/main/executions/company.team/seed-jsonata?wait=true" >"$out" 2>/dev/null || true
  python3 - "$out" "$1" "$SLO_MS" <<'PY'
import json, sys
path, rate, slo = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
try:
    r = json.load(open(path))
except (OSError, ValueError):
    print("?"); sys.exit(1)
p99 = r["latencyPercentiles"]["p99"] * 1e3
codes = r.get("statusCodeDistribution", {})
ok = codes.get("200", 0)
achieved = r["summary"]["requestsPerSec"]
print(round(p99, 2))
sys.exit(0 if p99 <= slo and ok == sum(codes.values()) and ok > 0 and achieved >= 0.95 * rate else 1)
PY
}

# oha_search: the highest rate oha_probe passes (0 when none does).
oha_search() {
  local rate=500 good=0 bad=0
  while [ "$rate" -le 32000 ]; do
    if oha_probe "$rate" >/dev/null; then good=$rate; rate=$((rate * 2)); else bad=$rate; break; fi
  done
  [ "$bad" -eq 0 ] && { echo "$good"; return; }
  for _ in 1 2 3; do
    rate=$(((good + bad) / 2))
    if oha_probe "$rate" >/dev/null; then good=$rate; else bad=$rate; fi
  done
  echo "$good"
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

  if [ -n "$OHA" ]; then
    PEREGRINE_WAL_WRITES=$WAL_WRITES serve "$BIN/peregrine" "$WORK/data-oha-$run" "$WORK/server.log"
    curl -fs -X POST -H 'content-type: application/x-yaml' --data-binary @"$FLOW" \
      "$URL/api/v1/main/flows" >/dev/null
    server_before=$(cpu_secs "$SERVER_PID")
    rate=$(oha_search)
    server_after=$(cpu_secs "$SERVER_PID")
    kill_server
    rm -rf "$WORK/data-oha-$run"
    server_cpu=$(python3 -c "print(round($server_after - $server_before, 1))")
    echo "| $run | HTTP (oha) | $rate | - | $server_cpu |"
  fi
done
