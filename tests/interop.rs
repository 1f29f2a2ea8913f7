//! Interop with coturn's client tools: runs `tests/interop/turnutils.sh` against the peerbox
//! binary cargo built for this test run. Skips (with a message) only when the tools are
//! missing and cannot be installed.
#![allow(clippy::unwrap_used)]

use std::process::Command;

#[test]
fn coturn_turnutils_interop() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/turnutils.sh");
    let out = Command::new("bash")
        .arg(script)
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
