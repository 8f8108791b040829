#!/usr/bin/env bash
# The figures BENCHMARKS.md gives for hardening (issue 12), on one build:
#   1. curve:    RSS and disk of a server with the default settings running
#                the seed flow at RATE/s over HTTP for CURVE_SECS, sampled
#                every CURVE_EVERY seconds;
#   2. overload: for each offered rate, what was accepted, the p99 of the
#                accepted, and how fast a refusal (429/503) comes back;
#   3. settle:   RSS and disk of a server whose executions.retention is
#                SETTLE_RETENTION_SECS, fresh, after SETTLE_SECS of the seed
#                at RATE/s, then every SETTLE_EVERY seconds until
#                SETTLE_AFTER_SECS past the retention;
#   4. recovery: the time from a restart (after kill -9) to /health with
#                IN_FLIGHT sleeping executions to resume.
# Everything targets 127.0.0.1 and stops by itself.
#
# Usage: hardening-figures.sh BIN_DIR
#   BIN_DIR holds release builds of `peregrine` and `peregrine-loadtest`.
# Environment: RATE (2000), CURVE_SECS (3600), CURVE_EVERY (60),
#   OVERLOAD_RATES ("2000 5000 10000 20000"), OVERLOAD_SECS (10),
#   OVERLOAD_CONNECTIONS (2000), OVERLOAD_FLOW (seed, or heavy: a flow that
#   costs the shard milliseconds, so that the server saturates first),
#   SETTLE_SECS (60), SETTLE_RETENTION_SECS (60), SETTLE_AFTER_SECS (60),
#   SETTLE_EVERY (20), IN_FLIGHT (100000), SKIP (space-separated: curve
#   overload settle recovery).
set -euo pipefail

BIN=${1:?bin dir}
RATE=${RATE:-2000}
CURVE_SECS=${CURVE_SECS:-3600}
CURVE_EVERY=${CURVE_EVERY:-60}
OVERLOAD_RATES=${OVERLOAD_RATES:-"2000 5000 10000 20000"}
OVERLOAD_SECS=${OVERLOAD_SECS:-10}
OVERLOAD_CONNECTIONS=${OVERLOAD_CONNECTIONS:-2000}
OVERLOAD_FLOW=${OVERLOAD_FLOW:-seed}
IN_FLIGHT=${IN_FLIGHT:-100000}
SETTLE_SECS=${SETTLE_SECS:-60}
SETTLE_RETENTION_SECS=${SETTLE_RETENTION_SECS:-60}
SETTLE_AFTER_SECS=${SETTLE_AFTER_SECS:-60}
SETTLE_EVERY=${SETTLE_EVERY:-20}
SKIP=${SKIP:-}
FLOWS="$(cd "$(dirname "$0")/.." && pwd)/flows"
WORK=$(mktemp -d)
SERVER_PID=""
trap 'stop_server; rm -rf "$WORK"' EXIT

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

# start_server DATA_DIR: a release server on DATA_DIR; sets SERVER_PID, URL.
start_server() {
  serve "$BIN/peregrine" "$1" "$WORK/server.log" 12000
}

stop_server() {
  kill_server
}

rss_mib() {
  awk '/^VmRSS:/ { printf "%.0f", $2 / 1024 }' "/proc/$SERVER_PID/status"
}

# The anonymous part of the RSS (the heap; the rest is mapped files).
anon_mib() {
  awk '/^Anonymous:/ { printf "%.0f", $2 / 1024 }' "/proc/$SERVER_PID/smaps_rollup"
}

disk_mib() {
  du -sm "$1" | cut -f1
}


echo "machine: $(nproc) cores, $(uname -r); $(date -u +%Y-%m-%dT%H:%MZ)"

if ! skipped curve; then
  data="$WORK/curve"
  start_server "$data"
  executions=$(python3 -c "print(int($RATE * $CURVE_SECS))")
  "$BIN/peregrine-loadtest" --mode http --url "$URL" --flow "$FLOWS/seed.yaml" \
    --rates "$RATE" --executions "$executions" --quiet \
    --json "$WORK/curve.json" >"$WORK/curve.txt" 2>&1 &
  LOAD=$!
  echo
  echo "## RSS and disk at $RATE/s over HTTP, default settings"
  echo "| minute | RSS MiB | disk MiB |"
  echo "|---|---|---|"
  started=$(date +%s)
  while kill -0 "$LOAD" 2>/dev/null; do
    now=$(date +%s)
    printf '| %.1f | %s | %s |\n' "$(python3 -c "print(($now - $started) / 60)")" \
      "$(rss_mib)" "$(disk_mib "$data")"
    sleep "$CURVE_EVERY"
  done
  wait "$LOAD" || true
  printf '| end | %s | %s |\n' "$(rss_mib)" "$(disk_mib "$data")"
  echo "load: completed $(json_field "$WORK/curve.json" "r['runs'][0]['completed']"), failed $(json_field "$WORK/curve.json" "r['runs'][0]['failed']"), p99 $(json_field "$WORK/curve.json" "r['runs'][0]['p99_ms']") ms"
  stop_server
fi

