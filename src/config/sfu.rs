//! The `[sfu]` section: the built-in selective forwarding unit for big rooms, off by default.
//! Raw as written, then validated into [`SfuConfig`]; bad values are refused, never clamped.

use std::net::{IpAddr, SocketAddr};

use serde::Deserialize;

use super::{ConfigError, invalid, positive};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawSfu {
    enabled: bool,
    listen: String,
    public_ip: String,
    max_room_members: usize,
    max_participants: usize,
    max_subscriber_kbps: u64,
    command_queue: usize,
}

impl Default for RawSfu {
    fn default() -> Self {
        RawSfu {
            enabled: false,
            listen: "0.0.0.0:3479".into(),
            public_ip: String::new(),
            max_room_members: 25,
            max_participants: 500,
            max_subscriber_kbps: 6000,
            command_queue: 1024,
        }
    }
}

/// Most members one SFU room may have (a sanity bound on the setting, not a measurement).
pub const MAX_ROOM_MEMBERS: usize = 1000;
/// Most participants the SFU task holds at once, over all rooms.
pub const MAX_PARTICIPANTS: usize = 100_000;
/// Bounds of `sfu.max_subscriber_kbps`: below the first, one low layer and its audio do not
/// fit; beyond the second it is no bound.
pub const MIN_SUBSCRIBER_KBPS: u64 = 200;
pub const MAX_SUBSCRIBER_KBPS: u64 = 1_000_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SfuConfig {
    pub enabled: bool,
    /// The one UDP socket every participant's media uses.
    pub listen: SocketAddr,
    /// The address put in the SFU's ICE candidate: `sfu.public_ip`, else (on a cluster node)
    /// `cluster.media_address`, else `turn.external_ip`, else the listen address when it is
    /// not a wildcard (see [`SfuConfig::candidate_ip`]).
    pub public_ip: Option<IpAddr>,
    pub max_room_members: usize,
    pub max_participants: usize,
    /// Most the SFU sends one subscriber (kbit/s), whatever its bandwidth estimate says:
    /// one big video at the top layer and two dozen small ones at the low layer, with audio.
    pub max_subscriber_kbps: u64,
    /// Commands from the signalling sessions to the SFU task waiting at once; a full queue
    /// answers that client `sfu-busy`.
    pub command_queue: usize,
}

impl SfuConfig {
    /// The IP the candidate advertises: the configured one, else the listen address, else
    /// `local`. The SFU passes no `local` (it does not fall back to the address a client's
    /// WebSocket came in on), so a wildcard listen address needs `public_ip` or
    /// `turn.external_ip`; check-config warns without one.
    pub fn candidate_ip(&self, local: Option<IpAddr>) -> Option<IpAddr> {
        self.public_ip
            .or_else(|| (!self.listen.ip().is_unspecified()).then(|| self.listen.ip()))
            .or(local)
    }
}

