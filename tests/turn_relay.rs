//! Relaying through a real peerbox: allocate, permissions, channels, data both ways between
//! a client and a UDP peer on loopback, over UDP and over TCP; plus the request errors.
#![allow(clippy::unwrap_used)]

mod common;
mod turn_client;

use std::time::Duration;

use turn_client::{Client, Incoming, Peer, raw};

const WAIT: Duration = Duration::from_secs(5);
const SHORT: Duration = Duration::from_millis(300);
const CONFIG: &str = "allow_loopback_peers = true\nusers = [\"u:p\"]";

async fn relay_both_ways(mut c: Client) {
    let relayed = c.allocate().await.expect("allocate");
    assert_eq!(relayed.ip().to_string(), "127.0.0.1");
    let peer = Peer::new().await;

    // No permission yet: dropped silently.
    c.send_indication(peer.addr(), b"early").await;
    assert!(
        peer.recv(SHORT).await.is_none(),
        "relayed without permission"
    );

    c.create_permission(&[peer.addr()])
        .await
        .expect("permission");
    c.send_indication(peer.addr(), b"hello").await;
    let (got, from) = peer.recv(WAIT).await.expect("peer got the send indication");
    assert_eq!((got.as_slice(), from), (&b"hello"[..], relayed));

    peer.socket.send_to(b"back", relayed).await.unwrap();
    assert_eq!(
        c.recv(WAIT).await,
        Some(Incoming::Data(peer.addr(), b"back".to_vec()))
    );

    c.channel_bind(0x4000, peer.addr())
        .await
        .expect("channel bind");
    c.send_channel(0x4000, b"via channel").await;
    let (got, _) = peer.recv(WAIT).await.expect("peer got channel data");
    assert_eq!(got, b"via channel");
    peer.socket.send_to(b"odd", relayed).await.unwrap();
    assert_eq!(
        c.recv(WAIT).await,
        Some(Incoming::Channel(0x4000, b"odd".to_vec()))
    );

    // Big payloads, both ways (UDP on loopback carries up to 64 KiB).
    let big: Vec<u8> = (0..60_000u32).map(|i| i as u8).collect();
    c.send_channel(0x4000, &big).await;
    let (got, _) = peer.recv(WAIT).await.expect("peer got the big packet");
    assert_eq!(got, big);
    peer.socket.send_to(&big, relayed).await.unwrap();
    assert_eq!(c.recv(WAIT).await, Some(Incoming::Channel(0x4000, big)));

    // Refresh keeps it; lifetime 0 ends it.
    assert_eq!(c.refresh(600).await, Ok(600));
    assert_eq!(c.refresh(0).await, Ok(0));
    c.send_channel(0x4000, b"after").await;
    assert!(peer.recv(SHORT).await.is_none(), "relayed after deletion");
    assert_eq!(c.refresh(600).await, Err(437));
}

