#!/usr/bin/env bash
# Side-by-side figures of two builds of Peregrine (before/after a change), as
# BENCHMARKS.md reports them for the executor core:
#   1. server CPU per seed execution at RATE/s over HTTP (from /proc/PID/stat);
#   2. the embedded and HTTP ceilings with p99 <= 20 ms (`--find-max`);
#   3. the server's RSS when fresh and after MANY seed executions, with the
#      default settings (executions.max-finished, retention).
# Runs alternate between the builds, RUNS times each (medians are read from
# the printed tables). Everything targets 127.0.0.1 and stops by itself.
#
# Usage: core-figures.sh BEFORE_BIN_DIR AFTER_BIN_DIR [RUNS]
#   each BIN_DIR holds release builds of `peregrine` and `peregrine-loadtest`;
#   AFTER_BIN_DIR `-` measures the first build alone.
# Environment: RATE (2000), CPU_EXECUTIONS (20000), MANY (1000000),
#   MANY_RATE (2000), FIND_MAX_SECS (90), SKIP (space-separated: cpu ceiling rss).
set -euo pipefail

BEFORE=${1:?before bin dir}
AFTER=${2:?after bin dir}
RUNS=${3:-3}
RATE=${RATE:-2000}
CPU_EXECUTIONS=${CPU_EXECUTIONS:-20000}
MANY=${MANY:-1000000}
MANY_RATE=${MANY_RATE:-2000}
FIND_MAX_SECS=${FIND_MAX_SECS:-90}
SKIP=${SKIP:-}
FLOW="$(cd "$(dirname "$0")/.." && pwd)/flows/seed.yaml"
TICKS=$(getconf CLK_TCK)
WORK=$(mktemp -d)
SERVER_PID=""
trap 'stop_server; rm -rf "$WORK"' EXIT

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

# start_server BIN_DIR: a release server with a fresh data folder; sets
# SERVER_PID and URL.
start_server() {
  serve "$1/peregrine" "$WORK/data-$RANDOM$RANDOM" "$WORK/server.log"
}

stop_server() {
  if [ -n "$SERVER_PID" ]; then
    kill_server
    # Gone at once: gigabytes of old segments left to write back would
    # stall the next run's syncs.
    rm -rf "$WORK"/data-*
    sync
  fi
}

# CPU ticks (user + system) the server has used.
cpu_ticks() {
  awk '{print $14 + $15}' "/proc/$SERVER_PID/stat"
}

rss_kib() {
  awk '/^VmRSS:/ {print $2}' "/proc/$SERVER_PID/status"
}


builds=("before:$BEFORE")
[ "$AFTER" = "-" ] || builds+=("after:$AFTER")

if ! skipped cpu; then
  echo "## server CPU per execution at $RATE/s over HTTP ($CPU_EXECUTIONS executions)"
  echo "| run | build | CPU µs per execution | p99 (ms) |"
  echo "|---|---|---|---|"
  for run in $(seq 1 "$RUNS"); do
    for entry in "${builds[@]}"; do
      name=${entry%%:*}
      dir=${entry#*:}
      start_server "$dir"
      before=$(cpu_ticks)
      "$dir/peregrine-loadtest" --mode http --url "$URL" --flow "$FLOW" \
        --rates "$RATE" --executions "$CPU_EXECUTIONS" \
        --json "$WORK/cpu-$name-$run.json" >"$WORK/cpu-$name-$run.txt" 2>&1
      after=$(cpu_ticks)
      stop_server
      us=$(python3 -c "print(round(($after - $before) / $TICKS * 1e6 / $CPU_EXECUTIONS, 1))")
      p99=$(json_field "$WORK/cpu-$name-$run.json" "r['runs'][0]['p99_ms']")
      echo "| $run | $name | $us | $p99 |"
    done
  done
  echo
fi

if ! skipped ceiling; then
  echo "## ceilings with p99 <= 20 ms (find-max, ${FIND_MAX_SECS}s budget each)"
  echo "| run | build | embedded (exec/s) | HTTP (exec/s) |"
  echo "|---|---|---|---|"
  for run in $(seq 1 "$RUNS"); do
    for entry in "${builds[@]}"; do
      name=${entry%%:*}
      dir=${entry#*:}
      "$dir/peregrine-loadtest" --find-max --slo-p99-ms 20 --max-secs "$FIND_MAX_SECS" \
        --json "$WORK/max-embedded-$name-$run.json" >"$WORK/max-embedded-$name-$run.txt" 2>&1
      embedded=$(json_field "$WORK/max-embedded-$name-$run.json" "r['find_max']['max_rate']")
      start_server "$dir"
      "$dir/peregrine-loadtest" --mode http --url "$URL" --flow "$FLOW" --find-max \
        --slo-p99-ms 20 --max-secs "$FIND_MAX_SECS" \
        --json "$WORK/max-http-$name-$run.json" >"$WORK/max-http-$name-$run.txt" 2>&1
      stop_server
      http=$(json_field "$WORK/max-http-$name-$run.json" "r['find_max']['max_rate']")
      echo "| $run | $name | $embedded | $http |"
    done
  done
  echo
fi

if ! skipped rss; then
  echo "## RSS of the server, fresh and after $MANY executions at $MANY_RATE/s (default settings)"
  echo "| build | fresh (MiB) | after (MiB) | kept finished | per kept execution (KiB) |"
  echo "|---|---|---|---|---|"
  for entry in "${builds[@]}"; do
    name=${entry%%:*}
    dir=${entry#*:}
    start_server "$dir"
    # One execution first, so that the fresh figure includes the flow and
    # the first touch of every lazily built structure.
    "$dir/peregrine-loadtest" --mode http --url "$URL" --flow "$FLOW" --rates 10 \
      --executions 10 >/dev/null 2>&1
    fresh=$(rss_kib)
    "$dir/peregrine-loadtest" --mode http --url "$URL" --flow "$FLOW" \
      --rates "$MANY_RATE" --executions "$MANY" >"$WORK/rss-$name.txt" 2>&1
    sleep 2
    after=$(rss_kib)
    kept=$(curl -fs "$URL/metrics" | awk '/^peregrine_executions_kept / {print $2}')
    kept=${kept:-100000}
    stop_server
    python3 -c "print('| $name | %.0f | %.0f | $kept | %.2f |' % ($fresh / 1024, $after / 1024, ($after - $fresh) / $kept))"
  done
  echo
fi
