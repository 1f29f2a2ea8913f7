//! The `[acme]` section: certificates from an ACME CA (RFC 8555), off by default. Raw as
//! written, then validated into [`AcmeConfig`] against the hostname and the listeners the
//! challenges need.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{ConfigError, Secret, invalid};

/// Let's Encrypt's production directory: the default, since a staging certificate is one no
/// browser trusts.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawAcme {
    enabled: bool,
    contact: String,
    directory: String,
    challenge: RawChallenges,
    ca_file: String,
    eab_kid: String,
    eab_hmac_key: String,
}

impl Default for RawAcme {
    fn default() -> Self {
        RawAcme {
            enabled: false,
            contact: String::new(),
            directory: LETS_ENCRYPT.into(),
            challenge: RawChallenges::List(vec!["tls-alpn-01".into(), "http-01".into()]),
            ca_file: String::new(),
            eab_kid: String::new(),
            eab_hmac_key: String::new(),
        }
    }
}

/// `challenge = "http-01"` or `challenge = ["tls-alpn-01", "http-01"]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawChallenges {
    One(String),
    List(Vec<String>),
}

/// How the CA checks that this server answers for the hostname.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    /// RFC 8737: a TLS handshake on port 443 with ALPN `acme-tls/1`.
    TlsAlpn01,
    /// RFC 8555 §8.3: `GET /.well-known/acme-challenge/TOKEN` on port 80.
    Http01,
}

impl Challenge {
    pub fn name(self) -> &'static str {
        match self {
            Challenge::TlsAlpn01 => "tls-alpn-01",
            Challenge::Http01 => "http-01",
        }
    }

    /// The port the CA connects to.
    pub fn port(self) -> u16 {
        match self {
            Challenge::TlsAlpn01 => 443,
            Challenge::Http01 => 80,
        }
    }
}

#[derive(Debug, Clone)]
pub struct AcmeConfig {
    pub enabled: bool,
    /// An e-mail address, without `mailto:`; the CA may write to it about the account.
    pub contact: Option<String>,
    pub directory: String,
    /// In order of preference; after a failed attempt the next one is tried.
    pub challenges: Vec<Challenge>,
    /// A PEM root the directory's HTTPS certificate chains to (a private or test CA);
    /// `None`: the system's roots.
    pub ca_file: Option<PathBuf>,
    /// External account binding (RFC 8555 §7.3.4), which ZeroSSL and some private CAs ask
    /// for at registration: the key id and the HMAC key (decoded from base64url).
    pub eab: Option<(String, Secret)>,
}

/// Which listeners exist, for the challenges that need them.
pub(super) struct Ports {
    pub https: bool,
    pub http: bool,
}

pub(super) fn validate(
    raw: RawAcme,
    hostname: &str,
    ports: Ports,
    base: &Path,
) -> Result<AcmeConfig, ConfigError> {
    let names = match raw.challenge {
        RawChallenges::One(s) => vec![s],
        RawChallenges::List(l) => l,
    };
    let mut challenges = Vec::new();
    for name in &names {
        let c = match name.trim() {
            "tls-alpn-01" => Challenge::TlsAlpn01,
            "http-01" => Challenge::Http01,
            other => {
                return Err(invalid(
                    "acme.challenge",
                    format!("{other:?} is not \"tls-alpn-01\" or \"http-01\""),
                ));
            }
        };
        if challenges.contains(&c) {
            return Err(invalid(
                "acme.challenge",
                format!("{} is listed twice", c.name()),
            ));
        }
        challenges.push(c);
    }
    if challenges.is_empty() {
        return Err(invalid(
            "acme.challenge",
            "names no challenge: use \"tls-alpn-01\", \"http-01\" or both",
        ));
    }
    let directory = raw.directory.trim().to_owned();
    if !directory.starts_with("https://") || directory.len() <= "https://".len() {
        return Err(invalid(
            "acme.directory",
            format!("{directory:?} is not an https:// URL"),
        ));
    }
    let contact = contact(&raw.contact)?;
    let ca_file = (!raw.ca_file.trim().is_empty()).then(|| base.join(raw.ca_file.trim()));
    let eab = match (raw.eab_kid.trim(), raw.eab_hmac_key.trim()) {
        ("", "") => None,
        ("", _) | (_, "") => {
            return Err(invalid(
                "acme.eab_kid",
                "acme.eab_kid and acme.eab_hmac_key go together: set both or neither",
            ));
        }
        (kid, key) => {
            use base64::Engine;
            let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(key.trim_end_matches('='))
                .map_err(|_| {
                    invalid("acme.eab_hmac_key", "is not base64url (as the CA shows it)")
                })?;
            if decoded.is_empty() {
                return Err(invalid("acme.eab_hmac_key", "is empty once decoded"));
            }
            Some((kid.to_owned(), Secret::new(key.trim_end_matches('='))))
        }
    };
    let config = AcmeConfig {
        enabled: raw.enabled,
        contact,
        directory,
        challenges,
        ca_file,
        eab,
    };
    if !config.enabled {
        return Ok(config);
    }
    let host = hostname.trim_start_matches('[').trim_end_matches(']');
    if host.parse::<IpAddr>().is_ok() || !host.contains('.') || host.ends_with('.') {
        return Err(invalid(
            "acme.enabled",
            format!(
                "needs `hostname` to be the public DNS name people open (like \
                 \"meet.example.org\"), not {hostname:?}: a CA certifies names that point to \
                 this server"
            ),
        ));
    }
    for c in &config.challenges {
        let (has, key) = match c {
            Challenge::TlsAlpn01 => (ports.https, "https.listen"),
            Challenge::Http01 => (ports.http, "http.listen"),
        };
        if !has {
            return Err(invalid(
                "acme.challenge",
                format!(
                    "{} is answered on {key}, which is empty: add a listener on port {}, or \
                     leave {} out",
                    c.name(),
                    c.port(),
                    c.name()
                ),
            ));
        }
    }
    Ok(config)
}

