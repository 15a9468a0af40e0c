#!/usr/bin/env bash
# Starts or stops a throwaway versitygw (S3 server, Apache-2.0) for tests.
#
#   scripts/versitygw.sh start [PORT]   start on PORT (default: a free port);
#                                       prints the env exports and writes them
#                                       to $STATE/env for the Makefile to source
#   scripts/versitygw.sh stop           stop it and delete its data
#   scripts/versitygw.sh env            print the exports of the running one
#
# STATE defaults to ${TMPDIR:-/tmp}/casevault-versitygw-$(id -u); set
# CASEVAULT_VERSITYGW_STATE to run several side by side.
set -euo pipefail

STATE="${CASEVAULT_VERSITYGW_STATE:-${TMPDIR:-/tmp}/casevault-versitygw-$(id -u)}"
ACCESS_KEY="${CASEVAULT_TEST_S3_ACCESS_KEY:-casevault-test}"
SECRET_KEY="${CASEVAULT_TEST_S3_SECRET_KEY:-casevault-test-secret-key}"
BUCKET="${CASEVAULT_TEST_S3_BUCKET:-casevault-test}"

find_bin() {
  if command -v versitygw >/dev/null 2>&1; then command -v versitygw; return; fi
  for d in "$(go env GOPATH 2>/dev/null)/bin" /root/go/bin "$HOME/go/bin"; do
    if [ -x "$d/versitygw" ]; then echo "$d/versitygw"; return; fi
  done
  echo "versitygw not found: go install github.com/versity/versitygw/cmd/versitygw@v1.8.0" >&2
  exit 1
}

free_port() {
  python3 - <<'PY' 2>/dev/null || echo $((20000 + RANDOM % 20000))
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
PY
}

running() { [ -f "$STATE/pid" ] && kill -0 "$(cat "$STATE/pid")" 2>/dev/null; }

start() {
  if running; then cat "$STATE/env"; return; fi
  local bin port
  bin="$(find_bin)"
  port="${1:-$(free_port)}"
  rm -rf "$STATE"
  mkdir -p "$STATE/root" "$STATE/iam" "$STATE/versions"
  ROOT_ACCESS_KEY="$ACCESS_KEY" ROOT_SECRET_KEY="$SECRET_KEY" \
    nohup "$bin" --port "127.0.0.1:$port" --quiet --iam-dir "$STATE/iam" \
      posix --versioning-dir "$STATE/versions" "$STATE/root" \
      >"$STATE/log" 2>&1 &
  echo $! >"$STATE/pid"
  # Wait until it accepts connections (at most ~10 s).
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      cat >"$STATE/env" <<ENV
export CASEVAULT_TEST_S3_ENDPOINT=127.0.0.1:$port
export CASEVAULT_TEST_S3_ACCESS_KEY=$ACCESS_KEY
export CASEVAULT_TEST_S3_SECRET_KEY=$SECRET_KEY
export CASEVAULT_TEST_S3_BUCKET=$BUCKET
export CASEVAULT_TEST_S3_ROOT=$STATE/root
ENV
      cat "$STATE/env"
      return
    fi
    if ! running; then break; fi
    sleep 0.1
  done
  echo "versitygw did not start; log:" >&2
  cat "$STATE/log" >&2 || true
  stop
  exit 1
}

stop() {
  if [ -f "$STATE/pid" ]; then
    local pid
    pid="$(cat "$STATE/pid")"
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
  fi
  rm -rf "$STATE"
}

case "${1:-}" in
  start) shift; start "$@" ;;
  stop) stop ;;
  env) running && cat "$STATE/env" || { echo "not running" >&2; exit 1; } ;;
  *) echo "usage: $0 start [PORT] | stop | env" >&2; exit 2 ;;
esac
