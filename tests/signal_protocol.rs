//! The signalling protocol of docs/protocol.md, spoken by real WebSocket clients over real TLS:
//! joining, relaying, leaving, and refusing bad input without dropping the client.

mod common;

use std::time::Duration;

use common::signal::{error_type, id, login};
use common::{expect_silence, recv_json, send_json};
use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const QUIET: Duration = Duration::from_millis(300);

#[tokio::test]
async fn login_answers_joined_and_tells_the_others() {
    let server = common::spawn("").await;
    let (mut a, mut b, mut c) = (server.ws().await, server.ws().await, server.ws().await);

    let ja = login(&mut a, "room-1", "Ann").await;
    let a_id = id(&ja);
    assert!(uuid::Uuid::parse_str(&a_id).is_ok_and(|u| u.get_version_num() == 4));
    assert_eq!(ja["protocol"], 1);
    assert_eq!(ja["room"], "room-1");
    assert_eq!(ja["members"], json!([]));
    assert_eq!(ja["capacity"], 10);
    assert!(ja["iceServers"].is_array());
    assert!(ja["resumeToken"].as_str().is_some_and(|t| t.len() >= 32));

    let jb = login(&mut b, "room-1", "Bob").await;
    let b_id = id(&jb);
    assert_ne!(a_id, b_id);
    assert_ne!(ja["resumeToken"], jb["resumeToken"]);
    assert_eq!(
        jb["members"],
        json!([{"sessionId": a_id, "username": "Ann"}])
    );
    assert_eq!(
        recv_json(&mut a).await,
        json!({"type": "login", "from": b_id,
               "data": {"roomrequest": "room-1", "username": "Bob"}})
    );

    let jc = login(&mut c, "room-1", "Cy").await;
    let c_id = id(&jc);
    let mut members = jc["members"].as_array().cloned().unwrap_or_default();
    members.sort_by_key(|m| m["username"].to_string());
    assert_eq!(
        members,
        vec![
            json!({"sessionId": a_id, "username": "Ann"}),
            json!({"sessionId": b_id, "username": "Bob"}),
        ]
    );
    for ws in [&mut a, &mut b] {
        let login = recv_json(ws).await;
        assert_eq!(login["type"], "login");
        assert_eq!(login["from"], c_id.as_str());
        assert_eq!(login["data"]["username"], "Cy");
    }
    expect_silence(&mut c, QUIET).await;
}

#[tokio::test]
async fn offer_answer_candidate_reach_only_their_target() {
    let server = common::spawn("").await;
    let (mut a, mut b, mut c) = (server.ws().await, server.ws().await, server.ws().await);
    let a_id = id(&login(&mut a, "r", "Ann").await);
    let b_id = id(&login(&mut b, "r", "Bob").await);
    recv_json(&mut a).await;
    let c_id = id(&login(&mut c, "r", "Cy").await);
    recv_json(&mut a).await;
    recv_json(&mut b).await;

    // A lies about `from`; extra fields travel untouched.
    let sdp = format!("v=0\r\n{}", "a=x\r\n".repeat(500));
    send_json(
        &mut a,
        json!({"type": "offer", "from": c_id, "to": b_id, "username": "Ann",
               "data": {"type": "offer", "sdp": sdp}, "extra": [1, {"k": null}]}),
    )
    .await;
    assert_eq!(
        recv_json(&mut b).await,
        json!({"type": "offer", "from": a_id, "to": b_id, "username": "Ann",
               "data": {"type": "offer", "sdp": sdp}, "extra": [1, {"k": null}]})
    );
    send_json(
        &mut b,
        json!({"type": "answer", "to": a_id, "data": {"type": "answer", "sdp": "v=0"}}),
    )
    .await;
    let answer = recv_json(&mut a).await;
    assert_eq!(answer["type"], "answer");
    assert_eq!(answer["from"], b_id.as_str());
    // The seed client sends candidates without `username` and with from "".
    let cand = json!({"candidate": "candidate:1 1 udp 2122260223 10.0.0.1 5000 typ host",
                      "sdpMid": "0", "sdpMLineIndex": 0});
    send_json(
        &mut c,
        json!({"type": "candidate", "from": "", "to": a_id, "data": cand}),
    )
    .await;
    assert_eq!(
        recv_json(&mut a).await,
        json!({"type": "candidate", "from": c_id, "to": a_id, "data": cand})
    );
    expect_silence(&mut b, QUIET).await;
    expect_silence(&mut c, QUIET).await;
}

