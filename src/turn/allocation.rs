//! One allocation's mutable state as plain data (no sockets): lifetime, permissions,
//! channels, and the bandwidth bucket. Every table is capped so a client cannot grow memory.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::limit::TokenBucket;

pub const PERMISSION_LIFETIME: Duration = Duration::from_secs(300);
pub const CHANNEL_LIFETIME: Duration = Duration::from_secs(600);
pub const MAX_PERMISSIONS: usize = 64;
pub const MAX_CHANNELS: usize = 64;

/// Why a ChannelBind is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum BindError {
    /// The channel is bound to another peer, or the peer to another channel (400).
    Conflict,
    /// Too many channels or permissions (508).
    Full,
}

/// A permission for one peer IP address (RFC 8656 9), with what the policy said about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Perm {
    pub expires: Instant,
    /// One of this server's own addresses: data to it goes to the allocation whose relay
    /// address it is, if any.
    pub own: bool,
    /// Traffic with it may go through the kernel (a public address, or one allowed explicitly).
    pub external: bool,
}

impl Perm {
    /// A permission as the policy granted it, valid for [`PERMISSION_LIFETIME`] from `now`.
    pub fn new(v: super::policy::Verdict, now: Instant) -> Perm {
        Perm {
            expires: now + PERMISSION_LIFETIME,
            own: v.own,
            external: v.external,
        }
    }
}

#[derive(Debug)]
pub struct State {
    pub expires: Instant,
    permissions: HashMap<IpAddr, Perm>,
    channels: HashMap<u16, (SocketAddr, Instant)>,
    by_peer: HashMap<SocketAddr, u16>,
    /// Bytes a second, bursts up to one second's worth.
    bucket: Option<TokenBucket>,
}

impl State {
    pub fn new(expires: Instant, bandwidth: u64, now: Instant) -> State {
        State {
            expires,
            permissions: HashMap::new(),
            channels: HashMap::new(),
            by_peer: HashMap::new(),
            bucket: (bandwidth > 0).then(|| TokenBucket::new(bandwidth as f64, bandwidth, now)),
        }
    }

    /// Installs or refreshes a permission for `ip`.
    pub fn permit(&mut self, ip: IpAddr, perm: Perm, now: Instant) -> Result<(), BindError> {
        if !self.permissions.contains_key(&ip) && self.permissions.len() >= MAX_PERMISSIONS {
            self.sweep(now);
            if self.permissions.len() >= MAX_PERMISSIONS {
                return Err(BindError::Full);
            }
        }
        self.permissions.insert(ip, perm);
        Ok(())
    }

    /// The live permission for `ip`, if any.
    pub fn permission(&self, ip: IpAddr, now: Instant) -> Option<Perm> {
        self.permissions
            .get(&ip)
            .filter(|p| p.expires > now)
            .copied()
    }

    pub fn permitted(&self, ip: IpAddr, now: Instant) -> bool {
        self.permission(ip, now).is_some()
    }

    /// Binds or refreshes `channel` to `peer` (RFC 8656 11.2 rebind rules), and refreshes the
    /// permission for the peer's address.
    pub fn bind(
        &mut self,
        channel: u16,
        peer: SocketAddr,
        perm: Perm,
        now: Instant,
    ) -> Result<(), BindError> {
        match self.channels.get(&channel) {
            Some((p, t)) if *p != peer && *t > now => return Err(BindError::Conflict),
            _ => {}
        }
        if let Some(c) = self.by_peer.get(&peer) {
            if *c != channel && self.channels.get(c).is_some_and(|(_, t)| *t > now) {
                return Err(BindError::Conflict);
            }
        }
        if !self.channels.contains_key(&channel) && self.channels.len() >= MAX_CHANNELS {
            self.sweep(now);
            if self.channels.len() >= MAX_CHANNELS {
                return Err(BindError::Full);
            }
        }
        self.permit(peer.ip(), perm, now)?;
        if let Some((old, _)) = self
            .channels
            .insert(channel, (peer, now + CHANNEL_LIFETIME))
        {
            if old != peer {
                self.by_peer.remove(&old);
            }
        }
        if let Some(old) = self.by_peer.insert(peer, channel) {
            if old != channel {
                self.channels.remove(&old);
            }
        }
        Ok(())
    }

