#!/usr/bin/env bash
# Stops exactly what scripts/up.sh started: the processes named by its pid files in var/run
# (each with its process group) and Redis only when up.sh started it.
set -uo pipefail
cd "$(dirname "$0")/.."
RUN=${VCFAD_STATE_DIR:-var}/run

stop_group() {
  local name=$1 pid
  [ -f "$RUN/$name.pid" ] || return 0
  pid=$(cat "$RUN/$name.pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "down: $name (pid $pid) ignored SIGTERM for 20 s; killing it" >&2
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
    fi
    echo "down: stopped $name (pid $pid)"
  fi
  rm -f "$RUN/$name.pid"
}

stop_group gateway
stop_group worker
stop_group detector

if [ -f "$RUN/redis.pidfile" ]; then
  pidfile=$(cat "$RUN/redis.pidfile")
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    kill -TERM "$(cat "$pidfile")" && echo "down: stopped redis-server (pid $(cat "$pidfile"))"
  fi
  rm -f "$RUN/redis.pidfile"
fi
