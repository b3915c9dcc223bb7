#!/usr/bin/env bash
# `npm run bench` (after `npm run build`): sets up the loopback origin (bench/setup.sh),
# runs every scenario with rangeget and its peers (bench/run.mjs) and prints the report.
# Quick run: BIG_MIB=128 MID_MIB=64 BATCH_COUNT=20 TINY_COUNT=500 RUNS=1 QUICK=1 npm run bench
# One scenario: RUNS=1 ONLY=start npm run bench. The other variables are in setup.sh, run.mjs.
# nginx is stopped at the end unless it was already running (then it is left as it was).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export BENCH_DIR=${BENCH_DIR:-/tmp/rangeget-bench}
pidfile=$BENCH_DIR/nginx/nginx.pid

[ -f "$root/dist/cli/main.js" ] || { echo "bench: rangeget is not built: run npm run build" >&2; exit 1; }

nginx_was_running=false
if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then nginx_was_running=true; fi
stop_nginx() {
  if ! $nginx_was_running && [ -s "$pidfile" ]; then
    PATH=$PATH:/usr/sbin nginx -q -p "$BENCH_DIR/nginx" -c "$BENCH_DIR/nginx/nginx.conf" -s quit 2>/dev/null || true
  fi
}
trap stop_nginx EXIT

"$root/bench/setup.sh"
cd "$root"
node bench/run.mjs
# The stream rows (-o -, --extract, --checksum) and their goals, against their own Node
# origins on 127.0.0.1; QUICK=1 makes them short, ONLY picks them too. STREAMS=0 skips them.
if [ "${STREAMS:-1}" != 0 ]; then BENCH_DIR=$BENCH_DIR/streams node bench/streams.mjs; fi
