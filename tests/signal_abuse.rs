//! Hostile clients against the relay, from real WebSocket clients: frames built to cost the
//! most, floods shared out over many sockets of one address, credential collection, receivers
//! that never read, and pongs nobody asked for. Each holds the attacker to the configured
//! limits while the others keep being served. Durations are generous bounds, never speed claims.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::signal::{close_frame, error_type, expect_logout, id, login, ws_from};
use common::{Ws, expect_silence, recv_json, send_json};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

/// An offer to `to` with `keys` distinct top-level fields: the frame that cost the relay
/// quadratic time (51 ms of CPU for 6,100 keys in 60 KB).
fn many_keys(to: &str, keys: usize) -> String {
    let mut text = format!(r#"{{"type":"offer","to":"{to}","data":"x""#);
    for i in 0..keys {
        text.push_str(&format!(r#","k{i}":1"#));
    }
    text.push('}');
    text
}

/// The text messages that arrive within `wait` from now (pings and pongs skipped).
async fn drain(ws: &mut Ws, wait: Duration) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut got = Vec::new();
    while let Ok(Some(Ok(m))) = tokio::time::timeout_at(deadline, ws.next()).await {
        if let Message::Text(t) = m {
            got.push(serde_json::from_str(&t).expect("json"));
        }
    }
    got
}

#[tokio::test]
async fn the_many_keys_frame_is_refused_before_and_after_login() {
    let server = common::spawn("").await;
    let (mut a, mut b, mut stranger) = (server.ws().await, server.ws().await, server.ws().await);
    let a_id = id(&login(&mut a, "r", "Ann").await);
    let b_id = id(&login(&mut b, "r", "Bob").await);
    recv_json(&mut a).await;

    let frame = many_keys(&b_id, 6100);
    assert!(
        frame.len() > 50_000 && frame.len() < 65_536,
        "{}",
        frame.len()
    );
    // Not logged in: refused without being parsed.
    stranger
        .send(Message::text(frame.clone()))
        .await
        .expect("send");
    assert_eq!(error_type(&recv_json(&mut stranger).await), "not-in-room");
    // Logged in, to a room-mate: refused as a bad request, nothing relayed.
    a.send(Message::text(frame)).await.expect("send");
    let refused = recv_json(&mut a).await;
    assert_eq!(error_type(&refused), "bad-request", "{refused}");
    assert!(
        refused["message"]["errorText"]
            .as_str()
            .is_some_and(|t| t.contains("64"))
    );
    expect_silence(&mut b, Duration::from_millis(300)).await;
    // 64 fields are fine and travel whole.
    a.send(Message::text(many_keys(&b_id, 61)))
        .await
        .expect("send");
    let got = recv_json(&mut b).await;
    assert_eq!(
        (got["from"].as_str(), got["k60"].as_i64()),
        (Some(a_id.as_str()), Some(1))
    );
}

/// The sockets of one address share one allowance, logged in or not: opening more sockets
/// buys no more messages.
#[tokio::test]
async fn sockets_of_one_address_share_its_message_allowance() {
    let server = common::spawn(
        "[rooms]\nmessages_per_second = 1000\nmessage_burst = 1000\n\
         ip_messages_per_second = 1\nip_message_burst = 6\n",
    )
    .await;
    let check = json!({"type": "randomCheck", "data": "r"});
    let mut socks = Vec::new();
    for _ in 0..3 {
        socks.push(ws_from(&server, ip("127.0.0.2")).await);
    }
    for ws in socks.iter_mut() {
        for _ in 0..2 {
            send_json(ws, check.clone()).await;
            assert_eq!(recv_json(ws).await["type"], "randomCheckResult");
        }
    }
    // Six spent from 127.0.0.2: its next one is dropped, whichever socket sends it.
    let mut fourth = ws_from(&server, ip("127.0.0.2")).await;
    send_json(&mut fourth, check.clone()).await;
    assert_eq!(error_type(&recv_json(&mut fourth).await), "rate-limited");
    // Another address is another allowance.
    let mut other = ws_from(&server, ip("127.0.0.3")).await;
    send_json(&mut other, check).await;
    assert_eq!(recv_json(&mut other).await["type"], "randomCheckResult");
}

/// Bytes are charged too: past its byte allowance a connection is read more slowly (nothing
/// is dropped), so big frames cost what the limit says, not what the sender can push.
#[tokio::test]
async fn bytes_over_the_allowance_are_read_later_not_dropped() {
    let server = common::spawn(
        "[rooms]\nmax_message_bytes = 2048\nbytes_per_second = 1024\nbyte_burst = 2048\n\
         outbound_queue_bytes = 2048\nip_byte_burst = 2048\n",
    )
    .await;
    let mut ws = server.ws().await;
    // ~1000-byte frames: two fit the burst, the third runs into debt, then reading pauses.
    let frame =
        |i: usize| json!({"type": "randomCheck", "data": format!("r{i}"), "pad": "p".repeat(950)});
    for i in 0..6 {
        send_json(&mut ws, frame(i)).await;
    }
    let early = drain(&mut ws, Duration::from_millis(400)).await;
    assert!(
        (2..=3).contains(&early.len()),
        "{} of 6 answered at once with 2 KB allowed",
        early.len()
    );
    // The rest follow as the allowance refills (about one a second), in order.
    let mut all = early;
    while all.len() < 6 {
        let v = tokio::time::timeout(Duration::from_secs(5), recv_json(&mut ws))
            .await
            .expect("the rest are read later");
        all.push(v);
    }
    for (i, v) in all.iter().enumerate() {
        assert_eq!(v["data"]["roomrequest"], format!("r{i}"), "{v}");
    }
}

/// TURN credentials (in `joined` and in the `iceServers` answer) are handed out a few at a
/// time per address: the visitor who collected 100 sets in 6.8 s gets the burst, then
/// `rate-limited`; other addresses are served meanwhile.
#[tokio::test]
async fn credentials_are_rate_limited_per_address() {
    let server = common::spawn("[rooms]\ncredentials_per_minute = 1\ncredential_burst = 3\n").await;
    let mut a = ws_from(&server, ip("127.0.0.4")).await;
    send_json(&mut a, json!({"type": "iceServers"})).await;
    let ice = recv_json(&mut a).await;
    assert_eq!(ice["type"], "iceServers", "{ice}");
    assert!(
        ice["data"].as_array().is_some_and(|s| !s.is_empty()),
        "{ice}"
    );
    login(&mut a, "r1", "Ann").await;
    let mut a2 = ws_from(&server, ip("127.0.0.4")).await;
    login(&mut a2, "r2", "Ann").await;
    // The burst of 3 is spent, over two sockets: a login and an iceServers are refused,
    // and the refused login leaves the socket where it was.
    send_json(
        &mut a,
        json!({"type": "login", "data": {"roomrequest": "r2", "username": "Ann"}}),
    )
    .await;
    assert_eq!(error_type(&recv_json(&mut a).await), "rate-limited");
    send_json(&mut a2, json!({"type": "iceServers"})).await;
    assert_eq!(error_type(&recv_json(&mut a2).await), "rate-limited");
    let mut bo = ws_from(&server, ip("127.0.0.5")).await;
    let bo_id = id(&login(&mut bo, "r1", "Bo").await);
    assert_eq!(
        recv_json(&mut a).await["from"],
        bo_id.as_str(),
        "a is still in r1"
    );
    expect_silence(&mut a2, Duration::from_millis(200)).await;
}

/// One address can keep only so many rooms in existence; joining existing rooms stays open.
#[tokio::test]
async fn rooms_created_per_address_are_limited() {
    let server = common::spawn("[rooms]\nmax_rooms_per_ip = 2\n").await;
    let mut socks = Vec::new();
    for i in 0..2 {
        let mut ws = ws_from(&server, ip("127.0.0.6")).await;
        login(&mut ws, &format!("room-{i}"), "x").await;
        socks.push(ws);
    }
    let mut third = ws_from(&server, ip("127.0.0.6")).await;
    send_json(
        &mut third,
        json!({"type": "login", "data": {"roomrequest": "room-2", "username": "x"}}),
    )
    .await;
    assert_eq!(error_type(&recv_json(&mut third).await), "too-many-rooms");
    login(&mut third, "room-0", "x").await;
    login(&mut ws_from(&server, ip("127.0.0.7")).await, "room-2", "y").await;
}

/// A receiver that never reads is dropped once its queue holds `outbound_queue_bytes`, long
/// before `outbound_queue` frames: 256 frames of 60 KB were 15 MB per silent receiver.
#[tokio::test]
async fn a_receiver_that_never_reads_is_bounded_in_bytes() {
    let server = common::spawn(
        "[rooms]\noutbound_queue = 100000\noutbound_queue_bytes = 262144\n\
         messages_per_second = 100000\nmessage_burst = 100000\n\
         ip_messages_per_second = 100000\nip_message_burst = 100000\n\
         bytes_per_second = 1000000000\nip_bytes_per_second = 1000000000\n",
    )
    .await;
    let (mut a, mut silent) = (server.ws().await, server.ws().await);
    login(&mut a, "r", "Ann").await;
    let silent_id = id(&login(&mut silent, "r", "Sid").await);
    recv_json(&mut a).await;
    let offer = json!({"type": "offer", "to": silent_id, "data": "s".repeat(60_000)}).to_string();
    // What the sockets' buffers hold (a few MB on loopback) plus 256 KB of queue: far less
    // than the 100,000 frames the frame count alone would allow.
    for _ in 0..2_000 {
        a.send(Message::text(offer.clone())).await.expect("send");
        if let Ok(Some(Ok(Message::Text(t)))) =
            tokio::time::timeout(Duration::from_millis(1), a.next()).await
        {
            let v: Value = serde_json::from_str(&t).expect("json");
            assert_eq!(
                (v["type"].as_str(), v["from"].as_str()),
                (Some("logout"), Some(silent_id.as_str()))
            );
            return;
        }
    }
    expect_logout(&mut a, &silent_id).await;
}

/// Pongs nobody asked for do not keep a peer alive: only the echo of the server's own ping
/// proves the peer reads.
#[tokio::test]
async fn unsolicited_pongs_do_not_keep_a_silent_reader_alive() {
    let server =
        common::spawn("[rooms]\nping_interval_secs = 0.2\nidle_timeout_secs = 0.8\n").await;
    let (mut a, mut liar) = (server.ws().await, server.ws().await);
    login(&mut a, "r", "Ann").await;
    let liar_id = id(&login(&mut liar, "r", "Liar").await);
    recv_json(&mut a).await;
    // `liar` never reads (so never answers a ping) but sends a pong every 100 ms, and
    // messages too, for longer than `expect_logout` waits.
    let pump = tokio::spawn(async move {
        for _ in 0..150 {
            let pong = liar.send(Message::Pong(vec![0; 8].into())).await;
            let check = liar
                .send(Message::text(r#"{"type":"randomCheck","data":"x"}"#))
                .await;
            if pong.is_err() || check.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    expect_logout(&mut a, &liar_id).await;
    pump.abort();
}

/// Pings count like messages: a ping flood over the allowance stops the server reading that
/// socket until the allowance refills, so what follows the flood waits.
#[tokio::test]
async fn a_ping_flood_is_paced_like_messages() {
    let server = common::spawn("[rooms]\nmessages_per_second = 2\nmessage_burst = 2\n").await;
    let mut ws = server.ws().await;
    for _ in 0..10 {
        ws.feed(Message::Ping(vec![1].into())).await.expect("send");
    }
    ws.feed(Message::text(r#"{"type":"randomCheck","data":"after"}"#))
        .await
        .expect("send");
    ws.flush().await.expect("send");
    // Ten pings at two a second: the check behind them is read after some seconds.
    let early = drain(&mut ws, Duration::from_millis(1000)).await;
    assert!(
        early.is_empty(),
        "answered while the flood was being paid for: {early:?}"
    );
    let v = tokio::time::timeout(Duration::from_secs(10), recv_json(&mut ws))
        .await
        .expect("answered once paid for");
    assert_eq!(v["data"]["roomrequest"], "after", "{v}");
}

/// Violations of RFC 6455 end the connection with the code that says why.
#[tokio::test]
async fn protocol_violations_get_their_close_codes() {
    let server = common::spawn("").await;
    // Raw frames written under the client's WebSocket: FIN + opcode, masked length, mask.
    let cases: [(&str, Vec<u8>, u16); 4] = [
        (
            "text that is not UTF-8",
            masked(0x81, &[0xff, 0xfe, 0xfd]),
            1007,
        ),
        ("unmasked client frame", vec![0x81, 0x02, b'h', b'i'], 1002),
        ("reserved bit set", masked(0xC1, b"{}"), 1002),
        ("unknown opcode", masked(0x83, b"x"), 1002),
    ];
    for (name, bytes, code) in cases {
        let mut ws = server.ws().await;
        use tokio::io::AsyncWriteExt;
        ws.get_mut().write_all(&bytes).await.expect("write");
        ws.get_mut().flush().await.expect("flush");
        assert_eq!(close_frame(&mut ws).await.0, code, "{name}");
    }
}

/// A client frame: `head` (FIN, RSV, opcode), a zero mask, `payload` (< 126 bytes).
fn masked(head: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![head, 0x80 | payload.len() as u8, 0, 0, 0, 0];
    f.extend_from_slice(payload);
    f
}
