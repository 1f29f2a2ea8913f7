//! Which peer addresses a client may relay to. By default nothing inside the appliance's own
//! network: loopback, private, CGNAT, link-local, multicast, reserved, and their IPv4-mapped,
//! IPv4-compatible, NAT64 and 6to4 forms. peerbox's own addresses (every listening address,
//! `external_ip`, and every address of every local interface, refreshed while running) are
//! refused too, except where the caller finds a live allocation's relay address there: that is
//! how two people who both relay reach each other (see `Turn::peer_kind`), and at the SFU's
//! media address(es) (exactly the ip:port its UDP socket is offered on, with `[sfu]` on: a
//! client whose UDP is blocked relays to the SFU over TURN/TLS on 443; no other port of those
//! addresses opens). `allowed_peers` wins over every deny (as coturn's allowed-peer-ip);
//! `allow_loopback_peers` lets 127/8 and ::1 through (tests).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, RwLock};

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

/// What the policy says about one peer IP address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// One of this server's own addresses (in any of its forms).
    pub own: bool,
    /// Relaying to it through the kernel is allowed: a public address that is not ours, or
    /// one the admin allowed explicitly.
    pub external: bool,
}

pub struct Policy {
    allowed: Vec<IpNet>,
    denied: Vec<IpNet>,
    /// Configured own addresses (listeners, external_ip), kept across refreshes.
    fixed: Vec<IpAddr>,
    /// `fixed` plus every interface address, replaced as a whole on refresh.
    own: RwLock<Arc<Vec<IpAddr>>>,
    allow_loopback: bool,
    /// The SFU's media addresses (canonical): own ip:port pairs that may be relayed to.
    media: Arc<[SocketAddr]>,
}

impl Policy {
    /// `own` are the server's listening and relay addresses (unspecified ones are skipped);
    /// the local interfaces' addresses are added now and on every [`Policy::refresh`].
    pub fn new(config: &TurnConfig, own: Vec<IpAddr>) -> Policy {
        let mut denied: Vec<IpNet> = DENIED.iter().filter_map(|s| s.parse().ok()).collect();
        denied.extend(config.denied_peers.iter().copied());
        let fixed: Vec<IpAddr> = own
            .into_iter()
            .filter(|ip| !ip.is_unspecified())
            .map(|ip| ip.to_canonical())
            .collect();
        let p = Policy {
            allowed: config.allowed_peers.clone(),
            denied,
            own: RwLock::new(Arc::new(fixed.clone())),
            fixed,
            allow_loopback: config.allow_loopback_peers,
            media: Arc::from([]),
        };
        p.refresh();
        p
    }

    /// The SFU's media addresses, each allowed as a peer although it is one of ours (only that
    /// ip:port; unspecified addresses are skipped).
    pub fn with_media(mut self, media: &[SocketAddr]) -> Policy {
        let mut list: Vec<SocketAddr> = media
            .iter()
            .filter(|a| !a.ip().is_unspecified() && a.port() != 0)
            .map(|a| SocketAddr::new(a.ip().to_canonical(), a.port()))
            .collect();
        list.sort();
        list.dedup();
        self.media = list.into();
        self
    }

    /// The SFU's media addresses, for the relay tasks (data from them is let in).
    pub fn media(&self) -> Arc<[SocketAddr]> {
        self.media.clone()
    }

    /// Whether `peer` is one of the SFU's media addresses (in any form of its IP).
    pub fn is_media(&self, peer: SocketAddr) -> bool {
        !self.media.is_empty()
            && forms(peer.ip())
                .iter()
                .flatten()
                .any(|ip| self.media.contains(&SocketAddr::new(*ip, peer.port())))
    }

    /// Whether traffic with `peer` (whose IP got verdict `v`) may go through the kernel: a
    /// peer the policy allows, or the SFU's media address.
    pub fn kernel(&self, v: Verdict, peer: SocketAddr) -> bool {
        v.external || (v.own && self.is_media(peer))
    }

    /// Re-reads the local interfaces' addresses (they change: DHCP, a new IPv6 prefix, a VPN).
    pub fn refresh(&self) {
        let mut own = self.fixed.clone();
        match if_addrs::get_if_addrs() {
            Ok(ifs) => own.extend(ifs.iter().map(|i| i.ip().to_canonical())),
            Err(e) => tracing::warn!(error = %e, "cannot list the local interface addresses"),
        }
        own.sort();
        own.dedup();
        let mut slot = crate::limit::write(&self.own);
        if **slot != own {
            *slot = Arc::new(own);
        }
    }

    /// The addresses counted as this server's own right now.
    pub fn own_addresses(&self) -> Arc<Vec<IpAddr>> {
        crate::limit::read(&self.own).clone()
    }

