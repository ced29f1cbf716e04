#!/usr/bin/env bash
# Starts the vcfad stack on localhost in the background: Redis (only when none answers at
# VCFAD_REDIS_URL), the detector service, one Celery worker and the gateway. Returns once the
# gateway's /readyz is green. `scripts/down.sh` stops exactly what this started (pid files in
# var/run, logs in var/log).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PY=$VENV/bin/python
STATE=${VCFAD_STATE_DIR:-var}
RUN=$STATE/run
LOG=$STATE/log
TIMEOUT_S=${VCFAD_UP_TIMEOUT_S:-300}
mkdir -p "$RUN" "$LOG"

export VCFAD_REDIS_URL=${VCFAD_REDIS_URL:-redis://127.0.0.1:6379/0}
export VCFAD_GATEWAY_HOST=${VCFAD_GATEWAY_HOST:-127.0.0.1}
export VCFAD_GATEWAY_PORT=${VCFAD_GATEWAY_PORT:-8000}
export VCFAD_DETECTOR_HOST=${VCFAD_DETECTOR_HOST:-127.0.0.1}
export VCFAD_DETECTOR_PORT=${VCFAD_DETECTOR_PORT:-8001}
export VCFAD_DETECTOR_URL=${VCFAD_DETECTOR_URL:-http://127.0.0.1:$VCFAD_DETECTOR_PORT}
# Two services and a worker share the machine's cores: one intra-op thread each by default.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
export PYTHONUNBUFFERED=1
GATEWAY_URL="http://127.0.0.1:$VCFAD_GATEWAY_PORT"

alive() { [ -f "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

if alive gateway && alive detector && alive worker; then
  echo "up: already running at $GATEWAY_URL (stop it with: make down)"
  exit 0
fi
for name in gateway detector worker; do
  if alive "$name"; then
    echo "up: a partial stack is running (pid files in $RUN); run 'make down' first" >&2
    exit 1
  fi
done

# The watermark key (shared/watermark.py) every clone is marked with and the detector reads:
# generated once into var/watermark.key (readable by you only) unless VCFAD_WATERMARK_KEY is set.
if [ -z "${VCFAD_WATERMARK_KEY:-}" ]; then
  if [ ! -s "$STATE/watermark.key" ]; then
    (umask 077 && "$PY" -c 'import secrets; print(secrets.token_hex(32))' > "$STATE/watermark.key")
    echo "up: created a watermark key in $STATE/watermark.key"
  fi
  VCFAD_WATERMARK_KEY=$(cat "$STATE/watermark.key")
fi
export VCFAD_WATERMARK_KEY

# An API key for this machine when none is configured (kept in var/run, readable by you only).
if [ -z "${VCFAD_API_KEYS:-}" ]; then
  if [ ! -s "$RUN/api_key" ]; then
    (umask 077 && "$PY" -c 'import secrets; print(secrets.token_urlsafe(24))' > "$RUN/api_key")
  fi
  VCFAD_API_KEYS=$(cat "$RUN/api_key")
fi
export VCFAD_API_KEYS

# SO_REUSEADDR, as the servers themselves bind: connections of the last run still in TIME-WAIT
# must not count as "in use" (only a listening socket does).
port_free() {
  "$PY" -c 'import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))' "$1" 2>/dev/null
}
for port in "$VCFAD_GATEWAY_PORT" "$VCFAD_DETECTOR_PORT"; do
  port_free "$port" || { echo "up: port $port is in use; set VCFAD_GATEWAY_PORT / VCFAD_DETECTOR_PORT" >&2; exit 1; }
done

redis_pidfile=$(bash scripts/ensure_redis.sh)
if [ -n "$redis_pidfile" ]; then
  echo "$redis_pidfile" > "$RUN/redis.pidfile"  # started by us: down.sh stops it
  echo "up: started redis-server ($redis_pidfile)"
fi

# Each service in its own session, so down.sh can stop its whole process group (Celery's pool).
start() {
  local name=$1
  shift
  setsid "$@" > "$LOG/$name.log" 2>&1 < /dev/null &
  echo $! > "$RUN/$name.pid"
  echo "up: $name started (pid $!, log $LOG/$name.log)"
}
start detector "$PY" -m vcfad.cli serve detector
start worker "$PY" -m celery -A services.cloner.worker worker -Q "${VCFAD_CLONE_QUEUE:-vcfad-clone}" --pool=prefork \
  --concurrency=1 --loglevel=INFO -n "vcfad-worker-$$@%h"
start gateway "$PY" -m vcfad.cli serve gateway

echo -n "up: waiting for $GATEWAY_URL/readyz "
deadline=$((SECONDS + TIMEOUT_S))
until "$PY" -c 'import sys, httpx; sys.exit(httpx.get(sys.argv[1], timeout=5).status_code != 200)' \
  "$GATEWAY_URL/readyz" 2>/dev/null; do
  for name in detector worker gateway; do
    if ! alive "$name"; then
      echo; echo "up: $name exited; last lines of $LOG/$name.log:" >&2
      tail -n 30 "$LOG/$name.log" >&2
      bash scripts/down.sh >&2
      exit 1
    fi
  done
  if ((SECONDS > deadline)); then
    echo; echo "up: not ready after ${TIMEOUT_S} s:" >&2
    "$PY" -c 'import httpx, sys; print(httpx.get(sys.argv[1], timeout=5).text)' "$GATEWAY_URL/readyz" >&2 || true
    bash scripts/down.sh >&2
    exit 1
  fi
  echo -n "."
  sleep 1
done
echo " ready"
echo "up: vcfad is running at $GATEWAY_URL (API docs: $GATEWAY_URL/docs)"
if [ -s "$RUN/api_key" ] && [ "$VCFAD_API_KEYS" = "$(cat "$RUN/api_key")" ]; then
  echo "up: API key (also in $RUN/api_key): $VCFAD_API_KEYS"
fi
echo "up: stop it with: make down"
