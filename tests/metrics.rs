//! The monitoring listener of a real server: `/metrics` moves by exactly what a login, a bad
//! message, a relayed TURN allocation, a STUN binding and a refused peer did, and its text is
//! valid exposition (checked by `promtool check metrics`, Debian's `prometheus`); `/readyz`
//! flips when the certificate nears its end; the systemd watchdog gets its pings.
#![allow(clippy::unwrap_used)]

mod common;
mod turn_client;

use std::collections::BTreeMap;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;
use turn_client::{Client, Peer};

use common::metrics::{Samples, promtool_accepts, scrape};

/// What changed between two scrapes, besides the samples that are the same.
fn changes(before: &Samples, after: &Samples) -> BTreeMap<String, f64> {
    after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(v))
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .collect()
}

#[tokio::test]
async fn counters_move_by_exactly_what_happened() {
    let server = common::spawn_with_turn("allow_loopback_peers = true").await;
    let (text, before) = scrape(&server).await;
    promtool_accepts(&text);
    for name in [
        "peerbox_build_info{version=\"0.1.0\"}",
        "peerbox_rooms",
        "peerbox_turn_allocations{transport=\"tls\"}",
        "peerbox_ws_closed_total{reason=\"too_slow\"}",
        "peerbox_turn_denied_total{reason=\"quota\"}",
        "peerbox_acme_renewals_total",
    ] {
        assert!(before.contains_key(name), "{name} missing:\n{text}");
    }
    assert!(before["peerbox_certificate_expiry_seconds"] > before["peerbox_start_time_seconds"]);

    // A login, then a message that is not JSON.
    let mut ws = server.ws().await;
    let joined = common::signal::login(&mut ws, "metrics-room", "Ann").await;
    ws.send(Message::text("not json")).await.unwrap();
    let err = common::recv_json(&mut ws).await;
    assert_eq!(common::signal::error_type(&err), "bad-request");

    // A relayed TURN allocation with the credentials of that `joined`: 10 bytes out, 8 back.
    let turn = joined["iceServers"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["username"].is_string()))
        .expect("a TURN entry with credentials");
    let (user, pass) = (
        turn["username"].as_str().unwrap(),
        turn["credential"].as_str().unwrap(),
    );
    let mut c = Client::udp(server.turn, user, pass).await;
    let relay = c.allocate().await.expect("allocate");
    let peer = Peer::new().await;
    c.create_permission(&[peer.addr()]).await.unwrap();
    c.send_indication(peer.addr(), b"hello peer").await;
    let (data, from) = peer.recv(Duration::from_secs(3)).await.expect("relayed");
    assert_eq!((&data[..], from), (&b"hello peer"[..], relay));
    peer.socket.send_to(b"hi back!", from).await.unwrap();
    assert!(
        c.recv(Duration::from_secs(3)).await.is_some(),
        "relayed back"
    );
    // A refused peer (the policy denies private ranges).
    let private = "10.0.0.1:9".parse().unwrap();
    assert_eq!(c.create_permission(&[private]).await, Err(403));
    // A plain STUN binding.
    let mut binding = vec![0, 1, 0, 0, 0x21, 0x12, 0xA4, 0x42];
    binding.extend_from_slice(&[7; 12]);
    c.send_raw(&binding).await;
    assert!(c.recv_raw(Duration::from_secs(3)).await.is_some());

    let (text, after) = scrape(&server).await;
    promtool_accepts(&text);
    let want: BTreeMap<String, f64> = [
        ("peerbox_rooms", 1.0),
        ("peerbox_room_members", 1.0),
        ("peerbox_ws_connections", 1.0),
        ("peerbox_ws_connections_opened_total", 1.0),
        ("peerbox_signal_messages_total{type=\"login\"}", 1.0),
        ("peerbox_signal_errors_total{type=\"bad-request\"}", 1.0),
        ("peerbox_tls_handshakes_total", 1.0),
        ("peerbox_turn_allocations{transport=\"udp\"}", 1.0),
        (
            "peerbox_turn_allocations_created_total{transport=\"udp\"}",
            1.0,
        ),
        (
            "peerbox_turn_relayed_packets_total{direction=\"client_to_peer\"}",
            1.0,
        ),
        (
            "peerbox_turn_relayed_packets_total{direction=\"peer_to_client\"}",
            1.0,
        ),
        (
            "peerbox_turn_relayed_bytes_total{direction=\"client_to_peer\"}",
            10.0,
        ),
        (
            "peerbox_turn_relayed_bytes_total{direction=\"peer_to_client\"}",
            8.0,
        ),
        // The 401 that tells the client the realm and nonce, and the private peer.
        ("peerbox_turn_denied_total{reason=\"auth\"}", 1.0),
        ("peerbox_turn_denied_total{reason=\"peer\"}", 1.0),
        (
            "peerbox_stun_binding_requests_total{transport=\"udp\"}",
            1.0,
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(changes(&before, &after), want, "{text}");

    // The client leaves: the room goes, the close is counted by its reason.
    ws.close(None).await.unwrap();
    let mut last = Samples::new();
    for _ in 0..50 {
        last = scrape(&server).await.1;
        if last["peerbox_ws_connections"] == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let left = changes(&after, &last);
    assert_eq!(
        left["peerbox_ws_closed_total{reason=\"closed\"}"], 1.0,
        "{left:?}"
    );
    assert_eq!(last["peerbox_rooms"], 0.0);
    assert_eq!(last["peerbox_room_members"], 0.0);
    assert_eq!(left.len(), 4, "{left:?}");

    // Prometheus itself asks for OpenMetrics: same figures, `# EOF` at the end.
    let om = server
        .get_metrics(
            "/metrics",
            &[("accept", "application/openmetrics-text;version=1.0.0")],
        )
        .await;
    assert!(
        om.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let om = String::from_utf8(om.body().to_vec()).unwrap();
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert!(
        om.contains("\n# UNIT peerbox_turn_relayed_bytes bytes\n"),
        "{om}"
    );
    server.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn readyz_flips_when_the_certificate_nears_its_end() {
    let server = common::spawn("").await;
    let ready = server.get_metrics("/readyz", &[]).await;
    let text = String::from_utf8_lossy(ready.body()).into_owned();
    assert_eq!(ready.status(), 200, "{text}");
    assert!(
        text.starts_with("ready\nlisteners: 5 of 5 served\n"),
        "{text}"
    );
    let live = server.get_metrics("/healthz", &[]).await;
    assert_eq!(
        (live.status().as_u16(), &live.body()[..]),
        (200, &b"ok\n"[..])
    );

    // A renewed certificate with 3 days left is served (it is still valid), but a load
    // balancer should move away: the default bound is 7 days.
    common::write_dated_cert(&server.ssl_dir(), -1, 3);
    let mut answer = (0, String::new());
    for _ in 0..50 {
        let r = server.get_metrics("/readyz", &[]).await;
        answer = (
            r.status().as_u16(),
            String::from_utf8_lossy(r.body()).into_owned(),
        );
        if answer.0 != 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(answer.0, 503, "{}", answer.1);
    assert!(
        answer.1.contains("not ready: the certificate expires in ")
            && answer.1.contains("metrics.ready_certificate_days = 7"),
        "{}",
        answer.1
    );
    // Still live, and the expiry metric follows the served certificate.
    assert_eq!(server.get_metrics("/healthz", &[]).await.status(), 200);
    let (_, now) = scrape(&server).await;
    let left = now["peerbox_certificate_expiry_seconds"] - peerbox::tls::now() as f64;
    assert!((2.9 * 86_400.0..3.1 * 86_400.0).contains(&left), "{left}");
    assert_eq!(server.get_metrics("/nope", &[]).await.status(), 404);
    server.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn readyz_accepts_a_short_certificate_when_told_to() {
    let server = common::spawn("[metrics]\nready_certificate_days = 2").await;
    // Once serving (the file watcher takes its first look when it starts).
    assert_eq!(server.get_metrics("/readyz", &[]).await.status(), 200);
    common::write_dated_cert(&server.ssl_dir(), -1, 3);
    let mut left = f64::MAX;
    for _ in 0..50 {
        let (_, now) = scrape(&server).await;
        left = now["peerbox_certificate_expiry_seconds"] - peerbox::tls::now() as f64;
        if left < 3.1 * 86_400.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        left < 3.1 * 86_400.0,
        "the new certificate was not loaded: {left}"
    );
    let r = server.get_metrics("/readyz", &[]).await;
    assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(r.body()));
    server.stop(Duration::from_secs(5)).await;
}

/// The watchdog pings a notify socket (as systemd's) at half its timeout, and stops with the
/// server.
#[tokio::test]
async fn the_watchdog_is_pinged_at_half_its_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let dog = peerbox::watchdog::Watchdog {
        socket: path.clone().into_os_string(),
        timeout: Duration::from_millis(400),
    };
    let server = common::spawn_with_watchdog("", dog).await;
    let socket = tokio::task::spawn_blocking(move || {
        let mut buf = [0u8; 64];
        let start = std::time::Instant::now();
        for _ in 0..4 {
            let n = socket.recv(&mut buf).expect("a ping within 3 s");
            assert_eq!(&buf[..n], b"WATCHDOG=1\n");
        }
        // The first at once, then one every 200 ms.
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(500), "{took:?}");
        socket
    })
    .await
    .unwrap();
    server.stop(Duration::from_secs(5)).await;
    let socket = tokio::task::spawn_blocking(move || {
        // Drain what was sent before the stop, then nothing more comes.
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut buf = [0u8; 64];
        while socket.recv(&mut buf).is_ok() {}
        socket
            .set_read_timeout(Some(Duration::from_millis(600)))
            .unwrap();
        socket.recv(&mut buf).is_err()
    })
    .await
    .unwrap();
    assert!(socket, "a ping after the server stopped");
}

/// Every metric the example Grafana dashboard and the README table name is one peerbox
/// serves (a rename would leave an empty panel).
#[tokio::test]
async fn the_dashboard_and_readme_name_only_served_metrics() {
    let server = common::spawn("").await;
    let (text, _) = scrape(&server).await;
    let served: std::collections::BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    let name = regex_lite::Regex::new(r"peerbox_[a-z_]+").unwrap();
    for file in ["docs/grafana-dashboard.json", "README.md"] {
        let doc =
            std::fs::read_to_string(format!("{}/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let named: std::collections::BTreeSet<&str> =
            name.find_iter(&doc).map(|m| m.as_str()).collect();
        assert!(named.len() > 10, "{file}: {named:?}");
        for n in named {
            let base = n.strip_suffix("_total").unwrap_or(n);
            assert!(
                served.contains(n) || served.contains(base),
                "{file} names {n}, which /metrics does not serve"
            );
        }
    }
    server.stop(Duration::from_secs(5)).await;
}
