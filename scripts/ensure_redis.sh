#!/usr/bin/env bash
# Makes sure a Redis answers at VCFAD_REDIS_URL (default redis://127.0.0.1:6379/0); starts a
# private one when none does, with append-only persistence in $VCFAD_STATE_DIR/redis (default
# var/redis), so queued jobs survive a restart (docs/reliability.md, "Faults"). Prints the PID
# file of a Redis it started (empty if it reused one).
set -euo pipefail
cd "$(dirname "$0")/.."
url=${VCFAD_REDIS_URL:-redis://127.0.0.1:6379/0}
hostport=${url#redis://}; hostport=${hostport%%/*}; hostport=${hostport##*@}
host=${hostport%%:*}; port=${hostport##*:}; [ "$port" = "$host" ] && port=6379
if redis-cli -h "$host" -p "$port" ping 2>/dev/null | grep -q PONG; then
  exit 0
fi
command -v redis-server >/dev/null || { echo "ensure_redis: redis-server is not installed (run scripts/install.sh as root)" >&2; exit 1; }
mkdir -p "${VCFAD_STATE_DIR:-var}/redis"
# An absolute path (VCFAD_STATE_DIR may be either): Redis changes into --dir before it opens the rest.
state=$(cd "${VCFAD_STATE_DIR:-var}/redis" && pwd)
# AOF, fsync once a second: a crash of the machine loses at most the last second of writes; a
# restart of Redis itself loses nothing (it writes the AOF out as it stops).
redis-server --daemonize yes --bind "$host" --port "$port" --save "" --appendonly yes --appendfsync everysec \
  --dir "$state" --pidfile "$state/redis.pid" --logfile "$state/redis.log" >/dev/null
for _ in $(seq 100); do
  redis-cli -h "$host" -p "$port" ping 2>/dev/null | grep -q PONG && { echo "$state/redis.pid"; exit 0; }
  sleep 0.1
done
echo "ensure_redis: started redis-server on $host:$port but it does not answer; see $state/redis.log" >&2
exit 1
