//! The TURN server's shared state: the allocation table (by 5-tuple, and by relay address for
//! relaying between two allocations of this server), quotas (per credential owner, per client
//! address, in total), the sessions that ended, and the sweeper that ends expired
//! allocations. Locks here are std locks held for a map look-up, never across an await.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::allocation::State;
use super::credentials::{Credentials, unix_now};
use super::nonce::Nonces;
use super::policy::Policy;
use super::stats::Stats;
use crate::Config;
use crate::limit::AddrKey;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    Udp,
    Tcp,
    /// TURN over TLS (on the HTTPS port).
    Tls,
}

impl Proto {
    pub const ALL: [Proto; 3] = [Proto::Udp, Proto::Tcp, Proto::Tls];

    /// Its position in [`Proto::ALL`] (and in per-transport counters).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The lowercase name metrics and logs use.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
            Proto::Tls => "tls",
        }
    }

    /// Stream transports frame ChannelData with padding (RFC 8656 12.5).
    pub fn is_stream(self) -> bool {
        !matches!(self, Proto::Udp)
    }
}

/// Client address, server address, transport: what identifies an allocation (RFC 8656 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FiveTuple {
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub proto: Proto,
}

/// How bytes get back to a client.
#[derive(Clone, Debug)]
pub enum ClientSink {
    /// The listening socket the client talks to.
    Udp(Arc<UdpSocket>),
    /// The connection's bounded write queue; a full queue drops the packet.
    Tcp(mpsc::Sender<Bytes>),
    /// Nowhere (fuzzing, benchmarks of the handler alone).
    Discard,
}

impl ClientSink {
    /// Sends without waiting; false when dropped (full buffer or queue, closed connection).
    pub fn send(&self, frame: &[u8], to: SocketAddr) -> bool {
        match self {
            ClientSink::Udp(s) => super::socket::send_now(s, frame, to).is_ok(),
            ClientSink::Tcp(q) => q.try_send(Bytes::copy_from_slice(frame)).is_ok(),
            ClientSink::Discard => true,
        }
    }
}

/// One allocation: its relay socket and the state the handler and relay task share.
#[derive(Debug)]
pub struct Allocation {
    pub five: FiveTuple,
    pub relay: Arc<UdpSocket>,
    /// XOR-RELAYED-ADDRESS as advertised (external_ip or the address the client reached).
    pub relayed: SocketAddr,
    pub username: String,
    pub key: Vec<u8>,
    pub created: Instant,
    /// Transaction id of the Allocate, to answer its retransmissions.
    pub tid: [u8; 12],
    /// Whose quota it counts against: the session of a REST credential, or the static user.
    pub owner: String,
    pub state: Mutex<State>,
    pub cancel: CancellationToken,
    pub sink: ClientSink,
    /// Transaction ids of the Data indications sent to the client.
    pub indications: AtomicU64,
}

/// How long a port reserved by EVEN-PORT (R bit) waits for its RESERVATION-TOKEN.
const RESERVATION_LIFETIME: Duration = Duration::from_secs(30);
/// How long the allocations of a signalling session outlive it: a reconnect (a phone switching
/// networks, a server-side hiccup) finds them still there.
pub const SESSION_GRACE: Duration = Duration::from_secs(60);
/// How often the local interface addresses are read again.
const REFRESH_OWN: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Table {
    by_five: HashMap<FiveTuple, Arc<Allocation>>,
    /// Advertised relay address -> allocation, for relaying between two allocations.
    by_relayed: HashMap<SocketAddr, Arc<Allocation>>,
    per_owner: HashMap<String, usize>,
    per_address: HashMap<AddrKey, usize>,
}

/// Why an allocation could not be added to the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddError {
    Exists,
    /// The credential owner's quota (`user_quota`).
    OwnerQuota,
    /// The client address's quota (`address_quota`; IPv6 per /64).
    AddressQuota,
    /// `total_quota`.
    TotalQuota,
}

/// Where a peer address leads, once the policy allowed it.
#[derive(Debug, Clone)]
pub enum PeerKind {
    /// Out through the kernel.
    External,
    /// The relay address of another allocation on this server: handed to it in-process.
    Internal(Arc<Allocation>),
}

pub struct Turn {
    pub(crate) config: Arc<Config>,
    pub(crate) credentials: Arc<Credentials>,
    pub(crate) nonces: Nonces,
    pub(crate) policy: Policy,
    pub stats: Arc<Stats>,
    /// Admission of TURN stream connections (TCP and TLS, every port).
    pub streams: Arc<crate::limit::Gate>,
    table: RwLock<Table>,
    reservations: Mutex<HashMap<[u8; 8], (std::net::UdpSocket, Instant)>>,
    /// Signalling sessions that ended, and when: their allocations end after [`SESSION_GRACE`].
    ended: Mutex<HashMap<String, Instant>>,
    last_refresh: Mutex<Instant>,
    log_second: AtomicU64,
    log_count: AtomicU32,
}

