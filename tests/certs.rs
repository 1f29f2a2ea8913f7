//! Certificates: the layouts admins drop into ssl/, hot reload with open connections
//! surviving, a broken, expired or not-yet-valid new certificate being refused, and the
//! warnings as the served one nears its end.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use peerbox::tls::CertStore;
use tokio_util::sync::CancellationToken;

use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

/// A CA and a leaf it signed, as PEM: (leaf cert, leaf key, ca cert).
fn ca_and_leaf(alg: &'static rcgen::SignatureAlgorithm) -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate_for(alg).unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate_for(alg).unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    (leaf.pem(), leaf_key.serialize_pem(), ca_cert.pem())
}

async fn handshake_ok(server: &common::TestServer, root: &Path) -> bool {
    let tls = common::tls_trusting(root, &[b"http/1.1"]);
    let tcp = TcpStream::connect(server.https).await.unwrap();
    tls.connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .is_ok()
}

async fn wait_for_fingerprint_change(server: &common::TestServer, before: &str) {
    for _ in 0..50 {
        if server.handle.certs.fingerprint() != before {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("certificate was not reloaded");
}

#[tokio::test]
async fn reload_on_file_change_keeps_open_connections() {
    let server = common::spawn("").await;
    let old_root = server.dir.path().join("old-root.pem");
    std::fs::copy(server.ssl_dir().join("cert.pem"), &old_root).unwrap();

    // An open HTTP/1.1 keep-alive connection made with the old certificate.
    let (mut sender, _conn) = server.keep_alive().await;
    assert_eq!(
        sender
            .send_request(common::get_root())
            .await
            .unwrap()
            .status(),
        200
    );

    // The admin drops Let's Encrypt-style files in place: fullchain.pem (leaf + CA) + privkey.pem.
    let before = server.handle.certs.fingerprint();
    let (leaf, key, ca) = ca_and_leaf(&rcgen::PKCS_ECDSA_P256_SHA256);
    std::fs::remove_file(server.ssl_dir().join("cert.pem")).unwrap();
    std::fs::write(server.ssl_dir().join("privkey.pem"), key).unwrap();
    std::fs::write(
        server.ssl_dir().join("fullchain.pem"),
        format!("{leaf}{ca}"),
    )
    .unwrap();
    wait_for_fingerprint_change(&server, &before).await;

    let ca_path = server.dir.path().join("ca.pem");
    std::fs::write(&ca_path, &ca).unwrap();
    assert!(
        handshake_ok(&server, &ca_path).await,
        "new connections get the new certificate"
    );
    assert!(
        !handshake_ok(&server, &old_root).await,
        "the old certificate is gone for new connections"
    );
    let again = sender
        .send_request(common::get_root())
        .await
        .expect("old connection still works");
    assert_eq!(again.status(), 200);
}

#[tokio::test]
async fn a_broken_expired_or_future_replacement_is_refused_and_the_old_stays() {
    let server = common::spawn("").await;
    let root = server.dir.path().join("root.pem");
    std::fs::copy(server.ssl_dir().join("cert.pem"), &root).unwrap();
    let served = server.handle.certs.fingerprint();
    let ssl = server.ssl_dir();
    let broken = |ssl: &Path| {
        std::fs::write(
            ssl.join("cert.pem"),
            "-----BEGIN CERTIFICATE-----\nbroken\n",
        )
        .unwrap()
    };
    let expired = |ssl: &Path| common::write_dated_cert(ssl, -90, -1);
    let future = |ssl: &Path| common::write_dated_cert(ssl, 2, 90);
    type Replace<'a> = &'a dyn Fn(&Path);
    let cases: [(&str, Replace); 3] = [
        ("broken", &broken),
        ("expired", &expired),
        ("not yet valid", &future),
    ];
    for (what, replace) in cases {
        replace(&ssl);
        // Past a few polls (every 0.2 s here), then once more by hand.
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert!(!server.handle.certs.reload(), "{what}");
        assert_eq!(server.handle.certs.fingerprint(), served, "{what}");
        assert!(
            handshake_ok(&server, &root).await,
            "{what}: the old one is still served"
        );
    }
    common::write_dated_cert(&ssl, -1, 89);
    wait_for_fingerprint_change(&server, &served).await;
}

#[tokio::test]
async fn cert_pem_with_chain_pem_is_sent_as_a_chain() {
    let server = common::spawn("").await;
    let before = server.handle.certs.fingerprint();
    let (leaf, key, ca) = ca_and_leaf(&rcgen::PKCS_ECDSA_P384_SHA384);
    std::fs::write(server.ssl_dir().join("privkey.pem"), key).unwrap();
    std::fs::write(server.ssl_dir().join("chain.pem"), &ca).unwrap();
    std::fs::write(server.ssl_dir().join("cert.pem"), leaf).unwrap();
    assert!(server.handle.certs.reload());
    assert_ne!(server.handle.certs.fingerprint(), before);
    let ca_path = server.dir.path().join("ca.pem");
    std::fs::write(&ca_path, &ca).unwrap();
    assert!(
        handshake_ok(&server, &ca_path).await,
        "chain.pem is sent after cert.pem"
    );
}

/// Runs an openssl command; its stdout, after asserting it succeeded.
fn openssl(name: &str, configure: impl FnOnce(&mut std::process::Command)) -> Vec<u8> {
    let mut cmd = std::process::Command::new("openssl");
    configure(&mut cmd);
    let out = cmd
        .output()
        .expect("openssl is needed to make PKCS#1 and SEC1 keys");
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn key_formats_pkcs1_pkcs8_sec1_are_accepted() {
    // RSA PKCS#1 and SEC1 EC keys made by openssl (PKCS#8 is what rcgen writes, tested above).
    for (name, args) in [
        ("rsa-pkcs1", vec!["genrsa", "-traditional", "2048"]),
        (
            "ec-sec1",
            vec!["ecparam", "-name", "prime256v1", "-genkey", "-noout"],
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let pem = String::from_utf8(openssl(name, |c| {
            c.args(&args);
        }))
        .unwrap();
        assert!(
            pem.contains("RSA PRIVATE KEY") || pem.contains("EC PRIVATE KEY"),
            "{name}"
        );
        let key_path = dir.path().join("privkey.pem");
        std::fs::write(&key_path, &pem).unwrap();
        openssl(name, |c| {
            c.args(["req", "-x509", "-key"])
                .arg(&key_path)
                .args([
                    "-subj",
                    "/CN=localhost",
                    "-addext",
                    "subjectAltName=DNS:localhost",
                    "-days",
                    "2",
                    "-out",
                ])
                .arg(dir.path().join("cert.pem"));
        });
        peerbox::tls::CertStore::load_or_generate(dir.path(), "localhost")
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn when_the_served_one_is_dead_too_the_replacement_is_taken() {
    let dir = tempfile::tempdir().unwrap();
    common::write_dated_cert(dir.path(), -90, -1);
    let store = CertStore::load_or_generate(dir.path(), "localhost").unwrap();
    let expired = store.fingerprint();
    common::write_dated_cert(dir.path(), 1, 90);
    assert!(store.reload(), "nothing better to keep");
    assert_ne!(store.fingerprint(), expired);
}

/// Log lines written while `f` runs on a current-thread runtime with paused time.
fn logs_of<F: std::future::Future>(f: F) -> String {
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
        .block_on(f);
    String::from_utf8_lossy(&buf.0.lock().unwrap()).into_owned()
}

#[test]
fn nearing_expiry_is_logged_at_start_and_every_day() {
    let dir = tempfile::tempdir().unwrap();
    common::write_dated_cert(dir.path(), -80, 10);
    let logs = logs_of(async {
        let store = CertStore::load_or_generate(dir.path(), "localhost").unwrap();
        let stop = CancellationToken::new();
        let task = tokio::spawn(peerbox::tls::watch(
            store,
            dir.path().into(),
            Duration::ZERO,
            stop.clone(),
        ));
        let day = peerbox::tls::EXPIRY_CHECK;
        tokio::time::sleep(day * 2 + Duration::from_secs(1)).await;
        stop.cancel();
        task.await.unwrap();
    });
    assert_eq!(
        logs.matches("certificate expires soon").count(),
        3,
        "at start and after each of two days:\n{logs}"
    );
    // (paused tokio time moves the timers, not the wall clock the dates are read against)
    assert!(
        logs.contains("WARN") && logs.contains("days_left="),
        "{logs}"
    );
}

#[test]
fn an_expired_certificate_is_logged_as_an_error_and_a_fresh_one_quietly() {
    let dir = tempfile::tempdir().unwrap();
    common::write_dated_cert(dir.path(), -90, -1);
    let logs = logs_of(async {
        CertStore::load_or_generate(dir.path(), "localhost").unwrap();
    });
    assert!(
        logs.contains("ERROR") && logs.contains("certificate has expired"),
        "{logs}"
    );
    common::write_dated_cert(dir.path(), -1, 60);
    let logs = logs_of(async {
        CertStore::load_or_generate(dir.path(), "localhost").unwrap();
    });
    assert!(
        logs.contains("certificate loaded") && !logs.contains("WARN"),
        "{logs}"
    );
}
