//! TURN on the HTTPS port and relaying between two allocations, against the real server with
//! its default peer policy: TURN over TLS (no ALPN, as browsers connect, and `stun.turn`),
//! TURN over plain TCP, HTTPS still answered on the same port, and two clients that both relay
//! reaching each other while every other port of the server stays unreachable.
#![allow(clippy::unwrap_used)]

mod common;
mod turn_client;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use turn_client::{Client, Incoming, Peer};

const WAIT: Duration = Duration::from_secs(3);

async fn tls_client(server: &common::TestServer, alpn: &[&[u8]], user: &str) -> Client {
    let tls = server.tls_stream_alpn(alpn).await;
    let local = tls.get_ref().0.local_addr().unwrap();
    Client::stream(Box::new(tls), local, server.https, user, "p")
}

/// Two people who both relay: one over UDP on 3478, one over TLS on the HTTPS port, each
/// permitting the other's relay address (one of the server's own addresses), with the
/// default policy. Data goes both ways, as Send/Data indications and as ChannelData.
#[tokio::test]
async fn relay_to_relay_over_udp_and_tls_with_the_default_policy() {
    let server = common::spawn_with_turn("users = [\"a:p\", \"b:p\"]").await;
    let mut a = Client::udp(server.turn, "a", "p").await;
    let mut b = tls_client(&server, &[], "b").await;
    let ra = a.allocate().await.expect("udp allocation");
    let rb = b
        .allocate()
        .await
        .expect("allocation over tls on the https port");
    assert_eq!(a.create_permission(&[rb]).await, Ok(()));
    assert_eq!(b.create_permission(&[ra]).await, Ok(()));
    a.send_indication(rb, b"hello b").await;
    assert_eq!(
        b.recv(WAIT).await,
        Some(Incoming::Data(ra, b"hello b".to_vec()))
    );
    assert_eq!(b.channel_bind(0x4001, ra).await, Ok(()));
    b.send_channel(0x4001, b"hello a").await;
    assert_eq!(
        a.recv(WAIT).await,
        Some(Incoming::Data(rb, b"hello a".to_vec()))
    );
    // Now a channel on a's side too: b's data arrives as ChannelData.
    assert_eq!(a.channel_bind(0x4002, rb).await, Ok(()));
    b.send_channel(0x4001, b"on a channel").await;
    assert_eq!(
        a.recv(WAIT).await,
        Some(Incoming::Channel(0x4002, b"on a channel".to_vec()))
    );
    server.stop(Duration::from_secs(5)).await;
}

/// Without a permission on the receiving side nothing arrives, exactly as through a socket.
#[tokio::test]
async fn relay_to_relay_needs_the_receivers_permission() {
    let server = common::spawn_with_turn("users = [\"a:p\", \"b:p\"]").await;
    let mut a = Client::udp(server.turn, "a", "p").await;
    let mut b = Client::udp(server.turn, "b", "p").await;
    let _ra = a.allocate().await.unwrap();
    let rb = b.allocate().await.unwrap();
    assert_eq!(a.create_permission(&[rb]).await, Ok(()));
    a.send_indication(rb, b"unwanted").await;
    assert_eq!(b.recv(Duration::from_millis(500)).await, None);
    server.stop(Duration::from_secs(5)).await;
}

