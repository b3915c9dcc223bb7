#!/usr/bin/env bash
# Prepares `npm run bench`: installs nginx and the peer tools if missing, writes the test
# files, and starts a loopback nginx with bench/nginx.conf. Idempotent: run it again after
# a reboot or with other sizes. Only 127.0.0.1 is ever served.
#   BENCH_DIR    files, logs, nginx state and peers (default /tmp/rangeget-bench)
#   BIG_MIB      big file in MiB (default 1024)     MID_MIB  mid file in MiB (default 256)
#   BATCH_COUNT  number of 1 MiB files (default 200)
#   TINY_COUNT   number of 4 KiB files (default 5000)
#   BENCH_PORT   first of the four nginx ports (default 18080: full speed, 18081
#                throttled, 18082 throttled and logged, 18083 HTTPS at full speed with a
#                self-signed certificate made here with openssl)
#   IPULL        0 to skip installing ipull (npm), the Node peer
set -euo pipefail
BENCH_DIR=${BENCH_DIR:-/tmp/rangeget-bench}
BIG_MIB=${BIG_MIB:-1024}
MID_MIB=${MID_MIB:-256}
BATCH_COUNT=${BATCH_COUNT:-200}
TINY_COUNT=${TINY_COUNT:-5000}
IPULL=${IPULL:-1}
BENCH_PORT=${BENCH_PORT:-18080}
ports=("$BENCH_PORT" $((BENCH_PORT + 1)) $((BENCH_PORT + 2)) $((BENCH_PORT + 3)))
here=$(cd "$(dirname "$0")" && pwd)
MiB=1048576

say() { echo "bench setup: $*" >&2; }

# --- tools: nginx is required, the peers are optional (their rows say "missing") ---
install_packages() {
  local apt=(apt-get)
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then apt=(sudo apt-get); else
      say "not root and no sudo: cannot install $*"; return 1
    fi
  fi
  say "installing with apt-get: $*"
  # The package lists may be missing or stale on a fresh machine: update once, then retry.
  DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -q "$@" >/dev/null 2>&1 || {
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" update -q >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -q "$@" >/dev/null
  }
}

