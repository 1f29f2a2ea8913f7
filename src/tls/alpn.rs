//! TLS-ALPN-01 (RFC 8737): the challenge certificates the ACME task puts up while a CA
//! validates, and which ClientHello gets one. Only a hello whose ALPN list is exactly
//! `acme-tls/1` and whose SNI names a pending challenge does (as Caddy's certmagic decides);
//! every other handshake gets the served certificate, as before.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use rcgen::{CertificateParams, CustomExtension, KeyPair};
use rustls::crypto::ring::default_provider;
use rustls::server::ClientHello;
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::TlsError;

/// The ALPN id of the TLS-ALPN-01 challenge.
pub const ALPN_ACME: &[u8] = b"acme-tls/1";

/// Challenge certificates by lowercase DNS name.
#[derive(Debug, Default)]
pub(super) struct Challenges {
    by_name: RwLock<HashMap<String, Arc<CertifiedKey>>>,
}

impl Challenges {
    pub fn set(&self, name: &str, key: Arc<CertifiedKey>) {
        if let Ok(mut m) = self.by_name.write() {
            m.insert(name.to_ascii_lowercase(), key);
        }
    }

    pub fn remove(&self, name: &str) {
        if let Ok(mut m) = self.by_name.write() {
            m.remove(&name.to_ascii_lowercase());
        }
    }

    /// `None`: not a challenge handshake. `Some(None)`: one, for a name with nothing pending
    /// (the handshake fails, as RFC 8737 wants).
    pub fn answer(&self, hello: &ClientHello<'_>) -> Option<Option<Arc<CertifiedKey>>> {
        let mut alpn = hello.alpn()?;
        if alpn.next() != Some(ALPN_ACME) || alpn.next().is_some() {
            return None;
        }
        let name = hello.server_name()?.to_ascii_lowercase();
        let found = self.by_name.read().ok().and_then(|m| m.get(&name).cloned());
        if found.is_none() {
            // debug: anyone can send such a hello, and the log must not be theirs to fill.
            tracing::debug!(sni = %name, "acme-tls/1 handshake for a name with no pending challenge");
        }
        Some(found)
    }
}

/// A self-signed certificate for `name` carrying the critical acmeIdentifier extension with
/// `digest`, the SHA-256 of the key authorization.
pub fn challenge_key(name: &str, digest: [u8; 32]) -> Result<Arc<CertifiedKey>, TlsError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec![name.to_owned()])?;
    params
        .custom_extensions
        .push(CustomExtension::new_acme_identifier(&digest));
    let cert = params.self_signed(&key)?;
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    // Not `CertifiedKey::from_der`: its check parses the certificate with webpki, which
    // refuses the critical acmeIdentifier extension it does not know.
    let signer = default_provider()
        .key_provider
        .load_private_key(der)
        .map_err(TlsError::Mismatch)?;
    let certified = CertifiedKey::new(vec![CertificateDer::from(cert.der().to_vec())], signer);
    Ok(Arc::new(certified))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use x509_parser::prelude::{FromDer, X509Certificate};

    #[test]
    fn the_challenge_certificate_carries_the_digest_in_a_critical_extension() {
        let digest = [7u8; 32];
        let key = challenge_key("peerbox.example", digest).unwrap();
        let (_, cert) = X509Certificate::from_der(key.cert[0].as_ref()).unwrap();
        let ext = cert
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
            .expect("acmeIdentifier extension");
        assert!(ext.critical);
        // DER OCTET STRING of 32 bytes: 0x04 0x20 then the digest.
        assert_eq!(ext.value[..2], [0x04, 0x20]);
        assert_eq!(ext.value[2..], digest);
        let san = cert.subject_alternative_name().unwrap().unwrap();
        assert_eq!(
            format!("{:?}", san.value.general_names),
            "[DNSName(\"peerbox.example\")]"
        );
    }
}