if ! skipped overload; then
  echo
  case "$OVERLOAD_FLOW" in
    heavy) flow_file="$FLOWS/heavy.yaml"; flow_path="company.team/heavy" ;;
    *) flow_file="$FLOWS/seed.yaml"; flow_path="company.team/seed-jsonata" ;;
  esac
  echo "## Overload: offered rate over HTTP ($OVERLOAD_CONNECTIONS connections), $OVERLOAD_FLOW flow, default settings"
  echo "| offered /s | achieved /s | accepted | refused | p99 accepted ms | refusal latency ms (median of probes) |"
  echo "|---|---|---|---|---|---|"
  for rate in $OVERLOAD_RATES; do
    data="$WORK/overload-$rate"
    start_server "$data"
    executions=$(python3 -c "print(int($rate * $OVERLOAD_SECS))")
    "$BIN/peregrine-loadtest" --mode http --url "$URL" --flow "$flow_file" \
      --rates "$rate" --executions "$executions" --max-retries 0 \
      --connections "$OVERLOAD_CONNECTIONS" \
      --quiet --json "$WORK/over-$rate.json" >"$WORK/over-$rate.txt" 2>&1 &
    LOAD=$!
    sleep $((OVERLOAD_SECS / 2))
    # Probes while the load runs: how long a refused request takes.
    probes=""
    for _ in $(seq 1 40); do
      out=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' -X POST \
        -H 'content-type: application/json' --data '{"order": {}}' \
        "$URL/api/v1/main/executions/$flow_path" || true)
      case "$out" in 429*|503*) probes="$probes ${out#* }" ;; esac
    done
    wait "$LOAD" || true
    refusal=$(python3 -c "import statistics, sys; v = [float(x) * 1000 for x in sys.argv[1:]]; print(round(statistics.median(v), 2) if v else '-')" $probes)
    completed=$(json_field "$WORK/over-$rate.json" "r['runs'][0]['completed']")
    failed=$(json_field "$WORK/over-$rate.json" "r['runs'][0]['failed']")
    achieved=$(json_field "$WORK/over-$rate.json" "r['runs'][0]['achieved_rate']")
    p99=$(json_field "$WORK/over-$rate.json" "r['runs'][0]['p99_ms']")
    echo "| $rate | $achieved | $completed | $failed | $p99 | $refusal |"
    stop_server
  done
fi

if ! skipped settle; then
  data="$WORK/settle"
  # An execution's logs may not outlive it: both retentions are set.
  PEREGRINE_EXECUTIONS_RETENTION="${SETTLE_RETENTION_SECS}s" \
    PEREGRINE_WAL_LOG_RETENTION="${SETTLE_RETENTION_SECS}s" start_server "$data"
  fresh=$(rss_mib)
  fresh_anon=$(anon_mib)
  executions=$(python3 -c "print(int($RATE * $SETTLE_SECS))")
  "$BIN/peregrine-loadtest" --mode http --url "$URL" --flow "$FLOWS/seed.yaml" \
    --rates "$RATE" --executions "$executions" --quiet \
    --json "$WORK/settle.json" >"$WORK/settle.txt" 2>&1
  echo
  echo "## RSS after the work ends: $executions executions at $RATE/s, executions.retention ${SETTLE_RETENTION_SECS}s"
  echo "| when | RSS MiB | anonymous MiB | disk MiB | kept (peregrine_executions_kept) |"
  echo "|---|---|---|---|---|"
  retained() { curl -s "$URL/metrics" | awk '/^peregrine_executions_kept / { print $2 }'; }
  echo "| fresh | $fresh | $fresh_anon | - | - |"
  echo "| load ended (completed $(json_field "$WORK/settle.json" "r['runs'][0]['completed']")) | $(rss_mib) | $(anon_mib) | $(disk_mib "$data") | $(retained) |"
  waited=0
  while [ "$waited" -lt $((SETTLE_RETENTION_SECS + SETTLE_AFTER_SECS)) ]; do
    sleep "$SETTLE_EVERY"
    waited=$((waited + SETTLE_EVERY))
    echo "| +${waited} s | $(rss_mib) | $(anon_mib) | $(disk_mib "$data") | $(retained) |"
  done
  stop_server
fi

if ! skipped recovery; then
  data="$WORK/recovery"
  start_server "$data"
  cat >"$WORK/nap.yaml" <<'EOF'
id: nap
namespace: company.team
inputs:
  - id: order
    type: JSON
tasks:
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT1H
EOF
  curl -fs -X POST -H 'content-type: application/x-yaml' --data-binary @"$WORK/nap.yaml" \
    "$URL/api/v1/main/flows" >/dev/null
  # Starts without waiting for the ends: IN_FLIGHT sleeping executions.
  python3 - "$URL" "$IN_FLIGHT" <<'PY'
import http.client, sys, threading, urllib.parse
url, total = urllib.parse.urlparse(sys.argv[1]), int(sys.argv[2])
left = [total]
lock = threading.Lock()
def worker():
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    while True:
        with lock:
            if left[0] == 0:
                return
            left[0] -= 1
        conn.request("POST", "/api/v1/main/executions/company.team/nap",
                     body='{"order": {}}', headers={"content-type": "application/json"})
        conn.getresponse().read()
threads = [threading.Thread(target=worker) for _ in range(16)]
for t in threads: t.start()
for t in threads: t.join()
PY
  running=$(curl -s "$URL/metrics" | awk '/^peregrine_executions_running / { print $2 }')
  kill -9 "$SERVER_PID"
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
  t0=$(date +%s.%N)
  start_server "$data"
  t1=$(date +%s.%N)
  resumed=$(curl -s "$URL/metrics" | awk '/^peregrine_executions_running / { print $2 }')
  echo
  echo "## Recovery after kill -9"
  echo "| in flight | resumed | restart to /health s | RSS after MiB | disk MiB |"
  echo "|---|---|---|---|---|"
  echo "| $running | $resumed | $(python3 -c "print(round($t1 - $t0, 2))") | $(rss_mib) | $(disk_mib "$data") |"
  stop_server
fi
