# Shared by the figure scripts: a release server on a free loopback port,
# and small readers of the load generator's JSON reports. Source it.

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# serve PEREGRINE DATA_DIR LOG [TRIES]: a server on DATA_DIR, its output
# appended to LOG; sets SERVER_PID and URL once /health answers (TRIES of
# 50 ms, default 200); fails at once, with the log, if the server exits.
serve() {
  local port
  port=$(free_port)
  RUST_LOG=warn "$1" server --bind "127.0.0.1:$port" --data-dir "$2" >>"$3" 2>&1 &
  SERVER_PID=$!
  URL="http://127.0.0.1:$port"
  for _ in $(seq 1 "${4:-200}"); do
    curl -fs "$URL/health" >/dev/null 2>&1 && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.05
  done
  echo "the server did not come up:" >&2
  cat "$3" >&2
  return 1
}

# kill_server: stops the server `serve` started (SIGTERM), if any.
kill_server() {
  if [ -n "${SERVER_PID:-}" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
  fi
}

# json_field FILE EXPR: EXPR over the report `r` (rounded), or `?`.
json_field() {
  python3 -c "import json; r = json.load(open('$1')); v = $2; print('?' if v is None else round(v, 2))" 2>/dev/null || echo "?"
}

skipped() { [[ " ${SKIP:-} " == *" $1 "* ]]; }
