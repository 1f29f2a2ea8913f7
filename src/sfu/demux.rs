//! Which participant a datagram on the SFU's media port belongs to, found by map lookups and
//! never by asking every participant: STUN by the server-side ICE ufrag in its USERNAME,
//! everything else (DTLS, SRTP, SRTCP) by a source address learned only once that
//! participant's ICE agent answered an integrity-checked STUN request from it. Junk is
//! dropped on its first byte (RFC 7983's ranges) or on the STUN framing.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::SocketAddr;

/// Source addresses one participant may be known by at once (a network change, IPv4 and
/// IPv6): the oldest is forgotten when a new one is learned beyond this.
pub const MAX_ADDRS: usize = 4;
/// Longest server-side ufrag the demux stores or looks up.
pub const MAX_UFRAG: usize = 64;

const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
const ATTR_USERNAME: u16 = 0x0006;

/// What the first byte says a datagram is (RFC 7983 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Stun,
    Dtls,
    /// RTP or RTCP (SRTP once DTLS is up).
    Rtp,
    Junk,
}

pub fn classify(packet: &[u8]) -> Class {
    match packet.first() {
        Some(0..=3) => Class::Stun,
        Some(20..=63) => Class::Dtls,
        Some(128..=191) => Class::Rtp,
        _ => Class::Junk,
    }
}

/// The server-side ufrag of a STUN request (`USERNAME` is `server:client`), if the datagram
/// is a well-framed STUN message with one.
pub fn stun_server_ufrag(packet: &[u8]) -> Option<&[u8]> {
    if packet.len() < 20 || packet[0] & 0xc0 != 0 || packet[4..8] != MAGIC_COOKIE {
        return None;
    }
    let len = u16::from_be_bytes([packet[2], packet[3]]) as usize;
    if len % 4 != 0 || len + 20 != packet.len() {
        return None;
    }
    let mut rest = &packet[20..];
    while rest.len() >= 4 {
        let kind = u16::from_be_bytes([rest[0], rest[1]]);
        let alen = u16::from_be_bytes([rest[2], rest[3]]) as usize;
        let padded = alen.div_ceil(4) * 4;
        if rest.len() < 4 + padded {
            return None;
        }
        if kind == ATTR_USERNAME {
            let name = &rest[4..4 + alen];
            let end = name.iter().position(|&b| b == b':')?;
            return Some(&name[..end]).filter(|u| !u.is_empty() && u.len() <= MAX_UFRAG);
        }
        rest = &rest[4 + padded..];
    }
    None
}

/// Where a datagram goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<P> {
    To(P),
    Drop(Dropped),
}

/// Why a datagram was dropped (a counter label each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    Junk,
    /// A STUN message without a ufrag we handed out.
    UnknownUfrag,
    /// DTLS or RTP from an address no participant has proven.
    UnknownAddr,
}

impl Dropped {
    pub fn label(self) -> &'static str {
        match self {
            Dropped::Junk => "junk",
            Dropped::UnknownUfrag => "unknown_ufrag",
            Dropped::UnknownAddr => "unknown_addr",
        }
    }
}

/// The maps from ufrag and from proven source address to participant.
#[derive(Debug)]
pub struct Demux<P> {
    ufrags: HashMap<Vec<u8>, P>,
    addrs: HashMap<SocketAddr, P>,
    /// Each participant's ufrag and learned addresses, oldest first.
    known: HashMap<P, (Vec<u8>, VecDeque<SocketAddr>)>,
}

impl<P> Default for Demux<P> {
    fn default() -> Self {
        Demux {
            ufrags: HashMap::new(),
            addrs: HashMap::new(),
            known: HashMap::new(),
        }
    }
}

impl<P: Copy + Eq + Hash> Demux<P> {
    /// Registers a participant under the server-side ufrag of its `Rtc`; false if the ufrag is
    /// taken or too long (the caller makes a new one).
    pub fn insert(&mut self, p: P, ufrag: &str) -> bool {
        let u = ufrag.as_bytes();
        if u.is_empty() || u.len() > MAX_UFRAG || self.ufrags.contains_key(u) {
            return false;
        }
        self.remove(p);
        self.ufrags.insert(u.to_vec(), p);
        self.known.insert(p, (u.to_vec(), VecDeque::new()));
        true
    }

    pub fn remove(&mut self, p: P) {
        if let Some((ufrag, addrs)) = self.known.remove(&p) {
            self.ufrags.remove(&ufrag);
            for a in addrs {
                self.addrs.remove(&a);
            }
        }
    }

