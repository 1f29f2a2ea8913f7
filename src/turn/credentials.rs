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
    urls: Urls,
}

/// What `iceServers` advertises: the host (None: the one the client reached us by) and the
/// port of each TURN transport that is on.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Urls {
    host: Option<String>,
    /// UDP and TCP (`turn.listen`).
    both: Option<u16>,
    /// UDP only (`turn.udp_listen`).
    udp: Option<u16>,
    /// TLS on the HTTPS port (`https.turn`).
    tls: Option<u16>,
}

/// `hostname` as it goes into a URL: IPv6 literals in brackets; `localhost` (the shipped
/// default) means "not configured".
fn url_host(hostname: &str) -> Option<String> {
    let bare = hostname.trim_start_matches('[').trim_end_matches(']');
    if bare.eq_ignore_ascii_case("localhost") {
        return None;
    }
    Some(match bare.parse::<IpAddr>() {
        Ok(IpAddr::V6(_)) => format!("[{bare}]"),
        _ => bare.to_owned(),
    })
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
        let urls = Urls {
            host: url_host(&config.hostname),
            both: config.turn.listen.first().map(|a| a.port()),
            udp: config.turn.udp_listen.first().map(|a| a.port()),
            tls: config
                .https
                .listen
                .first()
                .filter(|_| config.https.turn)
                .map(|a| a.port()),
        };
        Arc::new(Credentials {
            key: hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret.as_bytes()),
            ttl: config.turn.credential_ttl,
            users: config.turn.users.clone(),
            realm: config.turn_realm().to_owned(),
            urls,
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

    /// Whose quota an allocation made with `username` counts against: the session id of a
    /// REST credential (`<expiry>:<session>`, or `<name>:<expiry>`), so fresh credentials for
    /// the same session share one quota; a static user's own name.
    pub fn owner<'a>(&self, username: &'a str) -> &'a str {
        if self.users.iter().any(|(u, _)| u == username) {
            return username;
        }
        match username.split_once(':') {
            Some((ts, rest)) if ts.parse::<u64>().is_ok() && !rest.is_empty() => rest,
            _ => match username.rsplit_once(':') {
                Some((name, ts)) if ts.parse::<u64>().is_ok() && !name.is_empty() => name,
                _ => username,
            },
        }
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

impl Credentials {
    /// The `RTCIceServer[]` for a session: STUN, then one TURN entry with every transport that
    /// is on, in the order browsers should try them (UDP, TCP, TLS on 443). `host` is the
    /// host the client reached us by, used when no `hostname` is configured (and `localhost`
    /// when there is neither: only a browser on this machine can use that).
    pub fn ice_servers(&self, session: &str, host: Option<&str>) -> serde_json::Value {
        let u = &self.urls;
        let host = u.host.as_deref().or(host).unwrap_or("localhost");
        let mut turn = Vec::new();
        if let Some(p) = u.both {
            turn.push(format!("turn:{host}:{p}?transport=udp"));
        }
        if let Some(p) = u.udp {
            turn.push(format!("turn:{host}:{p}?transport=udp"));
        }
        if let Some(p) = u.both {
            turn.push(format!("turn:{host}:{p}?transport=tcp"));
        }
        if let Some(p) = u.tls {
            turn.push(format!("turns:{host}:{p}?transport=tcp"));
        }
        let Some(stun_port) = u.both.or(u.udp) else {
            if turn.is_empty() {
                return json!([]);
            }
            let (username, credential) = self.issue(session);
            return json!([{"urls": turn, "username": username, "credential": credential}]);
        };
        let (username, credential) = self.issue(session);
        json!([
            {"urls": [format!("stun:{host}:{stun_port}")]},
            {"urls": turn, "username": username, "credential": credential},
        ])
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub(crate) fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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
            ("example.org", "example.org"),
            ("::1", "[::1]"),
            ("[2001:db8::1]", "[2001:db8::1]"),
        ] {
            let c = creds(&format!("hostname = \"{host}\""));
            let v = c.ice_servers("sess", Some("ignored.example"));
            assert_eq!(v[0]["urls"], json!([format!("stun:{want}:3478")]));
            assert_eq!(
                v[1]["urls"],
                json!([
                    format!("turn:{want}:3478?transport=udp"),
                    format!("turn:{want}:3478?transport=tcp"),
                    format!("turns:{want}:443?transport=tcp"),
                ])
            );
            let user = v[1]["username"].as_str().unwrap();
            assert!(user.ends_with(":sess"));
            assert_eq!(c.owner(user), "sess");
            let p = c.password(user).unwrap();
            assert_eq!(v[1]["credential"], p.password);
            assert!(p.expires.unwrap() > unix_now());
        }
        assert_eq!(
            creds("[turn]\nlisten = []\n[https]\nturn = false").ice_servers("s", None),
            json!([])
        );
    }

    /// `hostname` left at `localhost`: the URLs name the host the browser reached us by, so a
    /// fresh install relays for people on other machines.
    #[test]
    fn default_hostname_uses_the_request_host() {
        let c = creds("");
        let v = c.ice_servers("s", Some("rooms.example.org"));
        assert_eq!(v[0]["urls"][0], "stun:rooms.example.org:3478");
        assert_eq!(v[1]["urls"][2], "turns:rooms.example.org:443?transport=tcp");
        let v = c.ice_servers("s", None);
        assert_eq!(v[0]["urls"][0], "stun:localhost:3478");
    }

    #[test]
    fn transports_follow_the_config() {
        let c = creds(
            "hostname = \"h.test\"\n[https]\nlisten = [\"0.0.0.0:8443\"]\n\
             [turn]\nudp_listen = [\"0.0.0.0:443\"]",
        );
        let v = c.ice_servers("s", None);
        assert_eq!(
            v[1]["urls"],
            json!([
                "turn:h.test:3478?transport=udp",
                "turn:h.test:443?transport=udp",
                "turn:h.test:3478?transport=tcp",
                "turns:h.test:8443?transport=tcp",
            ])
        );
        // TURN only on 443 (TLS): no STUN entry, the TURN entry alone.
        let v = creds("hostname = \"h.test\"\n[turn]\nlisten = []").ice_servers("s", None);
        assert_eq!(v.as_array().unwrap().len(), 1);
        assert_eq!(v[0]["urls"], json!(["turns:h.test:443?transport=tcp"]));
    }

    #[test]
    fn owners() {
        // A static user named like a REST username is still its own owner.
        let c = creds("[turn]\nusers = [\"1700000000:pw\"]");
        for (user, owner) in [
            ("1700000000:sess-1", "sess-1"),
            ("alice:1700000000", "alice"),
            ("1700000000", "1700000000"),
            ("plain", "plain"),
            ("1700000000:", "1700000000:"),
        ] {
            assert_eq!(c.owner(user), owner, "{user}");
        }
    }
}
