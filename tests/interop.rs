//! Interop with coturn's client tools: runs `tests/interop/turnutils.sh` (loopback) and
//! `tests/interop/turnutils-netns.sh` (shipped defaults, a namespace with non-loopback
//! addresses) against the peerbox binary cargo built for this test run. Skips (with a message)
//! only when the tools are missing and cannot be installed.
#![allow(clippy::unwrap_used)]

use std::process::Command;

#[test]
fn coturn_turnutils_interop() {
    run_script("turnutils.sh");
}

/// The shipped defaults on a non-loopback address in a namespace of its own: relaying to
/// another host and client to client (relay to relay) over UDP, TCP and TLS on 443.
#[test]
fn coturn_turnutils_interop_shipped_defaults_in_a_namespace() {
    run_script("turnutils-netns.sh");
}

fn run_script(name: &str) {
    let script = format!("{}/tests/interop/{name}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("bash")
        .arg(&script)
        .arg(env!("CARGO_BIN_EXE_peerbox"))
        .output()
        .expect("run bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(3) {
        eprintln!(
            "SKIPPED: coturn's turnutils are not installed and could not be installed:\n{stderr}"
        );
        return;
    }
    println!("{stdout}");
    assert!(
        out.status.success(),
        "turnutils interop failed:\n{stdout}\n{stderr}"
    );
}
