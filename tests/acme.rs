//! ACME against a real CA: Debian's Pebble validating for real against peerbox's own ports 443
//! and 80, each test in a network namespace of its own (see `acme/pebble.rs`). Asserts what
//! an admin and a user notice: the certificate browsers get (checked against Pebble's root
//! for the hostname), the files in the ssl dir, renewals that keep open calls, a CA outage
//! that keeps the old certificate, restarts that ask the CA for nothing.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "acme/pebble.rs"]
mod pebble;

use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use pebble::{Dns, HOST, PEERBOX_IP, Pebble, TestCa};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls_pki_types::pem::PemObject;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

const HTTPS: &str = "192.0.2.10:443";
const HTTP: &str = "192.0.2.10:80";

/// The certificate peerbox serves for [`HOST`], verified against `roots` (a handshake that
/// fails verification panics); returns the leaf's SHA-256 fingerprint.
async fn served(https: &str, roots: &[CertificateDer<'static>]) -> String {
    let tcp = TcpStream::connect(https).await.expect("connect");
    let tls = pebble::connector(roots.to_vec(), &[b"http/1.1"])
        .connect(ServerName::try_from(HOST).unwrap(), tcp)
        .await
        .expect("a certificate for the hostname that chains to Pebble's root");
    fingerprint(&tls.get_ref().1.peer_certificates().unwrap()[0])
}

fn fingerprint(der: &CertificateDer<'_>) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, der.as_ref());
    d.as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn leaf_in(ssl: &std::path::Path) -> String {
    let first = CertificateDer::pem_file_iter(ssl.join("fullchain.pem"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    fingerprint(&first)
}

/// Waits (at most `limit`) until `done` holds for the server's ACME counters.
async fn until(
    server: &common::TestServer,
    limit: Duration,
    what: &str,
    done: impl Fn(&peerbox::acme::Stats) -> bool,
) {
    let deadline = tokio::time::Instant::now() + limit;
    while !done(&server.handle.acme) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {what} within {limit:?}: {:?}",
            server.handle.acme
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn mode(path: std::path::PathBuf) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_certificate_by_tls_alpn_01_on_the_https_port() {
    if !pebble::in_namespace("first_certificate_by_tls_alpn_01_on_the_https_port") {
        return;
    }
    let ca = TestCa::new();
    let _dns = Dns::start();
    let pebble = Pebble::start(&ca, 86_400).await;
    // Port 80 is elsewhere (not where Pebble looks): only TLS-ALPN-01 on 443 can succeed.
    let server = common::spawn_on(
        &pebble::acme_config(&ca, "tls-alpn-01"),
        HTTPS,
        "127.0.0.1:0",
        None,
    )
    .await;
    // Until the CA's certificate is in, the self-signed one is served.
    let selfsigned = fingerprint(&server.handle.certs.leaf().unwrap());
    until(&server, Duration::from_secs(30), "certificate", |s| {
        s.renewals_ok.load(Relaxed) == 1 || s.failures.load(Relaxed) > 0
    })
    .await;
    assert_eq!(
        server.handle.acme.failures.load(Relaxed),
        0,
        "{}",
        pebble.log()
    );
    let roots = pebble.root(&ca).await;
    let now = served(HTTPS, &roots).await;
    assert_ne!(now, selfsigned);
    let ssl = server.ssl_dir();
    assert_eq!(now, leaf_in(&ssl));
    assert_eq!(mode(ssl.join("privkey.pem")), 0o600);
    assert_eq!(mode(ssl.join("acme-account.json")), 0o600);
    let stats = &server.handle.acme;
    assert_eq!(stats.orders.load(Relaxed), 1);
    assert_eq!(stats.accounts_registered.load(Relaxed), 1);
    assert!(stats.last_success_unix.load(Relaxed) > 0);
    // A day's certificate: renewal planned at about 16 h, minus jitter.
    let planned = stats.next_renewal_unix.load(Relaxed) - peerbox::tls::now();
    assert!((14 * 3600..=16 * 3600).contains(&planned), "{planned}");
    // The challenge certificate is gone with the order: a CA-like hello now fails.
    let tcp = TcpStream::connect(HTTPS).await.unwrap();
    let late = pebble::connector(roots.clone(), &[b"acme-tls/1"])
        .connect(ServerName::try_from(HOST).unwrap(), tcp)
        .await;
    assert!(late.is_err(), "an acme-tls/1 handshake after the order");
    server.stop(Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_certificate_by_http_01_with_tls_alpn_01_off() {
    if !pebble::in_namespace("first_certificate_by_http_01_with_tls_alpn_01_off") {
        return;
    }
    let ca = TestCa::new();
    let _dns = Dns::start();
    let pebble = Pebble::start(&ca, 86_400).await;
    // HTTPS is not on 443, where Pebble would look for TLS-ALPN-01: only HTTP-01 on 80 works.
    let https = format!("{PEERBOX_IP}:8443");
    let server = common::spawn_on(&pebble::acme_config(&ca, "http-01"), &https, HTTP, None).await;
    until(&server, Duration::from_secs(30), "certificate", |s| {
        s.renewals_ok.load(Relaxed) == 1 || s.failures.load(Relaxed) > 0
    })
    .await;
    assert_eq!(
        server.handle.acme.failures.load(Relaxed),
        0,
        "{}",
        pebble.log()
    );
    let roots = pebble.root(&ca).await;
    assert_eq!(served(&https, &roots).await, leaf_in(&server.ssl_dir()));
    // With tls-alpn-01 off, the HTTPS port does not offer acme-tls/1 at all.
    let tcp = TcpStream::connect(&https).await.unwrap();
    let alpn = pebble::connector(roots, &[b"acme-tls/1"])
        .connect(ServerName::try_from(HOST).unwrap(), tcp)
        .await;
    assert!(alpn.is_err(), "acme-tls/1 negotiated with tls-alpn-01 off");
    server.stop(Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_changes_the_served_certificate_and_an_open_websocket_survives() {
    if !pebble::in_namespace(
        "a_renewal_changes_the_served_certificate_and_an_open_websocket_survives",
    ) {
        return;
    }
    let ca = TestCa::new();
    let _dns = Dns::start();
    // 30 s certificates: renewal at 20 s (up to 1 s before).
    let pebble = Pebble::start(&ca, 30).await;
    let server =
        common::spawn_on(&pebble::acme_config(&ca, "tls-alpn-01"), HTTPS, HTTP, None).await;
    until(&server, Duration::from_secs(30), "first certificate", |s| {
        s.renewals_ok.load(Relaxed) >= 1
    })
    .await;
    let roots = pebble.root(&ca).await;
    let first = served(HTTPS, &roots).await;
    // A call's signalling connection, open across the renewal.
    let tcp = TcpStream::connect(HTTPS).await.unwrap();
    let tls = pebble::connector(roots.clone(), &[b"http/1.1"])
        .connect(ServerName::try_from(HOST).unwrap(), tcp)
        .await
        .unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(format!("wss://{HOST}/ws"), tls)
        .await
        .expect("websocket handshake");
    common::signal::login(&mut ws, "renewal", "alice").await;
    until(&server, Duration::from_secs(40), "renewal", |s| {
        s.renewals_ok.load(Relaxed) >= 2
    })
    .await;
    let second = served(HTTPS, &roots).await;
    assert_ne!(first, second, "the renewed certificate is served");
    assert_eq!(second, leaf_in(&server.ssl_dir()));
    assert_eq!(server.handle.acme.orders.load(Relaxed), 2);
    assert_eq!(server.handle.acme.accounts_registered.load(Relaxed), 1);
    // The WebSocket opened on the old certificate still carries messages both ways.
    ws.send(Message::Ping(b"still here".to_vec().into()))
        .await
        .unwrap();
    let pong = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Pong(p))) => return p,
                Some(Ok(_)) => continue,
                other => panic!("websocket ended: {other:?}"),
            }
        }
    })
    .await
    .expect("a pong within 5 s");
    assert_eq!(pong.as_ref(), b"still here");
    let tls_cert = fingerprint(&ws.get_ref().get_ref().1.peer_certificates().unwrap()[0]);
    assert_eq!(
        tls_cert, first,
        "the open connection keeps the certificate it began with"
    );
    server.stop(Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ca_down_at_renewal_means_backoff_and_the_old_certificate_until_it_is_back() {
    if !pebble::in_namespace(
        "the_ca_down_at_renewal_means_backoff_and_the_old_certificate_until_it_is_back",
    ) {
        return;
    }
    let ca = TestCa::new();
    let _dns = Dns::start();
    let mut pebble = Pebble::start(&ca, 30).await;
    let server =
        common::spawn_on(&pebble::acme_config(&ca, "tls-alpn-01"), HTTPS, HTTP, None).await;
    until(&server, Duration::from_secs(30), "first certificate", |s| {
        s.renewals_ok.load(Relaxed) == 1
    })
    .await;
    let old_roots = pebble.root(&ca).await;
    let first = served(HTTPS, &old_roots).await;
    pebble.stop();
    // Renewal is due at about 20 s; each try fails, and the waits between them grow.
    let mut planned = Vec::new();
    for n in 1..=3u64 {
        until(&server, Duration::from_secs(30), "failed renewal", |s| {
            s.failures.load(Relaxed) >= n
        })
        .await;
        let next = server.handle.acme.next_renewal_unix.load(Relaxed);
        planned.push(next - peerbox::tls::now());
        // Still the old certificate, still valid for the hostname.
        assert_eq!(served(HTTPS, &old_roots).await, first);
    }
    assert!(
        planned[0] < planned[2],
        "the waits between tries grow: {planned:?}"
    );
    assert_eq!(server.handle.acme.renewals_ok.load(Relaxed), 1);
    // The CA is back, knowing nothing of the account: a new one, then the renewal.
    let pebble = Pebble::start(&ca, 30).await;
    until(
        &server,
        Duration::from_secs(30),
        "renewal once the CA is back",
        |s| s.renewals_ok.load(Relaxed) == 2,
    )
    .await;
    let roots = pebble.root(&ca).await;
    let renewed = served(HTTPS, &roots).await;
    assert_ne!(renewed, first);
    assert_eq!(server.handle.acme.accounts_registered.load(Relaxed), 2);
    server.stop(Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_reuses_the_account_and_the_certificate() {
    if !pebble::in_namespace("a_restart_reuses_the_account_and_the_certificate") {
        return;
    }
    let ca = TestCa::new();
    let _dns = Dns::start();
    let pebble = Pebble::start(&ca, 86_400).await;
    let config = pebble::acme_config(&ca, "tls-alpn-01");
    let server = common::spawn_on(&config, HTTPS, HTTP, None).await;
    until(&server, Duration::from_secs(30), "certificate", |s| {
        s.renewals_ok.load(Relaxed) == 1
    })
    .await;
    let ssl = server.ssl_dir();
    let account = std::fs::read(ssl.join("acme-account.json")).unwrap();
    let chain = std::fs::read(ssl.join("fullchain.pem")).unwrap();
    // Pebble logs every request it serves: one new order so far.
    let orders_logged = pebble.log().matches("POST /order-plz").count();
    assert_eq!(orders_logged, 1, "{}", pebble.log());
    let dir = server.stop_keeping_dir(Duration::from_secs(10)).await;

    let again = common::spawn_on(&config, HTTPS, HTTP, Some(dir)).await;
    until(&again, Duration::from_secs(10), "renewal plan", |s| {
        s.next_renewal_unix.load(Relaxed) > 0
    })
    .await;
    // Give a wrong decision time to show.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stats = &again.handle.acme;
    assert_eq!(stats.orders.load(Relaxed), 0);
    assert_eq!(stats.accounts_registered.load(Relaxed), 0);
    assert_eq!(stats.failures.load(Relaxed), 0);
    assert!(stats.next_renewal_unix.load(Relaxed) > peerbox::tls::now() + 3600);
    assert_eq!(
        std::fs::read(ssl.join("acme-account.json")).unwrap(),
        account
    );
    assert_eq!(std::fs::read(ssl.join("fullchain.pem")).unwrap(), chain);
    assert_eq!(
        pebble.log().matches("POST /order-plz").count(),
        orders_logged,
        "no new order reached the CA"
    );
    let roots = pebble.root(&ca).await;
    assert_eq!(served(HTTPS, &roots).await, leaf_in(&ssl));
    again.stop(Duration::from_secs(10)).await;
}
