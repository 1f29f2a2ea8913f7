//! TURN credentials. Ephemeral ones follow the TURN REST API scheme (coturn, LiveKit, Jitsi):
//! username `<expiry unix time>:<session id>`, password `base64(HMAC-SHA1(secret, username))`.
//! Static `users` from the config are checked first. The long-term key for MESSAGE-INTEGRITY
//! is `MD5(username:realm:password)`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::json;

use crate::Config;
use crate::config::Secret;

/// Issues and checks TURN credentials; shared by the signalling server and the TURN server.
pub struct Credentials {
    key: hmac::Key,
    ttl: Duration,
    users: Vec<(String, Secret)>,
    realm: String,
    /// `stun:`/`turn:` host and port for `iceServers`; None when TURN is off.
    host_port: Option<String>,
}

/// A password looked up for a username, and until when it may open new allocations.
pub struct Password {
    pub password: String,
    /// Unix time after which the credential is expired; None for static users.
    pub expires: Option<u64>,
}

impl Credentials {
    pub fn new(config: &Config) -> Arc<Credentials> {
        let secret = if config.turn.secret.is_empty() {
            let mut b = [0u8; 32];
            // A failing system RNG would leave an all-zero secret: use the clock instead and
            // say so, rather than refuse to start.
            if SystemRandom::new().fill(&mut b).is_err() {
                tracing::warn!("system random generator failed; turn secret is weak");
                b[..16].copy_from_slice(&now_nanos().to_be_bytes());
            }
            base64::engine::general_purpose::STANDARD.encode(b)
        } else {
            config.turn.secret.expose().to_owned()
        };
        let host_port = config.turn.listen.first().map(|a| {
            let host = config
                .hostname
                .trim_start_matches('[')
                .trim_end_matches(']');
            let host = match host.parse::<IpAddr>() {
                Ok(IpAddr::V6(_)) => format!("[{host}]"),
                _ => host.to_owned(),
            };
            format!("{host}:{}", a.port())
        });
        Arc::new(Credentials {
            key: hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret.as_bytes()),
            ttl: config.turn.credential_ttl,
            users: config.turn.users.clone(),
            realm: config.turn_realm().to_owned(),
            host_port,
        })
    }

    /// A fresh (username, password) pair for `session`, valid for `credential_ttl`.
    pub fn issue(&self, session: &str) -> (String, String) {
        let expiry = unix_now() + self.ttl.as_secs();
        let username = format!("{expiry}:{session}");
        let password = self.rest_password(&username);
        (username, password)
    }

    fn rest_password(&self, username: &str) -> String {
        let tag = hmac::sign(&self.key, username.as_bytes());
        base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
    }

    /// The password for `username`, static users first, then the REST scheme (the
    /// timestamp may come first, as we issue, or last).
    pub fn password(&self, username: &str) -> Option<Password> {
        if let Some((_, p)) = self.users.iter().find(|(u, _)| u == username) {
            return Some(Password {
                password: p.expose().to_owned(),
                expires: None,
            });
        }
        let (first, rest) = username.split_once(':')?;
        let ts = first
            .parse::<u64>()
            .ok()
            .or_else(|| username.rsplit_once(':')?.1.parse().ok())
            .filter(|_| !rest.is_empty())?;
        Some(Password {
            password: self.rest_password(username),
            expires: Some(ts),
        })
    }

    /// The long-term credential key `MD5(username:realm:password)`.
    pub fn key(&self, username: &str, password: &str) -> Vec<u8> {
        stun::integrity::MessageIntegrity::new_long_term_integrity(
            username.to_owned(),
            self.realm.clone(),
            password.to_owned(),
        )
        .0
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }
}

impl crate::signal::IceProvider for Credentials {
    fn ice_servers(&self, session: &str, _host: Option<&str>) -> serde_json::Value {
        let Some(hp) = &self.host_port else {
            return json!([]);
        };
        let (username, credential) = self.issue(session);
        json!([
            {"urls": [format!("stun:{hp}")]},
            {
                "urls": [format!("turn:{hp}?transport=udp"), format!("turn:{hp}?transport=tcp")],
                "username": username,
                "credential": credential,
            }
        ])
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::signal::IceProvider;

    fn creds(extra: &str) -> Arc<Credentials> {
        let c = Config::parse(extra, std::path::Path::new("/")).expect("config");
        Credentials::new(&c)
    }

    #[test]
    fn rest_password_matches_coturn_scheme() {
        let c = creds("[turn]\nsecret = \"north\"");
        // Computed with: printf '%s' 1700000000:alice | openssl dgst -sha1 -hmac north -binary | base64
        let p = c.password("1700000000:alice").unwrap();
        assert_eq!(p.expires, Some(1_700_000_000));
        assert_eq!(p.password, "Cd/49soE35ICqcJF/bCTn8Z4OyE=");
        assert_eq!(
            c.password("alice:1700000000").unwrap().expires,
            Some(1_700_000_000)
        );
        assert!(c.password("alice").is_none());
        assert!(c.password("abc:def").is_none());
    }

    #[test]
    fn static_users_come_first() {
        let c = creds("[turn]\nusers = [\"bob:pw\", \"1:x:y\"]");
        assert_eq!(c.password("bob").unwrap().password, "pw");
        assert_eq!(c.password("1").unwrap().password, "x:y");
    }

    #[test]
    fn ice_servers_shape() {
        for (host, want) in [
            ("example.org", "example.org:3478"),
            ("::1", "[::1]:3478"),
            ("[2001:db8::1]", "[2001:db8::1]:3478"),
        ] {
            let c = creds(&format!("hostname = \"{host}\""));
            let v = c.ice_servers("sess", None);
            assert_eq!(v[0]["urls"][0], format!("stun:{want}"));
            assert_eq!(v[1]["urls"][0], format!("turn:{want}?transport=udp"));
            assert_eq!(v[1]["urls"][1], format!("turn:{want}?transport=tcp"));
            let user = v[1]["username"].as_str().unwrap();
            assert!(user.ends_with(":sess"));
            let p = c.password(user).unwrap();
            assert_eq!(v[1]["credential"], p.password);
            assert!(p.expires.unwrap() > unix_now());
        }
        assert_eq!(
            creds("[turn]\nlisten = []").ice_servers("s", None),
            json!([])
        );
    }
}
