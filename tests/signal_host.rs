//! A room's host and its powers (docs/protocol.md, "Host"), over real TLS and WebSocket
//! clients: every power, every refusal of a member who is not the host, a removed member
//! coming back, passwords wrong then right, the lobby when the host leaves, and a seed-style
//! client that knows none of it in an unlocked room.

mod common;

use std::time::Duration;

use common::signal::{close_frame, error_type, expect_logout, id, login};
use common::{Ws, expect_silence, recv_json, send_json};
use serde_json::{Value, json};

const QUIET: Duration = Duration::from_millis(300);

/// The next message of `kind`, skipping others (up to 10 s).
async fn next_of(ws: &mut Ws, kind: &str) -> Value {
    common::signal::next_of(ws, kind, Duration::from_secs(10)).await
}

/// Sends a login with extra `data` fields (a password) and returns the answer.
async fn login_with(ws: &mut Ws, room: &str, name: &str, extra: Value) -> Value {
    let mut data = json!({"roomrequest": room, "username": name});
    if let (Some(d), Some(e)) = (data.as_object_mut(), extra.as_object()) {
        d.extend(e.clone());
    }
    send_json(ws, json!({"type": "login", "data": data})).await;
    recv_json(ws).await
}

async fn settings(ws: &mut Ws, data: Value) {
    send_json(ws, json!({"type": "roomSettings", "data": data})).await;
}

#[tokio::test]
async fn the_creator_hosts_and_the_role_passes_on() {
    let server = common::spawn("").await;
    let (mut a, mut b, mut c) = (server.ws().await, server.ws().await, server.ws().await);
    let ja = login(&mut a, "r", "Ann").await;
    let a_id = id(&ja);
    assert_eq!(
        ja["state"],
        json!({"host": a_id, "locked": false, "lobby": false, "password": false, "history": true})
    );
    let jb = login(&mut b, "r", "Bob").await;
    let b_id = id(&jb);
    assert_eq!(jb["state"]["host"], a_id.as_str());
    recv_json(&mut a).await;
    let c_id = id(&login(&mut c, "r", "Cy").await);
    recv_json(&mut a).await;
    recv_json(&mut b).await;

    // The host hands over; everyone hears it.
    send_json(&mut a, json!({"type": "handOver", "to": c_id})).await;
    for ws in [&mut a, &mut b, &mut c] {
        let s = recv_json(ws).await;
        assert_eq!(s["type"], "roomState", "{s}");
        assert_eq!(s["data"]["host"], c_id.as_str());
    }
    // The host leaves: the member present longest (Ann) takes over.
    drop(c);
    for ws in [&mut a, &mut b] {
        expect_logout(ws, &c_id).await;
        assert_eq!(recv_json(ws).await["data"]["host"], a_id.as_str());
    }
    // A resumed host keeps the role.
    let token = ja["resumeToken"].as_str().unwrap_or_default().to_owned();
    let mut a2 = server.ws().await;
    send_json(
        &mut a2,
        json!({"type": "login", "data": {"roomrequest": "r", "username": "Ann",
               "resume": {"sessionId": a_id, "token": token}}}),
    )
    .await;
    let ja2 = recv_json(&mut a2).await;
    // Ann has her own session id back and her seat: still the host, and Bob hears nothing.
    assert_eq!(id(&ja2), a_id);
    assert_eq!(ja2["resumed"], true);
    assert_eq!(ja2["state"]["host"], a_id.as_str());
    expect_silence(&mut b, QUIET).await;
    let _ = b_id;
}

