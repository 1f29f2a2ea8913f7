#!/usr/bin/env bash
# SFU benchmark: peerbox's SFU against Janus 1.1.2's VideoRoom (Debian package `janus`), the
# same members and media from the same load generator (`loadgen --sfu`, src/bin/loadgen/sfu.rs
# and janus.rs), alternating, ROUNDS rounds per room size, medians at the end. Every member publishes one VP8 file (made here with ffmpeg: MEDIA_SIZE,
# MEDIA_FPS, MEDIA_KBPS) and receives every other member's video.
#
#   sudo bench/sfu.sh            # ROUNDS=3 SIZES="4 10 16" DURATION=10
#
# Runs inside its own network namespace (unshare -n): a veth pair gives both servers the
# non-loopback address 10.77.0.1 (Janus skips loopback interfaces when gathering). PIN=1 (the
# default) runs the server on core 1 and the load generator on core 0: "on one core" means the
# server has exactly one. Reported per run: delivery (frames received / frames expected, 1.0 is
# no loss), delivery on the videos not paused (peerbox pauses whole videos a subscriber's
# bandwidth cannot carry, `sfu-paused`; Janus pauses none) and how many are paused, the server's
# CPU per forwarded RTP/RTCP datagram, its RSS per subscription and join-to-first-key-frame. Needs root (namespaces), janus and ffmpeg (installed if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
SIZES=${SIZES:-4 10 16}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}
MEDIA_SIZE=${MEDIA_SIZE:-640x360}
MEDIA_FPS=${MEDIA_FPS:-30}
MEDIA_KBPS=${MEDIA_KBPS:-500}
SERVERS=${SERVERS:-peerbox janus}
# SIMULCAST=1: each member publishes three layers (h: the media above; m and l at half and a
# quarter of its size and SIM_M_KBPS, SIM_L_KBPS) and shows every other member in a small tile,
# so the server forwards `l`: the issue's "25 people, the low layer for small tiles". peerbox is
# told with `sfu-view` 160x90, Janus with `configure` `substream` 0 on every video m-line.
SIMULCAST=${SIMULCAST:-0}
SIM_M_KBPS=${SIM_M_KBPS:-150}
SIM_L_KBPS=${SIM_L_KBPS:-60}
# sfu.max_room_members for the run (the shipped default is 25: raise it for bigger SIZES).
MAX_ROOM_MEMBERS=${MAX_ROOM_MEMBERS:-25}
# sfu.max_subscriber_kbps for the run (the shipped default, 6000, pauses the videos over it;
# Janus has no such ceiling: MAX_SUBSCRIBER_KBPS=20000 has both servers forward everything).
MAX_SUBSCRIBER_KBPS=${MAX_SUBSCRIBER_KBPS:-6000}
PIN=${PIN:-$([ "$(nproc)" -ge 2 ] && echo 1 || echo 0)}

if [ -z "${PEERBOX_SFU_BENCH_NS:-}" ]; then
  command -v janus >/dev/null && command -v ffmpeg >/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq janus ffmpeg >/dev/null; }
  PEERBOX_SKIP_WEB_BUILD=1 cargo build --release --quiet --bin peerbox --bin loadgen
  exec env PEERBOX_SFU_BENCH_NS=1 unshare -n bash "$0" "$@"
fi

if [ "$PIN" = 1 ]; then server_cpu="taskset -c 1"; load_cpu="taskset -c 0"; else server_cpu=; load_cpu=; fi
bin_dir=$(realpath -m "${CARGO_TARGET_DIR:-target}/release")
IP=10.77.0.1
ip link set lo up
ip link add pbx0 type veth peer name pbx1
ip addr add "$IP/24" dev pbx0
ip link set pbx0 up
ip link set pbx1 up

tmp=$(mktemp -d)
server_pid=
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
ffmpeg -loglevel error -y -f lavfi -i "testsrc=size=$MEDIA_SIZE:rate=$MEDIA_FPS" -c:v libvpx \
  -b:v "${MEDIA_KBPS}k" -g $((MEDIA_FPS * 2)) -deadline realtime -t 20 "$tmp/media.ivf"
