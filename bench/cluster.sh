#!/usr/bin/env bash
# Cluster benchmark (issue #14): signalling throughput and latency across three peerbox nodes
# sharing rooms through Redis, the members of every room spread over the nodes (client i on
# node i mod 3, so most messages cross a node-to-node relay link), against one node; and the
# time from login to `joined` with and without Redis in the path. Same load generator
# (src/bin/loadgen: the relay load of bench/signal.sh, and `--joins`), alternating setups,
# ROUNDS rounds, medians at the end.
#
#   sudo bench/cluster.sh        # ROUNDS=3 DURATION=10 CLIENTS=200 ROOM=4 RATES="4000" JOINS=300
#
# Setups: `one` (one node, no [cluster], no Redis), `three` (Redis and three nodes), and for the
# joins also `one-redis` (a cluster of one node: a new room is placed through Redis, but no
# relay). Runs inside its own network namespace (unshare -n): the nodes listen on 10.78.0.1-3
# and Redis on 10.78.0.9 (addresses on the namespace's lo, not 127.0.0.0/8), so nothing else
# on the host is reached or in the way. PIN=1 (the default on 2+ CPUs) puts every server-side
# process (the node or nodes, Redis) on core 1 and the load generator on core 0: the cluster
# gets the same one core the single node has, and its CPU figures are the sum of all of its
# processes. PRIO (default -20) is the nice value of every benchmark process: on a machine
# shared with other work, the scheduler would otherwise split core 1 between them by process
# count, giving three nodes more of it than one. Each setup is started fresh for every run.
# Needs root (namespaces, negative nice) and redis-server.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CLIENTS=${CLIENTS:-200}
ROOM=${ROOM:-4}
WINDOW=${WINDOW:-8}
RATES=${RATES:-4000}
JOINS=${JOINS:-300}
PIN=${PIN:-$([ "$(nproc)" -ge 2 ] && echo 1 || echo 0)}
PRIO=${PRIO:--20}

if [ -z "${PEERBOX_CLUSTER_BENCH_NS:-}" ]; then
  command -v redis-server >/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }
  PEERBOX_SKIP_WEB_BUILD=1 cargo build --release --quiet --bin peerbox --bin loadgen
  exec env PEERBOX_CLUSTER_BENCH_NS=1 unshare -n bash "$0" "$@"
fi

if [ "$PIN" = 1 ]; then server_cpu="taskset -c 1"; load_cpu="taskset -c 0"; else server_cpu=; load_cpu=; fi
server_cpu="nice -n $PRIO $server_cpu"; load_cpu="nice -n $PRIO $load_cpu"
bin_dir=$(realpath "${CARGO_TARGET_DIR:-target}/release")
NET=10.78.0
ip link set lo up
for i in 1 2 3 9; do ip addr add "$NET.$i/32" dev lo; done
ulimit -n "$(ulimit -Hn)"

tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT


node_config() { # node_config N CLUSTER(0/1) -> $tmp/nN/config.toml
  local n=$1 dir="$tmp/n$1"
  mkdir -p "$dir/ssl"
  {
    printf 'hostname = "localhost"\n[https]\nlisten = ["%s:443"]\n[http]\nlisten = []\n' "$NET.$n"
    printf '[tls]\ndir = "ssl"\n[metrics]\nlisten = []\n'
    printf '[turn]\nlisten = []\nsecret = "turn-secret-turn-secret-turn-secret-0123"\n'
    cat bench/limits-off.toml
    if [ "$2" = 1 ]; then
      printf '[cluster]\nenabled = true\nnode_id = "n%s"\naddress = "%s:443"\n' "$n" "$NET.$n"
      printf 'redis = "redis://%s:6379/0"\nsecret = "cluster-secret-cluster-secret-cluster-0123"\n' "$NET.9"
    fi
  } > "$dir/config.toml"
}

wait_port() { # wait_port IP PORT
  for _ in $(seq 200); do
    (echo > "/dev/tcp/$1/$2") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on $1:$2" >&2; return 1
}

# start SETUP -> node pids in node_pids, every server-side pid in pids, urls in urls
start() {
  local nodes=1 cluster=0
  case $1 in one) ;; one-redis) cluster=1 ;; three) nodes=3 cluster=1 ;; esac
  pids=(); node_pids=(); urls=()
  if [ "$cluster" = 1 ]; then
    $server_cpu redis-server --bind "$NET.9" --port 6379 --save "" --appendonly no \
      --protected-mode no > "$tmp/redis.log" 2>&1 &
    pids+=($!)
    wait_port "$NET.9" 6379
  fi
  for n in $(seq "$nodes"); do
    node_config "$n" "$cluster"
    (cd "$tmp/n$n" && PEERBOX_LOG=warn exec $server_cpu "$bin_dir/peerbox" --config config.toml) \
      > "$tmp/n$n.log" 2>&1 &
    pids+=($!); node_pids+=($!)
    urls+=("wss://$NET.$n:443/ws")
  done
  for n in $(seq "$nodes"); do wait_port "$NET.$n" 443; done
  if [ "$cluster" = 1 ]; then
    # New rooms are placed once the directory's first grace period is over (a refresh
    # interval and two Redis timeouts after the first node registered).
    for _ in $(seq 100); do
      loadgen_args joins 1 >/dev/null 2>&1 && return 0
      sleep 0.2
    done
    echo "the cluster never placed a room" >&2; tail -n 5 "$tmp"/n*.log >&2; return 1
  fi
}
stop() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}