#[tokio::test]
async fn relay_outside_a_room_or_to_a_stranger_is_refused() {
    let server = common::spawn("").await;
    let (mut a, mut b, mut c) = (server.ws().await, server.ws().await, server.ws().await);
    let a_id = id(&login(&mut a, "one", "Ann").await);
    let b_id = id(&login(&mut b, "two", "Bob").await);

    // Not in a room yet.
    send_json(&mut c, json!({"type": "offer", "to": a_id, "data": "sdp"})).await;
    assert_eq!(error_type(&recv_json(&mut c).await), "not-in-room");
    send_json(&mut c, json!({"type": "logout"})).await;
    assert_eq!(error_type(&recv_json(&mut c).await), "not-in-room");

    // A member of another room, and an id that is nobody.
    send_json(&mut a, json!({"type": "offer", "to": b_id, "data": "sdp"})).await;
    assert_eq!(error_type(&recv_json(&mut a).await), "unknown-peer");
    send_json(
        &mut a,
        json!({"type": "candidate", "to": uuid::Uuid::new_v4().to_string(), "data": "c"}),
    )
    .await;
    assert_eq!(error_type(&recv_json(&mut a).await), "unknown-peer");
    expect_silence(&mut b, QUIET).await;

    // Still usable afterwards.
    let c_id = id(&login(&mut c, "one", "Cy").await);
    recv_json(&mut a).await;
    send_json(&mut a, json!({"type": "answer", "to": c_id, "data": "ok"})).await;
    assert_eq!(recv_json(&mut c).await["from"], a_id.as_str());
}

