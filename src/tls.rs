//! Certificates from the ssl dir: loading (several layouts and key formats), a self-signed
//! fallback, and hot reload (SIGHUP or file changes) that never drops the working certificate.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::ring::default_provider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// Why a certificate could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("{path} holds no usable private key (PKCS#1, PKCS#8 or SEC1 PEM expected)")]
    NoKey { path: PathBuf },
    #[error("found {found} but not privkey.pem beside it")]
    MissingKey { found: PathBuf },
    #[error("the private key does not fit the certificate: {0}")]
    Mismatch(rustls::Error),
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot write the self-signed certificate to {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The certificate in use, shared with every TLS acceptor; swapping it affects new handshakes only.
#[derive(Clone)]
pub struct CertStore {
    inner: Arc<Resolver>,
}

#[derive(Debug)]
struct Resolver {
    dir: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|c| c.clone())
    }
}

impl CertStore {
    /// Loads the certificate in `dir`, or generates a self-signed one there when it holds none.
    pub fn load_or_generate(dir: &Path, hostname: &str) -> Result<CertStore, TlsError> {
        let key = match load(dir)? {
            Some(key) => key,
            None => {
                generate(dir, hostname)?;
                load(dir)?.ok_or_else(|| TlsError::NoCertificate {
                    path: dir.join("cert.pem"),
                })?
            }
        };
        tracing::info!(dir = %dir.display(), sha256 = %fingerprint(&key), "certificate loaded");
        Ok(CertStore {
            inner: Arc::new(Resolver {
                dir: dir.to_owned(),
                current: RwLock::new(Arc::new(key)),
            }),
        })
    }

    /// Re-reads the files; a broken new certificate is refused and the old one stays.
    pub fn reload(&self) -> bool {
        match load(&self.inner.dir) {
            Ok(Some(key)) => {
                tracing::info!(sha256 = %fingerprint(&key), "certificate reloaded");
                if let Ok(mut cur) = self.inner.current.write() {
                    *cur = Arc::new(key);
                }
                true
            }
            Ok(None) => {
                tracing::warn!(dir = %self.inner.dir.display(), "no certificate found on reload; keeping the old one");
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "new certificate refused; keeping the old one");
                false
            }
        }
    }

    /// SHA-256 fingerprint of the leaf certificate in use, as `AA:BB:...`.
    pub fn fingerprint(&self) -> String {
        self.inner
            .current
            .read()
            .map(|c| fingerprint(&c))
            .unwrap_or_default()
    }

    /// A TLS acceptor offering HTTP/2 and HTTP/1.1 by ALPN (and with `turn`, first, TURN's
    /// `stun.turn` of RFC 7443: rustls picks the server's first protocol the client offers,
    /// and coturn's client offers `http/1.1` before it), using the current certificate.
    pub fn acceptor(&self, turn: bool) -> TlsAcceptor {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_no_client_auth()
            .with_cert_resolver(self.inner.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        if turn {
            config.alpn_protocols.insert(0, ALPN_TURN.to_vec());
        }
        TlsAcceptor::from(Arc::new(config))
    }
}

/// The ALPN id of TURN over TLS (RFC 7443).
pub const ALPN_TURN: &[u8] = b"stun.turn";

/// Polls the certificate files every `interval` and reloads when they change.
pub async fn watch(
    store: CertStore,
    dir: PathBuf,
    interval: Duration,
    shutdown: CancellationToken,
) {
    if interval.is_zero() {
        return;
    }
    let mut last = stamp(&dir);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        let now = stamp(&dir);
        if now != last {
            tracing::info!(dir = %dir.display(), "certificate files changed");
            store.reload();
            last = now;
        }
    }
}

const FILES: [&str; 4] = ["fullchain.pem", "cert.pem", "chain.pem", "privkey.pem"];

fn stamp(dir: &Path) -> Vec<Option<(SystemTime, u64)>> {
    FILES
        .iter()
        .map(|f| {
            std::fs::metadata(dir.join(f))
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())))
        })
        .collect()
}

/// Loads `fullchain.pem` or `cert.pem` (+ `chain.pem`) with `privkey.pem`. `Ok(None)`: no cert there.
fn load(dir: &Path) -> Result<Option<CertifiedKey>, TlsError> {
    let fullchain = dir.join("fullchain.pem");
    let cert = dir.join("cert.pem");
    let key_path = dir.join("privkey.pem");
    let mut chain = if fullchain.exists() {
        read_certs(&fullchain)?
    } else if cert.exists() {
        let mut chain = read_certs(&cert)?;
        let extra = dir.join("chain.pem");
        if extra.exists() {
            chain.extend(read_certs(&extra)?);
        }
        chain
    } else {
        return Ok(None);
    };
    if !key_path.exists() {
        let found = if fullchain.exists() { fullchain } else { cert };
        return Err(TlsError::MissingKey { found });
    }
    chain.dedup();
    let bytes = read(&key_path)?;
    let key = PrivateKeyDer::from_pem_slice(&bytes).map_err(|_| TlsError::NoKey {
        path: key_path.clone(),
    })?;
    let key =
        CertifiedKey::from_der(chain, key, &default_provider()).map_err(TlsError::Mismatch)?;
    Ok(Some(key))
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// Writes a self-signed certificate for `hostname`, localhost, 127.0.0.1 and ::1 into `dir`.
fn generate(dir: &Path, hostname: &str) -> Result<(), TlsError> {
    let mut names = vec![
        hostname.to_owned(),
        "localhost".into(),
        "127.0.0.1".into(),
        "::1".into(),
    ];
    names.dedup();
    let rcgen::CertifiedKey { cert, signing_key } = rcgen::generate_simple_self_signed(names)?;
    let write = |name: &str, text: &str, mode: u32| -> Result<(), TlsError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = dir.join(name);
        let err = |source| TlsError::Write {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(err)?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&path)
            .map_err(err)?;
        f.write_all(text.as_bytes()).map_err(err)
    };
    write("privkey.pem", &signing_key.serialize_pem(), 0o600)?;
    write("cert.pem", &cert.pem(), 0o644)?;
    tracing::warn!(
        dir = %dir.display(),
        "no certificate found: wrote a self-signed one (browsers will warn; put a real one in place)"
    );
    Ok(())
}

fn fingerprint(key: &CertifiedKey) -> String {
    let Some(leaf) = key.cert.first() else {
        return String::new();
    };
    let digest = ring::digest::digest(&ring::digest::SHA256, leaf.as_ref());
    digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_then_reuses_a_self_signed_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let a = CertStore::load_or_generate(dir.path(), "example.org").unwrap();
        assert!(dir.path().join("cert.pem").exists());
        let b = CertStore::load_or_generate(dir.path(), "example.org").unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.fingerprint().len(), 32 * 3 - 1);
    }

    #[test]
    fn a_broken_reload_keeps_the_old_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let store = CertStore::load_or_generate(dir.path(), "localhost").unwrap();
        let before = store.fingerprint();
        std::fs::write(dir.path().join("cert.pem"), "garbage").unwrap();
        assert!(!store.reload());
        assert_eq!(store.fingerprint(), before);
    }

    #[test]
    fn a_key_that_does_not_fit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        CertStore::load_or_generate(dir.path(), "localhost").unwrap();
        let other = rcgen::KeyPair::generate().unwrap();
        std::fs::write(dir.path().join("privkey.pem"), other.serialize_pem()).unwrap();
        assert!(matches!(load(dir.path()), Err(TlsError::Mismatch(_))));
    }
}
