#!/usr/bin/env bash
# Memory given back after a flood: `loadgen --silent 5` (5 rooms of one sender pushing 60 KB
# offers at nine receivers that never read, 50 sockets, 15 s; then all closed) against peerbox
# and, alternating, an older BEFORE binary. Prints RSS before, at the peak, and 10 s and 60 s
# after the close, per run and as medians. Shipped limits except `credential_burst = 1000` for
# the 50 logins. Loopback only; about 90 s per run.
#
#   BEFORE=path/to/older/peerbox ROUNDS=3 bash bench/memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
BEFORE=${BEFORE:-}
PB_PORT=${PB_PORT:-18445}
bin_dir=${CARGO_TARGET_DIR:-target}/release
PEERBOX_SKIP_WEB_BUILD=1 cargo build --release --quiet --bin peerbox --bin loadgen

tmp=$(mktemp -d)
server_pid=
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
mkdir -p "$tmp/ssl"
cat > "$tmp/config.toml" <<TOML
hostname = "localhost"
[https]
listen = ["127.0.0.1:$PB_PORT"]
[http]
listen = []
[tls]
dir = "ssl"
[metrics]
listen = []
[turn]
listen = []
[rooms]
credential_burst = 1000
TOML
rss() { awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$server_pid/status"; }
wait_port() {
  for _ in $(seq 100); do (echo > "/dev/tcp/127.0.0.1/$PB_PORT") 2>/dev/null && return 0; sleep 0.1; done
  echo "server did not start" >&2; return 1
}
one() { # one NAME BINARY
  PEERBOX_LOG=warn "$2" --config "$tmp/config.toml" > "$tmp/peerbox.log" 2>&1 &
  server_pid=$!
  wait_port; sleep 1
  local before peak line
  before=$(rss)
  line=$("$bin_dir/loadgen" --url "wss://127.0.0.1:$PB_PORT/ws" --insecure --pid "$server_pid" \
         --silent 5 --duration 15 --hold 1 | grep '^RESULT')
  peak=$(sed -E 's/.*rss_peak_mb=([0-9.]+).*/\1/' <<<"$line")
  sleep 9; local a10; a10=$(rss)
  sleep 50; local a60; a60=$(rss)
  kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=
  echo "$1 before=$before peak=$peak after10=$a10 after60=$a60" | tee -a "$tmp/results"
}
servers="peerbox"; [ -n "$BEFORE" ] && servers="peerbox before"
for round in $(seq "$ROUNDS"); do
  order=$servers; [ $((round % 2)) -eq 0 ] && order=$(tr ' ' '\n' <<<"$servers" | tac | tr '\n' ' ')
  for s in $order; do
    if [ "$s" = before ]; then one before "$BEFORE"; else one peerbox "$bin_dir/peerbox"; fi
  done
done
python3 - "$tmp/results" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, *kv = line.split()
    for k, v in (x.split("=") for x in kv):
        rows.setdefault(name, {}).setdefault(k, []).append(float(v))
print("| server | RSS before | peak | 10 s after close | 60 s after close |")
print("|---|---|---|---|---|")
for name, d in rows.items():
    print(f"| {name} | " + " | ".join(f"{statistics.median(d[k]):.1f} MB"
          for k in ("before", "peak", "after10", "after60")) + " |")
PY
