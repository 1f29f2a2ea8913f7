//! The relay's limits, timers and shutdown, seen from real WebSocket clients: oversized frames,
//! rate and connection limits, idle and slow peers, and the close every session sends on
//! shutdown. Durations here are generous bounds, never speed claims.

mod common;

use std::time::Duration;

use common::signal::{close_frame, error_type, expect_logout, id, login};
use common::{expect_silence, recv_json, send_json};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn oversized_frame_closes_1009_and_the_room_hears_logout() {
    let server = common::spawn("").await;
    let (mut a, mut b) = (server.ws().await, server.ws().await);
    login(&mut a, "r", "Ann").await;
    let b_id = id(&login(&mut b, "r", "Bob").await);
    recv_json(&mut a).await;

    let big = json!({"type": "offer", "to": b_id, "data": "x".repeat(70_000)});
    b.send(Message::text(big.to_string())).await.expect("send");
    assert_eq!(close_frame(&mut b).await.0, 1009);
    expect_logout(&mut a, &b_id).await;
    // Nothing of it was relayed, and the rest of the server carries on.
    let mut c = server.ws().await;
    login(&mut c, "r", "Cy").await;
    assert_eq!(recv_json(&mut a).await["type"], "login");
}

#[tokio::test]
async fn a_flood_is_rate_limited_without_amplification() {
    let server = common::spawn("[rooms]\nmessages_per_second = 5\nmessage_burst = 5\n").await;
    let mut a = server.ws().await;
    for _ in 0..40 {
        send_json(&mut a, json!({"type": "randomCheck", "data": "r"})).await;
    }
    let (mut answers, mut limited) = (0, 0);
    loop {
        let next = tokio::time::timeout(Duration::from_millis(500), a.next()).await;
        let Ok(Some(Ok(Message::Text(t)))) = next else {
            break;
        };
        let v: Value = serde_json::from_str(&t).expect("json");
        match v["type"].as_str() {
            Some("randomCheckResult") => answers += 1,
            _ => {
                assert_eq!(error_type(&v), "rate-limited");
                limited += 1;
            }
        }
    }
    assert!(
        (5..=8).contains(&answers),
        "{answers} answers to 40 messages"
    );
    assert!((1..=2).contains(&limited), "{limited} rate-limited errors");
    // The bucket refills: the connection is usable again.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    send_json(&mut a, json!({"type": "randomCheck", "data": "r"})).await;
    assert_eq!(recv_json(&mut a).await["type"], "randomCheckResult");
}

