#!/usr/bin/env bash
# The volume timings (after `npm run build`, as root): mounts the test volumes
# (scripts/test-volumes.sh), starts the bench's loopback nginx with only the 1 GiB file
# (bench/setup.sh, in its own BENCH_DIR and on its own ports, so it never meets a
# running `npm run bench`), then prints two tables: a 1 GiB download on each volume
# (bench/volumes.mjs) and the lock's cost on each (bench/lock-cost.mjs). nginx is
# stopped at the end unless it was already running; the volumes stay mounted
# (`scripts/test-volumes.sh down` removes them).
#   BENCH_DIR (default /tmp/rangeget-bench-volumes)  BENCH_PORT (default 18190)
#   BIG_MIB (default 1024)  RUNS (default 3)  LOCKS (default 2000)  VOLUMES (see volumes.mjs)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export BENCH_DIR=${BENCH_DIR:-/tmp/rangeget-bench-volumes}
export BENCH_PORT=${BENCH_PORT:-18190}
pidfile=$BENCH_DIR/nginx/nginx.pid

[ -f "$root/dist/lock.js" ] || { echo "bench/volumes: rangeget is not built: run npm run build" >&2; exit 1; }

nginx_was_running=false
if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then nginx_was_running=true; fi
stop_nginx() {
  if ! $nginx_was_running && [ -s "$pidfile" ]; then
    PATH=$PATH:/usr/sbin nginx -q -p "$BENCH_DIR/nginx" -c "$BENCH_DIR/nginx/nginx.conf" -s quit 2>/dev/null || true
  fi
}
trap stop_nginx EXIT

bash "$root/scripts/test-volumes.sh" >/dev/null
BIG_MIB=${BIG_MIB:-1024} MID_MIB=1 BATCH_COUNT=1 TINY_COUNT=1 IPULL=0 "$root/bench/setup.sh"
cd "$root"
# The project's Node (npm scripts put it first on PATH; run by hand, the machine's may be older).
node_bin=$root/node_modules/.bin/node
[ -x "$node_bin" ] || node_bin=node
"$node_bin" bench/volumes.mjs
echo
"$node_bin" bench/lock-cost.mjs