    /// `addr` is proven for `p` (its ICE agent answered an integrity-checked request from
    /// there). Another participant that had the address loses it.
    pub fn learn(&mut self, p: P, addr: SocketAddr) {
        if self.addrs.get(&addr) == Some(&p) || !self.known.contains_key(&p) {
            return;
        }
        if let Some(old) = self.addrs.insert(addr, p)
            && let Some((_, list)) = self.known.get_mut(&old)
        {
            list.retain(|a| *a != addr);
        }
        let Some((_, list)) = self.known.get_mut(&p) else {
            return;
        };
        list.push_back(addr);
        while list.len() > MAX_ADDRS {
            if let Some(gone) = list.pop_front() {
                self.addrs.remove(&gone);
            }
        }
    }

    /// The participant whose server-side ufrag the STUN request `packet` names.
    pub fn owner_of_ufrag(&self, packet: &[u8]) -> Option<P> {
        stun_server_ufrag(packet)
            .and_then(|u| self.ufrags.get(u))
            .copied()
    }

    pub fn route(&self, packet: &[u8], source: SocketAddr) -> Route<P> {
        match classify(packet) {
            Class::Junk => Route::Drop(Dropped::Junk),
            Class::Stun => match stun_server_ufrag(packet).and_then(|u| self.ufrags.get(u)) {
                Some(p) => Route::To(*p),
                // Responses and indications carry no USERNAME: only from a proven address.
                None => match self.addrs.get(&source) {
                    Some(p) if stun_server_ufrag(packet).is_none() && is_stun(packet) => {
                        Route::To(*p)
                    }
                    _ => Route::Drop(Dropped::UnknownUfrag),
                },
            },
            Class::Dtls | Class::Rtp => match self.addrs.get(&source) {
                Some(p) => Route::To(*p),
                None => Route::Drop(Dropped::UnknownAddr),
            },
        }
    }

    pub fn len(&self) -> usize {
        self.known.len()
    }

    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }

    /// The addresses `p` is known by now, oldest first.
    pub fn addrs_of(&self, p: P) -> Vec<SocketAddr> {
        self.known
            .get(&p)
            .map(|(_, l)| l.iter().copied().collect())
            .unwrap_or_default()
    }
}

