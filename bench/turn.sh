#!/usr/bin/env bash
# TURN benchmark: peerbox against coturn on loopback, the same coturn turnutils_uclient
# loads against each (alternating), reporting loss and server CPU time per relayed packet;
# then the same first load while 2000 other allocations are held, and an unauthenticated
# Allocate flood from many source addresses with the servers' RSS before and after.
#
# CPU per relayed packet = (utime + stime of the server process, from /proc/PID/stat, after
# the load minus before) / (messages uclient sent + messages it received back). Each of those
# crossed the server once: client -> peer, then the echo peer -> client.
#
# With TRANSPORT=tls the loads run over TLS (uclient -t -S): against peerbox's HTTPS port (TURN
# over TLS shares it) and coturn's own TLS listener, both with the same certificate.
#
# Usage: bash bench/turn.sh            (ROUNDS=3 by default; LOADS="1 2 3 4" picks loads)
#        TRANSPORT=tls HOLD=0 FLOOD_REQUESTS=0 bash bench/turn.sh
# Needs coturn's turnserver, turnutils_uclient and turnutils_peer, and python3.
set -u
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
LOADS=${LOADS:-"1 2 3 4"}
HOLD=${HOLD:-2000}
FLOOD_REQUESTS=${FLOOD_REQUESTS:-200000}
FLOOD_SOURCES=${FLOOD_SOURCES:-50000}
USER=bench
PASS=benchpass
SECRET=bench-secret
REALM=peerbox.bench

TRANSPORT=${TRANSPORT:-udp}
case "$TRANSPORT" in
  udp) TARGS="" ;;
  tls) TARGS="-t -S" ;;
  *) echo "bench/turn.sh: TRANSPORT is udp or tls" >&2; exit 2 ;;
esac

load_args() {
  case "$1" in
    1) echo "-c -m 20 -n 5000 -l 100 -z 1" ;;
    2) echo "-c -m 10 -n 5000 -l 1200 -z 1" ;;
    3) echo "-c -m 200 -n 250 -l 160 -z 20" ;;
    4) echo "-c -s -m 20 -n 5000 -l 100 -z 1" ;;
  esac
}

for t in turnserver turnutils_uclient turnutils_peer python3; do
  command -v $t >/dev/null || { echo "bench/turn.sh: $t is not installed (apt-get install coturn python3)" >&2; exit 2; }
done

if [ -d pwa ]; then export PEERBOX_SKIP_WEB_BUILD=1; fi
if ! build=$(cargo build --release 2>&1); then
  echo "$build" >&2
  echo "bench/turn.sh: cargo build --release failed" >&2
  exit 2
fi
BIN=$PWD/target/release/peerbox

. tests/interop/lib.sh
make_workdir
trap 'exit 130' INT TERM

PB_PORT=$(free_port)
CT_PORT=$(free_port)
PEER_PORT=$(free_port)

write_peerbox_config "$PB_PORT" <<TOML
realm = "$REALM"
relay_ports = "40000-49999"
secret = "$SECRET"
users = ["$USER:$PASS"]
allow_loopback_peers = true
user_quota = 5000
total_quota = 5000
TOML

PEERBOX_LOG=warn "$BIN" -c "$DIR/config.toml" >"$DIR/peerbox.log" 2>&1 &
PB_PID=$!
PIDS+=("$PB_PID")
# The certificate peerbox writes at start (self-signed) is coturn's too.
for _ in $(seq 100); do [ -s "$DIR/ssl/privkey.pem" ] && break; sleep 0.1; done
if [ "$TRANSPORT" = tls ]; then
  CT_TLS_PORT=$(free_port)
  TLS_ARGS=(--tls-listening-port="$CT_TLS_PORT" --cert="$DIR/ssl/cert.pem" --pkey="$DIR/ssl/privkey.pem" --no-dtls)
else
  TLS_ARGS=(--no-tls --no-dtls)
