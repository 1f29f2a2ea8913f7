//! The admin's `config.toml`: parsed once with serde (unknown keys refused), then validated
//! into typed values that the rest of the server receives by reference. Out-of-range values
//! are refused with the range, never clamped; what needs several keys at once (listeners that
//! clash, legal but harmful values) is in [`check`].

mod acme;
mod check;
mod cluster;
mod sfu;

pub use acme::{AcmeConfig, Challenge, LETS_ENCRYPT};
pub use check::Warning;
pub use cluster::ClusterConfig;
pub use sfu::SfuConfig;

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

/// What can go wrong reading the configuration; each message names the file or the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config key `{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
}

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.into(),
    }
}

/// A secret string that never shows up in logs or `Debug` output.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

// ---------------------------------------------------------------- raw, as written in TOML

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawConfig {
    hostname: String,
    shutdown_timeout_secs: u64,
    https: RawHttps,
    http: RawHttp,
    tls: RawTls,
    rooms: RawRooms,
    turn: RawTurn,
    metrics: RawMetrics,
    acme: acme::RawAcme,
    sfu: sfu::RawSfu,
    cluster: cluster::RawCluster,
}

impl Default for RawConfig {
    fn default() -> Self {
        RawConfig {
            hostname: "localhost".into(),
            shutdown_timeout_secs: 10,
            https: RawHttps::default(),
            http: RawHttp::default(),
            tls: RawTls::default(),
            rooms: RawRooms::default(),
            turn: RawTurn::default(),
            metrics: RawMetrics::default(),
            acme: acme::RawAcme::default(),
            sfu: sfu::RawSfu::default(),
            cluster: cluster::RawCluster::default(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawHttps {
    listen: Vec<String>,
    turn: bool,
    handshake_timeout_secs: u64,
    well_known_dir: String,
    hsts_max_age_secs: u64,
}

impl Default for RawHttps {
    fn default() -> Self {
        RawHttps {
            listen: vec!["0.0.0.0:443".into()],
            turn: true,
            handshake_timeout_secs: 10,
            well_known_dir: ".well-known".into(),
            hsts_max_age_secs: 63_072_000,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawHttp {
    listen: Vec<String>,
}

impl Default for RawHttp {
    fn default() -> Self {
        RawHttp {
            listen: vec!["0.0.0.0:80".into()],
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawMetrics {
    listen: Vec<String>,
    ready_certificate_days: u64,
}

impl Default for RawMetrics {
    fn default() -> Self {
        RawMetrics {
            listen: vec![DEFAULT_METRICS_LISTEN.into()],
            ready_certificate_days: 7,
        }
    }
}

/// Loopback only; in the exporters' range, clear of node_exporter's 9100 and coturn's 9641.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9478";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawTls {
    dir: String,
    watch_interval_secs: f64,
}

impl Default for RawTls {
    fn default() -> Self {
        RawTls {
            dir: "ssl".into(),
            watch_interval_secs: 5.0,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawRooms {
    capacity: usize,
    max_message_bytes: usize,
    max_rooms: usize,
    max_connections: usize,
    max_connections_per_ip: usize,
    messages_per_second: u32,
    message_burst: u32,
    ping_interval_secs: f64,
    idle_timeout_secs: f64,
    outbound_queue: usize,
    outbound_queue_bytes: usize,
    bytes_per_second: u64,
    byte_burst: u64,
    ipv6_prefix: u8,
    ip_messages_per_second: u32,
    ip_message_burst: u32,
    ip_bytes_per_second: u64,
    ip_byte_burst: u64,
    max_rooms_per_ip: usize,
    credentials_per_minute: u32,
    credential_burst: u32,
    allowed_origins: Vec<String>,
    removed_for_secs: f64,
    lobby_wait_secs: f64,
    min_room_chars: usize,
    sfu_from: usize,
    mesh_after_secs: f64,
}

impl Default for RawRooms {
    fn default() -> Self {
        RawRooms {
            capacity: 10,
            max_message_bytes: 65_536,
            max_rooms: 10_000,
            max_connections: 20_000,
            max_connections_per_ip: 50,
            messages_per_second: 50,
            message_burst: 200,
            ping_interval_secs: 20.0,
            idle_timeout_secs: 60.0,
            outbound_queue: 256,
            outbound_queue_bytes: 1_048_576,
            bytes_per_second: 65_536,
            byte_burst: 1_048_576,
            ipv6_prefix: 64,
            ip_messages_per_second: 500,
            ip_message_burst: 5000,
            ip_bytes_per_second: 1_048_576,
            ip_byte_burst: 8_388_608,
            max_rooms_per_ip: 25,
            credentials_per_minute: 20,
            credential_burst: 30,
            allowed_origins: Vec::new(),
            removed_for_secs: 600.0,
            lobby_wait_secs: 300.0,
            min_room_chars: 1,
            sfu_from: 3,
            mesh_after_secs: 15.0,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawTurn {
    listen: Vec<String>,
    udp_listen: Vec<String>,
    realm: String,
    external_ip: String,
    relay_ports: String,
    secret: String,
    credential_ttl_secs: u64,
    users: Vec<String>,
    allow_loopback_peers: bool,
    allowed_peers: Vec<String>,
    denied_peers: Vec<String>,
    user_quota: usize,
    address_quota: usize,
    total_quota: usize,
    max_allocation_age_secs: u64,
    bandwidth_bytes_per_sec: u64,
}

impl Default for RawTurn {
    fn default() -> Self {
        RawTurn {
            listen: vec!["0.0.0.0:3478".into()],
            udp_listen: Vec::new(),
            realm: String::new(),
            external_ip: String::new(),
            relay_ports: "49152-65535".into(),
            secret: String::new(),
            credential_ttl_secs: 3600,
            users: Vec::new(),
            allow_loopback_peers: false,
            allowed_peers: Vec::new(),
            denied_peers: Vec::new(),
            user_quota: 0,
            address_quota: 0,
            total_quota: 1000,
            max_allocation_age_secs: 86_400,
            bandwidth_bytes_per_sec: 0,
        }
    }
}

// ---------------------------------------------------------------- validated

/// The validated configuration. Paths are absolute (resolved against the config file's directory).
#[derive(Debug, Clone)]
pub struct Config {
    pub hostname: String,
    pub shutdown_timeout: Duration,
    pub https: HttpsConfig,
    pub http: HttpConfig,
    pub tls: TlsConfig,
    pub rooms: RoomsConfig,
    pub turn: TurnConfig,
    pub metrics: MetricsConfig,
    pub acme: AcmeConfig,
    pub sfu: SfuConfig,
    /// `[cluster]`, when `enabled = true`; `None`: one node, no Redis.
    pub cluster: Option<ClusterConfig>,
}

/// `/metrics`, `/healthz` and `/readyz`, on listeners of their own.
#[derive(Debug, Clone)]
pub struct MetricsConfig {
    /// Empty turns the listener off.
    pub listen: Vec<SocketAddr>,
    /// `/readyz` fails once the served certificate has fewer days left than this.
    pub ready_certificate_days: u64,
}

#[derive(Debug, Clone)]
pub struct HttpsConfig {
    pub listen: Vec<SocketAddr>,
    /// TURN over TLS and over plain TCP on the HTTPS listeners (told apart from HTTPS by
    /// their first bytes).
    pub turn: bool,
    pub handshake_timeout: Duration,
    pub well_known_dir: PathBuf,
    pub hsts_max_age: Duration,
}

#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub listen: Vec<SocketAddr>,
}

#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub dir: PathBuf,
    /// How often the certificate files are checked for changes (0 turns polling off).
    pub watch_interval: Duration,
}

#[derive(Debug, Clone)]
pub struct RoomsConfig {
    pub capacity: usize,
    pub max_message_bytes: usize,
    pub max_rooms: usize,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub messages_per_second: u32,
    pub message_burst: u32,
    pub ping_interval: Duration,
    pub idle_timeout: Duration,
    pub outbound_queue: usize,
    /// Bytes waiting in one peer's outbound queue before it is dropped as too slow.
    pub outbound_queue_bytes: usize,
    /// Per connection: bytes read a second (a frame over budget is read later, not dropped).
    pub bytes_per_second: u64,
    pub byte_burst: u64,
    /// IPv6 clients are limited per this prefix (IPv4 per address): see [`crate::limit`].
    pub ipv6_prefix: u8,
    /// Per client address, shared by all its connections, logged in or not.
    pub ip_messages_per_second: u32,
    pub ip_message_burst: u32,
    pub ip_bytes_per_second: u64,
    pub ip_byte_burst: u64,
    /// Rooms that connections from one address may have created and that still exist.
    pub max_rooms_per_ip: usize,
    /// `joined` and `iceServers` answers (each hands out TURN credentials) per address.
    pub credentials_per_minute: u32,
    pub credential_burst: u32,
    /// Origins allowed to open the WebSocket besides this server's own host name.
    pub allowed_origins: AllowedOrigins,
    /// How long a room refuses the address and name of a member its host removed.
    pub removal: Duration,
    /// How long a knock at a lobby waits for the host before it is given up.
    pub lobby_wait: Duration,
    /// Shortest id (in characters) of a room a login may create; existing rooms are joined
    /// whatever their length.
    pub min_room_chars: usize,
    /// A room stays a mesh up to this many members and moves to the SFU beyond (only with
    /// `[sfu] enabled`, and only while every member announces SFU support).
    pub sfu_from: usize,
    /// An SFU room that shrank to `sfu_from` members or fewer goes back to a mesh only after
    /// this long.
    pub mesh_after: Duration,
}

/// Which browser origins besides peerbox's own host may open its WebSocket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// `["*"]`: the check is off.
    Any,
    /// Lowercase `scheme://host[:port]` as browsers send them (no default port, no slash).
    List(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct TurnConfig {
    /// UDP and TCP listeners; with `udp_listen` and `https.turn` all empty/off, TURN is off.
    pub listen: Vec<SocketAddr>,
    /// UDP-only listeners (e.g. 443/udp, which firewalls open for QUIC).
    pub udp_listen: Vec<SocketAddr>,
    pub realm: String,
    pub external_ip: Option<IpAddr>,
    pub relay_ports: RangeInclusive<u16>,
    /// Empty means: generate one at start.
    pub secret: Secret,
    pub credential_ttl: Duration,
    pub users: Vec<(String, Secret)>,
    pub allow_loopback_peers: bool,
    pub allowed_peers: Vec<IpNet>,
    pub denied_peers: Vec<IpNet>,
    /// Allocations per credential owner (a signalling session, or a static user).
    pub user_quota: usize,
    /// Allocations per client address (IPv6: per /64), across usernames.
    pub address_quota: usize,
    pub total_quota: usize,
    pub max_allocation_age: Duration,
    /// 0 means no cap.
    pub bandwidth_bytes_per_sec: u64,
}

impl Config {
    /// Reads and validates `path`. Relative paths inside are resolved against its directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let base = std::path::absolute(base).unwrap_or_else(|_| base.to_owned());
        Config::parse(&text, &base).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            other => other,
        })
    }

    /// Parses TOML text; `base` is the directory relative paths are resolved against.
    pub fn parse(text: &str, base: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<config>"),
            message: e.to_string(),
        })?;
        validate(raw, base)
    }

    /// The realm TURN uses: `turn.realm`, or the hostname.
    pub fn turn_realm(&self) -> &str {
        if self.turn.realm.is_empty() {
            &self.hostname
        } else {
            &self.turn.realm
        }
    }

    /// What is legal but probably not what the admin wants; logged at start and printed by
    /// `check-config`.
    pub fn warnings(&self) -> Vec<Warning> {
        check::warnings(self)
    }
}

fn validate(raw: RawConfig, base: &Path) -> Result<Config, ConfigError> {
    let hostname = raw.hostname.trim().to_owned();
    if hostname.is_empty()
        || hostname.len() > 253
        || !hostname
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
    {
        return Err(invalid(
            "hostname",
            format!("{:?} is not a DNS name or IP address", raw.hostname),
        ));
    }
    let rooms = &raw.rooms;
    positive("rooms.capacity", rooms.capacity)?;
    positive("rooms.max_rooms", rooms.max_rooms)?;
    positive("rooms.max_connections", rooms.max_connections)?;
    positive("rooms.max_connections_per_ip", rooms.max_connections_per_ip)?;
    positive(
        "rooms.messages_per_second",
        rooms.messages_per_second as usize,
    )?;
    positive("rooms.outbound_queue", rooms.outbound_queue)?;
    positive("rooms.max_rooms_per_ip", rooms.max_rooms_per_ip)?;
    for (key, v) in [
        ("rooms.bytes_per_second", rooms.bytes_per_second),
        (
            "rooms.ip_messages_per_second",
            rooms.ip_messages_per_second.into(),
        ),
        ("rooms.ip_message_burst", rooms.ip_message_burst.into()),
        ("rooms.ip_bytes_per_second", rooms.ip_bytes_per_second),
        (
            "rooms.credentials_per_minute",
            rooms.credentials_per_minute.into(),
        ),
        ("rooms.credential_burst", rooms.credential_burst.into()),
    ] {
        positive(key, usize::try_from(v).unwrap_or(usize::MAX))?;
    }
    if !(1..=128).contains(&rooms.ipv6_prefix) {
        return Err(invalid("rooms.ipv6_prefix", "must be between 1 and 128"));
    }
    if rooms.max_message_bytes < 1024 || rooms.max_message_bytes > 16 * 1024 * 1024 {
        return Err(invalid(
            "rooms.max_message_bytes",
            "must be between 1024 and 16777216",
        ));
    }
    if rooms.message_burst < rooms.messages_per_second {
        return Err(invalid(
            "rooms.message_burst",
            format!(
                "is {} but must be at least rooms.messages_per_second ({}): a connection may \
                 send one second's worth at once",
                rooms.message_burst, rooms.messages_per_second
            ),
        ));
    }
    // A frame of the largest allowed size must fit in every byte allowance, or it could
    // never be read.
    let max = rooms.max_message_bytes;
    for (key, v) in [
        (
            "rooms.outbound_queue_bytes",
            rooms.outbound_queue_bytes as u64,
        ),
        ("rooms.byte_burst", rooms.byte_burst),
        ("rooms.ip_byte_burst", rooms.ip_byte_burst),
    ] {
        if v < max as u64 {
            return Err(invalid(
                key,
                format!("must be at least rooms.max_message_bytes ({max})"),
            ));
        }
    }
    let allowed_origins = origins(&rooms.allowed_origins)?;
    let ping_interval = seconds("rooms.ping_interval_secs", rooms.ping_interval_secs)?;
    let idle_timeout = seconds("rooms.idle_timeout_secs", rooms.idle_timeout_secs)?;
    if idle_timeout <= ping_interval {
        return Err(invalid(
            "rooms.idle_timeout_secs",
            "must be longer than rooms.ping_interval_secs",
        ));
    }
    let removal = seconds("rooms.removed_for_secs", rooms.removed_for_secs)?;
    let lobby_wait = seconds("rooms.lobby_wait_secs", rooms.lobby_wait_secs)?;
    if !(1..=crate::signal::protocol::MAX_ROOM_CHARS).contains(&rooms.min_room_chars) {
        return Err(invalid("rooms.min_room_chars", "must be between 1 and 128"));
    }
    positive("rooms.sfu_from", rooms.sfu_from)?;
    let mesh_after = seconds("rooms.mesh_after_secs", rooms.mesh_after_secs)?;
    let https_turn = raw.https.turn && !raw.https.listen.is_empty();
    let turn = validate_turn(raw.turn, rooms.capacity, https_turn)?;
    let cluster = cluster::validate(raw.cluster, &turn.secret)?;
    // A node's SFU is told its address by `cluster.media_address` when `sfu.public_ip` is
    // empty: members relayed from other nodes send their media straight to it.
    let media_address = cluster.as_ref().and_then(|c| c.media_address);
    let sfu = sfu::validate(raw.sfu, media_address.or(turn.external_ip))?;
    if cluster.is_some() && sfu.enabled && sfu.candidate_ip(None).is_none() {
        return Err(invalid(
            "cluster.media_address",
            "is required with cluster.enabled and sfu.enabled when sfu.listen is a wildcard \
             and sfu.public_ip and turn.external_ip are empty: members relayed from other \
             nodes must be told this node's SFU address (the IP clients reach it on)",
        ));
    }
    let acme = acme::validate(
        raw.acme,
        &hostname,
        acme::Ports {
            https: !raw.https.listen.is_empty(),
            http: !raw.http.listen.is_empty(),
        },
        base,
    )?;
    let config = Config {
        hostname,
        shutdown_timeout: whole_seconds(
            "shutdown_timeout_secs",
            raw.shutdown_timeout_secs,
            1..=3600,
        )?,
        https: HttpsConfig {
            listen: addrs("https.listen", &raw.https.listen)?,
            turn: raw.https.turn,
            handshake_timeout: whole_seconds(
                "https.handshake_timeout_secs",
                raw.https.handshake_timeout_secs,
                1..=3600,
            )?,
            well_known_dir: base.join(&raw.https.well_known_dir),
            hsts_max_age: Duration::from_secs(raw.https.hsts_max_age_secs),
        },
        http: HttpConfig {
            listen: addrs("http.listen", &raw.http.listen)?,
        },
        tls: TlsConfig {
            dir: base.join(&raw.tls.dir),
            watch_interval: if raw.tls.watch_interval_secs == 0.0 {
                Duration::ZERO
            } else {
                seconds("tls.watch_interval_secs", raw.tls.watch_interval_secs).map_err(|_| {
                    invalid(
                        "tls.watch_interval_secs",
                        "must be 0 (only on SIGHUP) or a number of seconds above 0 and at most \
                         86400",
                    )
                })?
            },
        },
        rooms: RoomsConfig {
            capacity: rooms.capacity,
            max_message_bytes: rooms.max_message_bytes,
            max_rooms: rooms.max_rooms,
            max_connections: rooms.max_connections,
            max_connections_per_ip: rooms.max_connections_per_ip,
            messages_per_second: rooms.messages_per_second,
            message_burst: rooms.message_burst,
            ping_interval,
            idle_timeout,
            outbound_queue: rooms.outbound_queue,
            outbound_queue_bytes: rooms.outbound_queue_bytes,
            bytes_per_second: rooms.bytes_per_second,
            byte_burst: rooms.byte_burst,
            ipv6_prefix: rooms.ipv6_prefix,
            ip_messages_per_second: rooms.ip_messages_per_second,
            ip_message_burst: rooms.ip_message_burst,
            ip_bytes_per_second: rooms.ip_bytes_per_second,
            ip_byte_burst: rooms.ip_byte_burst,
            max_rooms_per_ip: rooms.max_rooms_per_ip,
            credentials_per_minute: rooms.credentials_per_minute,
            credential_burst: rooms.credential_burst,
            allowed_origins,
            removal,
            lobby_wait,
            min_room_chars: rooms.min_room_chars,
            sfu_from: rooms.sfu_from,
            mesh_after,
        },
        turn,
        metrics: MetricsConfig {
            listen: addrs("metrics.listen", &raw.metrics.listen)?,
            ready_certificate_days: match raw.metrics.ready_certificate_days {
                d @ 0..=365 => d,
                d => {
                    return Err(invalid(
                        "metrics.ready_certificate_days",
                        format!("is {d} but must be between 0 and 365 days"),
                    ));
                }
            },
        },
        acme,
        sfu,
        cluster,
    };
    check::listeners(&config)?;
    Ok(config)
}

/// The TURN URLs `joined` advertises, each of which costs one allocation per peer connection:
/// UDP and TCP on `turn.listen`, UDP on `turn.udp_listen`, TLS on the HTTPS port.
fn advertised_turn_urls(raw: &RawTurn, https_turn: bool) -> usize {
    let mut n = 0;
    if !raw.listen.is_empty() {
        n += 2;
    }
    if !raw.udp_listen.is_empty() {
        n += 1;
    }
    if https_turn {
        n += 1;
    }
    n
}

/// The default allocations per session: a member of a full mesh room relays to each of the
/// others over every URL peerbox advertises, from an IPv4 and an IPv6 network, with as much
/// again for the allocations an ICE restart makes before the old ones are released.
pub fn auto_user_quota(capacity: usize, urls: usize) -> usize {
    (capacity.saturating_sub(1).max(1) * urls.max(1) * 2 * 2).max(10)
}

fn validate_turn(
    raw: RawTurn,
    capacity: usize,
    https_turn: bool,
) -> Result<TurnConfig, ConfigError> {
    let external_ip = match raw.external_ip.trim() {
        "" => None,
        s => Some(
            s.parse::<IpAddr>()
                .map_err(|_| invalid("turn.external_ip", format!("{s:?} is not an IP address")))?,
        ),
    };
    let relay_ports = parse_port_range(&raw.relay_ports).ok_or_else(|| {
        invalid(
            "turn.relay_ports",
            "expected \"LOW-HIGH\" with 1024 <= LOW <= HIGH <= 65535",
        )
    })?;
    // Both end up added to clocks (`now + ttl`): a bound keeps that from overflowing.
    let credential_ttl = whole_seconds(
        "turn.credential_ttl_secs",
        raw.credential_ttl_secs,
        1..=THIRTY_DAYS,
    )?;
    let max_allocation_age = whole_seconds(
        "turn.max_allocation_age_secs",
        raw.max_allocation_age_secs,
        60..=THIRTY_DAYS,
    )?;
    let mut users = Vec::new();
    for u in &raw.users {
        match u.split_once(':') {
            Some((name, pass)) if !name.is_empty() && !pass.is_empty() => {
                users.push((name.to_owned(), Secret::new(pass)))
            }
            _ => {
                return Err(invalid(
                    "turn.users",
                    "each entry must be \"name:password\"",
                ));
            }
        }
    }
    positive("turn.total_quota", raw.total_quota)?;
    let user_quota = match raw.user_quota {
        0 => auto_user_quota(capacity, advertised_turn_urls(&raw, https_turn)),
        n => n,
    };
    // Enough for a household or an office behind one address (several members, each with a
    // full room), never the whole relay.
    let address_quota = match raw.address_quota {
        0 => (user_quota * 4)
            .min(raw.total_quota / 4)
            .max(user_quota.min(raw.total_quota)),
        n => n,
    };
    Ok(TurnConfig {
        listen: addrs("turn.listen", &raw.listen)?,
        udp_listen: addrs("turn.udp_listen", &raw.udp_listen)?,
        realm: raw.realm.trim().to_owned(),
        external_ip,
        relay_ports,
        secret: Secret::new(raw.secret),
        credential_ttl,
        users,
        allow_loopback_peers: raw.allow_loopback_peers,
        allowed_peers: cidrs("turn.allowed_peers", &raw.allowed_peers)?,
        denied_peers: cidrs("turn.denied_peers", &raw.denied_peers)?,
        user_quota,
        address_quota,
        total_quota: raw.total_quota,
        max_allocation_age,
        bandwidth_bytes_per_sec: raw.bandwidth_bytes_per_sec,
    })
}

fn positive(key: &'static str, v: usize) -> Result<(), ConfigError> {
    if v == 0 {
        Err(invalid(key, "must be at least 1"))
    } else {
        Ok(())
    }
}

const THIRTY_DAYS: u64 = 30 * 86_400;

/// A fractional number of seconds, above 0 and at most a day.
fn seconds(key: &'static str, v: f64) -> Result<Duration, ConfigError> {
    if v.is_finite() && v > 0.0 && v <= 86_400.0 {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(invalid(
            key,
            format!("is {v} but must be a number of seconds above 0 and at most 86400"),
        ))
    }
}

/// Whole seconds within `range` (both ends allowed).
fn whole_seconds(
    key: &'static str,
    v: u64,
    range: RangeInclusive<u64>,
) -> Result<Duration, ConfigError> {
    if range.contains(&v) {
        Ok(Duration::from_secs(v))
    } else {
        Err(invalid(
            key,
            format!(
                "is {v} but must be between {} and {} seconds",
                range.start(),
                range.end()
            ),
        ))
    }
}

/// `rooms.allowed_origins`: `["*"]`, or origins as a browser sends them in `Origin`.
fn origins(list: &[String]) -> Result<AllowedOrigins, ConfigError> {
    const KEY: &str = "rooms.allowed_origins";
    if list.iter().any(|o| o.trim() == "*") {
        return if list.len() == 1 {
            Ok(AllowedOrigins::Any)
        } else {
            Err(invalid(
                KEY,
                "\"*\" allows every origin; list nothing beside it",
            ))
        };
    }
    list.iter()
        .map(|o| {
            let norm = o.trim().trim_end_matches('/').to_ascii_lowercase();
            let rest = norm
                .strip_prefix("https://")
                .or_else(|| norm.strip_prefix("http://"));
            match rest {
                Some(hostport)
                    if !hostport.is_empty()
                        && hostport.bytes().all(|b| {
                            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']')
                        }) =>
                {
                    Ok(norm)
                }
                _ => Err(invalid(
                    KEY,
                    format!("{o:?} is not an origin like \"https://app.example.org\" or \"https://example.org:8443\""),
                )),
            }
        })
        .collect::<Result<_, _>>()
        .map(AllowedOrigins::List)
}

fn addrs(key: &'static str, list: &[String]) -> Result<Vec<SocketAddr>, ConfigError> {
    list.iter()
        .map(|s| {
            let addr = s.trim().parse::<SocketAddr>().map_err(|_| {
                invalid(
                    key,
                    format!("{s:?} is not an address:port (e.g. \"0.0.0.0:443\" or \"[::]:443\")"),
                )
            })?;
            // IPv6 sockets are bound IPv6-only (so that 0.0.0.0 and [::] can both be listed),
            // and such a socket cannot take an IPv4-mapped address.
            if let SocketAddr::V6(v6) = addr {
                if let Some(v4) = v6.ip().to_ipv4_mapped() {
                    return Err(invalid(
                        key,
                        format!("write {s:?} as \"{v4}:{}\"", v6.port()),
                    ));
                }
            }
            Ok(addr)
        })
        .collect()
}

fn cidrs(key: &'static str, list: &[String]) -> Result<Vec<IpNet>, ConfigError> {
    list.iter()
        .map(|s| {
            let s = s.trim();
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| invalid(key, format!("{s:?} is not a CIDR (e.g. \"10.0.0.0/8\")")))
        })
        .collect()
}

fn parse_port_range(s: &str) -> Option<RangeInclusive<u16>> {
    let (lo, hi) = s.trim().split_once('-')?;
    let lo: u16 = lo.trim().parse().ok()?;
    let hi: u16 = hi.trim().parse().ok()?;
    (lo >= 1024 && lo <= hi).then_some(lo..=hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/peerbox"))
    }

    #[test]
    fn defaults_match_the_design_card() {
        let c = parse("").expect("empty config is valid");
        assert_eq!(c.hostname, "localhost");
        assert_eq!(c.https.listen, vec!["0.0.0.0:443".parse().unwrap()]);
        assert_eq!(c.http.listen, vec!["0.0.0.0:80".parse().unwrap()]);
        assert_eq!(c.tls.dir, Path::new("/etc/peerbox/ssl"));
        assert_eq!(c.rooms.capacity, 10);
        assert_eq!(c.rooms.max_message_bytes, 65536);
        assert_eq!(c.turn.listen, vec!["0.0.0.0:3478".parse().unwrap()]);
        assert_eq!(c.turn.relay_ports, 49152..=65535);
        assert_eq!(c.turn.credential_ttl, Duration::from_secs(3600));
        assert_eq!(c.turn_realm(), "localhost");
        assert_eq!(c.metrics.listen, vec!["127.0.0.1:9478".parse().unwrap()]);
        assert_eq!(c.metrics.ready_certificate_days, 7);
    }

    #[test]
    fn the_shipped_config_toml_is_valid() {
        let text = include_str!("../config.toml");
        parse(text).expect("config.toml at the repo root parses");
    }

    #[test]
    fn bad_input_names_the_key() {
        let cases = [
            ("nonsense = 1", "nonsense"),
            ("[https]\nlisten = [\"nope\"]", "https.listen"),
            ("[http]\nlisten = 80", "listen"),
            ("[rooms]\ncapacity = 0", "rooms.capacity"),
            ("[rooms]\nmax_message_bytes = 10", "rooms.max_message_bytes"),
            ("[rooms]\nbogus = true", "bogus"),
            ("[turn]\nrelay_ports = \"9-5\"", "turn.relay_ports"),
            ("[turn]\nexternal_ip = \"host\"", "turn.external_ip"),
            ("[turn]\nusers = [\"nopassword\"]", "turn.users"),
            (
                "[turn]\nallowed_peers = [\"10.0.0.0/99\"]",
                "turn.allowed_peers",
            ),
            ("hostname = \"bad host\"", "hostname"),
            ("[metrics]\nlisten = [\"9478\"]", "metrics.listen"),
            (
                "[metrics]\nready_certificate_days = 400",
                "metrics.ready_certificate_days",
            ),
            ("[metrics]\nbogus = 1", "bogus"),
            (
                "[rooms]\nping_interval_secs = 90",
                "rooms.idle_timeout_secs",
            ),
            ("[rooms]\nipv6_prefix = 0", "rooms.ipv6_prefix"),
            ("[rooms]\nipv6_prefix = 129", "rooms.ipv6_prefix"),
            ("[rooms]\nbyte_burst = 1000", "rooms.byte_burst"),
            ("[rooms]\nip_byte_burst = 1000", "rooms.ip_byte_burst"),
            (
                "[rooms]\noutbound_queue_bytes = 1000",
                "rooms.outbound_queue_bytes",
            ),
            ("[rooms]\nmax_rooms_per_ip = 0", "rooms.max_rooms_per_ip"),
            ("[rooms]\ncredential_burst = 0", "rooms.credential_burst"),
            (
                "[rooms]\nallowed_origins = [\"example.org\"]",
                "rooms.allowed_origins",
            ),
            (
                "[rooms]\nallowed_origins = [\"https://a.example/path\"]",
                "rooms.allowed_origins",
            ),
            (
                "[rooms]\nallowed_origins = [\"*\", \"https://a.example\"]",
                "rooms.allowed_origins",
            ),
        ];
        for (text, key) in cases {
            let err = parse(text).expect_err(text).to_string();
            assert!(
                err.contains(key),
                "{text:?} gave {err:?}, expected it to name {key}"
            );
        }
    }

    /// What used to be clamped silently is refused, with the range it must be in.
    #[test]
    fn out_of_range_values_are_refused_not_clamped() {
        let cases = [
            (
                "shutdown_timeout_secs = 0",
                "shutdown_timeout_secs",
                "between 1 and 3600",
            ),
            (
                "shutdown_timeout_secs = 7200",
                "shutdown_timeout_secs",
                "is 7200",
            ),
            (
                "[https]\nhandshake_timeout_secs = 0",
                "https.handshake_timeout_secs",
                "between 1 and 3600",
            ),
            (
                "[turn]\nmax_allocation_age_secs = 30",
                "turn.max_allocation_age_secs",
                "between 60 and 2592000",
            ),
            (
                "[turn]\nmax_allocation_age_secs = 9000000000000",
                "turn.max_allocation_age_secs",
                "is 9000000000000",
            ),
            (
                "[turn]\ncredential_ttl_secs = 0",
                "turn.credential_ttl_secs",
                "between 1",
            ),
            (
                "[turn]\ncredential_ttl_secs = 9000000000000",
                "turn.credential_ttl_secs",
                "2592000",
            ),
            (
                "[rooms]\nmessage_burst = 10",
                "rooms.message_burst",
                "at least rooms.messages_per_second (50)",
            ),
            ("[rooms]\nmessage_burst = 0", "rooms.message_burst", "is 0"),
            (
                "[rooms]\nping_interval_secs = 0",
                "rooms.ping_interval_secs",
                "above 0",
            ),
            (
                "[rooms]\nidle_timeout_secs = -1",
                "rooms.idle_timeout_secs",
                "above 0",
            ),
            (
                "[tls]\nwatch_interval_secs = -1",
                "tls.watch_interval_secs",
                "0 (only on SIGHUP)",
            ),
        ];
        for (text, key, says) in cases {
            let err = parse(text).expect_err(text).to_string();
            assert!(
                err.contains(&format!("`{key}`")) && err.contains(says),
                "{text:?} gave {err:?}, expected {key} and {says:?}"
            );
            assert!(!err.contains("between 0"), "{err}");
        }
        let edges = parse(
            "shutdown_timeout_secs = 3600\n[https]\nhandshake_timeout_secs = 1\n\
             [rooms]\nmessages_per_second = 7\nmessage_burst = 7\n\
             [turn]\nmax_allocation_age_secs = 60\ncredential_ttl_secs = 1",
        )
        .expect("the ends of each range are allowed");
        assert_eq!(edges.shutdown_timeout, Duration::from_secs(3600));
        assert_eq!(edges.turn.max_allocation_age, Duration::from_secs(60));
        assert_eq!(edges.rooms.message_burst, 7);
    }

    #[test]
    fn secrets_do_not_print() {
        let c = parse("[turn]\nsecret = \"hunter2\"\nusers = [\"a:swordfish\"]").unwrap();
        let dbg = format!("{c:?}");
        assert!(
            !dbg.contains("hunter2") && !dbg.contains("swordfish"),
            "{dbg}"
        );
        assert_eq!(c.turn.secret.expose(), "hunter2");
    }

    #[test]
    fn allowed_origins_are_normalized() {
        let c = parse(
            "[rooms]\nallowed_origins = [\" HTTPS://App.Example.org/ \", \"http://[::1]:8080\"]",
        )
        .unwrap();
        assert_eq!(
            c.rooms.allowed_origins,
            AllowedOrigins::List(vec![
                "https://app.example.org".into(),
                "http://[::1]:8080".into()
            ])
        );
        let any = parse("[rooms]\nallowed_origins = [\"*\"]").unwrap();
        assert_eq!(any.rooms.allowed_origins, AllowedOrigins::Any);
        assert_eq!(
            parse("").unwrap().rooms.allowed_origins,
            AllowedOrigins::List(Vec::new())
        );
    }

    #[test]
    fn several_listen_addresses_and_off() {
        let c = parse("[https]\nlisten = [\"0.0.0.0:8443\", \"[::]:8443\"]\n[http]\nlisten = []")
            .unwrap();
        assert_eq!(c.https.listen.len(), 2);
        assert!(c.http.listen.is_empty());
    }
}