pub(crate) use crate::limit::lock;

impl Turn {
    /// `listening` are every bound listener address (TURN and HTTPS: they join the own
    /// addresses a peer may not be).
    pub fn new(
        config: Arc<Config>,
        credentials: Arc<Credentials>,
        listening: &[SocketAddr],
    ) -> Arc<Turn> {
        Turn::with_media(config, credentials, listening, &[])
    }

    /// [`Turn::new`] with the SFU's media addresses, which clients may relay to (see
    /// [`Policy`]'s module).
    pub fn with_media(
        config: Arc<Config>,
        credentials: Arc<Credentials>,
        listening: &[SocketAddr],
        media: &[SocketAddr],
    ) -> Arc<Turn> {
        let mut key = [0u8; 32];
        // Without randomness the nonce key would be all zeros, and nonces forgeable; the
        // clock is a weak but non-constant stand-in, and the admin hears about it.
        if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key).is_err() {
            tracing::warn!("system random generator failed; turn nonces are weak");
            key[..16].copy_from_slice(&super::credentials::now_nanos().to_be_bytes());
        }
        let mut own: Vec<IpAddr> = listening.iter().map(|a| a.ip()).collect();
        own.extend(config.turn.listen.iter().map(|a| a.ip()));
        own.extend(config.turn.udp_listen.iter().map(|a| a.ip()));
        own.extend(config.https.listen.iter().map(|a| a.ip()));
        own.extend(config.turn.external_ip);
        let policy = Policy::new(&config.turn, own).with_media(media);
        let turn = &config.turn;
        // Each useful stream carries one allocation; a little more for the 401 round trip.
        let streams = crate::limit::Gate::new(
            turn.total_quota.saturating_mul(2).saturating_add(64),
            turn.address_quota.saturating_add(16),
            config.rooms.ipv6_prefix,
        );
        Arc::new(Turn {
            streams,
            config,
            credentials,
            nonces: Nonces::new(&key),
            policy,
            stats: Arc::new(Stats::default()),
            table: RwLock::new(Table::default()),
            reservations: Mutex::new(HashMap::new()),
            ended: Mutex::new(HashMap::new()),
            last_refresh: Mutex::new(Instant::now()),
            log_second: AtomicU64::new(0),
            log_count: AtomicU32::new(0),
        })
    }

    /// Allocations in the table now (takes the table's read lock: the watchdog's probe).
    pub fn allocation_count(&self) -> usize {
        self.read().by_five.len()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Table> {
        crate::limit::read(&self.table)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Table> {
        crate::limit::write(&self.table)
    }

    /// Where a client address's allocations are counted (IPv6 per `rooms.ipv6_prefix`).
    fn address_key(&self, ip: IpAddr) -> AddrKey {
        AddrKey::new(ip, self.config.rooms.ipv6_prefix)
    }

    pub fn lookup(&self, five: &FiveTuple) -> Option<Arc<Allocation>> {
        self.read().by_five.get(five).cloned()
    }

    /// The live allocation whose advertised relay address is `addr`.
    pub fn by_relayed(&self, addr: SocketAddr) -> Option<Arc<Allocation>> {
        let addr = SocketAddr::new(addr.ip().to_canonical(), addr.port());
        self.read().by_relayed.get(&addr).cloned()
    }

    /// Where relaying to `peer` leads, or None when the policy refuses it: one of this
    /// server's own addresses is a peer only where a live allocation's relay address is (so
    /// two people who both relay reach each other, and no other port of this machine is
    /// reachable through the relay) unless the admin allowed the address explicitly.
    pub fn peer_kind(&self, peer: SocketAddr) -> Option<PeerKind> {
        let v = self.policy.check(peer.ip());
        if v.own {
            if let Some(a) = self.by_relayed(peer) {
                return Some(PeerKind::Internal(a));
            }
        }
        self.policy.kernel(v, peer).then_some(PeerKind::External)
    }

    /// Checks the quotas without adding anything (before binding a relay socket).
    pub fn check_room(&self, five: &FiveTuple, owner: &str) -> Result<(), AddError> {
        self.room(&self.read(), five, owner)
    }

    fn room(&self, t: &Table, five: &FiveTuple, owner: &str) -> Result<(), AddError> {
        let turn = &self.config.turn;
        if t.by_five.contains_key(five) {
            return Err(AddError::Exists);
        }
        if t.by_five.len() >= turn.total_quota {
            return Err(AddError::TotalQuota);
        }
        if t.per_owner.get(owner).copied().unwrap_or(0) >= turn.user_quota {
            return Err(AddError::OwnerQuota);
        }
        let key = self.address_key(five.client.ip());
        if t.per_address.get(&key).copied().unwrap_or(0) >= turn.address_quota {
            return Err(AddError::AddressQuota);
        }
        Ok(())
    }

    pub fn add(&self, alloc: Arc<Allocation>) -> Result<(), AddError> {
        let by = alloc.five.proto.index();
        let mut t = self.write();
        self.room(&t, &alloc.five, &alloc.owner)?;
        *t.per_owner.entry(alloc.owner.clone()).or_default() += 1;
        *t.per_address
            .entry(self.address_key(alloc.five.client.ip()))
            .or_default() += 1;
        t.by_relayed.insert(alloc.relayed, alloc.clone());
        t.by_five.insert(alloc.five, alloc);
        self.stats.allocations_active[by].fetch_add(1, Relaxed);
        self.stats.allocations_total[by].fetch_add(1, Relaxed);
        Ok(())
    }

    pub fn remove(&self, five: &FiveTuple) {
        let removed = {
            let mut t = self.write();
            let a = t.by_five.remove(five);
            if let Some(a) = &a {
                if t.by_relayed
                    .get(&a.relayed)
                    .is_some_and(|b| Arc::ptr_eq(a, b))
                {
                    t.by_relayed.remove(&a.relayed);
                }
                decrement(&mut t.per_owner, &a.owner);
                decrement(&mut t.per_address, &self.address_key(a.five.client.ip()));
            }
            a
        };
        if let Some(a) = removed {
            a.cancel.cancel();
            self.stats.allocations_active[a.five.proto.index()].fetch_sub(1, Relaxed);
        }
    }

    /// A signalling session ended: its allocations end after [`SESSION_GRACE`] unless it
    /// comes back (asks for credentials again) before that.
    pub fn session_ended_at(&self, session: &str, now: Instant) {
        let mut ended = lock(&self.ended);
        // Bounded by the number of sessions that can end within the grace period; the sweeper
        // forgets them afterwards.
        ended.insert(session.to_owned(), now);
    }

    /// A session is (still or again) alive.
    pub fn session_alive(&self, session: &str) {
        lock(&self.ended).remove(session);
    }

    /// Keeps a reserved relay socket for a later Allocate with the returned token; None when
    /// too many are held (at most one per allowed allocation).
    pub fn reserve(&self, socket: std::net::UdpSocket, now: Instant) -> Option<[u8; 8]> {
        let mut r = lock(&self.reservations);
        r.retain(|_, (_, t)| now.saturating_duration_since(*t) < RESERVATION_LIFETIME);
        if r.len() >= self.config.turn.total_quota {
            return None;
        }
        let mut token = [0u8; 8];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut token).ok()?;
        r.insert(token, (socket, now));
        Some(token)
    }

    pub fn take_reservation(&self, token: &[u8]) -> Option<std::net::UdpSocket> {
        let token: [u8; 8] = token.try_into().ok()?;
        let (s, t) = lock(&self.reservations).remove(&token)?;
        (t.elapsed() < RESERVATION_LIFETIME).then_some(s)
    }

    /// Ends expired allocations and those of sessions gone for longer than the grace
    /// period, forgets expired permissions and channels, and re-reads the own addresses.
    pub fn sweep(&self, now: Instant) {
        lock(&self.reservations)
            .retain(|_, (_, t)| now.saturating_duration_since(*t) < RESERVATION_LIFETIME);
        {
            let mut last = lock(&self.last_refresh);
            if now.saturating_duration_since(*last) >= REFRESH_OWN {
                *last = now;
                self.policy.refresh();
            }
        }
        let gone: std::collections::HashSet<String> = {
            let mut ended = lock(&self.ended);
            ended.retain(|_, t| now.saturating_duration_since(*t) < SESSION_GRACE * 2);
            ended
                .iter()
                .filter(|(_, t)| now.saturating_duration_since(**t) >= SESSION_GRACE)
                .map(|(s, _)| s.clone())
                .collect()
        };
        let all: Vec<Arc<Allocation>> = self.read().by_five.values().cloned().collect();
        for a in all {
            let expired = {
                let mut s = lock(&a.state);
                s.sweep(now);
                s.expires <= now
            };
            if expired {
                tracing::debug!(client = %a.five.client, "allocation expired");
                self.remove(&a.five);
            } else if gone.contains(&a.owner) {
                tracing::debug!(client = %a.five.client, "allocation of an ended session");
                self.remove(&a.five);
            }
        }
    }

    pub fn remove_all(&self) {
        let fives: Vec<FiveTuple> = self.read().by_five.keys().copied().collect();
        for f in fives {
            self.remove(&f);
        }
    }

    /// True at most 10 times a second: junk input is logged, but not once per packet.
    pub(crate) fn may_log(&self) -> bool {
        let now = unix_now();
        if self.log_second.swap(now, Relaxed) != now {
            self.log_count.store(0, Relaxed);
        }
        self.log_count.fetch_add(1, Relaxed) < 10
    }
}