simulcast_args=()
if [ "$SIMULCAST" = 1 ]; then
  for l in "m 2 $SIM_M_KBPS" "l 4 $SIM_L_KBPS"; do
    read -r rid div kbps <<<"$l"
    ffmpeg -loglevel error -y -f lavfi -i "testsrc=size=$MEDIA_SIZE:rate=$MEDIA_FPS" \
      -vf "scale=iw/$div:ih/$div" -c:v libvpx -b:v "${kbps}k" -g $((MEDIA_FPS * 2)) \
      -deadline realtime -t 20 "$tmp/media.$rid.ivf"
  done
  simulcast_args=(--simulcast "$tmp/media.m.ivf,$tmp/media.l.ivf")
fi

mkdir -p "$tmp/ssl"
cat > "$tmp/config.toml" <<TOML
hostname = "localhost"
[https]
listen = ["$IP:443"]
[http]
listen = []
[tls]
dir = "ssl"
[metrics]
listen = []
[turn]
listen = []
[sfu]
enabled = true
listen = "$IP:19500"
max_room_members = $MAX_ROOM_MEMBERS
max_subscriber_kbps = $MAX_SUBSCRIBER_KBPS
[rooms]
capacity = 50
sfu_from = 1
# Every member logs in from the one bench address: the per-address credential allowance
# (20 a minute, bursts of 30) would refuse the 31st.
credentials_per_minute = 1000
credential_burst = 1000
TOML

wait_http() { for _ in $(seq 100); do curl -sk "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "no answer from $1" >&2; return 1; }

start() {
  case $1 in
    peerbox)
      (cd "$tmp" && exec $server_cpu "$bin_dir/peerbox" --config config.toml) >"$tmp/peerbox.log" 2>&1 &
      server_pid=$!; wait_http "https://$IP/" || { tail -n 5 "$tmp/peerbox.log" >&2; return 1; } ;;
    janus)
      $server_cpu janus -F /etc/janus -E pbx0 -r 20000-29999 -d 2 >"$tmp/janus.log" 2>&1 &
      server_pid=$!; wait_http "http://$IP:8088/janus/info" ;;
  esac
}
# LOGS=DIR keeps each run's server log and load generator errors there.
stop() {
  kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=
  if [ -n "${LOGS:-}" ]; then mkdir -p "$LOGS"; cp "$tmp/$1.log" "$LOGS/$1-$2-$3.log"; cp "$tmp/load.err" "$LOGS/load-$1-$2-$3.err" 2>/dev/null || true; fi
}

load() {
  local server=$1 n=$2 url backend
  case $server in
    peerbox) url="wss://$IP:443/"; backend=peerbox ;;
    janus) url="http://$IP:8088/janus"; backend=janus ;;
  esac
  $load_cpu "$bin_dir/loadgen" --url "$url" --insecure --backend "$backend" --sfu "$n" \
    --media "$tmp/media.ivf" --media-ip "$IP" --pid "$server_pid" --duration "$DURATION" \
    --warmup "$WARMUP" --room "bench-$RANDOM" --janus-room $((1000 + RANDOM)) \
    ${simulcast_args[@]+"${simulcast_args[@]}"} 2>"$tmp/load.err" | grep "^RESULT" || { echo "RESULT backend=$backend members=$n failed=run"; { head -n 5 "$tmp/load.err"; tail -n 3 "$tmp/$server.log"; } >&2; }
}

results="$tmp/results"
for round in $(seq "$ROUNDS"); do
  for n in $SIZES; do
    for s in $SERVERS; do
      start "$s"
      line=$(load "$s" "$n")
      stop "$s" "$n" "$round"
      echo "round=$round $line" | tee -a "$results"
    done
  done
done

echo
echo "medians over $ROUNDS rounds (media ${MEDIA_SIZE}@${MEDIA_FPS} ${MEDIA_KBPS} kbit/s, SIMULCAST=$SIMULCAST, PIN=$PIN):"
python3 - "$results" <<'PY'
import sys, statistics, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    kv = dict(p.split('=', 1) for p in line.split() if '=' in p)
    rows[(int(kv.get('members', 0)), kv.get('backend', '?'))].append(kv)
keys = ['delivery', 'delivery_forwarded', 'paused_avg', 'packets_per_s', 'cpu_us_per_packet', 'rss_kb_per_subscription', 'first_frame_median_s']
print('members backend ' + ' '.join(keys))
for (n, b), rs in sorted(rows.items()):
    def med(k):
        v = [float(r[k]) for r in rs if k in r and r[k] not in ('-', 'nan')]
        return f"{statistics.median(v):.4g}" if v else '-'
    print(n, b, ' '.join(med(k) for k in keys), f"(runs={len(rs)})")
PY
