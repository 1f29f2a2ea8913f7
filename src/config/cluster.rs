//! The `[cluster]` section: several peerbox nodes sharing one room directory in Redis, off by
//! default (one node, no Redis, exactly as before). Raw as written, then validated into
//! [`ClusterConfig`]; bad values are refused, never clamped.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, Secret, invalid};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawCluster {
    enabled: bool,
    redis: String,
    node_id: String,
    address: String,
    media_address: String,
    secret: String,
    redis_timeout_ms: u64,
    node_ttl_secs: u64,
}

impl Default for RawCluster {
    fn default() -> Self {
        RawCluster {
            enabled: false,
            redis: "redis://127.0.0.1:6379/0".into(),
            node_id: String::new(),
            address: String::new(),
            media_address: String::new(),
            secret: String::new(),
            redis_timeout_ms: 1000,
            node_ttl_secs: 10,
        }
    }
}

/// Shortest node-to-node secret accepted (it authenticates every relayed session).
pub const MIN_SECRET_CHARS: usize = 32;

/// The validated `[cluster]`: present only when `enabled = true`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// `redis://host:port/db` (plain TCP: no TLS client is built in) or `unix:///path`.
    pub redis: String,
    /// This node's name in the directory (letters, digits, `.`, `_`, `-`).
    pub node_id: String,
    /// Where the other nodes reach this node's HTTPS port.
    pub address: SocketAddr,
    /// The IP clients send media to on this node: its SFU's candidate when `sfu.public_ip`
    /// is empty (members relayed from other nodes too, since the home serves their media).
    pub media_address: Option<IpAddr>,
    /// Shared by every node: authenticates node-to-node connections and signs resume tokens.
    pub secret: Secret,
    /// Bound of every Redis call; a login that needs Redis fails with `unavailable` after it.
    pub redis_timeout: Duration,
    /// A node's liveness key expires this long after its last refresh (refreshed every third).
    pub node_ttl: Duration,
}

impl ClusterConfig {
    /// How often a node refreshes its liveness key.
    pub fn refresh_every(&self) -> Duration {
        self.node_ttl / 3
    }
}