#[tokio::test]
async fn random_check_reports_existing_rooms_and_reuse_after_empty() {
    let server = common::spawn("").await;
    let (mut a, mut b) = (server.ws().await, server.ws().await);
    let check = |room: &str| json!({"type": "randomCheck", "from": "", "to": "", "data": room});

    send_json(&mut b, check("lobby")).await;
    assert_eq!(
        recv_json(&mut b).await,
        json!({"type": "randomCheckResult", "data": {"result": "ok", "roomrequest": "lobby"}})
    );
    login(&mut a, "lobby", "Ann").await;
    send_json(&mut b, check("lobby")).await;
    assert_eq!(recv_json(&mut b).await["data"]["result"], "fail");

    // The last member leaves: the room is gone at once and its id free again.
    a.close(None).await.expect("close");
    drop(a);
    let mut result = Value::Null;
    for _ in 0..50 {
        send_json(&mut b, check("lobby")).await;
        result = recv_json(&mut b).await["data"]["result"].clone();
        if result == "ok" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(result, "ok");
    let jb = login(&mut b, "lobby", "Bob").await;
    assert_eq!(jb["members"], json!([]));
}

#[tokio::test]
async fn leaving_by_close_or_logout_tells_the_room() {
    let server = common::spawn("").await;
    let (mut a, mut b, mut c) = (server.ws().await, server.ws().await, server.ws().await);
    login(&mut a, "r", "Ann").await;
    let b_id = id(&login(&mut b, "r", "Bob").await);
    recv_json(&mut a).await;
    let c_id = id(&login(&mut c, "r", "Cy").await);
    recv_json(&mut a).await;
    recv_json(&mut b).await;

    send_json(&mut c, json!({"type": "logout"})).await;
    for ws in [&mut a, &mut b] {
        assert_eq!(
            recv_json(ws).await,
            json!({"type": "logout", "from": c_id, "data": {"username": "Cy", "sessionId": c_id}})
        );
    }
    // C's socket stays usable and it may log in again.
    let jc = login(&mut c, "r", "Cy").await;
    assert_eq!(jc["members"].as_array().map(Vec::len), Some(2));
    recv_json(&mut a).await;
    recv_json(&mut b).await;

    drop(b);
    for ws in [&mut a, &mut c] {
        assert_eq!(
            recv_json(ws).await,
            json!({"type": "logout", "from": b_id, "data": {"username": "Bob", "sessionId": b_id}})
        );
    }
}

#[tokio::test]
async fn second_login_moves_rooms_without_a_ghost() {
    let server = common::spawn("").await;
    let (mut a, mut b, mut c) = (server.ws().await, server.ws().await, server.ws().await);
    login(&mut a, "first", "Ann").await;
    let b_id = id(&login(&mut b, "first", "Bob").await);
    recv_json(&mut a).await;
    login(&mut c, "second", "Cy").await;

    let jb = login(&mut b, "second", "Bob").await;
    assert_eq!(id(&jb), b_id, "same socket, same session id");
    assert_eq!(jb["members"].as_array().map(Vec::len), Some(1));
    assert_eq!(recv_json(&mut a).await["type"], "logout");
    assert_eq!(recv_json(&mut c).await["from"], b_id.as_str());

    // A is alone in "first": B no longer counts there, and nothing reaches B from it.
    let mut d = server.ws().await;
    let jd = login(&mut d, "first", "Di").await;
    assert_eq!(jd["members"].as_array().map(Vec::len), Some(1));
    assert_eq!(recv_json(&mut a).await["type"], "login");
    send_json(&mut a, json!({"type": "offer", "to": b_id, "data": "sdp"})).await;
    assert_eq!(error_type(&recv_json(&mut a).await), "unknown-peer");
    expect_silence(&mut b, QUIET).await;
}

#[tokio::test]
async fn a_full_room_refuses_the_next_member() {
    let server = common::spawn("[rooms]\ncapacity = 2\n").await;
    let (mut a, mut b, mut c) = (server.ws().await, server.ws().await, server.ws().await);
    login(&mut a, "r", "Ann").await;
    let jb = login(&mut b, "r", "Bob").await;
    assert_eq!(jb["capacity"], 2);
    recv_json(&mut a).await;

    send_json(
        &mut c,
        json!({"type": "login", "data": {"roomrequest": "r", "username": "Cy"}}),
    )
    .await;
    let full = recv_json(&mut c).await;
    assert_eq!(error_type(&full), "full");
    assert!(
        full["message"]["errorText"]
            .as_str()
            .is_some_and(|t| t.contains('2'))
    );
    expect_silence(&mut a, QUIET).await;
    // The refused client can use another room.
    login(&mut c, "other", "Cy").await;
}

#[tokio::test]
async fn bad_input_is_answered_and_the_connection_stays_usable() {
    let server = common::spawn("").await;
    let (mut a, mut b) = (server.ws().await, server.ws().await);
    let a_id = id(&login(&mut a, "r", "Ann").await);
    login(&mut b, "r", "Bob").await;
    recv_json(&mut a).await;

    let long_name =
        json!({"type": "login", "data": {"roomrequest": "r", "username": "n".repeat(65)}});
    let long_room =
        json!({"type": "login", "data": {"roomrequest": "r".repeat(129), "username": "x"}});
    let cases: Vec<(&str, Message)> = vec![
        ("not json", Message::text("{not json")),
        ("array", Message::text("[1,2,3]")),
        ("number", Message::text("42")),
        ("missing type", Message::text(r#"{"data":"x"}"#)),
        ("wrong-typed type", Message::text(r#"{"type":["login"]}"#)),
        (
            "wrong-typed data",
            Message::text(r#"{"type":"login","data":"r"}"#),
        ),
        (
            "wrong-typed to",
            Message::text(r#"{"type":"offer","to":5,"data":"x"}"#),
        ),
        (
            "unknown type",
            Message::text(r#"{"type":"dance","data":"x"}"#),
        ),
        (
            "binary frame",
            Message::binary(b"{\"type\":\"logout\"}".to_vec()),
        ),
        ("overlong username", Message::text(long_name.to_string())),
        ("overlong roomrequest", Message::text(long_room.to_string())),
        (
            "empty username",
            Message::text(r#"{"type":"login","data":{"roomrequest":"r","username":" "}}"#),
        ),
    ];
    for (name, msg) in cases {
        b.send(msg).await.expect("send");
        let answer = recv_json(&mut b).await;
        assert_eq!(error_type(&answer), "bad-request", "{name}: {answer}");
        // Still in the room and still relaying.
        send_json(
            &mut b,
            json!({"type": "candidate", "to": a_id, "data": name}),
        )
        .await;
        assert_eq!(recv_json(&mut a).await["data"], name, "{name}");
    }
    // Nobody else heard any of it.
    expect_silence(&mut a, QUIET).await;
}

#[tokio::test]
async fn seed_client_on_another_path_works() {
    let server = common::spawn("").await;
    let (mut a, mut b) = (server.ws_path("/").await, server.ws_path("/room/xyz").await);
    send_json(
        &mut a,
        json!({"type": "randomCheck", "from": "", "to": "", "data": "xyz"}),
    )
    .await;
    assert_eq!(recv_json(&mut a).await["data"]["result"], "ok");
    let a_id = id(&login(&mut a, "xyz", "Ann").await);
    let b_id = id(&login(&mut b, "xyz", "Bob").await);
    let forwarded = recv_json(&mut a).await;
    assert_eq!(forwarded["type"], "login");
    assert_eq!(forwarded["from"], b_id.as_str());
    send_json(
        &mut a,
        json!({"type": "offer", "from": a_id, "to": b_id, "data": {"sdp": "v=0"}, "username": "Ann"}),
    )
    .await;
    let offer = recv_json(&mut b).await;
    assert_eq!(offer["username"], "Ann");
    assert_eq!(offer["from"], a_id.as_str());
}

/// Extension: `iceServers` answers fresh ICE servers before (and after) a login, with the same
/// credentials as `joined` would carry.
#[tokio::test]
async fn ice_servers_are_answered_before_and_after_login() {
    let server = common::spawn("").await;
    let mut a = server.ws().await;
    for _ in 0..2 {
        send_json(&mut a, json!({"type": "iceServers"})).await;
        let ice = recv_json(&mut a).await;
        assert_eq!(ice["type"], "iceServers", "{ice}");
        let servers = ice["data"].as_array().cloned().unwrap_or_default();
        assert!(
            servers
                .iter()
                .any(|s| s["username"].is_string() && s["credential"].is_string()),
            "{ice}"
        );
        login(&mut a, "r", "Ann").await;
    }
}

/// The upgrade request's Origin header: this server's own host on any port and the admin's
/// extras may connect, other sites get 403, and non-browser clients (no Origin) are served.
#[tokio::test]
async fn the_browser_origin_is_checked() {
    let server = common::spawn("[rooms]\nallowed_origins = [\"https://app.example.org\"]\n").await;
    let cases = [
        (Some("https://localhost"), 101),
        (Some("http://localhost:5173"), 101),
        (Some("https://app.example.org"), 101),
        (None, 101),
        (Some("https://evil.example"), 403),
        (Some("https://localhost.evil.example"), 403),
        (Some("https://app.example.org:8443"), 403),
        (Some("null"), 403),
    ];
    for (origin, want) in cases {
        let mut headers = vec![
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ];
        if let Some(o) = origin {
            headers.push(("origin", o));
        }
        let resp = server.request("GET", "/ws", &headers).await;
        assert_eq!(resp.status().as_u16(), want, "{origin:?}");
        if want == 403 {
            let body = String::from_utf8_lossy(resp.body());
            assert!(body.contains("allowed_origins"), "{body}");
        }
    }
}
