//! Which peer addresses a client may relay to. By default nothing inside the appliance's own
//! network: loopback, private, CGNAT, link-local, multicast, reserved, and their IPv4-mapped
//! and NAT64 forms, plus peerbox's own addresses. `allowed_peers` wins over every deny (as
//! coturn's allowed-peer-ip); `allow_loopback_peers` lets 127/8 and ::1 through (tests).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::config::TurnConfig;

/// Built-in deny list (RFC 6890 special-purpose and private ranges).
const DENIED: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::/128",
    "::1/128",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
];

pub struct Policy {
    allowed: Vec<IpNet>,
    denied: Vec<IpNet>,
    own: Vec<IpAddr>,
    allow_loopback: bool,
}

impl Policy {
    /// `own` are the server's listening and relay addresses (unspecified ones are skipped).
    pub fn new(config: &TurnConfig, own: Vec<IpAddr>) -> Policy {
        let mut denied: Vec<IpNet> = DENIED.iter().filter_map(|s| s.parse().ok()).collect();
        denied.extend(config.denied_peers.iter().copied());
        Policy {
            allowed: config.allowed_peers.clone(),
            denied,
            own: own.into_iter().filter(|ip| !ip.is_unspecified()).collect(),
            allow_loopback: config.allow_loopback_peers,
        }
    }

    pub fn permits(&self, ip: IpAddr) -> bool {
        let forms = forms(ip);
        let forms = forms.iter().flatten();
        if forms
            .clone()
            .any(|f| self.allowed.iter().any(|n| n.contains(f)))
        {
            return true;
        }
        if self.allow_loopback && forms.clone().any(|f| f.is_loopback()) {
            return true;
        }
        !forms.clone().any(|f| {
            self.denied.iter().any(|n| n.contains(f))
                || self.own.contains(f)
                || *f == IpAddr::V4(Ipv4Addr::BROADCAST)
        })
    }
}

/// The address itself and, for IPv4-mapped (::ffff:0:0/96) or NAT64 (64:ff9b::/96) IPv6,
/// the IPv4 address inside.
fn forms(ip: IpAddr) -> [Option<IpAddr>; 2] {
    let inner = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).or_else(|| {
            let s = v6.segments();
            (s[..6] == [0x64, 0xff9b, 0, 0, 0, 0]).then(|| {
                let o = v6.octets();
                IpAddr::V4(Ipv4Addr::new(o[12], o[13], o[14], o[15]))
            })
        }),
        IpAddr::V4(_) => None,
    };
    [Some(ip), inner]
}

/// One address from each denied range and form, for tests here and in `tests/`.
pub fn denied_examples() -> Vec<IpAddr> {
    let v4 = [
        "0.1.2.3",
        "10.1.2.3",
        "100.64.1.2",
        "127.0.0.1",
        "127.9.9.9",
        "169.254.169.254",
        "172.16.5.4",
        "172.31.255.254",
        "192.168.1.1",
        "224.0.0.251",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
    ];
    let mut out: Vec<IpAddr> = v4.iter().filter_map(|s| s.parse().ok()).collect();
    for s in v4 {
        if let Ok(ip) = s.parse::<Ipv4Addr>() {
            out.push(IpAddr::V6(ip.to_ipv6_mapped()));
            let o = ip.octets();
            out.push(IpAddr::V6(Ipv6Addr::new(
                0x64,
                0xff9b,
                0,
                0,
                0,
                0,
                u16::from_be_bytes([o[0], o[1]]),
                u16::from_be_bytes([o[2], o[3]]),
            )));
        }
    }
    for s in ["::1", "::", "fc00::1", "fd12:3456::1", "fe80::1", "ff02::1"] {
        if let Ok(ip) = s.parse() {
            out.push(ip);
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::Config;

    fn policy(extra: &str) -> Policy {
        let c =
            Config::parse(&format!("[turn]\n{extra}"), std::path::Path::new("/")).expect("config");
        Policy::new(&c.turn, vec!["203.0.113.7".parse().unwrap()])
    }

    #[test]
    fn default_denies_every_special_range_in_every_form() {
        let p = policy("");
        for ip in denied_examples() {
            assert!(!p.permits(ip), "{ip} should be denied");
        }
    }

    #[test]
    fn table() {
        let cases: &[(&str, &str, bool)] = &[
            ("", "8.8.8.8", true),
            ("", "2001:4860:4860::8888", true),
            ("", "::ffff:8.8.8.8", true),
            ("", "64:ff9b::808:808", true),
            ("", "203.0.113.7", false),
            ("", "::ffff:203.0.113.7", false),
            ("", "100.63.255.255", true),
            ("", "100.128.0.0", true),
            ("", "172.32.0.1", true),
            ("allow_loopback_peers = true", "127.0.0.1", true),
            ("allow_loopback_peers = true", "127.3.2.1", true),
            ("allow_loopback_peers = true", "::1", true),
            ("allow_loopback_peers = true", "::ffff:127.0.0.1", true),
            ("allow_loopback_peers = true", "10.0.0.1", false),
            ("allow_loopback_peers = true", "::", false),
            ("allowed_peers = [\"10.1.0.0/16\"]", "10.1.2.3", true),
            ("allowed_peers = [\"10.1.0.0/16\"]", "::ffff:10.1.2.3", true),
            ("allowed_peers = [\"10.1.0.0/16\"]", "10.2.2.3", false),
            ("allowed_peers = [\"203.0.113.7\"]", "203.0.113.7", true),
            ("denied_peers = [\"8.8.0.0/16\"]", "8.8.8.8", false),
            ("denied_peers = [\"8.8.0.0/16\"]", "::ffff:8.8.8.8", false),
            ("denied_peers = [\"8.8.0.0/16\"]", "8.9.8.8", true),
            (
                "allowed_peers = [\"8.8.8.8\"]\ndenied_peers = [\"8.8.0.0/16\"]",
                "8.8.8.8",
                true,
            ),
        ];
        for (cfg, ip, want) in cases {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(policy(cfg).permits(ip), *want, "{cfg:?} {ip}");
        }
    }
}
