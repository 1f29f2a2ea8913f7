//! Certificates from the ssl dir ([`files`]: layouts, key formats, the self-signed fallback)
//! and hot reload (SIGHUP or file changes) that never drops the working certificate, neither
//! for a broken one nor for an expired or not-yet-valid one; warnings as the served one nears
//! its end ([`validity`]); the TLS-ALPN-01 challenge certificates ACME puts up ([`alpn`]) and
//! the certificates it installs ([`CertStore::install`]).

mod alpn;
mod files;
mod validity;

pub use alpn::{ALPN_ACME, challenge_key};
pub use files::write_atomic;
pub use validity::{State, Validity, date, now};

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::crypto::ring::default_provider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::CertificateDer;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use files::{Loaded, generate, load, stamp};

/// Why a certificate could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    // The io errors are part of the sentence, not a `source`: `{:#}` would print them twice.
    #[error("cannot read {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("{path}: the certificate cannot be parsed: {reason}")]
    Unparsable { path: PathBuf, reason: String },
    #[error(
        "found {key} but neither cert.pem nor fullchain.pem beside it (peerbox would \
         overwrite the key with a self-signed certificate's: remove it, or add its certificate)"
    )]
    LoneKey { key: PathBuf },
    #[error("{path} holds no usable private key (PKCS#1, PKCS#8 or SEC1 PEM expected)")]
    NoKey { path: PathBuf },
    #[error("found {found} but not privkey.pem beside it")]
    MissingKey { found: PathBuf },
    #[error("the private key does not fit the certificate: {0}")]
    Mismatch(rustls::Error),
    #[error("cannot generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("the certificate the CA sent is unusable: {0}")]
    Issued(String),
    #[error(
        "cannot write the self-signed certificate to {path}: {error} (the directory must be \
         writable by the user peerbox runs as, or hold a certificate)"
    )]
    Write {
        path: PathBuf,
        error: std::io::Error,
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
    current: RwLock<Loaded>,
    challenges: alpn::Challenges,
}

/// What `check-config` reports about the ssl dir.
#[derive(Debug)]
pub enum Found {
    Certificate {
        fingerprint: String,
        validity: Validity,
    },
    /// Nothing there: start writes a self-signed certificate.
    Nothing,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if let Some(challenge) = self.challenges.answer(&hello) {
            return challenge;
        }
        self.current.read().ok().map(|c| c.key.clone())
    }
}

/// Reads the ssl dir as start would, without writing anything.
pub fn inspect(dir: &Path) -> Result<Found, TlsError> {
    Ok(match load(dir)? {
        Some(l) => Found::Certificate {
            fingerprint: fingerprint(&l.key),
            validity: l.validity,
        },
        None => Found::Nothing,
    })
}

impl CertStore {
    /// Loads the certificate in `dir`, or generates a self-signed one there when it holds none.
    pub fn load_or_generate(dir: &Path, hostname: &str) -> Result<CertStore, TlsError> {
        let loaded = match load(dir)? {
            Some(l) => l,
            None => {
                generate(dir, hostname)?;
                load(dir)?.ok_or_else(|| TlsError::NoCertificate {
                    path: dir.join("cert.pem"),
                })?
            }
        };
        tracing::info!(
            dir = %dir.display(),
            sha256 = %fingerprint(&loaded.key),
            not_after = %validity::date(loaded.validity.not_after),
            "certificate loaded"
        );
        log_expiry(&loaded.validity, validity::now());
        Ok(CertStore {
            inner: Arc::new(Resolver {
                dir: dir.to_owned(),
                current: RwLock::new(loaded),
                challenges: alpn::Challenges::default(),
            }),
        })
    }