#[tokio::test]
async fn a_member_who_is_not_host_is_refused_every_power() {
    let server = common::spawn("").await;
    let (mut a, mut b, mut out) = (server.ws().await, server.ws().await, server.ws().await);
    let a_id = id(&login(&mut a, "r", "Ann").await);
    let b_id = id(&login(&mut b, "r", "Bob").await);
    recv_json(&mut a).await;
    let powers = [
        json!({"type": "roomSettings", "data": {"locked": true}}),
        json!({"type": "roomSettings", "data": {"password": "mine now"}}),
        json!({"type": "roomSettings", "data": {"lobby": true, "history": false}}),
        json!({"type": "handOver", "to": b_id}),
        json!({"type": "admit", "to": a_id}),
        json!({"type": "decline", "to": a_id}),
        json!({"type": "remove", "to": a_id}),
        json!({"type": "askMute", "to": a_id, "data": {"kind": "audio"}}),
        json!({"type": "endCall"}),
    ];
    for p in &powers {
        send_json(&mut b, p.clone()).await;
        assert_eq!(error_type(&recv_json(&mut b).await), "not-host", "{p}");
        send_json(&mut out, p.clone()).await;
        assert_eq!(error_type(&recv_json(&mut out).await), "not-in-room", "{p}");
    }
    expect_silence(&mut a, QUIET).await;
    // Malformed ones are bad requests, whoever sends them.
    for bad in [
        json!({"type": "roomSettings", "data": {"locked": "yes"}}),
        json!({"type": "roomSettings", "data": {"password": ""}}),
        json!({"type": "roomSettings"}),
        json!({"type": "remove"}),
        json!({"type": "askMute", "to": b_id, "data": {"kind": "screen"}}),
        json!({"type": "askMute", "to": b_id}),
    ] {
        send_json(&mut a, bad.clone()).await;
        assert_eq!(error_type(&recv_json(&mut a).await), "bad-request", "{bad}");
    }
    // The host's own powers on nobody.
    let nobody = uuid::Uuid::new_v4().to_string();
    for kind in ["handOver", "admit", "decline", "remove"] {
        send_json(&mut a, json!({"type": kind, "to": nobody})).await;
        assert_eq!(
            error_type(&recv_json(&mut a).await),
            "unknown-peer",
            "{kind}"
        );
    }
    expect_silence(&mut b, QUIET).await;
}

#[tokio::test]
async fn a_locked_room_refuses_new_logins_with_a_clear_error() {
    let server = common::spawn("").await;
    let (mut a, mut c) = (server.ws().await, server.ws().await);
    let a_id = id(&login(&mut a, "r", "Ann").await);
    settings(&mut a, json!({"locked": true})).await;
    let s = recv_json(&mut a).await;
    assert_eq!(s["type"], "roomState");
    assert_eq!(s["data"]["locked"], true);
    assert_eq!(s["data"]["host"], a_id.as_str());

    let refused = login_with(&mut c, "r", "Cy", json!({})).await;
    assert_eq!(error_type(&refused), "locked");
    assert!(
        refused["message"]["errorText"]
            .as_str()
            .is_some_and(|t| t.contains("locked")),
        "{refused}"
    );
    expect_silence(&mut a, QUIET).await;
    settings(&mut a, json!({"locked": false})).await;
    assert_eq!(recv_json(&mut a).await["data"]["locked"], false);
    assert_eq!(login(&mut c, "r", "Cy").await["state"]["locked"], false);
}

#[tokio::test]
async fn a_password_is_asked_wrong_ones_are_refused_then_rate_limited() {
    let server = common::spawn("").await;
    let (mut a, mut b, mut c) = (server.ws().await, server.ws().await, server.ws().await);
    login(&mut a, "r", "Ann").await;
    settings(&mut a, json!({"password": "correct horse"})).await;
    let s = recv_json(&mut a).await;
    assert_eq!(s["data"]["password"], true, "{s}");
    assert!(!s.to_string().contains("correct horse"), "{s}");

    let none = login_with(&mut b, "r", "Bob", json!({})).await;
    assert_eq!(error_type(&none), "password-required");
    let wrong = login_with(&mut b, "r", "Bob", json!({"password": "Correct horse"})).await;
    assert_eq!(error_type(&wrong), "wrong-password");
    let right = login_with(&mut b, "r", "Bob", json!({"password": "correct horse"})).await;
    assert_eq!(right["type"], "joined", "{right}");
    assert_eq!(right["state"]["password"], true);
    assert_eq!(recv_json(&mut a).await["type"], "login");

    // The address has 5 tries at once: the host's setting took one, Bob's mistake one.
    for _ in 0..3 {
        let wrong = login_with(&mut c, "r", "Cy", json!({"password": "guess"})).await;
        assert_eq!(error_type(&wrong), "wrong-password");
    }
    let limited = login_with(&mut c, "r", "Cy", json!({"password": "correct horse"})).await;
    assert_eq!(error_type(&limited), "rate-limited");
    // Another address is not limited by it.
    let mut d = common::signal::ws_from(&server, "127.0.0.2".parse().unwrap()).await;
    let d_in = login_with(&mut d, "r", "Di", json!({"password": "correct horse"})).await;
    assert_eq!(d_in["type"], "joined", "{d_in}");

    // Clearing it lets anyone in again.
    settings(&mut a, json!({"password": null})).await;
    assert_eq!(
        next_of(&mut a, "roomState").await["data"]["password"],
        false
    );
    assert_eq!(login(&mut c, "r", "Cy").await["state"]["password"], false);
}