PATH=$PATH:/usr/sbin:/sbin
missing=()
command -v nginx >/dev/null || missing+=(nginx-light)
command -v curl >/dev/null || missing+=(curl)
command -v wget >/dev/null || missing+=(wget)
command -v aria2c >/dev/null || missing+=(aria2)
command -v axel >/dev/null || missing+=(axel)
command -v lftp >/dev/null || missing+=(lftp)
command -v openssl >/dev/null || missing+=(openssl)
[ -x /usr/bin/time ] || missing+=(time)
if [ ${#missing[@]} -gt 0 ]; then
  install_packages "${missing[@]}" || say "some packages did not install; their rows will say missing"
fi
command -v openssl >/dev/null || { say "openssl is required for the HTTPS origin and could not be installed (apt-get install openssl)"; exit 1; }
command -v nginx >/dev/null || { say "nginx is required and could not be installed (apt-get install nginx-light)"; exit 1; }
[ -x /usr/bin/time ] || { say "/usr/bin/time is required and could not be installed (apt-get install time)"; exit 1; }

# ipull: the most used multi-connection downloader on npm, the peer in our own runtime.
ipull=$BENCH_DIR/peers/node_modules/.bin/ipull
if [ "$IPULL" != 0 ] && [ ! -x "$ipull" ]; then
  mkdir -p "$BENCH_DIR/peers"
  say "installing ipull into $BENCH_DIR/peers"
  npm install --prefix "$BENCH_DIR/peers" --no-audit --no-fund --loglevel=error ipull@4 >/dev/null 2>&1 ||
    say "npm could not install ipull; skipping its rows"
fi

# --- test files: random bytes, rewritten only when a size is wrong ---
www=$BENCH_DIR/www
mkdir -p "$www/batch" "$www/tiny" "$BENCH_DIR/nginx/logs" "$BENCH_DIR/nginx/tmp" "$BENCH_DIR/tls"
random_file() { # path MiB [quiet]
  local bytes=$(($2 * MiB))
  [ "$(stat -c %s "$1" 2>/dev/null || echo -1)" = "$bytes" ] && return 0
  [ "${3:-}" = quiet ] || say "writing $1 ($2 MiB)"
  head -c "$bytes" /dev/urandom > "$1.tmp" && mv "$1.tmp" "$1"
}
random_file "$www/big.bin" "$BIG_MIB"
random_file "$www/mid.bin" "$MID_MIB"
if [ "$(find "$www/batch" -name '*.bin' | wc -l)" != "$BATCH_COUNT" ] || [ ! -f "$www/batch/$((BATCH_COUNT - 1)).bin" ]; then
  say "writing $BATCH_COUNT files of 1 MiB in $www/batch"
  rm -f "$www"/batch/*.bin
fi
for ((i = 0; i < BATCH_COUNT; i++)); do random_file "$www/batch/$i.bin" 1 quiet; done
# The long list: TINY_COUNT files of 4 KiB (per-file cost, and memory as a list grows),
# written by one node process, since 5,000 shell commands take longer than the files.
if [ ! -f "$www/tiny/$((TINY_COUNT - 1)).bin" ] || [ -f "$www/tiny/$TINY_COUNT.bin" ]; then
  say "writing $TINY_COUNT files of 4 KiB in $www/tiny"
  rm -f "$www"/tiny/*.bin
  node -e 'const { randomBytes } = require("node:crypto"); const { writeFileSync } = require("node:fs");
    for (let i = 0; i < Number(process.argv[2]); i++) writeFileSync(`${process.argv[1]}/${i}.bin`, randomBytes(4096));' "$www/tiny" "$TINY_COUNT"
fi
# One byte: a download whose cost is all start-up, probe and finish.
[ -f "$www/one.bin" ] || printf x > "$www/one.bin"

# A self-signed certificate for 127.0.0.1 (every client in the benchmark skips the check).
[ -s "$BENCH_DIR/tls/cert.pem" ] || openssl req -x509 -newkey rsa:2048 -nodes -days 3650 \
  -keyout "$BENCH_DIR/tls/key.pem" -out "$BENCH_DIR/tls/cert.pem" -subj "/CN=127.0.0.1" \
  -addext "subjectAltName=IP:127.0.0.1" 2>/dev/null

# Checksums of everything served, recomputed only when a file is newer than the list.
sums=$www/SHA256SUMS
if [ ! -s "$sums" ] || [ -n "$(find "$www" -name '*.bin' -newer "$sums" | head -n 1)" ] ||
   [ "$(wc -l < "$sums")" != $((BATCH_COUNT + 2)) ]; then
  say "computing SHA-256 of the test files"
  (cd "$www" && sha256sum big.bin mid.bin $(seq -f 'batch/%g.bin' 0 $((BATCH_COUNT - 1))) > SHA256SUMS.tmp &&
    mv SHA256SUMS.tmp SHA256SUMS)
fi
# Lets us tell our nginx from another one already bound to the same ports.
echo "$BENCH_DIR" > "$www/origin.txt"

# --- nginx on loopback ---
conf=$BENCH_DIR/nginx/nginx.conf
sed -e "s#@BENCH_DIR@#$BENCH_DIR#g" -e "s#@PORT_FAST@#${ports[0]}#" \
  -e "s#@PORT_THROTTLED@#${ports[1]}#" -e "s#@PORT_LOGGED@#${ports[2]}#" -e "s#@PORT_TLS@#${ports[3]}#" "$here/nginx.conf" > "$conf"
pidfile=$BENCH_DIR/nginx/nginx.pid
if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  nginx -q -p "$BENCH_DIR/nginx" -c "$conf" -s reload 2>&1 | grep -v 'signal process started' >&2 || true
else
  nginx -q -p "$BENCH_DIR/nginx" -c "$conf" ||
    { say "nginx did not start (ports ${ports[*]} taken?); see $BENCH_DIR/nginx/logs/error.log"; exit 1; }
fi
for port in "${ports[@]}"; do
  scheme=http
  [ "$port" = "${ports[3]}" ] && scheme=https
  for ((try = 0; try < 50; try++)); do
    [ "$(curl -fsSk "$scheme://127.0.0.1:$port/origin.txt" 2>/dev/null)" = "$BENCH_DIR" ] && continue 2
    sleep 0.1
  done
  say "127.0.0.1:$port does not serve $www (another server on that port?)"; exit 1
done
say "nginx up on 127.0.0.1:${ports[0]} (full speed; /noranges/ without range support), :${ports[1]} (16 MiB/s per connection), :${ports[2]} (same, logged), :${ports[3]} (HTTPS, full speed)"
say "stop it with: nginx -p $BENCH_DIR/nginx -c $conf -s quit"