    /// Re-reads the files. A broken new certificate is refused and the old one stays; so is an
    /// expired or not-yet-valid one while the one in use is still valid (browsers would refuse
    /// every connection at once).
    pub fn reload(&self) -> bool {
        let now = validity::now();
        match load(&self.inner.dir) {
            Ok(Some(new)) => {
                let current = self.current().validity;
                if let (None, Some(why)) = (current.refusal(now), new.validity.refusal(now)) {
                    tracing::warn!(
                        sha256 = %fingerprint(&new.key),
                        reason = %why,
                        current_not_after = %validity::date(current.not_after),
                        "new certificate refused: keeping the one in use, which is still valid"
                    );
                    return false;
                }
                tracing::info!(
                    sha256 = %fingerprint(&new.key),
                    not_after = %validity::date(new.validity.not_after),
                    "certificate reloaded"
                );
                log_expiry(&new.validity, now);
                if let Ok(mut cur) = self.inner.current.write() {
                    *cur = new;
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

    /// Checks a chain and key from a CA, writes them as `fullchain.pem` and `privkey.pem`
    /// (each atomically, the key first) and puts them in place of the served certificate.
    /// Connections open on the old one keep it; only new handshakes see the new one.
    pub fn install(&self, chain_pem: &str, key_pem: &str) -> Result<(), TlsError> {
        let new = files::store(&self.inner.dir, chain_pem, key_pem)?;
        let want = fingerprint(&new.key);
        if self.reload() && self.fingerprint() == want {
            Ok(())
        } else {
            Err(TlsError::Issued(format!(
                "written to {} but not taken on reload (see the line above)",
                self.inner.dir.display()
            )))
        }
    }

    /// Puts up a TLS-ALPN-01 challenge certificate for `name` (see [`challenge_key`]).
    pub fn set_challenge(&self, name: &str, key: Arc<CertifiedKey>) {
        self.inner.challenges.set(name, key);
    }

    pub fn remove_challenge(&self, name: &str) {
        self.inner.challenges.remove(name);
    }

    /// The leaf certificate in use.
    pub fn leaf(&self) -> Option<CertificateDer<'static>> {
        self.current().key.cert.first().cloned()
    }

    /// SHA-256 fingerprint of the leaf certificate in use, as `AA:BB:...`.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.current().key)
    }

    /// The validity dates of the certificate in use.
    pub fn validity(&self) -> Validity {
        self.current().validity
    }

    fn current(&self) -> Loaded {
        // Only an assignment happens under the write lock, so it cannot be poisoned midway.
        match self.inner.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// A TLS acceptor offering HTTP/2 and HTTP/1.1 by ALPN (and with `turn`, first, TURN's
    /// `stun.turn` of RFC 7443: rustls picks the server's first protocol the client offers,
    /// and coturn's client offers `http/1.1` before it; with `acme`, last, `acme-tls/1`, which
    /// only a CA validating TLS-ALPN-01 offers), using the current certificate.
    pub fn acceptor(&self, turn: bool, acme: bool) -> TlsAcceptor {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_no_client_auth()
            .with_cert_resolver(self.inner.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        if turn {
            config.alpn_protocols.insert(0, ALPN_TURN.to_vec());
        }
        if acme {
            config.alpn_protocols.push(ALPN_ACME.to_vec());
        }
        TlsAcceptor::from(Arc::new(config))
    }
}

/// The ALPN id of TURN over TLS (RFC 7443).
pub const ALPN_TURN: &[u8] = b"stun.turn";

/// How often the served certificate's dates are looked at again.
pub const EXPIRY_CHECK: Duration = Duration::from_secs(86_400);

/// Polls the certificate files every `interval` (0: never) and reloads when they change;
/// warns daily while the served certificate is near its end or past it.
pub async fn watch(
    store: CertStore,
    dir: PathBuf,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let start = tokio::time::Instant::now();
    let (mut next_poll, mut next_check) = (start + interval, start + EXPIRY_CHECK);
    let mut last = stamp(&dir);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep_until(next_check) => {
                next_check += EXPIRY_CHECK;
                log_expiry(&store.validity(), validity::now());
            }
            _ = tokio::time::sleep_until(next_poll), if !interval.is_zero() => {
                next_poll = tokio::time::Instant::now() + interval;
                let now = stamp(&dir);
                if now != last {
                    tracing::info!(dir = %dir.display(), "certificate files changed");
                    store.reload();
                    last = now;
                }
            }
        }
    }
}

/// Logs loudly when the served certificate is near its end, past it, or not valid yet.
fn log_expiry(v: &Validity, now: i64) {
    let not_after = validity::date(v.not_after);
    match v.state(now) {
        State::Valid => {}
        State::ExpiresSoon { days_left } => tracing::warn!(
            days_left,
            %not_after,
            "certificate expires soon: renewal is failing (with [acme] on, its `acme:` lines say \
             why; with certbot, is its timer running?)"
        ),
        State::Expired => tracing::error!(
            %not_after,
            "certificate has expired: browsers refuse every connection; put a renewed one in \
             the ssl dir"
        ),
        State::NotYetValid => tracing::error!(
            not_before = %validity::date(v.not_before),
            "certificate is not valid yet: browsers refuse it until then (is the clock right?)"
        ),
    }
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
    fn a_lone_private_key_is_refused_and_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap().serialize_pem();
        std::fs::write(dir.path().join("privkey.pem"), &key).unwrap();
        let err = CertStore::load_or_generate(dir.path(), "localhost")
            .err()
            .unwrap();
        assert!(matches!(err, TlsError::LoneKey { .. }), "{err}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("privkey.pem")).unwrap(),
            key
        );
        assert!(!dir.path().join("cert.pem").exists());
    }

    /// A CA's chain and key replace the self-signed certificate; a key that does not fit is
    /// refused before anything is written.
    #[test]
    fn install_writes_fullchain_and_key_and_serves_them() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = CertStore::load_or_generate(dir.path(), "a.example").unwrap();
        let before = store.fingerprint();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["a.example".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let other = rcgen::KeyPair::generate().unwrap();
        let err = store
            .install(&cert.pem(), &other.serialize_pem())
            .unwrap_err();
        assert!(matches!(err, TlsError::Mismatch(_)), "{err}");
        assert!(!dir.path().join("fullchain.pem").exists());
        assert_eq!(store.fingerprint(), before);

        store.install(&cert.pem(), &key.serialize_pem()).unwrap();
        assert_ne!(store.fingerprint(), before);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("fullchain.pem")).unwrap(),
            cert.pem()
        );
        let mode = |f: &str| {
            std::fs::metadata(dir.path().join(f))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("privkey.pem"), 0o600);
        // No temporary file is left behind.
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        // A restart loads what was installed.
        let again = CertStore::load_or_generate(dir.path(), "a.example").unwrap();
        assert_eq!(again.fingerprint(), store.fingerprint());
    }

    #[test]
    fn io_errors_are_said_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("cert.pem")).unwrap();
        std::fs::write(dir.path().join("privkey.pem"), "x").unwrap();
        let err = CertStore::load_or_generate(dir.path(), "localhost")
            .err()
            .unwrap();
        let text = format!("{:#}", anyhow::Error::new(err));
        assert_eq!(text.matches("Is a directory").count(), 1, "{text}");
    }
}