pub(super) fn validate(
    raw: RawCluster,
    turn_secret: &Secret,
) -> Result<Option<ClusterConfig>, ConfigError> {
    let redis = raw.redis.trim();
    if redis.starts_with("rediss://") {
        return Err(invalid(
            "cluster.redis",
            "rediss:// (TLS) is not supported: reach Redis over a private network or a \
             local tunnel with redis://",
        ));
    }
    if !(redis.starts_with("redis://") || redis.starts_with("unix://"))
        || redis.len() <= "redis://".len()
    {
        return Err(invalid(
            "cluster.redis",
            format!("{redis:?} is not a redis://host:port/db or unix:///path URL"),
        ));
    }
    let node_id = raw.node_id.trim();
    if !node_id.is_empty()
        && (node_id.len() > 64
            || !node_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(invalid(
            "cluster.node_id",
            format!("{node_id:?} must be 1-64 letters, digits, '.', '_' or '-'"),
        ));
    }
    let address = match raw.address.trim() {
        "" => None,
        s => {
            let a = s.parse::<SocketAddr>().map_err(|_| {
                invalid(
                    "cluster.address",
                    format!("{s:?} is not an address:port (e.g. \"10.0.0.2:443\")"),
                )
            })?;
            if a.ip().is_unspecified() || a.port() == 0 {
                return Err(invalid(
                    "cluster.address",
                    format!("{a} cannot be reached by the other nodes"),
                ));
            }
            Some(a)
        }
    };
    let media_address = match raw.media_address.trim() {
        "" => None,
        s => Some(s.parse::<IpAddr>().map_err(|_| {
            invalid(
                "cluster.media_address",
                format!("{s:?} is not an IP address"),
            )
        })?),
    };
    if !(50..=10_000).contains(&raw.redis_timeout_ms) {
        return Err(invalid(
            "cluster.redis_timeout_ms",
            format!(
                "is {} but must be between 50 and 10000 milliseconds",
                raw.redis_timeout_ms
            ),
        ));
    }
    if !(3..=300).contains(&raw.node_ttl_secs) {
        return Err(invalid(
            "cluster.node_ttl_secs",
            format!(
                "is {} but must be between 3 and 300 seconds",
                raw.node_ttl_secs
            ),
        ));
    }
    let redis_timeout = Duration::from_millis(raw.redis_timeout_ms);
    let node_ttl = Duration::from_secs(raw.node_ttl_secs);
    if redis_timeout >= node_ttl / 3 {
        return Err(invalid(
            "cluster.redis_timeout_ms",
            format!(
                "is {} ms but must be below a third of cluster.node_ttl_secs ({} ms), or a \
                 slow refresh lets this node's liveness key expire",
                raw.redis_timeout_ms,
                node_ttl.as_millis() / 3
            ),
        ));
    }
    if !raw.enabled {
        return Ok(None);
    }
    if node_id.is_empty() {
        return Err(invalid(
            "cluster.node_id",
            "is required with cluster.enabled (a name unique among the nodes)",
        ));
    }
    let Some(address) = address else {
        return Err(invalid(
            "cluster.address",
            "is required with cluster.enabled (this node's HTTPS address the other nodes reach)",
        ));
    };
    if raw.secret.chars().count() < MIN_SECRET_CHARS {
        return Err(invalid(
            "cluster.secret",
            format!(
                "is required with cluster.enabled: the same random string of at least \
                 {MIN_SECRET_CHARS} characters on every node (e.g. `openssl rand -hex 32`)"
            ),
        ));
    }
    if turn_secret.is_empty() {
        return Err(invalid(
            "turn.secret",
            "is required with cluster.enabled: the same secret on every node, so that TURN \
             credentials one node issues work on the others",
        ));
    }
    Ok(Some(ClusterConfig {
        redis: redis.to_owned(),
        node_id: node_id.to_owned(),
        address,
        media_address,
        secret: Secret::new(raw.secret),
        redis_timeout,
        node_ttl,
    }))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn on(extra: &str) -> String {
        format!(
            "[turn]\nsecret = \"turn-secret-turn-secret-turn-secret\"\n[cluster]\nenabled = true\n\
             node_id = \"a\"\naddress = \"10.0.0.2:443\"\nsecret = \"{SECRET}\"\n{extra}"
        )
    }

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("/etc/peerbox")).map_err(|e| e.to_string())
    }

    #[test]
    fn off_by_default() {
        assert_eq!(parse("").unwrap().cluster, None);
        // Keys may be written while it is off, and are still checked.
        assert_eq!(parse("[cluster]\nnode_id = \"a\"").unwrap().cluster, None);
    }

    #[test]
    fn on_with_what_it_needs() {
        let c = parse(&on("media_address = \"203.0.113.7\"")).unwrap();
        let c = c.cluster.expect("on");
        assert_eq!(c.node_id, "a");
        assert_eq!(c.address, "10.0.0.2:443".parse().unwrap());
        assert_eq!(c.redis, "redis://127.0.0.1:6379/0");
        assert_eq!(c.media_address, Some("203.0.113.7".parse().unwrap()));
        assert_eq!(c.redis_timeout.as_millis(), 1000);
        assert_eq!(c.refresh_every().as_millis(), 3333);
        assert!(!format!("{c:?}").contains(SECRET), "secret redacted");
    }

    #[test]
    fn the_sfu_candidate_is_the_media_address() {
        let c = parse(&on(
            "media_address = \"203.0.113.7\"\n[sfu]\nenabled = true",
        ))
        .unwrap();
        assert_eq!(c.sfu.public_ip, Some("203.0.113.7".parse().unwrap()));
        // `sfu.public_ip` still wins, and a listen address of its own is enough.
        let c = parse(&on(
            "media_address = \"203.0.113.7\"\n[sfu]\nenabled = true\npublic_ip = \"203.0.113.9\"",
        ))
        .unwrap();
        assert_eq!(c.sfu.public_ip, Some("203.0.113.9".parse().unwrap()));
        let c = parse(&on("[sfu]\nenabled = true\nlisten = \"10.0.0.2:3479\"")).unwrap();
        assert_eq!(c.sfu.candidate_ip(None), Some("10.0.0.2".parse().unwrap()));
    }

    #[test]
    fn refusals_name_the_key() {
        let no_turn = format!(
            "[cluster]\nenabled = true\nnode_id = \"a\"\naddress = \"10.0.0.2:443\"\nsecret = \"{SECRET}\""
        );
        let cases = [
            (no_turn, "turn.secret"),
            (on("redis = \"rediss://r:6380\""), "cluster.redis"),
            (on("redis = \"http://r\""), "cluster.redis"),
            (on("node_id = \"a b\""), "cluster.node_id"),
            (on("node_id = \"\""), "cluster.node_id"),
            (on("address = \"\""), "cluster.address"),
            (on("address = \"0.0.0.0:443\""), "cluster.address"),
            (on("address = \"node-b\""), "cluster.address"),
            (on("media_address = \"x\""), "cluster.media_address"),
            (on("secret = \"short\""), "cluster.secret"),
            (on("redis_timeout_ms = 10"), "cluster.redis_timeout_ms"),
            (on("node_ttl_secs = 1"), "cluster.node_ttl_secs"),
            (
                on("node_ttl_secs = 3\nredis_timeout_ms = 1000"),
                "cluster.redis_timeout_ms",
            ),
            // The SFU on a wildcard with no address of its own: relayed members need one.
            (on("[sfu]\nenabled = true"), "cluster.media_address"),
            ("[cluster]\nredis = \"x\"".into(), "cluster.redis"),
            ("[cluster]\nbogus = 1".into(), "bogus"),
        ];
        for (text, key) in cases {
            // A later key of the same name overrides: TOML refuses duplicates, so replace.
            let text = dedupe(&text);
            let err = parse(&text).expect_err(&text);
            assert!(err.contains(key), "{text:?}: {err}");
        }
    }

    /// Keeps the last of each `key = value` line within a section (the cases override keys).
    fn dedupe(text: &str) -> String {
        let mut out: Vec<String> = Vec::new();
        for line in text.lines() {
            if let Some((k, _)) = line.split_once(" = ") {
                let section_start = out.iter().rposition(|l| l.starts_with('[')).unwrap_or(0);
                if let Some(i) = out[section_start..]
                    .iter()
                    .position(|l| l.split_once(" = ").is_some_and(|(k2, _)| k2 == k))
                {
                    out.remove(section_start + i);
                }
            }
            out.push(line.to_owned());
        }
        out.join("\n")
    }
}
