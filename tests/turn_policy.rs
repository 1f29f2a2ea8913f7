//! Safe relaying and quotas against a real peerbox: every special-purpose address range is
//! refused by default (403), in IPv4, IPv6, IPv4-mapped and NAT64 forms; quotas give 486.
#![allow(clippy::unwrap_used)]

mod common;
mod turn_client;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use turn_client::{Client, Peer};

#[tokio::test]
async fn default_config_refuses_every_denied_range() {
    let server = common::spawn_with_turn("users = [\"u:p\"]").await;
    let mut c = Client::udp(server.turn, "u", "p").await;
    c.allocate().await.unwrap();
    let examples = denied_examples();
    assert!(examples.len() > 40);
    for (i, ip) in examples.into_iter().enumerate() {
        let peer = SocketAddr::new(ip, 9);
        assert_eq!(
            c.create_permission(&[peer]).await,
            Err(403),
            "permission {ip}"
        );
        let channel = 0x4000 + i as u16;
        assert_eq!(
            c.channel_bind(channel, peer).await,
            Err(403),
            "channel {ip}"
        );
    }
    // The server's own address and relay addresses are refused as well.
    assert_eq!(c.create_permission(&[server.turn]).await, Err(403));
    // A mix of allowed and denied installs nothing.
    assert_eq!(
        c.create_permission(&[
            "8.8.8.8:53".parse().unwrap(),
            "10.0.0.1:53".parse().unwrap()
        ])
        .await,
        Err(403)
    );
    server.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn loopback_peers_without_permission_are_dropped_silently() {
    let server = common::spawn_with_turn("users = [\"u:p\"]").await;
    let mut c = Client::udp(server.turn, "u", "p").await;
    c.allocate().await.unwrap();
    let peer = Peer::new().await;
    c.send_indication(peer.addr(), b"nope").await;
    c.send_channel(0x4000, b"nope").await;
    assert!(peer.recv(Duration::from_millis(300)).await.is_none());
    server.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn allowed_peers_win_over_the_deny_list() {
    let server =
        common::spawn_with_turn("users = [\"u:p\"]\nallowed_peers = [\"127.0.0.1/32\"]").await;
    let mut c = Client::udp(server.turn, "u", "p").await;
    c.allocate().await.unwrap();
    c.create_permission(&["127.0.0.1:9".parse().unwrap()])
        .await
        .unwrap();
    assert_eq!(
        c.create_permission(&["127.0.0.2:9".parse().unwrap()]).await,
        Err(403)
    );
    server.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn user_and_total_quotas_give_486() {
    let server = common::spawn_with_turn(
        "users = [\"a:p\", \"b:p\", \"c:p\"]\nuser_quota = 2\naddress_quota = 10\ntotal_quota = 3",
    )
    .await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = Client::udp(server.turn, "a", "p").await;
        c.allocate().await.unwrap();
        held.push(c);
    }
    let mut third = Client::udp(server.turn, "a", "p").await;
    assert_eq!(third.allocate().await, Err(486));
    let mut b = Client::udp(server.turn, "b", "p").await;
    b.allocate().await.unwrap();
    let mut c = Client::udp(server.turn, "c", "p").await;
    assert_eq!(c.allocate().await, Err(486));
    // Freeing one makes room again.
    assert_eq!(held[0].refresh(0).await, Ok(0));
    c.allocate().await.expect("room after a delete");
    server.stop(Duration::from_secs(5)).await;
}

/// One address from each denied range and form (IPv4, IPv4-mapped, NAT64, local-use NAT64,
/// 6to4, IPv4-compatible) and the special IPv6 ranges.
fn denied_examples() -> Vec<IpAddr> {
    let v4 = [
        "0.1.2.3",
        "10.1.2.3",
        "100.64.1.2",
        "127.0.0.1",
        "127.9.9.9",
        "169.254.169.254",
        "172.16.5.4",
        "172.31.255.254",
        "192.168.1.1",
        "224.0.0.251",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
    ];
    let mut out: Vec<IpAddr> = v4.iter().filter_map(|s| s.parse().ok()).collect();
    for s in v4 {
        if let Ok(ip) = s.parse::<Ipv4Addr>() {
            out.push(IpAddr::V6(ip.to_ipv6_mapped()));
            let o = ip.octets();
            let (hi, lo) = (
                u16::from_be_bytes([o[0], o[1]]),
                u16::from_be_bytes([o[2], o[3]]),
            );
            for v6 in [
                Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, hi, lo),
                Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, hi, lo),
                Ipv6Addr::new(0x2002, hi, lo, 0, 0, 0, 0, 1),
            ] {
                out.push(IpAddr::V6(v6));
            }
            // IPv4-compatible (::a.b.c.d); ::0.0.0.1 is ::1, covered below.
            if u32::from(ip) > 1 {
                out.push(IpAddr::V6(Ipv6Addr::new(0, 0, 0, 0, 0, 0, hi, lo)));
            }
        }
    }
    for s in ["::1", "::", "fc00::1", "fd12:3456::1", "fe80::1", "ff02::1"] {
        if let Ok(ip) = s.parse() {
            out.push(ip);
        }
    }
    out
}