#[tokio::test]
async fn the_lobby_admits_declines_and_outlives_its_host() {
    let server = common::spawn("[rooms]\nlobby_wait_secs = 1.5").await;
    let (mut a, mut b) = (server.ws().await, server.ws().await);
    let a_id = id(&login(&mut a, "r", "Ann").await);
    let b_id = id(&login(&mut b, "r", "Bob").await);
    recv_json(&mut a).await;
    settings(&mut a, json!({"lobby": true})).await;
    assert_eq!(recv_json(&mut a).await["data"]["lobby"], true);
    assert_eq!(recv_json(&mut b).await["data"]["lobby"], true);

    // Cy knocks; only the host hears it, and lets Cy in.
    let mut c = server.ws().await;
    let knock = login_with(&mut c, "r", "Cy", json!({})).await;
    assert_eq!(
        knock,
        json!({"type": "knocking", "data": {"roomrequest": "r", "waitSecs": 1.5}})
    );
    let lobby = recv_json(&mut a).await;
    assert_eq!(lobby["type"], "lobby");
    assert_eq!(lobby["data"][0]["waitedSecs"], 0.0, "{lobby}");
    let c_id = lobby["data"][0]["sessionId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(lobby["data"][0]["username"], "Cy");
    expect_silence(&mut b, QUIET).await;
    // A knocker is not in the room.
    send_json(&mut c, json!({"type": "offer", "to": a_id, "data": "x"})).await;
    assert_eq!(error_type(&recv_json(&mut c).await), "not-in-room");
    send_json(&mut a, json!({"type": "admit", "to": c_id})).await;
    let jc = recv_json(&mut c).await;
    assert_eq!(jc["type"], "joined");
    assert_eq!(id(&jc), c_id);
    assert_eq!(jc["members"].as_array().map(Vec::len), Some(2));
    assert_eq!(recv_json(&mut a).await["data"], json!([]));
    assert_eq!(recv_json(&mut a).await["from"], c_id.as_str());
    assert_eq!(recv_json(&mut b).await["from"], c_id.as_str());

    // Di knocks, then the host leaves: Bob, now host, sees Di waiting and declines.
    let mut d = server.ws().await;
    assert_eq!(
        login_with(&mut d, "r", "Di", json!({})).await["type"],
        "knocking"
    );
    next_of(&mut a, "lobby").await;
    drop(a);
    expect_logout(&mut b, &a_id).await;
    assert_eq!(recv_json(&mut b).await["data"]["host"], b_id.as_str());
    let lobby = recv_json(&mut b).await;
    assert_eq!(lobby["data"][0]["username"], "Di", "{lobby}");
    let d_id = lobby["data"][0]["sessionId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    send_json(&mut b, json!({"type": "decline", "to": d_id})).await;
    assert_eq!(error_type(&recv_json(&mut d).await), "declined");

    // A knock nobody answers ends after lobby_wait_secs.
    assert_eq!(
        login_with(&mut d, "r", "Di", json!({})).await["type"],
        "knocking"
    );
    let timeout = tokio::time::timeout(Duration::from_secs(5), recv_json(&mut d)).await;
    assert_eq!(error_type(&timeout.expect("within 5 s")), "lobby-timeout");

    // The last member leaves: whoever knocks hears that the room closed.
    assert_eq!(
        login_with(&mut d, "r", "Di", json!({})).await["type"],
        "knocking"
    );
    drop(b);
    drop(c);
    assert_eq!(error_type(&recv_json(&mut d).await), "lobby-closed");
}

#[tokio::test]
async fn the_knocker_hears_how_long_it_may_wait_and_the_host_how_long_each_waited() {
    let server = common::spawn("[rooms]\nlobby_wait_secs = 90").await;
    let mut a = server.ws().await;
    login(&mut a, "r", "Ann").await;
    settings(&mut a, json!({"lobby": true})).await;
    next_of(&mut a, "roomState").await;

    let mut c = server.ws().await;
    let knock = login_with(&mut c, "r", "Cy", json!({})).await;
    assert_eq!(knock["data"]["waitSecs"], 90.0, "{knock}");
    assert_eq!(next_of(&mut a, "lobby").await["data"][0]["waitedSecs"], 0.0);

    // A second knock a while later: the list gives each knocker its own wait so far.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let mut d = server.ws().await;
    assert_eq!(
        login_with(&mut d, "r", "Di", json!({})).await["data"]["waitSecs"],
        90.0
    );
    let lobby = next_of(&mut a, "lobby").await;
    let waited = |i: usize| lobby["data"][i]["waitedSecs"].as_f64().unwrap_or(-1.0);
    assert_eq!(lobby["data"][0]["username"], "Cy", "{lobby}");
    assert!((1.2..5.0).contains(&waited(0)), "{lobby}");
    assert!((0.0..1.0).contains(&waited(1)), "{lobby}");
}

#[tokio::test]
async fn a_removed_member_is_closed_and_kept_out_for_a_while() {
    let server = common::spawn("[rooms]\nremoved_for_secs = 2").await;
    let (mut a, mut b) = (server.ws().await, server.ws().await);
    login(&mut a, "r", "Ann").await;
    let b_id = id(&login(&mut b, "r", "Bob").await);
    recv_json(&mut a).await;

    send_json(&mut a, json!({"type": "remove", "to": b_id})).await;
    assert_eq!(error_type(&recv_json(&mut b).await), "removed");
    assert_eq!(
        close_frame(&mut b).await,
        (1008, "removed by the host".into())
    );
    expect_logout(&mut a, &b_id).await;

    // Bob comes back under the same name from the same address: refused; as someone else
    // (another person behind the same address) he gets in.
    let mut b2 = server.ws().await;
    assert_eq!(
        error_type(&login_with(&mut b2, "r", "Bob", json!({})).await),
        "removed"
    );
    let other = login(&mut b2, "r", "Bea").await;
    assert_eq!(other["type"], "joined");
    // After removed_for_secs, the name is welcome again.
    let mut b3 = server.ws().await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(login(&mut b3, "r", "Bob").await["type"], "joined");
}

#[tokio::test]
async fn asking_to_mute_and_ending_the_call() {
    let server = common::spawn("").await;
    let (mut a, mut b) = (server.ws().await, server.ws().await);
    let a_id = id(&login(&mut a, "r", "Ann").await);
    let b_id = id(&login(&mut b, "r", "Bob").await);
    recv_json(&mut a).await;

    for kind in ["audio", "video"] {
        send_json(
            &mut a,
            json!({"type": "askMute", "to": b_id, "data": {"kind": kind}}),
        )
        .await;
        assert_eq!(
            recv_json(&mut b).await,
            json!({"type": "askMute", "from": a_id, "data": {"kind": kind}})
        );
    }
    send_json(&mut a, json!({"type": "endCall"})).await;
    for ws in [&mut a, &mut b] {
        assert_eq!(recv_json(ws).await, json!({"type": "ended", "from": a_id}));
    }
    // Nobody is in the room any more, and its id is free.
    send_json(&mut b, json!({"type": "offer", "to": a_id, "data": "x"})).await;
    assert_eq!(error_type(&recv_json(&mut b).await), "not-in-room");
    send_json(&mut b, json!({"type": "randomCheck", "data": "r"})).await;
    assert_eq!(recv_json(&mut b).await["data"]["result"], "ok");
}

/// The seed's client knows no extension: in an unlocked room it joins, relays and leaves as
/// before, and the extension messages it may get (`roomState`) it ignores.
#[tokio::test]
async fn a_seed_client_still_works_in_an_unlocked_room() {
    let server = common::spawn("").await;
    let (mut a, mut seed) = (server.ws().await, server.ws_path("/").await);
    let a_id = id(&login(&mut a, "family", "Ann").await);
    settings(&mut a, json!({"history": false})).await;
    recv_json(&mut a).await;
    let seed_id = id(&login(&mut seed, "family", "Grandpa").await);
    assert_eq!(recv_json(&mut a).await["from"], seed_id.as_str());
    send_json(
        &mut a,
        json!({"type": "offer", "from": "", "to": seed_id, "data": {"sdp": "v=0"}, "username": "Ann"}),
    )
    .await;
    let offer = recv_json(&mut seed).await;
    assert_eq!(
        (offer["type"].as_str(), offer["from"].as_str()),
        (Some("offer"), Some(a_id.as_str()))
    );
    send_json(
        &mut seed,
        json!({"type": "answer", "from": "", "to": a_id, "data": {"sdp": "v=0"}}),
    )
    .await;
    assert_eq!(recv_json(&mut a).await["type"], "answer");
    send_json(
        &mut seed,
        json!({"type": "logout", "from": "", "to": "", "data": ""}),
    )
    .await;
    expect_logout(&mut a, &seed_id).await;
}

#[tokio::test]
async fn short_room_names_are_refused_only_when_configured() {
    let server = common::spawn("[rooms]\nmin_room_chars = 8").await;
    let mut a = server.ws().await;
    let refused = login_with(&mut a, "abc", "Ann", json!({})).await;
    assert_eq!(error_type(&refused), "room-name-too-short");
    assert_eq!(login(&mut a, "abcdefgh", "Ann").await["room"], "abcdefgh");
}