loadgen_args() { # loadgen_args MODE ARGS... : the load generator against the running setup
  local mode=$1; shift
  local extra=()
  for u in "${urls[@]:1}"; do extra+=(--also-url "$u"); done
  for p in "${pids[@]:1}"; do extra+=(--also-pid "$p"); done
  case $mode in
    joins) $load_cpu "$bin_dir/loadgen" --url "${urls[0]}" --insecure "${extra[@]}" --joins "$@" ;;
    relay) $load_cpu "$bin_dir/loadgen" --url "${urls[0]}" --insecure --pid "${pids[0]}" "${extra[@]}" "$@" ;;
  esac
}

run() { # run SETUP LOAD MODE ARGS...
  local setup=$1 load=$2 mode=$3; shift 3
  start "$setup"
  local line
  line=$(loadgen_args "$mode" "$@" 2>>"$tmp/load.err" | grep '^RESULT') || line="RESULT failed=1"
  stop
  echo "$setup $load $line" | tee -a "$tmp/results"
}

for round in $(seq "$ROUNDS"); do
  echo "== round $round"
  order="one three"; [ $((round % 2)) -eq 0 ] && order="three one"
  for s in $order; do
    run "$s" max relay --clients "$CLIENTS" --room-size "$ROOM" --window "$WINDOW" --duration "$DURATION"
    for r in $RATES; do
      run "$s" "rate-$r" relay --clients "$CLIENTS" --room-size "$ROOM" --window 256 --rate "$r" --duration "$DURATION"
    done
  done
  order="one one-redis three"; [ $((round % 2)) -eq 0 ] && order="three one-redis one"
  for s in $order; do run "$s" joins joins "$JOINS"; done
done

echo
echo "medians over $ROUNDS rounds (CLIENTS=$CLIENTS ROOM=$ROOM DURATION=$DURATION PIN=$PIN):"
python3 - "$tmp/results" "$RATES" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    setup, load, _, *kv = line.split()
    rows.setdefault((load, setup), []).append(dict(x.split("=", 1) for x in kv if "=" in x))
def med(load, setup, key):
    vals = []
    for d in rows.get((load, setup), []):
        try:
            vals.append(float(d[key].rstrip("%")))
        except (KeyError, ValueError):
            pass
    return statistics.median(vals) if vals else float("nan")
relay = ["delivered_per_s", "p50_ms", "p99_ms", "errors", "rss_mb", "server_cpu", "cpu_us_per_msg"]
loads = ["max"] + [f"rate-{r}" for r in sys.argv[2].split()]
for load in loads:
    print(f"\n### {load}")
    print("| setup | runs | " + " | ".join(relay) + " |")
    print("|---|---|" + "---|" * len(relay))
    for s in ["one", "three"]:
        if (load, s) in rows:
            print(f"| {s} | {len(rows[(load, s)])} | " + " | ".join(f"{med(load, s, k):.2f}" for k in relay) + " |")
joins = ["first_p50_ms", "first_p99_ms", "second_p50_ms", "second_p99_ms"]
print("\n### joins (login to joined, one at a time)")
print("| setup | runs | " + " | ".join(joins) + " |")
print("|---|---|" + "---|" * len(joins))
for s in ["one", "one-redis", "three"]:
    if ("joins", s) in rows:
        print(f"| {s} | {len(rows[('joins', s)])} | " + " | ".join(f"{med('joins', s, k):.3f}" for k in joins) + " |")
print()
r = lambda load, k: med(load, "three", k) / med(load, "one", k)
print(f"max load, three nodes / one: throughput {r('max', 'delivered_per_s'):.2f}x, "
      f"p99 {r('max', 'p99_ms'):.2f}x, server CPU per message {r('max', 'cpu_us_per_msg'):.2f}x")
for load in loads[1:]:
    print(f"{load} msg/s, three nodes / one: p50 {r(load, 'p50_ms'):.2f}x, p99 {r(load, 'p99_ms'):.2f}x, "
          f"server CPU per message {r(load, 'cpu_us_per_msg'):.2f}x")
j = lambda s, k: med("joins", s, k) / med("joins", "one", k)
print(f"join p50 / one node's: first member (a new room) one-redis {j('one-redis', 'first_p50_ms'):.2f}x, "
      f"three {j('three', 'first_p50_ms'):.2f}x; second member (three: on another node than the home) "
      f"one-redis {j('one-redis', 'second_p50_ms'):.2f}x, three {j('three', 'second_p50_ms'):.2f}x")
PY
