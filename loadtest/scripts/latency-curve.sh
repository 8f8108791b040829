#!/usr/bin/env bash
# Latency against offered rate, from 100/s to past the ceiling, embedded and
# over HTTP (a fresh release server on loopback): each rate runs RUN_SECS
# seconds on a fresh engine (embedded) or against one server (HTTP), and
# each mode draws its p50, p99, max and last against rate into an SVG.
# Not part of CI.
#
# Usage: latency-curve.sh BIN_DIR OUT_DIR
#   BIN_DIR holds release builds of `peregrine` and `peregrine-loadtest`.
#   Writes OUT_DIR/curve-embedded.{json,svg}, OUT_DIR/curve-http.{json,svg}
#   and prints both tables.
# Environment: EMBEDDED_RATES, HTTP_RATES (comma-separated), RUN_SECS (5),
#   DRAIN_SECS (10: an execution not ended that long after the last start
#   counts as failed).
set -euo pipefail

BIN=${1:?bin dir}
OUT=${2:?out dir}
EMBEDDED_RATES=${EMBEDDED_RATES:-100,250,500,1000,2000,3000,4000,5000,6000,8000,10000,12000,16000,20000,25000,30000}
HTTP_RATES=${HTTP_RATES:-100,250,500,1000,2000,3000,4000,5000,6000,7000,8000}
RUN_SECS=${RUN_SECS:-5}
DRAIN_SECS=${DRAIN_SECS:-10}
FLOW="$(cd "$(dirname "$0")/.." && pwd)/flows/seed.yaml"
WORK=$(mktemp -d)
SERVER_PID=""
trap 'kill_server; rm -rf "$WORK"' EXIT
mkdir -p "$OUT"

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

echo "## embedded, sync WAL, $RUN_SECS s per rate"
"$BIN/peregrine-loadtest" --rates "$EMBEDDED_RATES" --run-secs "$RUN_SECS" \
  --drain-secs "$DRAIN_SECS" --quiet --compare-seed \
  --json "$OUT/curve-embedded.json" --plot "$OUT/curve-embedded.svg"

echo
echo "## HTTP, one server, $RUN_SECS s per rate"
serve "$BIN/peregrine" "$WORK/data" "$WORK/server.log"
"$BIN/peregrine-loadtest" --mode http --url "$URL" --flow "$FLOW" \
  --rates "$HTTP_RATES" --run-secs "$RUN_SECS" --drain-secs "$DRAIN_SECS" \
  --quiet --compare-seed \
  --json "$OUT/curve-http.json" --plot "$OUT/curve-http.svg"