#[tokio::test]
async fn relays_both_ways_over_udp() {
    let server = common::spawn_with_turn(CONFIG).await;
    relay_both_ways(Client::udp(server.turn, "u", "p").await).await;
    server.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn relays_both_ways_over_tcp() {
    let server = common::spawn_with_turn(CONFIG).await;
    relay_both_ways(Client::tcp(server.turn, "u", "p").await).await;
    server.stop(Duration::from_secs(5)).await;
}

/// The first packet of a fresh allocation goes out: the relay socket is new, and the server
/// once dropped that packet about one time in ten (it asked the reactor for writability, which
/// a new socket has not been told yet). Twenty fresh allocations, each sending at once.
#[tokio::test]
async fn the_first_packet_of_a_fresh_allocation_is_relayed() {
    let server = common::spawn_with_turn(CONFIG).await;
    let peer = Peer::new().await;
    for i in 0..20u8 {
        let mut c = Client::udp(server.turn, "u", "p").await;
        let relayed = c.allocate().await.unwrap();
        c.create_permission(&[peer.addr()]).await.unwrap();
        c.send_indication(peer.addr(), &[i]).await;
        assert_eq!(
            peer.recv(WAIT).await,
            Some((vec![i], relayed)),
            "allocation {i}"
        );
        // Freed at once: the user's allocation quota is smaller than twenty.
        assert_eq!(c.refresh(0).await, Ok(0));
    }
    server.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn create_permission_with_several_peers_installs_all() {
    let server = common::spawn_with_turn(CONFIG).await;
    let mut c = Client::udp(server.turn, "u", "p").await;
    let relayed = c.allocate().await.unwrap();
    let peers = [Peer::new().await, Peer::new().await, Peer::new().await];
    let addrs: Vec<_> = peers.iter().map(|p| p.addr()).collect();
    c.create_permission(&addrs).await.unwrap();
    for p in &peers {
        c.send_indication(p.addr(), b"hi").await;
        assert_eq!(p.recv(WAIT).await, Some((b"hi".to_vec(), relayed)));
        p.socket.send_to(b"yo", relayed).await.unwrap();
        assert_eq!(
            c.recv(WAIT).await,
            Some(Incoming::Data(p.addr(), b"yo".to_vec()))
        );
    }
    server.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn binding_answers_without_auth_over_udp_and_tcp() {
    use stun::message::{BINDING_REQUEST, CLASS_REQUEST, METHOD_BINDING};
    let server = common::spawn_with_turn("").await;
    for mut c in [
        Client::udp(server.turn, "", "").await,
        Client::tcp(server.turn, "", "").await,
    ] {
        let m = c.build(METHOD_BINDING, CLASS_REQUEST, &[]);
        assert_eq!(m.typ, BINDING_REQUEST);
        let r = c.transact(&m).await.expect("binding response");
        assert_eq!(
            turn_client::xor_attr(&r, stun::attributes::ATTR_XORMAPPED_ADDRESS),
            Some(c.local_addr())
        );
        // Unauthenticated answers stay minimal: a spoofed request gets little back.
        assert!(r.get(stun::attributes::ATTR_SOFTWARE).is_err());
    }
    server.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn bad_requests_get_the_right_errors_and_junk_is_survived() {
    use stun::attributes::*;
    use stun::message::*;
    let server = common::spawn_with_turn(CONFIG).await;
    let mut c = Client::udp(server.turn, "u", "p").await;

    // Junk of every shape: no answer, no crash.
    for junk in [
        &b""[..],
        &[0u8; 3],
        &[0xff; 64],
        &[0x40, 0x00, 0xff, 0xff, 1, 2],
        &[
            0x00, 0x01, 0x00, 0x08, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
            0, 1, 0, 200,
        ],
    ] {
        c.send_raw(junk).await;
    }
    let binding = c.build(METHOD_BINDING, CLASS_REQUEST, &[]);
    assert!(c.transact(&binding).await.is_some(), "still serving");

    // Unknown comprehension-required attribute: 420.
    let m = c.build(
        METHOD_BINDING,
        CLASS_REQUEST,
        &[(AttrType(0x7777), raw(b"zz"))],
    );
    let r = c.transact(&m).await.unwrap();
    assert_eq!(turn_client::error_code(&r), Some(420));
    assert_eq!(r.get(ATTR_UNKNOWN_ATTRIBUTES).unwrap(), vec![0x77, 0x77]);

    // Allocate errors.
    type Case<'a> = (&'a [(AttrType, Vec<u8>)], u16);
    let cases: &[Case] = &[
        (&[], 400),
        (&[(ATTR_REQUESTED_TRANSPORT, vec![6, 0, 0, 0])], 442),
        (&[(ATTR_REQUESTED_TRANSPORT, vec![17, 0])], 400),
        (
            &[
                (ATTR_REQUESTED_TRANSPORT, vec![17, 0, 0, 0]),
                (turn_client::ATTR_REQUESTED_ADDRESS_FAMILY, vec![3, 0, 0, 0]),
            ],
            440,
        ),
        (
            &[
                (ATTR_REQUESTED_TRANSPORT, vec![17, 0, 0, 0]),
                (turn_client::ATTR_REQUESTED_ADDRESS_FAMILY, vec![2, 0, 0, 0]),
            ],
            440,
        ),
    ];
    for (attrs, code) in cases {
        let attrs: Vec<_> = attrs.iter().map(|(t, v)| (*t, raw(v))).collect();
        assert_eq!(
            c.request(METHOD_ALLOCATE, &attrs).await.err(),
            Some(*code),
            "{attrs:?}",
            attrs = attrs.len()
        );
    }
    // No allocation yet: 437 for the others.
    assert_eq!(c.refresh(600).await, Err(437));
    // A second Allocate (new transaction) on the same 5-tuple: 437.
    c.allocate().await.unwrap();
    assert_eq!(c.allocate().await, Err(437));
    // DONT-FRAGMENT is accepted.
    let mut c2 = Client::udp(server.turn, "u", "p").await;
    c2.request(
        METHOD_ALLOCATE,
        &[
            (ATTR_REQUESTED_TRANSPORT, raw(&[17, 0, 0, 0])),
            (ATTR_DONT_FRAGMENT, raw(&[])),
        ],
    )
    .await
    .expect("DONT-FRAGMENT accepted");
    // Channel numbers outside the range, and rebinding a channel to another peer: 400.
    let (p1, p2) = (Peer::new().await, Peer::new().await);
    assert_eq!(c2.channel_bind(0x3fff, p1.addr()).await, Err(400));
    c2.channel_bind(0x4001, p1.addr()).await.unwrap();
    assert_eq!(c2.channel_bind(0x4001, p2.addr()).await, Err(400));
    assert_eq!(c2.channel_bind(0x4002, p1.addr()).await, Err(400));
    server.stop(Duration::from_secs(5)).await;
}