    pub fn check(&self, ip: IpAddr) -> Verdict {
        let forms = forms(ip);
        let forms = || forms.iter().flatten();
        let own_list = self.own_addresses();
        let own = forms().any(|f| own_list.contains(f));
        let allowed = forms().any(|f| self.allowed.iter().any(|n| n.contains(f)))
            || (self.allow_loopback && forms().any(|f| f.is_loopback()));
        let denied = forms().any(|f| {
            self.denied.iter().any(|n| n.contains(f)) || *f == IpAddr::V4(Ipv4Addr::BROADCAST)
        });
        Verdict {
            own,
            external: allowed || !(own || denied),
        }
    }

    /// Whether a peer at `ip` may be relayed to through the kernel (not counting live
    /// allocations on own addresses, which the caller checks).
    pub fn permits(&self, ip: IpAddr) -> bool {
        self.check(ip).external
    }
}

/// The address itself and, for IPv6 forms that carry an IPv4 address, that address:
/// IPv4-mapped (::ffff:0:0/96), IPv4-compatible (::/96, deprecated but routed by some
/// stacks), NAT64 well-known (64:ff9b::/96) and local-use (64:ff9b:1::/48, RFC 8215, the
/// IPv4 address in the last 32 bits as operators configure it), and 6to4 (2002::/16, the IPv4
/// address in bits 16-47).
fn forms(ip: IpAddr) -> [Option<IpAddr>; 2] {
    let inner = match ip {
        IpAddr::V6(v6) => embedded_v4(v6).map(IpAddr::V4),
        IpAddr::V4(_) => None,
    };
    [Some(ip), inner]
}

fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let o = v6.octets();
    let last = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    if s[..6] == [0, 0, 0, 0, 0, 0] && !matches!(s[6..], [0, 0] | [0, 1]) {
        return Some(last);
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] || s[..3] == [0x64, 0xff9b, 1] {
        return Some(last);
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    None
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
    fn table() {
        let cases: &[(&str, &str, bool)] = &[
            ("", "8.8.8.8", true),
            ("", "2001:4860:4860::8888", true),
            ("", "::ffff:8.8.8.8", true),
            ("", "64:ff9b::808:808", true),
            ("", "203.0.113.7", false),
            ("", "::ffff:203.0.113.7", false),
            ("", "2002:cb00:7107::1", false),
            ("", "2002:808:808::1", true),
            ("", "::8.8.8.8", true),
            ("", "64:ff9b:1::808:808", true),
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

    /// Own addresses are marked as such (the caller then looks for a live relay there), and
    /// refused for the kernel path unless allowed explicitly; every local interface address
    /// counts, not only the configured ones.
    #[test]
    fn own_addresses() {
        let v = policy("").check("203.0.113.7".parse().unwrap());
        assert_eq!(
            v,
            Verdict {
                own: true,
                external: false
            }
        );
        let v =
            policy("allowed_peers = [\"203.0.113.0/24\"]").check("203.0.113.7".parse().unwrap());
        assert_eq!(
            v,
            Verdict {
                own: true,
                external: true
            }
        );
        let p = policy("");
        assert!(
            p.check("127.0.0.1".parse().unwrap()).own,
            "lo's address is ours"
        );
        assert!(p.own_addresses().len() >= 2);
        assert!(!p.check("8.8.8.8".parse().unwrap()).own);
    }

    /// With the SFU on, exactly its media ip:port is a peer: the HTTPS port, the TURN ports
    /// and any other port of the same address stay refused.
    #[test]
    fn the_sfu_media_address_only() {
        let sfu: SocketAddr = "203.0.113.7:3479".parse().unwrap();
        let p = policy("").with_media(&[sfu, "0.0.0.0:3479".parse().unwrap()]);
        let at = |s: &str| {
            let a: SocketAddr = s.parse().unwrap();
            p.kernel(p.check(a.ip()), a)
        };
        assert!(at("203.0.113.7:3479"));
        assert!(at("[::ffff:203.0.113.7]:3479"), "the mapped form too");
        for refused in [
            "203.0.113.7:443",
            "203.0.113.7:3478",
            "203.0.113.7:5349",
            "203.0.113.7:3480",
            "203.0.113.7:80",
            "127.0.0.1:3479",
            "0.0.0.0:3479",
        ] {
            assert!(!at(refused), "{refused}");
        }
        // Public peers are unchanged; without the SFU nothing of ours opens.
        assert!(at("8.8.8.8:3479"));
        let off = policy("");
        let a: SocketAddr = "203.0.113.7:3479".parse().unwrap();
        assert!(!off.kernel(off.check(a.ip()), a));
    }
}
