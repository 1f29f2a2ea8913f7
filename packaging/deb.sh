#!/usr/bin/env bash
# Builds the Debian package: `bash packaging/deb.sh` (this machine's architecture, amd64 here) or
# `bash packaging/deb.sh arm64` (cross-compiled with Debian's gcc-aarch64-linux-gnu, for a
# Raspberry Pi 3/4/5 or an arm64 VM). Prints the path of the .deb. Needs cargo-deb
# (`cargo install cargo-deb --locked`); for arm64 also `rustup target add
# aarch64-unknown-linux-gnu` and `apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross`.
set -euo pipefail
cd "$(dirname "$0")/.."
arch=${1:-native}

# The packaged unit is systemd/peerbox.service with the binary where the package puts it.
mkdir -p packaging/build
sed 's|/usr/local/bin/peerbox|/usr/bin/peerbox|g' systemd/peerbox.service \
    >packaging/build/peerbox.service
grep -q '^ExecStart=/usr/bin/peerbox ' packaging/build/peerbox.service

args=(--locked)
case "$arch" in
    native | amd64) ;;
    arm64)
        export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
        # ring's C and assembly, built by the cc crate.
        export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
        export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
        args+=(--target aarch64-unknown-linux-gnu)
        ;;
    *) echo "packaging/deb.sh: unknown architecture $arch (amd64 or arm64)" >&2; exit 2 ;;
esac
cargo deb "${args[@]}" 2>&1 | tee packaging/build/cargo-deb.log >&2
# cargo-deb prints the path of what it wrote last.
tail -n 1 packaging/build/cargo-deb.log