fn is_stun(packet: &[u8]) -> bool {
    packet.len() >= 20 && packet[4..8] == MAGIC_COOKIE
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A binding request with `USERNAME` = `name`.
    fn binding(name: &[u8]) -> Vec<u8> {
        let padded = name.len().div_ceil(4) * 4;
        let mut p = vec![0x00, 0x01];
        p.extend_from_slice(&((4 + padded) as u16).to_be_bytes());
        p.extend_from_slice(&MAGIC_COOKIE);
        p.extend_from_slice(&[7; 12]);
        p.extend_from_slice(&ATTR_USERNAME.to_be_bytes());
        p.extend_from_slice(&(name.len() as u16).to_be_bytes());
        p.extend_from_slice(name);
        p.resize(20 + 4 + padded, 0);
        p
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], port))
    }

    #[test]
    fn first_byte_classes() {
        let cases = [
            (&[][..], Class::Junk),
            (&[0][..], Class::Stun),
            (&[3][..], Class::Stun),
            (&[4][..], Class::Junk),
            (&[19][..], Class::Junk),
            (&[20][..], Class::Dtls),
            (&[63][..], Class::Dtls),
            (&[64][..], Class::Junk),
            (&[127][..], Class::Junk),
            (&[128][..], Class::Rtp),
            (&[191][..], Class::Rtp),
            (&[192][..], Class::Junk),
            (&[255][..], Class::Junk),
        ];
        for (p, want) in cases {
            assert_eq!(classify(p), want, "{p:?}");
        }
    }

    #[test]
    fn stun_ufrag_parsing() {
        assert_eq!(stun_server_ufrag(&binding(b"srv1:cli")), Some(&b"srv1"[..]));
        assert_eq!(stun_server_ufrag(&binding(b"abc:d")), Some(&b"abc"[..]));
        // No colon, empty server part, too long.
        assert_eq!(stun_server_ufrag(&binding(b"srv1")), None);
        assert_eq!(stun_server_ufrag(&binding(b":cli")), None);
        let long = [b'a'; MAX_UFRAG + 1];
        let mut name = long.to_vec();
        name.extend_from_slice(b":x");
        assert_eq!(stun_server_ufrag(&binding(&name)), None);
        // Bad cookie, bad length, truncated attribute.
        let mut p = binding(b"srv1:cli");
        p[4] = 0;
        assert_eq!(stun_server_ufrag(&p), None);
        let mut p = binding(b"srv1:cli");
        p.push(0);
        assert_eq!(stun_server_ufrag(&p), None);
        let mut p = binding(b"srv1:cli");
        p[22] = 0x40;
        assert_eq!(stun_server_ufrag(&p), None);
        assert_eq!(stun_server_ufrag(&[0; 19]), None);
    }

    #[test]
    fn routes_by_ufrag_then_by_learned_address() {
        let mut d = Demux::default();
        assert!(d.insert(1u32, "srv1"));
        assert!(d.insert(2u32, "srv2"));
        assert!(!d.insert(3u32, "srv1"), "a taken ufrag");
        assert_eq!(d.route(&binding(b"srv2:x"), addr(1)), Route::To(2));
        assert_eq!(
            d.route(&binding(b"nope:x"), addr(1)),
            Route::Drop(Dropped::UnknownUfrag)
        );
        // Media from an address nobody proved is dropped, even right after a STUN request.
        let rtp = [0x80, 96, 0, 1];
        assert_eq!(d.route(&rtp, addr(1)), Route::Drop(Dropped::UnknownAddr));
        d.learn(2, addr(1));
        assert_eq!(d.route(&rtp, addr(1)), Route::To(2));
        assert_eq!(d.route(&[22, 254, 253], addr(1)), Route::To(2));
        assert_eq!(d.route(&[0xff, 1, 2], addr(1)), Route::Drop(Dropped::Junk));
        // The address moves to whoever proves it last.
        d.learn(1, addr(1));
        assert_eq!(d.route(&rtp, addr(1)), Route::To(1));
        assert!(d.addrs_of(2).is_empty());
        d.remove(1);
        assert_eq!(d.route(&rtp, addr(1)), Route::Drop(Dropped::UnknownAddr));
        assert_eq!(
            d.route(&binding(b"srv1:x"), addr(1)),
            Route::Drop(Dropped::UnknownUfrag)
        );
        assert_eq!(d.len(), 1);
    }

    /// What the fuzz target checks (fuzz/fuzz_targets/sfu_demux.rs), on pseudo-random input:
    /// only registered participants are reached, junk reaches nobody, addresses stay bounded.
    #[test]
    fn random_datagrams_reach_only_registered_participants() {
        let mut d = Demux::default();
        let ufrags = ["aaaa", "bbbb", "cccc", "dddd"];
        let mut registered = [true; 4];
        for (p, u) in ufrags.iter().enumerate() {
            assert!(d.insert(p as u8, u));
        }
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let r = next();
            let p = (r % 4) as u8;
            let from = addr(5000 + (r >> 8) as u16 % 6);
            match (r >> 16) % 8 {
                0 => d.learn(p, from),
                1 => {
                    d.remove(p);
                    registered[usize::from(p)] = false;
                }
                2 => registered[usize::from(p)] |= d.insert(p, ufrags[usize::from(p)]),
                _ => {}
            }
            // Half of the datagrams are STUN requests for one of the ufrags (or a stranger's).
            let packet = if (r >> 24) % 2 == 0 {
                let name = format!(
                    "{}:x",
                    ["aaaa", "bbbb", "cccc", "dddd", "eeee"][(r >> 28) as usize % 5]
                );
                binding(name.as_bytes())
            } else {
                let len = 1 + (r >> 32) as usize % 40;
                (0..len).map(|i| (next() >> (i % 8)) as u8).collect()
            };
            if let Route::To(q) = d.route(&packet, from) {
                assert!(
                    registered[usize::from(q)],
                    "routed to a removed participant"
                );
                assert_ne!(classify(&packet), Class::Junk);
            }
            for q in 0..4 {
                assert!(d.addrs_of(q).len() <= MAX_ADDRS);
            }
        }
    }

    #[test]
    fn addresses_per_participant_are_bounded() {
        let mut d = Demux::default();
        assert!(d.insert(1u32, "srv1"));
        for port in 1..=10 {
            d.learn(1, addr(port));
        }
        let kept = d.addrs_of(1);
        assert_eq!(kept, (7..=10).map(addr).collect::<Vec<_>>());
        let rtp = [0x80, 96, 0, 1];
        assert_eq!(d.route(&rtp, addr(6)), Route::Drop(Dropped::UnknownAddr));
        assert_eq!(d.route(&rtp, addr(10)), Route::To(1));
        // Nothing is learned for a participant that is not registered.
        d.learn(9, addr(11));
        assert_eq!(d.route(&rtp, addr(11)), Route::Drop(Dropped::UnknownAddr));
    }
}
