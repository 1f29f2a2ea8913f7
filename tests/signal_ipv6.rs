//! Per-address limits hold for IPv6: one /64 is one client. The test runs itself again inside
//! a network namespace of its own (`unshare -n`, root), whose loopback gets addresses of two
//! /64s, so that real sockets come from many addresses of one prefix.

mod common;

use std::net::IpAddr;
use std::process::Command;

use common::recv_json;
use common::signal::{close_frame, error_type, login, ws_from};

/// Set in the re-run inside the namespace.
const INSIDE: &str = "PEERBOX_TEST_NETNS";
const PREFIX: &str = "2001:db8:1:2";

#[test]
fn connections_and_rooms_from_one_ipv6_64_are_limited_together() {
    if std::env::var_os(INSIDE).is_some() {
        return inside();
    }
    let exe = std::env::current_exe().expect("test binary");
    let name = "connections_and_rooms_from_one_ipv6_64_are_limited_together";
    let out = Command::new("unshare")
        .args(["-n", "--"])
        .arg(&exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(INSIDE, "1")
        .output()
        .expect("run unshare (util-linux; needs root)");
    assert!(
        out.status.success(),
        "inside the namespace: {}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "the test did not run inside: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

fn ip(cmd: &str) {
    let ok = Command::new("ip")
        .args(cmd.split_whitespace())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "ip {cmd}");
}

fn inside() {
    ip("link set lo up");
    for i in 1..=20 {
        ip(&format!("-6 addr add {PREFIX}::{i:x}/64 dev lo nodad"));
    }
    ip("-6 addr add 2001:db8:1:3::1/64 dev lo nodad");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(limits());
}

async fn limits() {
    let server = common::spawn_at(
        "[rooms]\nmax_connections_per_ip = 5\nmax_rooms_per_ip = 2\n",
        &format!("[{PREFIX}::1]:0"),
    )
    .await;
    // Twenty addresses of one /64: five get in, each later one is told why and closed.
    let mut admitted = Vec::new();
    let mut refused = 0;
    for i in 1..=20 {
        let source: IpAddr = format!("{PREFIX}::{i:x}").parse().expect("ip");
        let mut ws = ws_from(&server, source).await;
        if admitted.len() < 5 {
            admitted.push(ws);
            continue;
        }
        assert_eq!(
            error_type(&recv_json(&mut ws).await),
            "too-many-connections"
        );
        assert_eq!(close_frame(&mut ws).await.0, 1008);
        refused += 1;
    }
    assert_eq!(refused, 15);
    // The admitted ones are served, and create rooms for their /64 as one client would.
    for (i, ws) in admitted.iter_mut().enumerate().take(2) {
        login(ws, &format!("room-{i}"), "x").await;
    }
    common::send_json(
        &mut admitted[2],
        serde_json::json!({"type": "login", "data": {"roomrequest": "room-9", "username": "x"}}),
    )
    .await;
    assert_eq!(
        error_type(&recv_json(&mut admitted[2]).await),
        "too-many-rooms"
    );
    // Another /64 is another client.
    let mut other = ws_from(&server, "2001:db8:1:3::1".parse().expect("ip")).await;
    login(&mut other, "room-9", "y").await;
}
