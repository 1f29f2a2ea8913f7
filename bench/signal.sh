#!/usr/bin/env bash
# Signalling relay benchmark: peerbox against the seed re-creation (bench/seed-server), the same
# loads from the same load generator (src/bin/loadgen/), alternating, ROUNDS rounds, medians.
# Loopback only; each server is started fresh for every run. About 4 minutes with the defaults.
#
#   bench/signal.sh            # ROUNDS=3 DURATION=10 CLIENTS=200 ROOM=4 RATES="10000 14000" IDLE=10000
#
# Loads: max (closed loop, WINDOW messages in flight per client), each of RATES messages/s in
# total (open loop; 14000 is the issue's figure for the original server), IDLE idle connections
# (IDLE=0 skips it), and for peerbox (and BEFORE) only, under the SHIPPED [rooms] limits: a
# legitimate pair's latency while each of HOSTILE hostile sockets not logged in and as many
# logged in send the costliest frame they can (HOSTILE="" skips it; 0 is the quiet figure).
#
# PIN=1 (the default on 2+ CPUs) runs the server under `taskset -c 1` and the load generator
# under `taskset -c 0`: each server gets one core of its own (tokio then starts one worker; Node
# runs its JavaScript on one thread anyway), so neither steals CPU from the load it is measured
# under. Other processes on the host are not kept off those cores. PIN=0 lets all share.
# BEFORE=path/to/an/older/peerbox adds that binary as a third server ("before").
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CLIENTS=${CLIENTS:-200}
ROOM=${ROOM:-4}
WINDOW=${WINDOW:-8}
RATES=${RATES:-${RATE:-10000 14000}}
IDLE=${IDLE:-10000}
HOSTILE=${HOSTILE-0 16}
RELAY=${RELAY:-1}   # 0 skips the max and fixed-rate loads (e.g. to run only the hostile case)
PIN=${PIN:-$([ "$(nproc)" -ge 2 ] && echo 1 || echo 0)}
BEFORE=${BEFORE:-}
# seed: the re-creation as shipped (winston logs every message); seed-nolog: without that logging.
SERVERS=${SERVERS:-"peerbox seed seed-nolog"}
case " $SERVERS " in *" before "*) ;; *) [ -n "$BEFORE" ] && SERVERS="$SERVERS before" ;; esac
if [ "$PIN" = 1 ]; then server_cpu="taskset -c 1"; load_cpu="taskset -c 0"; else server_cpu=; load_cpu=; fi
PB_PORT=${PB_PORT:-18443}
SEED_PORT=${SEED_PORT:-18444}

ulimit -n "$(ulimit -Hn)"
bin_dir=${CARGO_TARGET_DIR:-target}/release
PEERBOX_SKIP_WEB_BUILD=1 cargo build --release --quiet --bin peerbox --bin loadgen
case " $SERVERS " in *" seed"*) [ -d bench/seed-server/node_modules ] || (cd bench/seed-server && npm ci --no-audit --no-fund) ;; esac

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
$(cat bench/limits-off.toml)
TOML
# The hostile case runs under the shipped limits: only the listeners differ.
sed '/^\[rooms\]/,$d' "$tmp/config.toml" > "$tmp/config-shipped.toml"
# An older BEFORE binary may refuse the keys it does not know (those of the per-address limits):
# it gets the same config when it accepts it, else one without them.
cp "$tmp/config.toml" "$tmp/config-before.toml"
if [ -n "$BEFORE" ] && ! "$BEFORE" check-config --config "$tmp/config.toml" > /dev/null 2>&1; then
  grep -v -E '^(bytes_per_second|byte_burst|ip_|max_rooms_per_ip|credential)' "$tmp/config.toml" \
    > "$tmp/config-before.toml"
fi

wait_port() {
  for _ in $(seq 100); do
    (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "server on port $1 did not start" >&2; return 1
}

start() { # start SERVER [CONFIG] -> sets server_pid and port
  case $1 in
    peerbox|before)
      bin=$bin_dir/peerbox; config=${2:-$tmp/config.toml}
      if [ "$1" = before ]; then bin=$BEFORE; config=${2:-$tmp/config-before.toml}; fi
      PEERBOX_LOG=warn $server_cpu "$bin" --config "$config" > "$tmp/peerbox.log" 2>&1 &
      server_pid=$!; port=$PB_PORT ;;
    seed|seed-nolog)
      nolog=; [ "$1" = seed-nolog ] && nolog=--no-log
      $server_cpu node bench/seed-server/server.mjs --port "$SEED_PORT" $nolog \
        --cert "$tmp/ssl/cert.pem" --key "$tmp/ssl/privkey.pem" > "$tmp/seed.log" 2>&1 &
      server_pid=$!; port=$SEED_PORT ;;
  esac
  wait_port "$port"
}
stop() { kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=; }

# The first peerbox start writes the self-signed certificate the seed then uses too.
start peerbox; stop

run() { # run SERVER LOAD ARGS...   (CONFIG=path picks another peerbox config)
  local server=$1 load=$2; shift 2
  start "$server" "${CONFIG:-}"
  local line
  line=$($load_cpu "$bin_dir/loadgen" --url "wss://127.0.0.1:$port/ws" --insecure --pid "$server_pid" "$@" \
         | grep '^RESULT') || line="RESULT failed=1"
  stop
  echo "$server $load $line" | tee -a "$tmp/results"
}

