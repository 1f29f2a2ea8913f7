#!/usr/bin/env bash
# Interop with coturn's client tools: runs turnutils_stunclient and turnutils_uclient (in
# several modes) against a peerbox binary on loopback and requires zero loss.
# Usage: tests/interop/turnutils.sh [PEERBOX_BINARY] [-p TURN_PORT]
# Prints one "ok"/"FAIL" line per case and "N passed, N failed"; exits non-zero on failure.
set -u

BIN=target/release/peerbox
PORT=""
while [ $# -gt 0 ]; do
  case "$1" in
    -p) PORT="$2"; shift 2 ;;
    *) BIN="$1"; shift ;;
  esac
done
[ -x "$BIN" ] || { echo "peerbox binary not found at $BIN" >&2; exit 2; }

if ! command -v turnutils_uclient >/dev/null; then
  echo "installing coturn (for turnutils_uclient)" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq coturn) >/dev/null 2>&1 \
    || { echo "cannot install coturn" >&2; exit 3; }
fi

. "$(dirname "$0")/lib.sh"

[ -n "$PORT" ] || PORT=$(free_port)
PEERPORT=$(free_port)
PEERPORT6=$(free_port)
SECRET=interop-secret
USER=alice
PASS=wonderland

make_workdir

# IPv6 cases need ::1 on the loopback interface (present unless IPv6 is disabled).
HAVE_V6=0
python3 -c 'import socket; socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).bind(("::1", 0))' \
  2>/dev/null && HAVE_V6=1
TURN_V6=$HAVE_V6 write_peerbox_config "$PORT" <<TOML
relay_ports = "41000-41999"
secret = "$SECRET"
users = ["$USER:$PASS"]
allowed_peers = ["127.0.0.1/32", "::1/128"]
user_quota = 100
TOML

PEERBOX_LOG=${PEERBOX_LOG:-warn} "$BIN" -c "$DIR/config.toml" >"$DIR/peerbox.log" 2>&1 &
PIDS+=($!)
turnutils_peer -p "$PEERPORT" -L 127.0.0.1 >"$DIR/peer.log" 2>&1 &
PIDS+=($!)
if [ "$HAVE_V6" = 1 ]; then
  turnutils_peer -p "$PEERPORT6" -L ::1 >"$DIR/peer6.log" 2>&1 &
  PIDS+=($!)
fi

# Wait for the TURN port to answer.
for _ in $(seq 50); do
  if timeout 2 turnutils_stunclient -p "$PORT" 127.0.0.1 >/dev/null 2>&1; then break; fi
  sleep 0.1
done

PASSED=0
FAILED=0
report() {
  if [ "$1" = ok ]; then PASSED=$((PASSED + 1)); echo "ok   $2"; else FAILED=$((FAILED + 1)); echo "FAIL $2"; fi
}

# STUN Binding.
if out=$(timeout 10 turnutils_stunclient -p "$PORT" 127.0.0.1 2>&1) && grep -q "UDP reflexive addr: 127.0.0.1" <<<"$out"; then
  report ok "stunclient binding"
else
  report fail "stunclient binding"; echo "$out" | tail -5
fi

# uclient's report: "Total lost packets N (P%)", "Total send dropped N", and it must have
# received what it sent. SERVER, PEER and PEER_PORT pick the addresses (IPv4 by default).
uclient_case() {
  local name="$1"; shift
  local out
  out=$(timeout 60 turnutils_uclient "$@" -e "${PEER:-127.0.0.1}" -r "${PEER_PORT:-$PEERPORT}" \
        -p "$PORT" -m 2 -n 20 "${SERVER:-127.0.0.1}" 2>&1)
  local rc=$?
  uclient_counts "$out"
  if [ $rc -eq 0 ] && [ "${LOST:-x}" = 0 ] && [ -n "$SENT" ] && [ "$SENT" -gt 0 ] && [ "$SENT" = "$RECV" ]; then
    report ok "uclient $name (sent $SENT, received $RECV, lost $LOST)"
  else
    report fail "uclient $name (rc $rc, sent ${SENT:-?}, received ${RECV:-?}, lost ${LOST:-?})"
    echo "$out" | tail -15 | sed 's/^/    /'
  fi
}

uclient_case "plain" -u "$USER" -w "$PASS"
uclient_case "-c" -c -u "$USER" -w "$PASS"
uclient_case "-s" -s -u "$USER" -w "$PASS"
uclient_case "-c -s" -c -s -u "$USER" -w "$PASS"
uclient_case "-y" -y -u "$USER" -w "$PASS"
uclient_case "-y -c" -y -c -u "$USER" -w "$PASS"
uclient_case "-t" -t -u "$USER" -w "$PASS"
uclient_case "-t -c" -t -c -u "$USER" -w "$PASS"
uclient_case "-W (REST credentials)" -W "$SECRET" -u bob
uclient_case "-y -l 3000" -y -l 3000 -u "$USER" -w "$PASS"
# IPv6: client, relay and peer all on ::1 (-x asks for an IPv6 relay address), over UDP and
# TCP; and an IPv6 client relaying to an IPv4 peer through an IPv4 relay address.
if [ "$HAVE_V6" = 1 ]; then
  if out=$(timeout 10 turnutils_stunclient -p "$PORT" ::1 2>&1) && grep -q "UDP reflexive addr: ::1" <<<"$out"; then
    report ok "stunclient binding over IPv6"
  else
    report fail "stunclient binding over IPv6"; echo "$out" | tail -5
  fi
  SERVER=::1 PEER=::1 PEER_PORT=$PEERPORT6 uclient_case "IPv6 -x" -x -u "$USER" -w "$PASS"
  SERVER=::1 PEER=::1 PEER_PORT=$PEERPORT6 uclient_case "IPv6 -x -c" -x -c -u "$USER" -w "$PASS"
  SERVER=::1 PEER=::1 PEER_PORT=$PEERPORT6 uclient_case "IPv6 -x -t" -x -t -u "$USER" -w "$PASS"
  SERVER=::1 uclient_case "IPv6 client, IPv4 relay and peer" -X -u "$USER" -w "$PASS"
else
  echo "skip IPv6 cases: no ::1 on this machine's loopback"
fi

echo "$PASSED passed, $FAILED failed"
if [ "$FAILED" -ne 0 ]; then
  echo "--- peerbox log (tail)"; tail -20 "$DIR/peerbox.log"
  exit 1
fi