fi
# coturn with the settings above; relay threads left at the default (one per CPU).
turnserver -n --listening-ip=127.0.0.1 --listening-port="$CT_PORT" --relay-ip=127.0.0.1 \
  --min-port=50000 --max-port=59999 --allow-loopback-peers --lt-cred-mech \
  --user="$USER:$PASS" --realm="$REALM" --user-quota=5000 --total-quota=5000 \
  "${TLS_ARGS[@]}" --no-cli --pidfile="$DIR/turnserver.pid" \
  --log-file="$DIR/coturn.log" --simple-log >/dev/null 2>&1 &
CT_PID=$!
PIDS+=("$CT_PID")
# The ports the loads go to: TURN's own port over UDP; peerbox's HTTPS port and coturn's TLS
# port over TLS.
PB_LOAD_PORT=$PB_PORT
CT_LOAD_PORT=$CT_PORT
if [ "$TRANSPORT" = tls ]; then
  PB_LOAD_PORT=$(grep -A1 '^\[https\]' "$DIR/config.toml" | grep -oE ':[0-9]+"' | tr -d ':"')
  CT_LOAD_PORT=$CT_TLS_PORT
fi
turnutils_peer -p "$PEER_PORT" -L 127.0.0.1 >/dev/null 2>&1 &
PIDS+=($!)

