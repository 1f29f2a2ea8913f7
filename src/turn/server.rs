//! The TURN server's shared state: the allocation table keyed by 5-tuple, quotas, and the
//! sweeper that ends expired allocations. Locks here are std locks held for a map look-up,
//! never across an await.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    Udp,
    Tcp,
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
            ClientSink::Udp(s) => super::udp::send_now(s, frame, to).is_ok(),
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
    pub state: Mutex<State>,
    pub cancel: CancellationToken,
    pub sink: ClientSink,
}

/// How long a port reserved by EVEN-PORT (R bit) waits for its RESERVATION-TOKEN.
const RESERVATION_LIFETIME: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Table {
    by_five: HashMap<FiveTuple, Arc<Allocation>>,
    per_user: HashMap<String, usize>,
}

/// Why an allocation could not be added to the table.
pub enum AddError {
    Exists,
    Quota,
}

pub struct Turn {
    pub(crate) config: Arc<Config>,
    pub(crate) credentials: Arc<Credentials>,
    pub(crate) nonces: Nonces,
    pub(crate) policy: Policy,
    pub stats: Arc<Stats>,
    table: RwLock<Table>,
    reservations: Mutex<HashMap<[u8; 8], (std::net::UdpSocket, Instant)>>,
    log_second: AtomicU64,
    log_count: AtomicU32,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Turn {
    /// `listening` are the bound listener addresses (they join the peer deny list).
    pub fn new(
        config: Arc<Config>,
        credentials: Arc<Credentials>,
        listening: &[SocketAddr],
    ) -> Arc<Turn> {
        let mut key = [0u8; 32];
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key);
        let mut own: Vec<IpAddr> = listening.iter().map(|a| a.ip()).collect();
        own.extend(config.turn.listen.iter().map(|a| a.ip()));
        own.extend(config.turn.external_ip);
        let policy = Policy::new(&config.turn, own);
        Arc::new(Turn {
            config,
            credentials,
            nonces: Nonces::new(&key),
            policy,
            stats: Arc::new(Stats::default()),
            table: RwLock::new(Table::default()),
            reservations: Mutex::new(HashMap::new()),
            log_second: AtomicU64::new(0),
            log_count: AtomicU32::new(0),
        })
    }

    pub fn lookup(&self, five: &FiveTuple) -> Option<Arc<Allocation>> {
        let t = self.table.read().unwrap_or_else(|e| e.into_inner());
        t.by_five.get(five).cloned()
    }

    /// Checks the quotas without adding anything (before binding a relay socket).
    pub fn check_room(&self, five: &FiveTuple, username: &str) -> Result<(), AddError> {
        let t = self.table.read().unwrap_or_else(|e| e.into_inner());
        Self::room(&t, &self.config, five, username)
    }

    fn room(t: &Table, config: &Config, five: &FiveTuple, username: &str) -> Result<(), AddError> {
        if t.by_five.contains_key(five) {
            return Err(AddError::Exists);
        }
        if t.by_five.len() >= config.turn.total_quota
            || t.per_user.get(username).copied().unwrap_or(0) >= config.turn.user_quota
        {
            return Err(AddError::Quota);
        }
        Ok(())
    }

    pub fn add(&self, alloc: Arc<Allocation>) -> Result<(), AddError> {
        let mut t = self.table.write().unwrap_or_else(|e| e.into_inner());
        Self::room(&t, &self.config, &alloc.five, &alloc.username)?;
        *t.per_user.entry(alloc.username.clone()).or_default() += 1;
        t.by_five.insert(alloc.five, alloc);
        self.stats.allocations_active.fetch_add(1, Relaxed);
        self.stats.allocations_total.fetch_add(1, Relaxed);
        Ok(())
    }

    pub fn remove(&self, five: &FiveTuple) {
        let removed = {
            let mut t = self.table.write().unwrap_or_else(|e| e.into_inner());
            let a = t.by_five.remove(five);
            if let Some(a) = &a {
                if let Some(n) = t.per_user.get_mut(&a.username) {
                    *n -= 1;
                    if *n == 0 {
                        t.per_user.remove(&a.username);
                    }
                }
            }
            a
        };
        if let Some(a) = removed {
            a.cancel.cancel();
            self.stats.allocations_active.fetch_sub(1, Relaxed);
        }
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

    /// Ends expired allocations and forgets expired permissions and channels.
    pub fn sweep(&self, now: Instant) {
        lock(&self.reservations)
            .retain(|_, (_, t)| now.saturating_duration_since(*t) < RESERVATION_LIFETIME);
        let all: Vec<Arc<Allocation>> = {
            let t = self.table.read().unwrap_or_else(|e| e.into_inner());
            t.by_five.values().cloned().collect()
        };
        for a in all {
            let expired = {
                let mut s = lock(&a.state);
                s.sweep(now);
                s.expires <= now
            };
            if expired {
                tracing::debug!(client = %a.five.client, "allocation expired");
                self.remove(&a.five);
            }
        }
    }

    pub fn remove_all(&self) {
        let fives: Vec<FiveTuple> = {
            let t = self.table.read().unwrap_or_else(|e| e.into_inner());
            t.by_five.keys().copied().collect()
        };
        for f in fives {
            self.remove(&f);
        }
    }

    pub fn allocation_count(&self) -> usize {
        self.table
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .by_five
            .len()
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