fn decrement<K, Q>(map: &mut HashMap<K, usize>, k: &Q)
where
    K: std::borrow::Borrow<Q> + std::hash::Hash + Eq,
    Q: std::hash::Hash + Eq + ?Sized,
{
    if let Some(n) = map.get_mut(k) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(k);
        }
    }
}

/// Runs [`Turn::sweep`] every second until `shutdown`.
pub async fn sweeper(turn: Arc<Turn>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => turn.sweep(Instant::now()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::turn::allocation::State;

    fn turn(extra: &str) -> Arc<Turn> {
        let config = Arc::new(Config::parse(extra, std::path::Path::new("/")).unwrap());
        let creds = Credentials::new(&config);
        Turn::new(config, creds, &[])
    }

    fn alloc(turn: &Turn, client: &str, owner: &str, now: Instant) -> Arc<Allocation> {
        let relay = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        relay.set_nonblocking(true).unwrap();
        let relayed = relay.local_addr().unwrap();
        let a = Arc::new(Allocation {
            five: FiveTuple {
                client: client.parse().unwrap(),
                server: "127.0.0.1:3478".parse().unwrap(),
                proto: Proto::Udp,
            },
            relay: Arc::new(UdpSocket::from_std(relay).unwrap()),
            relayed,
            username: format!("1:{owner}"),
            owner: owner.into(),
            key: vec![],
            created: now,
            tid: [0; 12],
            state: Mutex::new(State::new(now + Duration::from_secs(600), 0, now)),
            cancel: CancellationToken::new(),
            sink: ClientSink::Discard,
            indications: AtomicU64::new(0),
        });
        turn.add(a.clone()).unwrap();
        a
    }

    /// A session that ended keeps its allocations for the grace period (a reconnect finds
    /// them), loses them after it, and keeps them if it came back in time.
    #[tokio::test]
    async fn allocations_of_an_ended_session_end_after_the_grace_period() {
        let t = turn("");
        let now = Instant::now();
        let a = alloc(&t, "192.0.2.1:1000", "gone", now);
        let b = alloc(&t, "192.0.2.1:1001", "back", now);
        let c = alloc(&t, "192.0.2.1:1002", "alive", now);
        t.session_ended_at("gone", now);
        t.session_ended_at("back", now);
        t.sweep(now + SESSION_GRACE / 2);
        assert!(t.lookup(&a.five).is_some(), "still in the grace period");
        t.session_alive("back");
        t.sweep(now + SESSION_GRACE + Duration::from_secs(1));
        assert!(t.lookup(&a.five).is_none());
        assert!(a.cancel.is_cancelled());
        assert!(t.lookup(&b.five).is_some(), "the session came back");
        assert!(t.lookup(&c.five).is_some());
        assert!(t.by_relayed(a.relayed).is_none());
        assert_eq!(t.by_relayed(c.relayed).map(|x| x.five), Some(c.five));
    }

    #[tokio::test]
    async fn quotas_by_owner_address_and_total() {
        let t = turn("[turn]\nuser_quota = 2\naddress_quota = 3\ntotal_quota = 4");
        let now = Instant::now();
        let five = |c: &str| FiveTuple {
            client: c.parse().unwrap(),
            server: "127.0.0.1:3478".parse().unwrap(),
            proto: Proto::Udp,
        };
        alloc(&t, "192.0.2.1:1", "s1", now);
        alloc(&t, "192.0.2.1:2", "s1", now);
        assert_eq!(
            t.check_room(&five("192.0.2.9:1"), "s1"),
            Err(AddError::OwnerQuota)
        );
        alloc(&t, "192.0.2.1:3", "s2", now);
        assert_eq!(
            t.check_room(&five("192.0.2.1:4"), "s3"),
            Err(AddError::AddressQuota)
        );
        // IPv6: a /64 is one address.
        alloc(&t, "[2001:db8::1]:1", "s4", now);
        assert_eq!(
            t.check_room(&five("[2001:db8::2]:1"), "s5"),
            Err(AddError::TotalQuota)
        );
    }
}