for round in $(seq "$ROUNDS"); do
  echo "== round $round"
  order=$SERVERS; [ $((round % 2)) -eq 0 ] && order=$(echo "$SERVERS" | tr ' ' '\n' | tac | tr '\n' ' ')
  for s in $order; do
    [ "$RELAY" = 1 ] && run "$s" max --clients "$CLIENTS" --room-size "$ROOM" --window "$WINDOW" --duration "$DURATION"
    [ "$RELAY" = 1 ] && for r in $RATES; do
      run "$s" "rate-$r" --clients "$CLIENTS" --room-size "$ROOM" --window 256 --rate "$r" --duration "$DURATION"
    done
    if [ "$IDLE" -gt 0 ]; then run "$s" idle --idle "$IDLE" --sources 4 --connect-concurrency 100; fi
    case $s in peerbox|before)
      for h in $HOSTILE; do
        CONFIG="$tmp/config-shipped.toml" run "$s" "hostile-$h" --hostile "$h" --sources 4 --duration "$DURATION"
      done ;;
    esac
  done
done

python3 - "$tmp/results" "$SERVERS" "$RATES" "$HOSTILE" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    server, load, _, *kv = line.split()
    d = dict(x.split("=", 1) for x in kv)
    rows.setdefault((load, server), []).append(d)
def med(load, server, key):
    vals = []
    for d in rows.get((load, server), []):
        try:
            if key == "msgs_per_cpu_s":  # relayed messages per second of server CPU time
                vals.append(1e6 / float(d["cpu_us_per_msg"]))
            else:
                vals.append(float(d.get(key, "nan").rstrip("%")))
        except (KeyError, ValueError, ZeroDivisionError): pass
    vals = [v for v in vals if v == v]
    return statistics.median(vals) if vals else float("nan")
relay = ["delivered_per_s", "p50_ms", "p99_ms", "errors", "rss_mb", "server_cpu",
         "cpu_us_per_msg", "msgs_per_cpu_s"]
servers = sys.argv[2].split()
rates = [f"rate-{r}" for r in sys.argv[3].split()]
hostile = [f"hostile-{h}" for h in sys.argv[4].split()]
cols = {"max": relay, **{r: relay for r in rates},
        "idle": ["opened", "open_after_hold", "rss_mb"],
        **{h: ["p50_ms", "p99_ms", "max_ms", "lost", "hostile_frames_sent", "rss_mb", "server_cpu"]
           for h in hostile}}
for load, keys in cols.items():
    if (load, "peerbox") not in rows:
        continue
    print(f"\n### {load} (median of {len(rows.get((load, 'peerbox'), []))} runs)")
    print("| server | " + " | ".join(keys) + " |")
    print("|---|" + "---|" * len(keys))
    for server in servers:
        if (load, server) not in rows:
            continue
        print(f"| {server} | " + " | ".join(f"{med(load, server, k):.2f}" for k in keys) + " |")
for h in hostile[1:]:
    for server in ["peerbox", "before"]:
        q = med(hostile[0], server, "p99_ms")
        if q == q and (h, server) in rows:
            print(f"{server} {h}: legitimate p99 {med(h, server, 'p99_ms') / q:.1f}x its quiet figure")
if ("max", "peerbox") not in rows:
    sys.exit(0)
t = med("max", "peerbox", "delivered_per_s") / med("max", "seed", "delivered_per_s")
pm = med("max", "seed", "p99_ms") / med("max", "peerbox", "p99_ms")
e = med("max", "peerbox", "msgs_per_cpu_s") / med("max", "seed", "msgs_per_cpu_s")
print(f"\nthroughput peerbox/seed (max load): {t:.1f}x")
print(f"messages per server CPU-second peerbox/seed (max load): {e:.1f}x")
print(f"p99 seed/peerbox at max load: {pm:.1f}x")
for r in rates:
    p = med(r, "seed", "p99_ms") / med(r, "peerbox", "p99_ms")
    er = med(r, "peerbox", "msgs_per_cpu_s") / med(r, "seed", "msgs_per_cpu_s")
    print(f"{r} msg/s: p99 seed/peerbox {p:.1f}x, messages per server CPU-second {er:.1f}x")
if "before" in servers:
    for load in ["max", *rates]:
        b = med(load, "peerbox", "msgs_per_cpu_s") / med(load, "before", "msgs_per_cpu_s")
        print(f"messages per server CPU-second peerbox/before ({load}): {b:.2f}x")
if "seed-nolog" in servers:
    tn = med("max", "peerbox", "delivered_per_s") / med("max", "seed-nolog", "delivered_per_s")
    en = med("max", "peerbox", "msgs_per_cpu_s") / med("max", "seed-nolog", "msgs_per_cpu_s")
    pn = " ".join(f"{r}: {med(r, 'seed-nolog', 'p99_ms') / med(r, 'peerbox', 'p99_ms'):.1f}x" for r in rates)
    print(f"against seed-nolog: throughput {tn:.1f}x, messages per CPU-second {en:.1f}x, p99 {pn}")
PY
