//! Certificates: the layouts admins drop into ssl/, hot reload with open connections
//! surviving, and a broken new certificate being refused.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::Duration;

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
async fn a_broken_new_certificate_is_refused_and_the_old_stays() {
    let server = common::spawn("").await;
    let root = server.dir.path().join("root.pem");
    std::fs::copy(server.ssl_dir().join("cert.pem"), &root).unwrap();
    let before = server.handle.certs.fingerprint();
    std::fs::write(
        server.ssl_dir().join("cert.pem"),
        "-----BEGIN CERTIFICATE-----\nbroken\n",
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(!server.handle.certs.reload());
    assert_eq!(server.handle.certs.fingerprint(), before);
    assert!(handshake_ok(&server, &root).await);
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