/// The server's own ports that are not a live relay address stay refused: the listeners, a
/// UDP service on the same address, a relay port after its allocation is gone.
#[tokio::test]
async fn own_ports_that_are_not_relays_are_refused() {
    let server = common::spawn_with_turn("users = [\"a:p\", \"b:p\"]").await;
    let mut a = Client::udp(server.turn, "a", "p").await;
    a.allocate().await.unwrap();
    let service = Peer::new().await;
    for own in [server.turn, server.https, server.http, service.addr()] {
        assert_eq!(a.create_permission(&[own]).await, Err(403), "{own}");
        assert_eq!(a.channel_bind(0x4000, own).await, Err(403), "{own}");
    }
    let mut b = Client::udp(server.turn, "b", "p").await;
    let rb = b.allocate().await.unwrap();
    assert_eq!(b.refresh(0).await, Ok(0));
    assert_eq!(a.create_permission(&[rb]).await, Err(403), "a dead relay");
    server.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn turn_over_tls_with_alpn_stun_turn_and_over_plain_tcp_on_the_https_port() {
    let server = common::spawn_with_turn("users = [\"a:p\", \"b:p\"]").await;
    // coturn's client offers http/1.1 first; stun.turn must still win.
    let mut a = tls_client(&server, &[b"http/1.1", b"stun.turn"], "a").await;
    let ra = a
        .allocate()
        .await
        .expect("allocation over tls with alpn stun.turn");
    let tcp = TcpStream::connect(server.https).await.unwrap();
    let local = tcp.local_addr().unwrap();
    let mut b = Client::stream(Box::new(tcp), local, server.https, "b", "p");
    let rb = b
        .allocate()
        .await
        .expect("allocation over plain tcp on the https port");
    assert_eq!(a.create_permission(&[rb]).await, Ok(()));
    assert_eq!(b.create_permission(&[ra]).await, Ok(()));
    b.send_indication(ra, b"tcp to tls").await;
    assert_eq!(
        a.recv(WAIT).await,
        Some(Incoming::Data(rb, b"tcp to tls".to_vec()))
    );
    server.stop(Duration::from_secs(5)).await;
}

/// The web app is still served on the same port: HTTP/1.1 with and without ALPN (curl
/// `--no-alpn`), HTTP/2 by ALPN, and plain HTTP sent to the TLS port gets a redirect.
#[tokio::test]
async fn https_still_works_beside_turn() {
    let server = common::spawn_with_turn("").await;
    for alpn in [&[][..], &[&b"http/1.1"[..]][..]] {
        let tls = server.tls_stream_alpn(alpn).await;
        let resp = common_get(tls).await;
        assert!(resp.starts_with("HTTP/1.1 200"), "alpn {alpn:?}: {resp}");
    }
    let mut tls = server.tls_stream_alpn(&[b"h2"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    // The HTTP/2 connection preface is answered with the server's SETTINGS frame.
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let mut head = [0u8; 9];
    tokio::time::timeout(WAIT, tls.read_exact(&mut head))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(head[3], 0x04, "a SETTINGS frame: {head:?}");
    drop(tls);
    let mut plain = TcpStream::connect(server.https).await.unwrap();
    plain
        .write_all(b"GET /room/x HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut resp = String::new();
    tokio::time::timeout(WAIT, plain.read_to_string(&mut resp))
        .await
        .unwrap()
        .unwrap();
    assert!(resp.starts_with("HTTP/1.1 301"), "{resp}");
    assert!(resp.contains("location: https://localhost"), "{resp}");
    server.stop(Duration::from_secs(5)).await;
}

async fn common_get<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(mut s: S) -> String {
    s.write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut buf))
        .await
        .expect("response in time")
        .ok();
    String::from_utf8_lossy(&buf).into_owned()
}

/// Junk is closed, not held: after a handshake with `stun.turn` (which promises STUN), as
/// bytes that are neither TLS, STUN nor HTTP, and on the TURN port itself (an HTTP request
/// there used to wait for a 21 KB "ChannelData" frame).
#[tokio::test]
async fn junk_is_closed_at_once() {
    let server = common::spawn_with_turn("").await;
    let mut tls = server.tls_stream_alpn(&[b"stun.turn"]).await;
    tls.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    assert_closed(&mut tls).await;
    for (addr, junk) in [
        (server.https, &b"\x80\x81 not anything"[..]),
        (server.turn, &b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"[..]),
    ] {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(junk).await.unwrap();
        assert_closed(&mut s).await;
    }
    server.stop(Duration::from_secs(5)).await;
}

async fn assert_closed<S: tokio::io::AsyncRead + Unpin>(s: &mut S) {
    let mut buf = [0u8; 64];
    let r = tokio::time::timeout(WAIT, s.read(&mut buf)).await;
    assert!(
        matches!(r, Ok(Ok(0)) | Ok(Err(_))),
        "expected the server to close, got {r:?}"
    );
}

/// `https.turn = false`: the HTTPS port is HTTPS only (no `stun.turn` in ALPN, STUN closed).
#[tokio::test]
async fn https_turn_off() {
    let server = common::spawn("[https]\nlisten = [\"127.0.0.1:0\"]\nturn = false").await;
    let tls = server.tls_stream_alpn(&[b"h2", b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let mut tcp = TcpStream::connect(server.https).await.unwrap();
    let local = tcp.local_addr().unwrap();
    tcp.write_all(&[
        0, 1, 0, 0, 0x21, 0x12, 0xA4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
    ])
    .await
    .unwrap();
    assert_closed(&mut tcp).await;
    let _ = local;
    server.stop(Duration::from_secs(5)).await;
}

/// One client address cannot take more than `address_quota` allocations, whatever usernames
/// it uses; another address still allocates.
#[tokio::test]
async fn address_quota_holds_across_usernames() {
    let server = common::spawn_with_turn(
        "users = [\"a:p\", \"b:p\", \"c:p\"]\nuser_quota = 2\naddress_quota = 3",
    )
    .await;
    let mut held = Vec::new();
    for user in ["a", "a", "b"] {
        let mut c = Client::udp(server.turn, user, "p").await;
        c.allocate().await.unwrap();
        held.push(c);
    }
    let mut over = Client::udp(server.turn, "c", "p").await;
    assert_eq!(over.allocate().await, Err(486));
    let other: SocketAddr = "127.0.0.2:0".parse().unwrap();
    let mut elsewhere = Client::udp_from(other, server.turn, "c", "p").await;
    elsewhere
        .allocate()
        .await
        .expect("another address still allocates");
    server.stop(Duration::from_secs(5)).await;
}

/// The Allocate answer tells the lifetime the allocation really has.
#[tokio::test]
async fn allocate_advertises_the_capped_lifetime() {
    let server = common::spawn_with_turn("users = [\"a:p\"]\nmax_allocation_age_secs = 120").await;
    let mut c = Client::udp(server.turn, "a", "p").await;
    let r = c
        .request(
            stun::message::METHOD_ALLOCATE,
            &[(
                stun::attributes::ATTR_REQUESTED_TRANSPORT,
                turn_client::raw(&[17, 0, 0, 0]),
            )],
        )
        .await
        .expect("allocate");
    let lifetime = r.get(stun::attributes::ATTR_LIFETIME).unwrap();
    assert_eq!(u32::from_be_bytes(lifetime.try_into().unwrap()), 120);
    server.stop(Duration::from_secs(5)).await;
}

/// TCP connections that never allocate are closed by a deadline that a drip of bytes does
/// not extend; one client address cannot hold the stream connection cap.
#[tokio::test]
async fn stream_connections_that_do_not_allocate_are_closed() {
    let server = common::spawn_with_turn("users = [\"a:p\"]\naddress_quota = 2").await;
    // A STUN Binding, then one byte every second: closed by the allocation deadline.
    let mut s = TcpStream::connect(server.turn).await.unwrap();
    s.write_all(&binding()).await.unwrap();
    let started = tokio::time::Instant::now();
    let mut buf = [0u8; 256];
    let n = s.read(&mut buf).await.unwrap();
    assert!(n >= 20, "a binding answer");
    let closed = loop {
        if s.write_all(&[0]).await.is_err() {
            break true;
        }
        match tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            _ => {}
        }
        if started.elapsed() > Duration::from_secs(30) {
            break false;
        }
    };
    assert!(
        closed,
        "a dripping connection without an allocation stays open"
    );
    // address_quota 2 -> 18 stream connections per address; the 19th is refused while a
    // client from another address is served.
    let mut hold = Vec::new();
    for _ in 0..18 {
        let mut s = TcpStream::connect(server.turn).await.unwrap();
        s.write_all(&binding()).await.unwrap();
        let n = s.read(&mut buf).await.unwrap();
        assert!(n >= 20);
        hold.push(s);
    }
    let mut refused = TcpStream::connect(server.turn).await.unwrap();
    let _ = refused.write_all(&binding()).await;
    assert_closed(&mut refused).await;
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let s2 = sock.connect(server.turn).await.unwrap();
    let local = s2.local_addr().unwrap();
    let mut c = Client::stream(Box::new(s2), local, server.turn, "a", "p");
    c.allocate().await.expect("another address is served");
    server.stop(Duration::from_secs(5)).await;
}

fn binding() -> Vec<u8> {
    let mut b = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42];
    b.extend_from_slice(&[9; 12]);
    b
}

/// A TCP connection from `local` (another 127/8 address is another client) to `to`.
async fn connect_from(local: &str, to: SocketAddr) -> TcpStream {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(local.parse().unwrap()).unwrap();
    sock.connect(to).await.unwrap()
}

/// Bad input on 443 costs its sender: half-open connections, a slow handshake flood and junk
/// after a handshake, all from one address, while another person loads the page and relays
/// over TLS on the same port; then the stalled connections are closed by their deadlines.
#[tokio::test]
async fn a_slow_handshake_flood_on_443_does_not_stop_others() {
    let server =
        common::spawn("[https]\nhandshake_timeout_secs = 2\n[turn]\nusers = [\"a:p\", \"b:p\"]")
            .await;
    let mut stalled = Vec::new();
    for i in 0..150 {
        let mut s = connect_from("127.0.0.2:0", server.https).await;
        match i % 3 {
            // Half open: nothing at all.
            0 => {}
            // The first byte of a TLS record, then nothing.
            1 => s.write_all(&[0x16]).await.unwrap(),
            // A STUN header's first bytes, then nothing.
            _ => s.write_all(&[0x00, 0x03, 0x00]).await.unwrap(),
        }
        stalled.push(s);
    }
    let resp = server.get("/").await;
    assert_eq!(resp.status(), 200, "a page load beside the flood");
    let mut a = tls_client(&server, &[], "a").await;
    let mut b = Client::udp(server.turn, "b", "p").await;
    let ra = a.allocate().await.expect("turn over tls beside the flood");
    let rb = b.allocate().await.unwrap();
    assert_eq!(a.create_permission(&[rb]).await, Ok(()));
    assert_eq!(b.create_permission(&[ra]).await, Ok(()));
    b.send_indication(ra, b"still here").await;
    assert_eq!(
        a.recv(WAIT).await,
        Some(Incoming::Data(rb, b"still here".to_vec()))
    );
    // The handshake deadline (2 s) closes every stalled one.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for s in &mut stalled {
        assert_closed(s).await;
    }
    server.stop(Duration::from_secs(5)).await;
}

/// A connection that completes the TLS handshake and then sends nothing is closed by the
/// handshake deadline, which covers the first request too (such a connection held a
/// descriptor and memory for the whole of a 330 s test).
#[tokio::test]
async fn a_handshake_only_connection_is_closed() {
    let server = common::spawn("[https]\nhandshake_timeout_secs = 2").await;
    for alpn in [&b"h2"[..], b"http/1.1"] {
        let mut silent = server.tls_stream_alpn(&[alpn]).await;
        let mut buf = [0u8; 64];
        let r = tokio::time::timeout(Duration::from_secs(10), silent.read(&mut buf)).await;
        assert!(
            matches!(r, Ok(Ok(0)) | Ok(Err(_))),
            "expected a close, got {r:?}"
        );
    }
    server.stop(Duration::from_secs(5)).await;
}
