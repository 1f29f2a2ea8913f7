#!/usr/bin/env bash
# Every test peerbox has, on a fresh clone: installs what it needs (Debian packages, npm
# packages), builds the release binary (web client included), then runs the web unit tests,
# the Rust unit and integration tests, the TURN interop run with coturn's client tools, the
# Debian packages (tests/packaging/deb.sh), and the end-to-end tests in real Chromium. Exits
# non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

step() { printf '\n==> %s\n' "$*"; }

need_pkgs=()
command -v chromium >/dev/null || need_pkgs+=(chromium)
command -v turnutils_uclient >/dev/null || need_pkgs+=(coturn)
# tests/acme.rs: a real ACME CA (pebble) and its DNS (pebble-challtestsrv)
command -v pebble >/dev/null || need_pkgs+=(pebble)
command -v openssl >/dev/null || need_pkgs+=(openssl)
command -v setpriv >/dev/null || need_pkgs+=(util-linux)
command -v ip >/dev/null || need_pkgs+=(iproute2)
command -v unshare >/dev/null || need_pkgs+=(util-linux)
# tests/e2e/tests/k-networks.test.mjs: home routers (NAT, UDP blocked) in network namespaces
command -v iptables >/dev/null || need_pkgs+=(iptables)
command -v promtool >/dev/null || need_pkgs+=(prometheus)
# tests/cluster.rs: a real Redis holding the room directory of three nodes
command -v redis-server >/dev/null || need_pkgs+=(redis-server)
# the SFU's DTLS/SRTP: str0m's OpenSSL backend, built from source (openssl-src) so that the binary
# and the arm64 cross build need no system OpenSSL; its build runs perl and make
command -v perl >/dev/null || need_pkgs+=(perl)
command -v make >/dev/null || need_pkgs+=(make)
if ((${#need_pkgs[@]})); then
    step "installing Debian packages: ${need_pkgs[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need_pkgs[@]}"
fi
command -v node >/dev/null || { echo "Node.js 20+ is needed (apt-get install nodejs npm)"; exit 1; }

step "release build (runs npm ci + npm run build in web/ through build.rs)"
cargo build --release --locked --bins

step "web client: type check, lint, unit tests"
(cd web && npm run --silent type-check && npm run --silent lint && npm test --silent)

step "format and lints"
cargo fmt --check
PEERBOX_SKIP_WEB_BUILD=1 cargo clippy --locked --all-targets -- -D warnings

step "rust unit and integration tests (TURN interop with coturn's tools, ACME against pebble)"
PEERBOX_SKIP_WEB_BUILD=1 cargo nextest run --locked --no-fail-fast

step "Debian packages: amd64 and arm64 (cross), contents, scratch install, unit, qemu"
bash tests/packaging/deb.sh all

step "end-to-end tests in real Chromium"
bash tests/e2e/run.sh target/release/peerbox
