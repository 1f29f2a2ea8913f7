//! Limits shared by signalling, HTTP and TURN: the key one client address is counted under
//! (IPv6 aggregated per prefix, since one subscriber gets a whole /64), one token bucket, the
//! [`Gate`] that caps connections per address and in total, and the poison-tolerant lock the
//! limit tables are kept behind.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

/// The address a client is limited as: an IPv4 address, or an IPv6 address with everything
/// past the configured prefix zeroed. IPv4-mapped IPv6 (`::ffff:a.b.c.d`, what a dual-stack
/// `[::]` listener reports for IPv4 clients) is the IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AddrKey(IpAddr);

impl AddrKey {
    /// `ipv6_prefix` is 1..=128 (validated in the config); 128 keeps every address apart.
    pub fn new(ip: IpAddr, ipv6_prefix: u8) -> AddrKey {
        match ip {
            IpAddr::V4(v4) => AddrKey(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => AddrKey(IpAddr::V4(v4)),
                None => {
                    let bits = u32::from(ipv6_prefix.min(128));
                    let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                    AddrKey(IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask)))
                }
            },
        }
    }

    pub fn ip(self) -> IpAddr {
        self.0
    }
}

impl std::fmt::Display for AddrKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The longest [`TokenBucket::wait`] answers.
pub const MAX_WAIT: Duration = Duration::from_secs(3600);

/// A token bucket: `rate` tokens a second, holding at most `burst`, starting full. On
/// `std::time::Instant` (TURN's clock; signalling converts tokio's with `into_std`).
///
/// [`try_take`](Self::try_take) spends only what is there (drop what is over the limit);
/// [`charge`](Self::charge) may run into debt and [`wait`](Self::wait) says how long until it
/// is paid back (slow the client down instead: for costs known only after the work is done).
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// `rate` may be fractional (six a minute is 0.1); a negative one counts as zero.
    pub fn new(rate: f64, burst: u64, now: Instant) -> TokenBucket {
        let burst = burst.max(1) as f64;
        TokenBucket {
            rate: rate.max(0.0),
            burst,
            tokens: burst,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
    }

    /// Whether `cost` tokens are there now, without spending them.
    pub fn has(&mut self, cost: u64, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= cost as f64
    }

    /// Whether the bucket is full again (as a new one would be).
    pub fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.burst
    }

    /// Spends `cost` tokens if they are there.
    pub fn try_take(&mut self, cost: u64, now: Instant) -> bool {
        if self.has(cost, now) {
            self.tokens -= cost as f64;
            true
        } else {
            false
        }
    }

    /// Spends `cost` tokens, into debt if need be.
    pub fn charge(&mut self, cost: u64, now: Instant) {
        self.refill(now);
        self.tokens -= cost as f64;
    }

    /// How long until the bucket holds `cost` tokens: zero when it does now, at most
    /// [`MAX_WAIT`] (a zero rate never refills), so that `now + wait` cannot overflow.
    pub fn wait(&mut self, cost: u64, now: Instant) -> Duration {
        self.refill(now);
        let missing = cost as f64 - self.tokens;
        if missing <= 0.0 {
            return Duration::ZERO;
        }
        Duration::try_from_secs_f64(missing / self.rate)
            .unwrap_or(MAX_WAIT)
            .min(MAX_WAIT)
    }
}

/// Admission for connections: at most `total` at once, and `per_address` from one client
/// address (IPv6: one /64).
pub struct Gate {
    total: usize,
    per_address: usize,
    ipv6_prefix: u8,
    open: AtomicUsize,
    by_address: Mutex<HashMap<AddrKey, usize>>,
}

/// One admitted connection; dropping it gives the slot back.
pub struct Pass {
    gate: Arc<Gate>,
    key: AddrKey,
}

impl Gate {
    /// `ipv6_prefix`: IPv6 clients are counted per this prefix (`rooms.ipv6_prefix`).
    pub fn new(total: usize, per_address: usize, ipv6_prefix: u8) -> Arc<Gate> {
        Arc::new(Gate {
            total,
            per_address,
            ipv6_prefix,
            open: AtomicUsize::new(0),
            by_address: Mutex::new(HashMap::new()),
        })
    }

    /// A pass for a connection from `ip`, or None over either cap.
    pub fn enter(self: &Arc<Self>, ip: IpAddr) -> Option<Pass> {
        let key = AddrKey::new(ip, self.ipv6_prefix);
        let mut by = lock(&self.by_address);
        let n = by.get(&key).copied().unwrap_or(0);
        if n >= self.per_address || self.open.load(Relaxed) >= self.total {
            return None;
        }
        by.insert(key, n + 1);
        self.open.fetch_add(1, Relaxed);
        Some(Pass {
            gate: self.clone(),
            key,
        })
    }

