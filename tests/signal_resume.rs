//! Resume (docs/protocol.md): a member whose socket dropped, or whose server restarted, gets
//! its own session id back with the token of its last `joined`, and the others are not asked
//! to renegotiate; real TLS and WebSocket clients, and a real restart on the same ssl dir.

mod common;

use std::time::Duration;

use common::signal::{close_frame, error_type, id, login};
use common::{Ws, expect_silence, recv_json, send_json};
use serde_json::{Value, json};

const QUIET: Duration = Duration::from_millis(300);

async fn resume(ws: &mut Ws, room: &str, name: &str, joined: &Value) -> Value {
    send_json(
        ws,
        json!({"type": "login", "data": {"roomrequest": room, "username": name,
               "resume": {"sessionId": joined["data"], "token": joined["resumeToken"]}}}),
    )
    .await;
    let j = recv_json(ws).await;
    assert_eq!(j["type"], "joined", "{j}");
    j
}

fn member_ids(joined: &Value) -> Vec<String> {
    let mut ids: Vec<String> = joined["members"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter_map(|m| m["sessionId"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

/// `from` relays an offer to `to_id`; `to` receives it from `from_id`.
async fn relays(from: &mut Ws, from_id: &str, to: &mut Ws, to_id: &str) {
    send_json(
        from,
        json!({"type": "offer", "to": to_id, "data": {"sdp": "x"}}),
    )
    .await;
    let got = recv_json(to).await;
    assert_eq!(
        (got["type"].as_str(), got["from"].as_str()),
        (Some("offer"), Some(from_id)),
        "{got}"
    );
}

#[tokio::test]
async fn a_new_socket_takes_its_old_seat_and_nobody_hears_of_it() {
    let server = common::spawn("[rooms]\ncapacity = 2").await;
    let (mut a, mut b) = (server.ws().await, server.ws().await);
    let ja = login(&mut a, "r", "Ann").await;
    let jb = login(&mut b, "r", "Bob").await;
    assert_eq!(jb["resumed"], false);
    let (a_id, b_id) = (id(&ja), id(&jb));
    assert_eq!(recv_json(&mut a).await["type"], "login");

    // Bob's network changes: the server has not noticed his old socket die yet. The room is
    // full, and still his new socket gets his seat.
    let mut b2 = server.ws().await;
    let jb2 = resume(&mut b2, "r", "Bob", &jb).await;
    assert_eq!(id(&jb2), b_id);
    assert_eq!(jb2["resumed"], true);
    assert_eq!(member_ids(&jb2), vec![a_id.clone()]);
    assert!(jb2["resumeToken"].is_string());
    // Ann hears nothing: no logout, no login, so her peer connection with Bob stays.
    expect_silence(&mut a, QUIET).await;
    // The old socket is told why it goes.
    assert_eq!(
        close_frame(&mut b).await,
        (4001, "resumed on another connection".into())
    );
    expect_silence(&mut a, QUIET).await;
    relays(&mut a, &a_id, &mut b2, &b_id).await;
    relays(&mut b2, &b_id, &mut a, &a_id).await;
    // Leaving now is Bob leaving.
    drop(b2);
    common::signal::expect_logout(&mut a, &b_id).await;
}

#[tokio::test]
async fn a_wrong_or_foreign_token_gets_a_fresh_id() {
    let server = common::spawn("").await;
    let (mut a, mut b) = (server.ws().await, server.ws().await);
    let ja = login(&mut a, "r", "Ann").await;
    let jb = login(&mut b, "r", "Bob").await;
    recv_json(&mut a).await;
    let b_id = id(&jb);

    let forged = [
        json!({"data": b_id, "resumeToken": "not-the-token"}),
        // Ann's token, with Bob's id.
        json!({"data": b_id, "resumeToken": ja["resumeToken"]}),
    ];
    for (i, fake) in forged.iter().enumerate() {
        let mut c = server.ws().await;
        let jc = resume(&mut c, "r", "Cy", fake).await;
        assert_eq!(jc["resumed"], false, "case {i}");
        assert_ne!(id(&jc), b_id, "case {i}");
        let heard = recv_json(&mut a).await;
        assert_eq!(
            (heard["type"].as_str(), heard["from"].as_str()),
            (Some("login"), Some(id(&jc).as_str()))
        );
        recv_json(&mut b).await;
        drop(c);
        common::signal::expect_logout(&mut a, &id(&jc)).await;
        common::signal::expect_logout(&mut b, &id(&jc)).await;
    }
    // Bob's own token is for room "r" only.
    let mut elsewhere = server.ws().await;
    let j = resume(&mut elsewhere, "other", "Bob", &jb).await;
    assert_eq!(j["resumed"], false);
    assert_ne!(id(&j), b_id);
    // Bob was never disturbed.
    relays(&mut a, &id(&ja), &mut b, &b_id).await;
}

#[tokio::test]
async fn after_a_restart_everyone_gets_their_id_back() {
    let server = common::spawn("").await;
    let (mut a, mut b) = (server.ws().await, server.ws().await);
    let ja = login(&mut a, "r", "Ann").await;
    let jb = login(&mut b, "r", "Bob").await;
    recv_json(&mut a).await;
    let (a_id, b_id) = (id(&ja), id(&jb));

    let server = server.restart().await;
    for ws in [&mut a, &mut b] {
        assert_eq!(close_frame(ws).await.0, 1001);
    }
    // Ann is back first: the room is empty, but the id is hers.
    let mut a2 = server.ws().await;
    let ja2 = resume(&mut a2, "r", "Ann", &ja).await;
    assert_eq!(
        (id(&ja2), ja2["resumed"].clone()),
        (a_id.clone(), json!(true))
    );
    assert_eq!(member_ids(&ja2), Vec::<String>::new());
    // Bob comes back: Ann hears his login under the id her peer connection already knows.
    let mut b2 = server.ws().await;
    let jb2 = resume(&mut b2, "r", "Bob", &jb).await;
    assert_eq!(id(&jb2), b_id);
    assert_eq!(member_ids(&jb2), vec![a_id.clone()]);
    let heard = recv_json(&mut a2).await;
    assert_eq!(
        (heard["type"].as_str(), heard["from"].as_str()),
        (Some("login"), Some(b_id.as_str()))
    );
    relays(&mut a2, &a_id, &mut b2, &b_id).await;
    relays(&mut b2, &b_id, &mut a2, &a_id).await;
    // The key that signs tokens is the admin's to keep, readable by peerbox only.
    let key = server.ssl_dir().join("session.key");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    // A relay to someone not back is refused as before.
    send_json(
        &mut a2,
        json!({"type": "offer", "to": "nobody", "data": {}}),
    )
    .await;
    assert_eq!(error_type(&recv_json(&mut a2).await), "unknown-peer");
}

#[tokio::test]
async fn without_the_key_file_a_restart_gives_fresh_ids() {
    let server = common::spawn("").await;
    let mut a = server.ws().await;
    let ja = login(&mut a, "r", "Ann").await;
    std::fs::remove_file(server.ssl_dir().join("session.key")).expect("the key file exists");
    let server = server.restart().await;
    let mut a2 = server.ws().await;
    let ja2 = resume(&mut a2, "r", "Ann", &ja).await;
    assert_eq!(ja2["resumed"], false);
    assert_ne!(id(&ja2), id(&ja));
}
