//! The ssl dir's files: which layouts are read (`fullchain.pem`, or `cert.pem` + `chain.pem`,
//! with `privkey.pem`), what makes them unusable, and the self-signed fallback written there.

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use rustls::crypto::ring::default_provider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::{TlsError, Validity};

/// A certificate with its key, as loaded from the ssl dir.
#[derive(Debug, Clone)]
pub(super) struct Loaded {
    pub key: Arc<CertifiedKey>,
    pub validity: Validity,
}

const FILES: [&str; 4] = ["fullchain.pem", "cert.pem", "chain.pem", "privkey.pem"];

pub(super) fn stamp(dir: &Path) -> Vec<Option<(SystemTime, u64)>> {
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
pub(super) fn load(dir: &Path) -> Result<Option<Loaded>, TlsError> {
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
    } else if key_path.exists() {
        return Err(TlsError::LoneKey { key: key_path });
    } else {
        return Ok(None);
    };
    if !key_path.exists() {
        let found = if fullchain.exists() { fullchain } else { cert };
        return Err(TlsError::MissingKey { found });
    }
    chain.dedup();
    let leaf_path = if fullchain.exists() {
        &fullchain
    } else {
        &cert
    };
    let validity = chain
        .first()
        .ok_or_else(|| TlsError::NoCertificate {
            path: leaf_path.clone(),
        })
        .and_then(|leaf| {
            Validity::of(leaf).map_err(|reason| TlsError::Unparsable {
                path: leaf_path.clone(),
                reason,
            })
        })?;
    let bytes = read(&key_path)?;
    let key = PrivateKeyDer::from_pem_slice(&bytes).map_err(|_| TlsError::NoKey {
        path: key_path.clone(),
    })?;
    let key =
        CertifiedKey::from_der(chain, key, &default_provider()).map_err(TlsError::Mismatch)?;
    Ok(Some(Loaded {
        key: Arc::new(key),
        validity,
    }))
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|error| TlsError::Read {
        path: path.to_owned(),
        error,
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

/// Checks that `chain_pem` holds certificates and `key_pem` the key of the first, then writes
/// them: `privkey.pem` (0600) first, `fullchain.pem` last, so a reload in between sees the
/// old certificate with the new key (refused, the old one stays) and never a new certificate
/// with the old key.
pub(super) fn store(dir: &Path, chain_pem: &str, key_pem: &str) -> Result<Loaded, TlsError> {
    let chain: Vec<_> = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .filter_map(Result::ok)
        .collect();
    let leaf = chain
        .first()
        .ok_or_else(|| TlsError::Issued("no PEM certificate in it".into()))?;
    let validity = Validity::of(leaf).map_err(TlsError::Issued)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|_| TlsError::Issued("the private key does not parse".into()))?;
    let key =
        CertifiedKey::from_der(chain, key, &default_provider()).map_err(TlsError::Mismatch)?;
    write_atomic(&dir.join("privkey.pem"), key_pem.as_bytes(), 0o600)?;
    write_atomic(&dir.join("fullchain.pem"), chain_pem.as_bytes(), 0o644)?;
    Ok(Loaded {
        key: Arc::new(key),
        validity,
    })
}

/// Writes `path` so that a reader sees the old content or the new, never a part: a temporary
/// file beside it, fsync, rename over, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |error| TlsError::Write {
        path: path.to_owned(),
        error,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{}.tmp", name.unwrap_or_default()));
    // A leftover from a crash may have other permissions: create it anew with `mode`.
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(err)?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(err)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(err)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(err)
}

/// Writes a self-signed certificate for `hostname`, localhost, 127.0.0.1 and ::1 into `dir`.
pub(super) fn generate(dir: &Path, hostname: &str) -> Result<(), TlsError> {
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
        let err = |error| TlsError::Write {
            path: path.clone(),
            error,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_that_does_not_fit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        crate::tls::CertStore::load_or_generate(dir.path(), "localhost").unwrap();
        let other = rcgen::KeyPair::generate().unwrap();
        std::fs::write(dir.path().join("privkey.pem"), other.serialize_pem()).unwrap();
        assert!(matches!(load(dir.path()), Err(TlsError::Mismatch(_))));
    }
}
