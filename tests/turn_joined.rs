//! The `iceServers` in a real `joined` (WSS `login`) carry TURN credentials that work.
#![allow(clippy::unwrap_used)]

mod common;
mod turn_client;

use std::time::Duration;

use serde_json::json;
use turn_client::Client;

#[tokio::test]
async fn joined_ice_servers_allocate_over_udp_and_tcp() {
    let server = common::spawn_with_turn("").await;
    let mut ws = server.ws().await;
    common::send_json(
        &mut ws,
        json!({"type": "login", "data": {"roomrequest": "turn-room", "username": "Alice"}}),
    )
    .await;
    let joined = common::recv_json(&mut ws).await;
    assert_eq!(joined["type"], "joined", "{joined}");
    let ice = &joined["iceServers"];
    let turn = ice
        .as_array()
        .and_then(|a| a.iter().find(|s| s["username"].is_string()))
        .expect("a TURN entry with credentials");
    let port = server.turn.port();
    let tls = server.https.port();
    // No `hostname` configured: the host the client connected to (the test's TLS client
    // asks for "localhost").
    assert_eq!(
        turn["urls"],
        json!([
            format!("turn:localhost:{port}?transport=udp"),
            format!("turn:localhost:{port}?transport=tcp"),
            format!("turns:localhost:{tls}?transport=tcp"),
        ])
    );
    let user = turn["username"].as_str().unwrap();
    let pass = turn["credential"].as_str().unwrap();
    let session = joined["data"].as_str().unwrap_or_default();
    assert!(user.ends_with(&format!(":{session}")), "{user}");
    Client::udp(server.turn, user, pass)
        .await
        .allocate()
        .await
        .expect("allocate over udp with joined credentials");
    Client::tcp(server.turn, user, pass)
        .await
        .allocate()
        .await
        .expect("allocate over tcp with joined credentials");
    server.stop(Duration::from_secs(5)).await;
}
