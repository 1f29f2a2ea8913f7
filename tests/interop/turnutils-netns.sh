#!/usr/bin/env bash
# Interop with coturn's uclient where users are: peerbox with the SHIPPED defaults (wildcard
# listeners on 443, 80 and 3478, the default peer policy: no allowed_peers, no loopback peers,
# no external_ip) on a non-loopback "internet" address (203.0.113.10 and 2001:db8::10 on a
# veth pair whose both ends stay inside a fresh network namespace). Client-to-client relaying (-y: each
# allocation's peer is the other's relay address, i.e. the server's own address) over UDP,
# TCP and TLS, on 3478 and on the HTTPS port, with long-term and REST credentials; relaying to
# a peer on another host (a second namespace, 203.0.113.20); and a peer on one of the server's
# own ports that is not a relay is refused.
# Usage: tests/interop/turnutils-netns.sh PEERBOX_BINARY   (needs root: unshare -n)
# Prints one "ok"/"FAIL" line per case and "N passed, N failed"; exits non-zero on failure.
set -u

BIN=${1:?usage: turnutils-netns.sh PEERBOX_BINARY}
case $BIN in /*) ;; *) BIN=$(pwd)/$BIN ;; esac
[ -x "$BIN" ] || { echo "peerbox binary not found at $BIN" >&2; exit 2; }
command -v turnutils_uclient >/dev/null || { echo "coturn's turnutils are missing" >&2; exit 3; }
. "$(dirname "$0")/lib.sh"

if [ "${PEERBOX_IN_NETNS:-}" != 1 ]; then
  # A namespace of our own: nothing here is linked to the host's interfaces.
  exec env PEERBOX_IN_NETNS=1 unshare -n bash "$0" "$BIN"
fi

DIR=$(mktemp -d)
PIDS=()
PEERNS=pbx-peer-$$
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  ip netns del "$PEERNS" 2>/dev/null
  rm -rf "$DIR"
}
trap cleanup EXIT

# This namespace is the server's; the peer host is a second one on the other end of a veth.
set -e
ip link set lo up
ip netns add "$PEERNS"
ip link add pbx0 type veth peer name pbx1
ip link set pbx1 netns "$PEERNS"
ip link set pbx0 up
ip addr add 203.0.113.10/24 dev pbx0
ip -6 addr add 2001:db8::10/64 dev pbx0 nodad
ip netns exec "$PEERNS" sh -c 'ip link set lo up && ip link set pbx1 up &&
  ip addr add 203.0.113.20/24 dev pbx1 && ip -6 addr add 2001:db8::20/64 dev pbx1 nodad'
set +e

SECRET=netns-secret
USER=alice
PASS=wonderland
mkdir -p "$DIR/ssl"
# Only what a real install sets: the name, and credentials for the test client. Every
# listener and every TURN policy key stays at its default.
# IPv6 needs listeners of its own ([::] is IPv6 only beside 0.0.0.0, as for UDP).
cat >"$DIR/config.toml" <<TOML
hostname = "peerbox.test"
shutdown_timeout_secs = 2
[https]
listen = ["0.0.0.0:443", "[::]:443"]
[turn]
listen = ["0.0.0.0:3478", "[::]:3478"]
secret = "$SECRET"
users = ["$USER:$PASS"]
TOML

PEERPORT=3480
ip netns exec "$PEERNS" turnutils_peer -p $PEERPORT -L 203.0.113.20 -L 2001:db8::20 >"$DIR/peer.log" 2>&1 &
PIDS+=($!)

PEERBOX_LOG=${PEERBOX_LOG:-info} "$BIN" -c "$DIR/config.toml" >"$DIR/peerbox.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
  if timeout 2 turnutils_stunclient -p 3478 203.0.113.10 >/dev/null 2>&1; then break; fi
  sleep 0.1
done

PASSED=0
FAILED=0
report() {
  if [ "$1" = ok ]; then PASSED=$((PASSED + 1)); echo "ok   $2"; else FAILED=$((FAILED + 1)); echo "FAIL $2"; fi
}

# uclient_case NAME MIN_PERCENT [FLAGS...]: the share of sent messages that must come back
# (100: zero loss) and that some did.
uclient_case() {
  local name="$1" min="$2"; shift 2
  local out rc
  out=$(timeout 60 turnutils_uclient -m 2 -n 20 "$@" 2>&1)
  rc=$?
  uclient_counts "$out"
  if [ $rc -eq 0 ] && [ -n "$SENT" ] && [ "$SENT" -gt 0 ] && [ "${RECV:-0}" -gt 0 ] &&
     [ $((RECV * 100)) -ge $((SENT * min)) ]; then
    report ok "uclient $name (sent $SENT, received $RECV, lost ${LOST:-?})"
  else
    report fail "uclient $name (rc $rc, sent ${SENT:-?}, received ${RECV:-?}, lost ${LOST:-?})"
    echo "$out" | tail -12 | sed 's/^/    /'
  fi
}

V4=203.0.113.10
V6=2001:db8::10
P4="-e 203.0.113.20 -r $PEERPORT"
P6="-e 2001:db8::20 -r $PEERPORT"
# To a peer on another host: zero loss over every transport and port.
uclient_case "udp 3478" 100 -u "$USER" -w "$PASS" -p 3478 $P4 $V4
uclient_case "tcp 3478" 100 -t -u "$USER" -w "$PASS" -p 3478 $P4 $V4
uclient_case "tls 443" 100 -t -S -u "$USER" -w "$PASS" -p 443 $P4 $V4
uclient_case "tls 443, channels" 100 -t -S -c -u "$USER" -w "$PASS" -p 443 $P4 $V4
uclient_case "plain tcp 443" 100 -t -u "$USER" -w "$PASS" -p 443 $P4 $V4
uclient_case "tls 443, REST credentials" 100 -t -S -W "$SECRET" -u bob -p 443 $P4 $V4
uclient_case "ipv6 udp 3478" 100 -x -u "$USER" -w "$PASS" -p 3478 $P6 $V6
uclient_case "ipv6 tls 443" 100 -x -t -S -u "$USER" -w "$PASS" -p 443 $P6 $V6
# Client to client (-y): each allocation's peer is the other one's relay address, one of the
# server's own addresses. Over UDP and plain TCP zero loss; over TLS uclient starts sending
# before its partner's permission is in place and loses the first few packets against coturn's
# own TLS listener too (3-14 of 80 measured here), so only most must arrive.
uclient_case "-y udp 3478" 100 -y -u "$USER" -w "$PASS" -p 3478 $V4
uclient_case "-y udp 3478, send indications" 100 -y -s -u "$USER" -w "$PASS" -p 3478 $V4
uclient_case "-y tcp 3478" 100 -y -t -u "$USER" -w "$PASS" -p 3478 $V4
uclient_case "-y plain tcp 443" 100 -y -t -u "$USER" -w "$PASS" -p 443 $V4
uclient_case "-y udp 3478, REST credentials" 100 -y -W "$SECRET" -u bob -p 3478 $V4
uclient_case "-y tls 443" 75 -y -t -S -u "$USER" -w "$PASS" -p 443 $V4
uclient_case "-y ipv6 udp 3478" 100 -y -x -u "$USER" -w "$PASS" -p 3478 $V6

# A peer on one of the server's own ports that no allocation relays from: refused, so the
# relay cannot reach services on the server (here: its own TURN port and its HTTP port).
for port in 3478 80; do
  out=$(timeout 30 turnutils_uclient -u "$USER" -w "$PASS" -p 3478 -e $V4 -r $port -m 1 -n 5 $V4 2>&1)
  if grep -qiE "403|forbidden" <<<"$out"; then
    report ok "peer on the server's own port $port refused (403)"
  else
    report fail "peer on the server's own port $port was not refused"
    echo "$out" | tail -8 | sed 's/^/    /'
  fi
done

echo "$PASSED passed, $FAILED failed"
if [ "$FAILED" -ne 0 ]; then
  echo "--- peerbox log (tail)"; tail -20 "$DIR/peerbox.log"
  exit 1
fi