for port in "$PB_PORT" "$CT_PORT"; do
  up=""
  for _ in $(seq 50); do
    if timeout 2 turnutils_stunclient -p "$port" 127.0.0.1 >/dev/null 2>&1; then up=1; break; fi
    sleep 0.1
  done
  [ -n "$up" ] || { echo "bench/turn.sh: server on port $port did not start" >&2; tail "$DIR"/*.log >&2; exit 1; }
done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
TICK_US=$((1000000 / $(getconf CLK_TCK)))

# run_load SERVER LOAD: prints "loss_percent us_per_packet relayed"
run_load() {
  local pid port out before after sent recv lost pct
  if [ "$1" = peerbox ]; then pid=$PB_PID; port=$PB_LOAD_PORT; else pid=$CT_PID; port=$CT_LOAD_PORT; fi
  before=$(cpu_ticks "$pid")
  # shellcheck disable=SC2046
  out=$(timeout 120 turnutils_uclient $TARGS $(load_args "$2") -u "$USER" -w "$PASS" \
    -e 127.0.0.1 -r "$PEER_PORT" -p "$port" 127.0.0.1 2>&1)
  after=$(cpu_ticks "$pid")
  sent=$(grep -oE "tot_send_msgs=[0-9]+" <<<"$out" | grep -oE "[0-9]+$" | tail -1)
  recv=$(grep -oE "tot_recv_msgs=[0-9]+" <<<"$out" | grep -oE "[0-9]+$" | tail -1)
  lost=$(grep -oE "Total lost packets [0-9]+ \([0-9.]+%" <<<"$out" | tail -1)
  pct=$(grep -oE "[0-9.]+%" <<<"$lost" | tr -d %)
  if [ -z "$sent" ] || [ -z "$recv" ] || [ $((sent + recv)) -eq 0 ]; then
    { echo "uclient against $1 gave no report:"; tail -5 <<<"$out"; } >&2
    echo "NA NA 0"
    return
  fi
  awk -v d=$((after - before)) -v t="$TICK_US" -v n=$((sent + recv)) -v p="${pct:-NA}" \
    'BEGIN { printf "%s %.2f %d\n", p, d * t / n, n }'
}

median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) print "NA"; else if (NR%2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}'; }

RES="$DIR/results"
: >"$RES"
echo "peerbox pid $PB_PID port $PB_LOAD_PORT, coturn pid $CT_PID port $CT_LOAD_PORT, $TRANSPORT, $ROUNDS rounds"
for r in $(seq "$ROUNDS"); do
  for l in $LOADS; do
    for s in peerbox coturn; do
      # Alternate which server goes first, so neither always follows the other's load.
      [ $((r % 2)) -eq 0 ] && { [ $s = peerbox ] && s=coturn || s=peerbox; }
      set -- $(run_load "$s" "$l")
      echo "$s load$l round$r loss=$1% us_per_packet=$2 relayed=$3"
      echo "$s load$l $1 $2" >>"$RES"
    done
  done
done

report_load() {
  local l=$1 label=$2 pl pc cl cc
  pl=$(awk -v l="$l" '$1=="peerbox" && $2==l {print $3}' "$RES" | median)
  pc=$(awk -v l="$l" '$1=="peerbox" && $2==l {print $4}' "$RES" | median)
  cl=$(awk -v l="$l" '$1=="coturn" && $2==l {print $3}' "$RES" | median)
  cc=$(awk -v l="$l" '$1=="coturn" && $2==l {print $4}' "$RES" | median)
  local ratio
  ratio=$(awk -v a="$pc" -v b="$cc" 'BEGIN { if (b+0 > 0) printf "%.2f", a / b; else print "NA" }')
  echo "| $label | $pl % | $cl % | $pc | $cc | $ratio |"
}

echo
echo "| load (uclient args) | peerbox loss | coturn loss | peerbox µs/pkt | coturn µs/pkt | ratio |"
echo "| --- | --- | --- | --- | --- | --- |"
for l in $LOADS; do report_load "load$l" "\`$(load_args "$l")\`"; done

# The first load again with HOLD other allocations open on each server.
if [ "$HOLD" -gt 0 ]; then
  for s in peerbox coturn; do
    if [ $s = peerbox ]; then port=$PB_PORT; else port=$CT_PORT; fi
    python3 bench/turn_client.py hold 127.0.0.1 "$port" "$USER" "$PASS" "$HOLD" "$DIR/held.$s" 600 &
    HOLD_PID=$!
    PIDS+=("$HOLD_PID")
    for _ in $(seq 600); do [ -s "$DIR/held.$s" ] && break; sleep 0.1; done
    echo "$s: $(cat "$DIR/held.$s" 2>/dev/null || echo 0) allocations held"
    for r in $(seq "$ROUNDS"); do
      set -- $(run_load "$s" 1)
      echo "$s load1 held round$r loss=$1% us_per_packet=$2 relayed=$3"
      echo "$s held $1 $2" >>"$RES"
    done
    kill "$HOLD_PID" 2>/dev/null
    wait "$HOLD_PID" 2>/dev/null
  done
  echo
  echo "| load | peerbox loss | coturn loss | peerbox µs/pkt | coturn µs/pkt | ratio |"
  echo "| --- | --- | --- | --- | --- | --- |"
  report_load held "\`$(load_args 1)\` with $HOLD allocations held"
fi

# Unauthenticated Allocate flood from many source addresses.
if [ "$FLOOD_REQUESTS" -gt 0 ]; then
  echo
  echo "| flood | server | VmRSS before (KiB) | VmRSS after (KiB) | growth per request (bytes) |"
  echo "| --- | --- | --- | --- | --- |"
  for s in peerbox coturn; do
    if [ $s = peerbox ]; then port=$PB_PORT; pid=$PB_PID; else port=$CT_PORT; pid=$CT_PID; fi
    before=$(rss_kb "$pid")
    f=$(timeout 300 python3 bench/turn_client.py flood 127.0.0.1 "$port" "$FLOOD_REQUESTS" "$FLOOD_SOURCES")
    sleep 1
    after=$(rss_kb "$pid")
    growth=$(awk -v a="$after" -v b="$before" -v n="$FLOOD_REQUESTS" 'BEGIN { printf "%.0f", (a - b) * 1024 / n }')
    echo "| $FLOOD_REQUESTS requests, $FLOOD_SOURCES sources ($f) | $s | $before | $after | $growth |"
  done
fi