fn contact(raw: &str) -> Result<Option<String>, ConfigError> {
    let c = raw.trim();
    let c = c.strip_prefix("mailto:").unwrap_or(c);
    if c.is_empty() {
        return Ok(None);
    }
    let ok = match c.split_once('@') {
        Some((user, domain)) => {
            !user.is_empty()
                && domain.contains('.')
                && !c
                    .chars()
                    .any(|ch| ch.is_whitespace() || ",;<>\"'".contains(ch))
                && !domain.contains('@')
        }
        None => false,
    };
    if !ok {
        return Err(invalid(
            "acme.contact",
            format!("{raw:?} is not an e-mail address"),
        ));
    }
    Ok(Some(c.to_owned()))
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use std::path::Path;

    fn parse(text: &str) -> Result<Config, crate::config::ConfigError> {
        Config::parse(text, Path::new("/etc/peerbox"))
    }

    const ON: &str = "hostname = \"meet.example.org\"\n[acme]\nenabled = true\n";

    #[test]
    fn off_by_default_with_lets_encrypt_and_both_challenges() {
        let c = parse("").unwrap().acme;
        assert!(!c.enabled);
        assert_eq!(c.directory, super::LETS_ENCRYPT);
        assert_eq!(
            c.challenges,
            [super::Challenge::TlsAlpn01, super::Challenge::Http01]
        );
        assert_eq!(c.contact, None);
        assert_eq!(c.ca_file, None);
    }

    #[test]
    fn values_as_an_admin_writes_them() {
        let c = parse(&format!(
            "{ON}contact = \"mailto:admin@example.org\"\nchallenge = \"http-01\"\n\
             ca_file = \"ssl/test-ca.pem\"\ndirectory = \"https://ca.test/dir\""
        ))
        .unwrap()
        .acme;
        assert_eq!(c.contact.as_deref(), Some("admin@example.org"));
        assert_eq!(c.challenges, [super::Challenge::Http01]);
        assert_eq!(
            c.ca_file.as_deref(),
            Some(Path::new("/etc/peerbox/ssl/test-ca.pem"))
        );
        assert_eq!(c.directory, "https://ca.test/dir");
        let eab = parse(&format!(
            "{ON}eab_kid = \"kid-1\"\neab_hmac_key = \"c2VjcmV0\""
        ))
        .unwrap()
        .acme
        .eab
        .unwrap();
        assert_eq!(eab.0, "kid-1");
        assert_eq!(format!("{:?}", eab.1), "***");
    }

    #[test]
    fn bad_values_name_the_key() {
        let cases = [
            ("[acme]\nenabled = true", "acme.enabled"),
            (
                "hostname = \"192.0.2.1\"\n[acme]\nenabled = true",
                "acme.enabled",
            ),
            (&format!("{ON}contact = \"nobody\""), "acme.contact"),
            (
                &format!("{ON}contact = \"a b@example.org\""),
                "acme.contact",
            ),
            (
                &format!("{ON}directory = \"http://ca.test/dir\""),
                "acme.directory",
            ),
            (&format!("{ON}challenge = \"dns-01\""), "acme.challenge"),
            (&format!("{ON}challenge = []"), "acme.challenge"),
            (
                &format!("{ON}challenge = [\"http-01\", \"http-01\"]"),
                "acme.challenge",
            ),
            (
                &format!("{ON}challenge = \"http-01\"\n[http]\nlisten = []"),
                "http.listen",
            ),
            (
                &format!("{ON}challenge = \"tls-alpn-01\"\n[https]\nlisten = []"),
                "https.listen",
            ),
            (&format!("{ON}bogus = 1"), "bogus"),
            (&format!("{ON}eab_kid = \"kid\""), "acme.eab_kid"),
            (
                &format!("{ON}eab_kid = \"kid\"\neab_hmac_key = \"not base64!\""),
                "acme.eab_hmac_key",
            ),
        ];
        for (text, key) in cases {
            let err = parse(text).expect_err(text).to_string();
            assert!(err.contains(key), "{text:?} gave {err:?}, expected {key}");
        }
    }
}