/// `fallback_ip`: the address used when `sfu.public_ip` is empty (`cluster.media_address`, else
/// `turn.external_ip`).
pub(super) fn validate(raw: RawSfu, fallback_ip: Option<IpAddr>) -> Result<SfuConfig, ConfigError> {
    let listen = raw.listen.trim().parse::<SocketAddr>().map_err(|_| {
        invalid(
            "sfu.listen",
            format!(
                "{:?} is not an address:port (e.g. \"0.0.0.0:3479\")",
                raw.listen
            ),
        )
    })?;
    if raw.enabled && listen.port() == 0 {
        return Err(invalid("sfu.listen", "needs a port (not 0)"));
    }
    let public_ip = match raw.public_ip.trim() {
        "" => fallback_ip,
        s => {
            let ip = s
                .parse::<IpAddr>()
                .map_err(|_| invalid("sfu.public_ip", format!("{s:?} is not an IP address")))?;
            if ip.is_unspecified() || ip.is_multicast() {
                return Err(invalid(
                    "sfu.public_ip",
                    format!("{ip} cannot be reached by clients"),
                ));
            }
            Some(ip)
        }
    };
    positive("sfu.max_room_members", raw.max_room_members)?;
    positive("sfu.max_participants", raw.max_participants)?;
    positive("sfu.command_queue", raw.command_queue)?;
    if !(MIN_SUBSCRIBER_KBPS..=MAX_SUBSCRIBER_KBPS).contains(&raw.max_subscriber_kbps) {
        return Err(invalid(
            "sfu.max_subscriber_kbps",
            format!(
                "is {} but must be between {MIN_SUBSCRIBER_KBPS} and {MAX_SUBSCRIBER_KBPS}",
                raw.max_subscriber_kbps
            ),
        ));
    }
    if raw.max_room_members > MAX_ROOM_MEMBERS {
        return Err(invalid(
            "sfu.max_room_members",
            format!(
                "is {} but must be at most {MAX_ROOM_MEMBERS}",
                raw.max_room_members
            ),
        ));
    }
    if raw.max_participants > MAX_PARTICIPANTS {
        return Err(invalid(
            "sfu.max_participants",
            format!(
                "is {} but must be at most {MAX_PARTICIPANTS}",
                raw.max_participants
            ),
        ));
    }
    if raw.max_participants < raw.max_room_members {
        return Err(invalid(
            "sfu.max_participants",
            format!(
                "is {} but must be at least sfu.max_room_members ({})",
                raw.max_participants, raw.max_room_members
            ),
        ));
    }
    Ok(SfuConfig {
        enabled: raw.enabled,
        listen,
        public_ip,
        max_room_members: raw.max_room_members,
        max_participants: raw.max_participants,
        max_subscriber_kbps: raw.max_subscriber_kbps,
        command_queue: raw.command_queue,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{Config, ConfigError};

    #[test]
    fn off_by_default() {
        let c = Config::parse("", Path::new("/")).expect("defaults");
        assert!(!c.sfu.enabled);
        assert_eq!(c.sfu.listen, "0.0.0.0:3479".parse().expect("addr"));
        assert_eq!(c.sfu.public_ip, None);
        assert_eq!(c.rooms.sfu_from, 3);
        assert_eq!(c.rooms.mesh_after, std::time::Duration::from_secs(15));
        assert_eq!(c.sfu.max_subscriber_kbps, 6000);
    }

    #[test]
    fn public_ip_falls_back_to_turn_external_ip() {
        let c =
            Config::parse("[turn]\nexternal_ip = \"203.0.113.7\"", Path::new("/")).expect("config");
        assert_eq!(c.sfu.public_ip, Some("203.0.113.7".parse().expect("ip")));
        let c = Config::parse(
            "[turn]\nexternal_ip = \"203.0.113.7\"\n[sfu]\npublic_ip = \"198.51.100.2\"",
            Path::new("/"),
        )
        .expect("config");
        assert_eq!(c.sfu.public_ip, Some("198.51.100.2".parse().expect("ip")));
        // Neither: the listen address if it is one, else the WebSocket's local address.
        let local = Some("192.0.2.1".parse().expect("ip"));
        let c =
            Config::parse("[sfu]\nlisten = \"127.0.0.1:5000\"", Path::new("/")).expect("config");
        assert_eq!(
            c.sfu.candidate_ip(local),
            Some("127.0.0.1".parse().expect("ip"))
        );
        let c = Config::parse("", Path::new("/")).expect("config");
        assert_eq!(c.sfu.candidate_ip(local), local);
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            ("[sfu]\nlisten = \"nope\"", "sfu.listen"),
            (
                "[sfu]\nenabled = true\nlisten = \"0.0.0.0:0\"",
                "sfu.listen",
            ),
            ("[sfu]\npublic_ip = \"host\"", "sfu.public_ip"),
            ("[sfu]\npublic_ip = \"0.0.0.0\"", "sfu.public_ip"),
            ("[sfu]\nmax_room_members = 0", "sfu.max_room_members"),
            ("[sfu]\nmax_room_members = 5000", "sfu.max_room_members"),
            ("[sfu]\nmax_participants = 0", "sfu.max_participants"),
            ("[sfu]\nmax_participants = 10", "sfu.max_participants"),
            ("[sfu]\ncommand_queue = 0", "sfu.command_queue"),
            (
                "[sfu]\nmax_subscriber_kbps = 100",
                "sfu.max_subscriber_kbps",
            ),
            (
                "[sfu]\nmax_subscriber_kbps = 2000000",
                "sfu.max_subscriber_kbps",
            ),
            ("[rooms]\nmesh_after_secs = 0", "rooms.mesh_after_secs"),
            ("[rooms]\nsfu_from = 0", "rooms.sfu_from"),
        ];
        for (text, key) in cases {
            match Config::parse(text, Path::new("/")) {
                Err(ConfigError::Invalid { key: k, .. }) => assert_eq!(k, key, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        assert!(Config::parse("[sfu]\nbogus = 1", Path::new("/")).is_err());
    }
}
