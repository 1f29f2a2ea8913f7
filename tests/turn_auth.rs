//! TURN authentication against a real peerbox: REST credentials from `Credentials` (what
//! `joined` carries), 401 for wrong or expired ones, 438 for a forged nonce, and a call that
//! outlives its credential's expiry.
#![allow(clippy::unwrap_used)]

mod common;
mod turn_client;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use peerbox::turn::Credentials;
use turn_client::{Client, Incoming, Peer};

const SECRET: &str = "test-secret";

fn rest_password(username: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, SECRET.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(ring::hmac::sign(&key, username.as_bytes()))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn credentials(server: &common::TestServer) -> Arc<Credentials> {
    Credentials::new(&server.config)
}

#[tokio::test]
async fn wrong_unknown_and_expired_credentials_get_401() {
    let server =
        common::spawn_with_turn(&format!("secret = \"{SECRET}\"\nusers = [\"u:p\"]")).await;
    let expired = format!("{}:sess", unix_now() - 10);
    let future = format!("{}:sess", unix_now() + 600);
    let cases = [
        ("u", "wrong".to_string(), Err(401)),
        ("nobody", "p".to_string(), Err(401)),
        (expired.as_str(), rest_password(&expired), Err(401)),
        (future.as_str(), "not-the-hmac".to_string(), Err(401)),
        (future.as_str(), rest_password(&future), Ok(())),
        ("u", "p".to_string(), Ok(())),
    ];
    for (user, pass, want) in cases {
        let mut c = Client::udp(server.turn, user, &pass).await;
        assert_eq!(c.allocate().await.map(|_| ()), want, "{user}");
    }
    server.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn forged_nonce_gets_438_with_a_fresh_one() {
    let server = common::spawn_with_turn("users = [\"u:p\"]").await;
    let mut c = Client::udp(server.turn, "u", "p").await;
    c.allocate().await.unwrap();
    c.set_nonce(b"00000000aaaaaaaaaaaaaaaa");
    // The client helper retries once after a 438 with the fresh nonce.
    assert_eq!(c.refresh(600).await, Ok(600));
    server.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn ice_servers_carry_working_credentials() {
    let server = common::spawn_with_turn(&format!("secret = \"{SECRET}\"")).await;
    let ice = credentials(&server).ice_servers("session-1", None);
    let port = server.turn.port();
    let tls = server.https.port();
    assert_eq!(ice[0]["urls"][0], format!("stun:localhost:{port}"));
    assert_eq!(
        ice[1]["urls"],
        serde_json::json!([
            format!("turn:localhost:{port}?transport=udp"),
            format!("turn:localhost:{port}?transport=tcp"),
            format!("turns:localhost:{tls}?transport=tcp"),
        ])
    );
    let user = ice[1]["username"].as_str().unwrap();
    let pass = ice[1]["credential"].as_str().unwrap();
    let mut c = Client::udp(server.turn, user, pass).await;
    c.allocate()
        .await
        .expect("allocate with the iceServers credentials");
    let mut t = Client::tcp(server.turn, user, pass).await;
    t.allocate().await.expect("allocate over tcp too");
    server.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn an_allocation_outlives_its_credential() {
    let server = common::spawn_with_turn(&format!(
        "secret = \"{SECRET}\"\ncredential_ttl_secs = 2\nallow_loopback_peers = true"
    ))
    .await;
    let ice = credentials(&server).ice_servers("short", None);
    let user = ice[1]["username"].as_str().unwrap().to_owned();
    let pass = ice[1]["credential"].as_str().unwrap().to_owned();
    let mut c = Client::udp(server.turn, &user, &pass).await;
    let relayed = c.allocate().await.unwrap();
    tokio::time::sleep(Duration::from_millis(3100)).await;

    // Expired now: the existing allocation keeps working...
    let peer = Peer::new().await;
    assert_eq!(c.refresh(600).await, Ok(600));
    c.create_permission(&[peer.addr()])
        .await
        .expect("permission after expiry");
    c.channel_bind(0x4000, peer.addr())
        .await
        .expect("channel bind after expiry");
    c.send_channel(0x4000, b"still here").await;
    assert_eq!(
        peer.recv(Duration::from_secs(2)).await,
        Some((b"still here".to_vec(), relayed))
    );
    peer.socket.send_to(b"reply", relayed).await.unwrap();
    assert_eq!(
        c.recv(Duration::from_secs(2)).await,
        Some(Incoming::Channel(0x4000, b"reply".to_vec()))
    );
    // ...but a new allocation with the same credential is refused.
    let mut other = Client::udp(server.turn, &user, &pass).await;
    assert_eq!(other.allocate().await, Err(401));
    server.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn requests_on_an_allocation_need_its_username() {
    let server = common::spawn_with_turn("users = [\"u:p\", \"v:q\"]").await;
    let mut c = Client::udp(server.turn, "u", "p").await;
    c.allocate().await.unwrap();
    c.username = "v".into();
    c.password = "q".into();
    assert_eq!(c.refresh(600).await, Err(441));
    server.stop(Duration::from_secs(5)).await;
}

/// Answers to unauthenticated requests stay small, so peerbox is a poor reflector for
/// spoofed traffic: a bare 20-byte Allocate gets its 401 (ERROR-CODE, REALM, NONCE, nothing
/// else) at less than 4.5 times its size; coturn's worst is 5.4 times.
#[tokio::test]
async fn an_unauthenticated_allocate_is_not_amplified() {
    let server = common::spawn_with_turn("").await;
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut req = vec![0x00, 0x03, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42];
    req.extend_from_slice(&[5; 12]);
    sock.send_to(&req, server.turn).await.unwrap();
    let mut buf = [0u8; 1500];
    let (n, _) = tokio::time::timeout(Duration::from_secs(3), sock.recv_from(&mut buf))
        .await
        .expect("an answer")
        .unwrap();
    assert_eq!(&buf[..2], &[0x01, 0x13], "an Allocate error response");
    assert!(
        n * 10 < req.len() * 45,
        "{n} bytes back for {} ({:.1}x)",
        req.len(),
        n as f64 / req.len() as f64
    );
    server.stop(Duration::from_secs(5)).await;
}
