#!/usr/bin/env bash
# The Debian packages as an admin gets them: built with cargo-deb for amd64 and (cross) arm64;
# contents, modes and control fields checked (dpkg-deb -c / -I); installed into a scratch root
# with their maintainer scripts (dpkg --root, scripts run chrootless with DPKG_ROOT); the unit
# verified (systemd-analyze verify); the packaged binaries' --version and check-config run
# (the arm64 one under qemu-aarch64-static). Installs what it needs; each step is bounded.
# Usage: bash tests/packaging/deb.sh [amd64|arm64|all]   (default: all)
set -euo pipefail
cd "$(dirname "$0")/../.."
want=${1:-all}
fail() { echo "tests/packaging: FAIL: $*" >&2; exit 1; }
step() { printf '\n--> %s\n' "$*"; }

need=()
command -v dpkg-deb >/dev/null || need+=(dpkg)
command -v systemd-analyze >/dev/null || need+=(systemd)
if [ "$want" != amd64 ]; then
    command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
    [ -e /usr/aarch64-linux-gnu/lib/libc.so.6 ] || need+=(libc6-dev-arm64-cross)
    command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static)
fi
if ((${#need[@]})); then
    step "installing Debian packages: ${need[*]}"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi
if ! cargo deb --version >/dev/null 2>&1; then
    step "installing cargo-deb from crates.io"
    timeout 1200 cargo install cargo-deb --locked
fi
if [ "$want" != amd64 ] && ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
    step "adding the rustup target aarch64-unknown-linux-gnu"
    timeout 600 rustup target add aarch64-unknown-linux-gnu
fi
# The web app is embedded from pwa/ (built by the release build before this runs).
[ -e pwa/index.html ] && export PEERBOX_SKIP_WEB_BUILD=1

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

check_package() { # ARCH DEB
    local arch=$1 deb=$2 info contents
    step "$arch: control fields and contents of $(basename "$deb")"
    info=$(dpkg-deb -I "$deb")
    grep -q "^ Package: peerbox$" <<<"$info" || fail "no Package: peerbox"
    grep -q "^ Architecture: $arch$" <<<"$info" || fail "Architecture is not $arch: $info"
    grep -q "^ Depends: .*libc6" <<<"$info" || fail "no libc6 in Depends: $info"
    grep -q "^ Section: net$" <<<"$info" || fail "no Section: net"
    dpkg-deb -e "$deb" "$work/control-$arch"
    [ "$(cat "$work/control-$arch/conffiles")" = /etc/peerbox/config.toml ] \
        || fail "conffiles: $(cat "$work/control-$arch/conffiles")"
    for s in postinst prerm postrm; do
        [ -x "$work/control-$arch/$s" ] || fail "no executable $s"
        sh -n "$work/control-$arch/$s" || fail "$s does not parse"
    done
    contents=$(dpkg-deb -c "$deb")
    for want_line in \
        "-rwxr-xr-x (root/root|0/0) .* ./usr/bin/peerbox" \
        "-rw-r--r-- (root/root|0/0) .* ./etc/peerbox/config.toml" \
        "-rw-r--r-- (root/root|0/0) .* ./lib/systemd/system/peerbox.service" \
        "-rw-r--r-- (root/root|0/0) .* ./usr/share/doc/peerbox/README.md" \
        "-rw-r--r-- (root/root|0/0) .* ./usr/share/doc/peerbox/grafana-dashboard.json" \
        "-rw-r--r-- (root/root|0/0) .* ./usr/lib/sysctl.d/60-peerbox.conf"; do
        grep -Eq -- "^$want_line$" <<<"$contents" || fail "missing: $want_line in
$contents"
    done
    # Nothing enabled by the package itself.
    ! grep -q "wants/" <<<"$contents" || fail "the package enables the unit: $contents"
    dpkg-deb -x "$deb" "$work/x-$arch"
}

install_into_scratch_root() { # DEB
    local deb=$1 root="$work/root" uid gid
    step "amd64: dpkg --root install with the maintainer scripts"
    mkdir -p "$root/etc" "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" "$root/usr/sbin"
    : >"$root/var/lib/dpkg/status"
    : >"$root/var/lib/dpkg/available"
    printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
    printf 'root:x:0:\n' >"$root/etc/group"
    printf 'root:*:19000:0:99999:7:::\n' >"$root/etc/shadow"
    printf 'root:*::\n' >"$root/etc/gshadow"
    # The package's libc6/passwd dependencies are not in this empty root.
    timeout 120 dpkg --root="$root" --force-script-chrootless --force-depends \
        --log=/dev/null -i "$deb" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; fail "dpkg -i"; }
    grep -q "is installed but not enabled" "$work/dpkg.log" || fail "no enable hint: $(cat "$work/dpkg.log")"
    grep -q '^peerbox:x:[0-9]*:[0-9]*::/nonexistent:/usr/sbin/nologin$' "$root/etc/passwd" \
        || fail "no peerbox system user: $(cat "$root/etc/passwd")"
    uid=$(awk -F: '$1 == "peerbox" { print $3 }' "$root/etc/passwd")
    gid=$(awk -F: '$1 == "peerbox" { print $3 }' "$root/etc/group")
    [ "$uid" -lt 1000 ] || fail "peerbox uid $uid is not a system uid"
    [ "$(stat -c '%a %u %g' "$root/etc/peerbox/ssl")" = "750 $uid $gid" ] \
        || fail "ssl dir: $(stat -c '%a %u %g' "$root/etc/peerbox/ssl")"
    [ "$(stat -c '%a %u %g' "$root/etc/peerbox/config.toml")" = "640 0 $gid" ] \
        || fail "config: $(stat -c '%a %u %g' "$root/etc/peerbox/config.toml")"
    [ ! -e "$root/etc/systemd/system/multi-user.target.wants/peerbox.service" ] \
        || fail "the unit was enabled"
    dpkg --root="$root" -s peerbox | grep -q '^Status: install ok installed$' || fail "not installed"

    step "amd64: the unit passes systemd-analyze verify"
    # verify resolves ExecStart on this machine: point it at the packaged binary.
    mkdir -p "$work/unit"
    sed "s|/usr/bin/peerbox|$root/usr/bin/peerbox|g; s|/etc/peerbox|$root/etc/peerbox|g" \
        "$root/lib/systemd/system/peerbox.service" >"$work/unit/peerbox.service"
    grep -q '^WatchdogSec=' "$work/unit/peerbox.service" || fail "no WatchdogSec in the unit"
    grep -q '^Type=notify$' "$work/unit/peerbox.service" || fail "not Type=notify"
    out=$(timeout 60 systemd-analyze verify "$work/unit/peerbox.service" 2>&1) || fail "verify: $out"
    # Only complaints about this machine (no systemd running here, other units' files) pass.
    if grep -i "peerbox.service" <<<"$out" | grep -viE "documentation"; then
        fail "systemd-analyze verify: $out"
    fi

    step "amd64: the packaged binary runs"
    "$root/usr/bin/peerbox" --version | grep -qx "peerbox $(version)" || fail "--version"
    out=$(cd "$root" && timeout 30 "$root/usr/bin/peerbox" check-config --config "$root/etc/peerbox/config.toml" 2>&1) \
        || fail "check-config: $out"
    grep -q "configuration is valid" <<<"$out" || fail "check-config: $out"

    step "amd64: remove, then purge"
    timeout 60 dpkg --root="$root" --force-script-chrootless --log=/dev/null -r peerbox >/dev/null
    [ ! -e "$root/usr/bin/peerbox" ] || fail "binary left after remove"
    [ -e "$root/etc/peerbox/config.toml" ] || fail "remove took the conffile"
    timeout 60 dpkg --root="$root" --force-script-chrootless --log=/dev/null -P peerbox >/dev/null
    [ ! -e "$root/etc/peerbox" ] || fail "purge left /etc/peerbox: $(ls -la "$root/etc/peerbox")"
}

version() { grep -m1 '^version' Cargo.toml | cut -d'"' -f2; }

run_arm64_binary() {
    step "arm64: the packaged binary under qemu-aarch64-static"
    local bin="$work/x-arm64/usr/bin/peerbox" out
    file -b "$bin" | grep -q "ARM aarch64" || fail "not an arm64 binary: $(file -b "$bin")"
    out=$(timeout 60 qemu-aarch64-static -L /usr/aarch64-linux-gnu "$bin" --version) || fail "arm64 --version"
    [ "$out" = "peerbox $(version)" ] || fail "arm64 --version: $out"
    mkdir -p "$work/arm64-etc/ssl"
    cp "$work/x-arm64/etc/peerbox/config.toml" "$work/arm64-etc/"
    out=$(timeout 120 qemu-aarch64-static -L /usr/aarch64-linux-gnu "$bin" check-config \
        --config "$work/arm64-etc/config.toml" 2>&1) || fail "arm64 check-config: $out"
    grep -q "configuration is valid" <<<"$out" || fail "arm64 check-config: $out"
}

command -v file >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends file >/dev/null; }
if [ "$want" = all ] || [ "$want" = amd64 ]; then
    step "amd64: cargo deb"
    deb=$(timeout 1800 bash packaging/deb.sh amd64)
    check_package amd64 "$deb"
    install_into_scratch_root "$deb"
fi
if [ "$want" = all ] || [ "$want" = arm64 ]; then
    step "arm64: cargo deb --target aarch64-unknown-linux-gnu (cross)"
    deb=$(timeout 2400 bash packaging/deb.sh arm64)
    check_package arm64 "$deb"
    run_arm64_binary
fi
echo "tests/packaging: ok ($want)"