    /// The peer bound to `channel` and its permission, if both are alive.
    pub fn channel_peer(&self, channel: u16, now: Instant) -> Option<(SocketAddr, Perm)> {
        let (peer, t) = self.channels.get(&channel)?;
        if *t <= now {
            return None;
        }
        Some((*peer, self.permission(peer.ip(), now)?))
    }

    /// The live channel bound to `peer`, for peer->client relaying.
    pub fn channel_for(&self, peer: SocketAddr, now: Instant) -> Option<u16> {
        let c = self.by_peer.get(&peer)?;
        self.channels
            .get(c)
            .is_some_and(|(_, t)| *t > now)
            .then_some(*c)
    }

    /// Takes `n` bytes from the bandwidth bucket; false means drop the packet.
    pub fn spend(&mut self, n: usize, now: Instant) -> bool {
        self.bucket
            .as_mut()
            .is_none_or(|b| b.try_take(n as u64, now))
    }

    /// Forgets expired permissions and channels.
    pub fn sweep(&mut self, now: Instant) {
        self.permissions.retain(|_, p| p.expires > now);
        self.channels.retain(|_, (_, t)| *t > now);
        let channels = &self.channels;
        self.by_peer.retain(|_, c| channels.contains_key(c));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn public(now: Instant) -> Perm {
        Perm {
            expires: now + PERMISSION_LIFETIME,
            own: false,
            external: true,
        }
    }

    #[test]
    fn permissions_expire_and_are_capped() {
        let now = Instant::now();
        let mut s = State::new(now + Duration::from_secs(600), 0, now);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(!s.permitted(ip, now));
        s.permit(ip, public(now), now).unwrap();
        assert!(s.permitted(ip, now + Duration::from_secs(299)));
        assert!(!s.permitted(ip, now + PERMISSION_LIFETIME));
        for i in 1..MAX_PERMISSIONS {
            s.permit(IpAddr::from([198, 51, 100, i as u8]), public(now), now)
                .unwrap();
        }
        assert_eq!(
            s.permit("203.0.113.1".parse().unwrap(), public(now), now),
            Err(BindError::Full)
        );
        // Expired ones make room again.
        let later = now + PERMISSION_LIFETIME;
        s.permit("203.0.113.1".parse().unwrap(), public(later), later)
            .unwrap();
    }

    #[test]
    fn channel_rebind_rules() {
        let now = Instant::now();
        let mut s = State::new(now + Duration::from_secs(600), 0, now);
        let (a, b) = (addr("192.0.2.1:1000"), addr("192.0.2.2:1000"));
        let cases: &[(u16, SocketAddr, Result<(), BindError>)] = &[
            (0x4000, a, Ok(())),
            (0x4000, a, Ok(())),
            (0x4000, b, Err(BindError::Conflict)),
            (0x4001, a, Err(BindError::Conflict)),
            (0x4001, b, Ok(())),
        ];
        for (c, p, want) in cases {
            assert_eq!(&s.bind(*c, *p, public(now), now), want, "{c:#x} {p}");
        }
        assert_eq!(s.channel_peer(0x4000, now).map(|x| x.0), Some(a));
        assert_eq!(s.channel_for(b, now), Some(0x4001));
        assert!(s.permitted(a.ip(), now));
        let later = now + CHANNEL_LIFETIME;
        assert_eq!(s.channel_peer(0x4000, later), None);
        // After expiry the channel may go to another peer.
        s.bind(0x4000, b, public(later), later).unwrap();
        assert_eq!(s.channel_for(b, later), Some(0x4000));
        assert_eq!(s.channel_for(a, later), None);
    }

    #[test]
    fn bucket_drops_over_rate() {
        let now = Instant::now();
        let mut s = State::new(now, 1000, now);
        assert!(s.spend(600, now));
        assert!(!s.spend(600, now));
        assert!(s.spend(600, now + Duration::from_millis(300)));
        let mut unlimited = State::new(now, 0, now);
        assert!(unlimited.spend(1 << 20, now));
    }
}
