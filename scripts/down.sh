#!/usr/bin/env bash
# Stops exactly what scripts/up.sh started: the processes named by its pid files in var/run
# (each with its process group) and Redis only when up.sh started it. Returns once they are all
# gone, so `make down && make up` finds the ports free.
set -uo pipefail
cd "$(dirname "$0")/.."
RUN=${VCFAD_STATE_DIR:-var}/run

# The group outlives its leader while Celery's pool children shut down: wait for all of it.
group_alive() { kill -0 -- "-$1" 2>/dev/null || kill -0 "$1" 2>/dev/null; }

stop_group() {
  local name=$1 pid
  [ -f "$RUN/$name.pid" ] || return 0
  pid=$(cat "$RUN/$name.pid")
  if group_alive "$pid"; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 100); do
      group_alive "$pid" || break
      sleep 0.2
    done
    if group_alive "$pid"; then
      echo "down: $name (pid $pid) ignored SIGTERM for 20 s; killing it" >&2
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
      for _ in $(seq 50); do
        group_alive "$pid" || break
        sleep 0.1
      done
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
    pid=$(cat "$pidfile")
    # SIGTERM: Redis writes its append-only file out and exits; wait for it (a restart reloads it).
    kill -TERM "$pid"
    for _ in $(seq 150); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    echo "down: stopped redis-server (pid $pid)"
  fi
  rm -f "$RUN/redis.pidfile"
fi
