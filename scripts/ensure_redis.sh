#!/usr/bin/env bash
# Makes sure a Redis answers at VCFAD_REDIS_URL (default redis://127.0.0.1:6379/0); starts a
# private one when none does. Prints the PID file of a Redis it started (empty if it reused one).
set -euo pipefail
url=${VCFAD_REDIS_URL:-redis://127.0.0.1:6379/0}
hostport=${url#redis://}; hostport=${hostport%%/*}; hostport=${hostport##*@}
host=${hostport%%:*}; port=${hostport##*:}; [ "$port" = "$host" ] && port=6379
if redis-cli -h "$host" -p "$port" ping 2>/dev/null | grep -q PONG; then
  exit 0
fi
command -v redis-server >/dev/null || { echo "ensure_redis: redis-server is not installed (run scripts/install.sh as root)" >&2; exit 1; }
state=${VCFAD_STATE_DIR:-var}/redis
mkdir -p "$state"
redis-server --daemonize yes --bind "$host" --port "$port" --save "" --appendonly no \
  --dir "$state" --pidfile "$PWD/$state/redis.pid" --logfile "$PWD/$state/redis.log" >/dev/null
for _ in $(seq 50); do
  redis-cli -h "$host" -p "$port" ping 2>/dev/null | grep -q PONG && { echo "$PWD/$state/redis.pid"; exit 0; }
  sleep 0.1
done
echo "ensure_redis: started redis-server on $host:$port but it does not answer; see $state/redis.log" >&2
exit 1