    pub fn open(&self) -> usize {
        self.open.load(Relaxed)
    }
}

impl Drop for Pass {
    fn drop(&mut self) {
        let mut by = lock(&self.gate.by_address);
        if let Some(n) = by.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                by.remove(&self.key);
            }
        }
        self.gate.open.fetch_sub(1, Relaxed);
    }
}

/// Locks `m`, carrying on after a panic elsewhere: every table kept behind one of these is
/// updated in a few map operations, so it is consistent whenever the lock is free.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// [`lock`] for a read lock.
pub fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

/// [`lock`] for a write lock.
pub fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_caps_total_and_per_address() {
        let gate = Gate::new(3, 2, 64);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let p1 = gate.enter(a).unwrap();
        let _p2 = gate.enter(a).unwrap();
        assert!(gate.enter(a).is_none(), "per address");
        let _p3 = gate.enter(b).unwrap();
        assert!(gate.enter(b).is_none(), "total");
        drop(p1);
        assert!(gate.enter(a).is_some());
        // One /64 is one address.
        let gate = Gate::new(100, 1, 64);
        let _x = gate.enter("2001:db8:1:2::1".parse().unwrap()).unwrap();
        assert!(
            gate.enter("2001:db8:1:2:ffff::9".parse().unwrap())
                .is_none()
        );
        assert!(gate.enter("2001:db8:1:3::1".parse().unwrap()).is_some());
    }
    #[test]
    fn address_keys() {
        let cases = [
            ("192.0.2.7", 64, "192.0.2.7"),
            ("::ffff:192.0.2.7", 64, "192.0.2.7"),
            ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", 64, "2001:db8:1:2::"),
            ("2001:db8:1:2::1", 64, "2001:db8:1:2::"),
            ("2001:db8:1:3::1", 64, "2001:db8:1:3::"),
            ("2001:db8:1:2:aaaa::1", 48, "2001:db8:1::"),
            ("2001:db8:1:2:aaaa::1", 56, "2001:db8:1::"),
            ("2001:db8:1:2ff:aaaa::1", 56, "2001:db8:1:200::"),
            ("2001:db8::1", 128, "2001:db8::1"),
            ("2001:db8::1", 1, "::"),
            ("::1", 64, "::"),
        ];
        for (ip, prefix, want) in cases {
            let ip: IpAddr = ip.parse().expect("ip");
            let want: IpAddr = want.parse().expect("want");
            assert_eq!(AddrKey::new(ip, prefix).ip(), want, "{ip}/{prefix}");
        }
    }

    #[test]
    fn bucket_allows_burst_then_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10.0, 5, t0);
        assert_eq!((0..8).filter(|_| b.try_take(1, t0)).count(), 5);
        // 10 a second: 0.35 s later three more (3.5 tokens).
        let t1 = t0 + Duration::from_millis(350);
        assert_eq!((0..8).filter(|_| b.try_take(1, t1)).count(), 3);
        // Never more than the burst, however long the pause.
        let t2 = t1 + Duration::from_secs(3600);
        assert_eq!((0..100).filter(|_| b.try_take(1, t2)).count(), 5);
        // A cost above what is there takes nothing.
        assert!(!b.try_take(6, t2 + Duration::from_secs(60)));
        assert!(b.try_take(5, t2 + Duration::from_secs(60)));
    }

    #[test]
    fn debt_is_waited_out() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1000.0, 1000, t0);
        assert_eq!(b.wait(0, t0), Duration::ZERO);
        b.charge(3000, t0);
        // 2000 in debt at 1000 a second.
        assert_eq!(b.wait(0, t0), Duration::from_secs(2));
        assert_eq!(
            b.wait(0, t0 + Duration::from_millis(500)),
            Duration::from_millis(1500)
        );
        assert!(!b.has(1, t0 + Duration::from_millis(1999)));
        assert_eq!(b.wait(0, t0 + Duration::from_secs(2)), Duration::ZERO);
        assert_eq!(TokenBucket::new(0.0, 1, t0).wait(2, t0), MAX_WAIT);
    }

    #[test]
    fn time_going_backwards_is_ignored() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut b = TokenBucket::new(1.0, 1, t0);
        assert!(b.try_take(1, t0));
        assert!(!b.try_take(1, t0 - Duration::from_secs(5)));
        assert!(b.try_take(1, t0 + Duration::from_secs(1)));
    }
}
