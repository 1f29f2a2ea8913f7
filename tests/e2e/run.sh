#!/bin/sh
# End-to-end tests of the peerbox web client in real headless Chromium against the real binary.
# Usage: tests/e2e/run.sh [PATH_TO_PEERBOX]   (default: target/release/peerbox)
# Needs root (apt-get when chromium or redis-server is missing, and `unshare -n` for a loopback-only network).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
bin=${1:-${PEERBOX_BIN:-$repo/target/release/peerbox}}
case $bin in /*) ;; *) bin=$(pwd)/$bin ;; esac
if [ ! -x "$bin" ]; then
    echo "run.sh: no peerbox binary at $bin (build it with \`cargo build --release\`, or pass its path)" >&2
    exit 2
fi

if ! command -v redis-server >/dev/null; then
    echo "run.sh: installing Debian's redis-server (the cluster test's directory)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi
# The big-room test (u-big-room) fills a room with load-client members: the load generator built
# beside the binary, publishing VP8 files that ffmpeg makes.
if [ ! -x "$(dirname "$bin")/loadgen" ] && [ -z "${LOADGEN_BIN:-}" ]; then
    echo "run.sh: no loadgen beside $bin: building it (cargo build --release --bin loadgen)" >&2
    (cd "$repo" && PEERBOX_SKIP_WEB_BUILD=1 cargo build --release --locked --bin loadgen) || exit 2
fi
if ! command -v ffmpeg >/dev/null; then
    echo "run.sh: installing Debian's ffmpeg (the big-room test's media)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null
fi
if [ ! -x /usr/bin/chromium ]; then
    echo "run.sh: installing Debian's chromium" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

cd "$here"
npm ci --no-audit --no-fund --loglevel=error
rm -rf out
mkdir -p out

export PEERBOX_BIN="$bin"
# A fresh network namespace with only loopback: hermetic ICE candidates, no port clashes.
exec unshare -n sh -c 'ip link set lo up && exec sh ./run-files.sh'