#[tokio::test]
async fn connections_per_ip_are_limited() {
    let server = common::spawn("[rooms]\nmax_connections_per_ip = 2\n").await;
    let (mut a, b) = (server.ws().await, server.ws().await);
    let mut c = server.ws().await;
    assert_eq!(error_type(&recv_json(&mut c).await), "too-many-connections");
    assert_eq!(close_frame(&mut c).await.0, 1008);
    // The first two are unaffected, and a slot given back can be used again.
    login(&mut a, "r", "Ann").await;
    drop(b);
    let mut ok = false;
    for _ in 0..50 {
        let mut d = server.ws().await;
        send_json(&mut d, json!({"type": "randomCheck", "data": "r"})).await;
        if recv_json(&mut d).await["type"] == "randomCheckResult" {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok, "a freed slot was not given back");
}

#[tokio::test]
async fn total_connections_and_rooms_are_limited() {
    let server = common::spawn("[rooms]\nmax_connections = 3\nmax_rooms = 1\n").await;
    let (mut a, mut b, mut c) = (server.ws().await, server.ws().await, server.ws().await);
    let mut d = server.ws().await;
    assert_eq!(error_type(&recv_json(&mut d).await), "too-many-connections");
    assert_eq!(close_frame(&mut d).await.0, 1008);

    login(&mut a, "only", "Ann").await;
    send_json(
        &mut b,
        json!({"type": "login", "data": {"roomrequest": "second", "username": "Bob"}}),
    )
    .await;
    assert_eq!(error_type(&recv_json(&mut b).await), "server-full");
    login(&mut b, "only", "Bob").await;
    login(&mut c, "only", "Cy").await;
}

#[tokio::test]
async fn a_peer_that_stops_answering_pings_is_dropped() {
    let server =
        common::spawn("[rooms]\nping_interval_secs = 0.2\nidle_timeout_secs = 0.8\n").await;
    let (mut a, mut silent) = (server.ws().await, server.ws().await);
    login(&mut a, "r", "Ann").await;
    let silent_id = id(&login(&mut silent, "r", "Sid").await);
    recv_json(&mut a).await;
    // `silent` is never polled again, so it answers no ping; `a` is, and stays.
    expect_logout(&mut a, &silent_id).await;
    expect_silence(&mut a, Duration::from_millis(1500)).await;
    let mut c = server.ws().await;
    login(&mut c, "r", "Cy").await;
    assert_eq!(recv_json(&mut a).await["type"], "login");
    drop(silent);
}

#[tokio::test]
async fn a_slow_consumer_is_disconnected_and_the_rest_carry_on() {
    let server = common::spawn(
        "[rooms]\noutbound_queue = 4\nmessages_per_second = 100000\nmessage_burst = 100000\n\
         ip_messages_per_second = 100000\nip_message_burst = 100000\n\
         bytes_per_second = 100000000\nip_bytes_per_second = 100000000\n",
    )
    .await;
    let (mut a, mut slow, mut c) = (server.ws().await, server.ws().await, server.ws().await);
    let a_id = id(&login(&mut a, "r", "Ann").await);
    let slow_id = id(&login(&mut slow, "r", "Slow").await);
    recv_json(&mut a).await;
    let c_id = id(&login(&mut c, "r", "Cy").await);
    recv_json(&mut a).await;
    // `slow` never reads again; `a` sends it big offers until the server gives up on it.
    let offer = json!({"type": "offer", "to": slow_id, "data": "s".repeat(60_000)}).to_string();
    let mut kicked = false;
    for i in 0..5_000 {
        a.send(Message::text(offer.clone())).await.expect("send");
        if i % 10 == 9 {
            if let Ok(Some(Ok(Message::Text(t)))) =
                tokio::time::timeout(Duration::from_millis(1), a.next()).await
            {
                let v: Value = serde_json::from_str(&t).expect("json");
                assert_eq!(v["type"], "logout", "{v}");
                assert_eq!(v["from"], slow_id.as_str());
                kicked = true;
                break;
            }
        }
    }
    assert!(kicked, "the slow consumer was never disconnected");
    expect_logout(&mut c, &slow_id).await;
    // `a`'s later offers to the gone peer are refused, and the others still talk.
    send_json(&mut c, json!({"type": "answer", "to": a_id, "data": "hi"})).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let v = recv_json(&mut a).await;
        if v["type"] == "answer" {
            assert_eq!(v["from"], c_id.as_str());
            break;
        }
        assert_eq!(error_type(&v), "unknown-peer");
        assert!(tokio::time::Instant::now() < deadline);
    }
    drop(slow);
}

/// A client that floods bad frames without reading the error replies loses replies (its queue
/// is tiny here), not its connection: once it reads again, it can still talk.
#[tokio::test]
async fn unread_error_replies_are_dropped_not_the_connection() {
    let server = common::spawn(
        "[rooms]\noutbound_queue = 4\nmessages_per_second = 1000000\nmessage_burst = 1000000\n\
         ip_messages_per_second = 1000000\nip_message_burst = 1000000\n\
         bytes_per_second = 100000000\nip_bytes_per_second = 100000000\n",
    )
    .await;
    // A small receive window: the server's writes stall after a few kilobytes of replies, so
    // its queue of 4 overflows long before the 20,000th.
    let mut ws = server.ws_small_window(4096).await;
    const FRAMES: usize = 20_000;
    for _ in 0..FRAMES {
        ws.feed(Message::text("not json")).await.expect("send");
    }
    ws.flush().await.expect("send");
    let mut errors = 0;
    while let Ok(next) = tokio::time::timeout(Duration::from_millis(500), ws.next()).await {
        match next.expect("stream open").expect("no websocket error") {
            Message::Text(t) => {
                let v: Value = serde_json::from_str(&t).expect("json");
                assert_eq!(error_type(&v), "bad-request");
                errors += 1;
            }
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected message {other:?}"),
        }
    }
    assert!(
        errors < FRAMES,
        "every reply kept ({errors}): the queue never overflowed"
    );
    let room = uuid::Uuid::new_v4().to_string();
    send_json(&mut ws, json!({"type": "randomCheck", "data": room})).await;
    assert_eq!(recv_json(&mut ws).await["data"]["result"], "ok");
}

#[tokio::test]
async fn shutdown_closes_every_session_with_1001() {
    let mut server = common::spawn("").await;
    let (mut a, mut b, mut c) = (server.ws().await, server.ws().await, server.ws().await);
    login(&mut a, "r", "Ann").await;
    login(&mut b, "r", "Bob").await;
    server.shutdown.cancel();
    for ws in [&mut a, &mut b, &mut c] {
        assert_eq!(
            close_frame(ws).await,
            (1001, "server shutting down".to_string())
        );
    }
    tokio::time::timeout(Duration::from_secs(5), &mut server.task)
        .await
        .expect("server stopped in time")
        .expect("server task")
        .expect("server result");
}
