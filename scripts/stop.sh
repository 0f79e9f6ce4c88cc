#!/usr/bin/env bash
# `make stop`: stop the yurt server that `make demo` started.
set -euo pipefail
data=${1:-$PWD/.yurt}
pidfile="$data/server.pid"
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  kill -TERM "$(cat "$pidfile")"
  for _ in $(seq 1 100); do
    kill -0 "$(cat "$pidfile")" 2>/dev/null || break
    sleep 0.2
  done
  echo "yurt server stopped" >&2
else
  echo "yurt server is not running" >&2
fi
rm -f "$pidfile"
