# Shared by tests/interop/turnutils.sh and bench/turn.sh: free loopback ports, a temporary
# directory with the processes started in it cleaned up on exit, and peerbox's config there.

# A loopback port free for both UDP and TCP (TURN listens on both).
free_port() {
  python3 -c 'import socket
for _ in range(100):
    u=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); u.bind(("127.0.0.1",0)); p=u.getsockname()[1]
    t=socket.socket()
    try:
        t.bind(("127.0.0.1",p)); print(p); break
    except OSError: pass
    finally: t.close(); u.close()'
}

# Makes $DIR; every PID appended to PIDS is killed (and waited for) on exit, then $DIR removed.
make_workdir() {
  DIR=$(mktemp -d)
  PIDS=()
  trap cleanup_workdir EXIT
}
cleanup_workdir() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$DIR"
}

# write_peerbox_config TURN_PORT: $DIR/config.toml with HTTPS/HTTP on free ports and TURN on
# 127.0.0.1:TURN_PORT (and [::1]:TURN_PORT too when TURN_V6=1); the [turn] keys that differ
# come on standard input.
write_peerbox_config() {
  mkdir -p "$DIR/ssl"
  {
    printf 'hostname = "localhost"\nshutdown_timeout_secs = 2\n'
    printf '[https]\nlisten = ["127.0.0.1:%s"]\n' "$(free_port)"
    printf '[http]\nlisten = ["127.0.0.1:%s"]\n' "$(free_port)"
    printf '[tls]\ndir = "ssl"\n'
    # Off: the default 127.0.0.1:9478 would clash between runs side by side.
    printf '[metrics]\nlisten = []\n'
    if [ "${TURN_V6:-0}" = 1 ]; then
      printf '[turn]\nlisten = ["127.0.0.1:%s", "[::1]:%s"]\n' "$1" "$1"
    else
      printf '[turn]\nlisten = ["127.0.0.1:%s"]\n' "$1"
    fi
    cat
  } >"$DIR/config.toml"
}

# uclient_counts OUTPUT: sets LOST, SENT and RECV from a turnutils_uclient report (empty when
# the report lacks them).
uclient_counts() {
  LOST=$(grep -oE "Total lost packets [0-9]+" <<<"$1" | grep -oE "[0-9]+$" | tail -1)
  SENT=$(grep -oE "tot_send_msgs=[0-9]+" <<<"$1" | grep -oE "[0-9]+$" | tail -1)
  RECV=$(grep -oE "tot_recv_msgs=[0-9]+" <<<"$1" | grep -oE "[0-9]+$" | tail -1)
}
