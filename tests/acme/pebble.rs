//! A real ACME CA for the tests: Debian's `pebble`, with `pebble-challtestsrv` as its DNS
//! (the test hostname -> peerbox's address), in the network namespace the test runs in, on
//! TEST-NET-1 addresses of a veth interface. Pebble validates for real against peerbox's own
//! ports 443 and 80. Pebble's HTTPS listener gets a certificate from a CA made here (Debian
//! ships none). Every wait is bounded; the processes end with the value that started them.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls_pki_types::pem::PemObject;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// The hostname peerbox gets certificates for.
pub const HOST: &str = "peerbox.test";
/// peerbox's address, which the DNS gives for [`HOST`].
pub const PEERBOX_IP: &str = "192.0.2.10";
/// Pebble's and the DNS server's address.
pub const CA_IP: &str = "192.0.2.1";
const DNS_PORT: u16 = 8053;
const DIR_PORT: u16 = 14000;
const MGMT_PORT: u16 = 15000;

/// Runs the test named `test` again inside a fresh network namespace (`unshare -n`) and
/// asserts that it passed there. Returns true in the namespace, where the test body runs;
/// false outside, where nothing is left to do.
pub fn in_namespace(test: &str) -> bool {
    if std::env::var_os("PEERBOX_ACME_NETNS").is_some() {
        setup_network();
        return true;
    }
    for tool in ["pebble", "pebble-challtestsrv", "unshare", "ip"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            found,
            "{tool} is missing: apt-get install pebble iproute2 util-linux (tests/run-all.sh does)"
        );
    }
    let out = Command::new("unshare")
        .arg("-n")
        .arg(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env("PEERBOX_ACME_NETNS", "1")
        .env(
            "PEERBOX_LOG",
            std::env::var("PEERBOX_LOG").unwrap_or_else(|_| "info".into()),
        )
        .output()
        .expect("run the test under unshare -n (needs root)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{test} failed in its namespace:\n{stdout}\n{stderr}"
    );
    false
}

fn setup_network() {
    let sh = |cmd: &str| {
        let ok = Command::new("sh").args(["-c", cmd]).status().unwrap();
        assert!(ok.success(), "{cmd}");
    };
    sh("ip link set lo up");
    // A veth pair (containers often lack the dummy driver); both ends stay here.
    sh("ip link add pbx0 type veth peer name pbx1 && ip link set pbx0 up && ip link set pbx1 up");
    sh(&format!(
        "ip addr add {CA_IP}/24 dev pbx0 && ip addr add {PEERBOX_IP}/24 dev pbx0"
    ));
}

/// A test CA and the certificate it signed for Pebble's own HTTPS listener.
pub struct TestCa {
    pub dir: tempfile::TempDir,
}

impl TestCa {
    pub fn new() -> TestCa {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "peerbox test CA for pebble");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec![CA_IP.to_string(), "pebble.test".into()])
            .unwrap()
            .signed_by(&key, &rcgen::Issuer::new(ca, ca_key))
            .unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();
        std::fs::write(dir.path().join("cert.pem"), leaf.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
        TestCa { dir }
    }

    /// The root peerbox's `acme.ca_file` names.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }
}

/// `pebble-challtestsrv` as DNS only: every A query answers [`PEERBOX_IP`], AAAA nothing.
pub struct Dns(Child);

impl Dns {
    pub fn start() -> Dns {
        let child = Command::new("pebble-challtestsrv")
            .args(["-dns01", &format!("{CA_IP}:{DNS_PORT}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("{CA_IP}:8055")])
            .args(["-defaultIPv4", PEERBOX_IP, "-defaultIPv6", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pebble-challtestsrv");
        Dns(child)
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running Pebble.
pub struct Pebble {
    child: Option<Child>,
    log: PathBuf,
}

impl Pebble {
    /// Starts Pebble validating against ports 80 and 443, issuing certificates valid for
    /// `validity_secs`, and waits (at most 10 s) until its directory answers.
    pub async fn start(ca: &TestCa, validity_secs: u64) -> Pebble {
        let config = serde_json::json!({
            "pebble": {
                "listenAddress": format!("{CA_IP}:{DIR_PORT}"),
                "managementListenAddress": format!("{CA_IP}:{MGMT_PORT}"),
                "certificate": ca.dir.path().join("cert.pem"),
                "privateKey": ca.dir.path().join("key.pem"),
                "httpPort": 80,
                "tlsPort": 443,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false,
                "certificateValidityPeriod": validity_secs,
            }
        });
        let path = ca.dir.path().join("pebble-config.json");
        std::fs::write(&path, config.to_string()).unwrap();
        static STARTS: AtomicU32 = AtomicU32::new(0);
        let log = ca
            .dir
            .path()
            .join(format!("pebble-{}.log", STARTS.fetch_add(1, Relaxed)));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new("pebble")
            .arg("-config")
            .arg(&path)
            .args(["-dnsserver", &format!("{CA_IP}:{DNS_PORT}"), "-strict"])
            // Real validation (no PEBBLE_VA_ALWAYS_VALID), without its random waits; every
            // order validates anew; no nonces refused on purpose (instant-acme retries those,
            // but a failure counted by peerbox would then be Pebble's dice).
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_AUTHZREUSE", "0")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start pebble");
        // Owned at once, so that a panic below still ends the process.
        let pebble = Pebble {
            child: Some(child),
            log,
        };
        let addr: SocketAddr = format!("{CA_IP}:{DIR_PORT}").parse().unwrap();
        for _ in 0..200 {
            if TcpStream::connect(addr).await.is_ok() {
                return pebble;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "pebble did not listen on {addr} within 10 s:\n{}",
            pebble.log()
        );
    }

    pub fn directory() -> String {
        format!("https://{CA_IP}:{DIR_PORT}/dir")
    }

    /// The root Pebble signs with (new on every start), from its management interface.
    pub async fn root(&self, ca: &TestCa) -> Vec<CertificateDer<'static>> {
        let pem = https_get(&ca.root(), &format!("{CA_IP}:{MGMT_PORT}"), "/roots/0").await;
        CertificateDer::pem_slice_iter(&pem)
            .map(|c| c.unwrap())
            .collect()
    }

    /// What Pebble logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops Pebble (its state, accounts and orders included, is gone).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The peerbox config section for this CA.
pub fn acme_config(ca: &TestCa, challenge: &str) -> String {
    format!(
        "hostname = \"{HOST}\"\n[acme]\nenabled = true\ncontact = \"admin@{HOST}\"\n\
         directory = \"{}\"\nca_file = \"{}\"\nchallenge = \"{challenge}\"\n",
        Pebble::directory(),
        ca.root().display()
    )
}

/// A GET over HTTPS trusting only `root`; the body.
async fn https_get(root: &Path, addr: &str, path: &str) -> Vec<u8> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let connector = connector(
        CertificateDer::pem_file_iter(root)
            .unwrap()
            .map(|c| c.unwrap())
            .collect(),
        &[b"http/1.1"],
    );
    let host = addr.split(':').next().unwrap().to_owned();
    let tls = connector
        .connect(ServerName::try_from(host.clone()).unwrap(), tcp)
        .await
        .expect("tls to pebble");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::get(path)
        .header("host", host)
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200, "GET {path}");
    resp.into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec()
}

/// A TLS client trusting only `roots`, offering `alpn`.
pub fn connector(roots: Vec<CertificateDer<'static>>, alpn: &[&[u8]]) -> TlsConnector {
    let mut store = rustls::RootCertStore::empty();
    for r in roots {
        store.add(r).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(store)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    TlsConnector::from(Arc::new(config))
}
