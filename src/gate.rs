//! Admission by client address: a count of what each address (an IPv6 /64 counting as one)
//! holds open, capped per address and in total, released when the [`Pass`] is dropped. The
//! HTTPS ports and TURN's stream listeners each keep one.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};

/// The key per-address limits are counted under: the address itself for IPv4, its /64 for
/// IPv6 (one subscriber's network), so an attacker's /64 counts as one address.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Admission for connections: at most `total` at once, and `per_address` from one client
/// address (IPv6: one /64).
pub struct Gate {
    total: usize,
    per_address: usize,
    open: AtomicUsize,
    by_address: Mutex<HashMap<IpAddr, usize>>,
}

/// One admitted connection; dropping it gives the slot back.
pub struct Pass {
    gate: Arc<Gate>,
    key: IpAddr,
}

impl Gate {
    pub fn new(total: usize, per_address: usize) -> Arc<Gate> {
        Arc::new(Gate {
            total,
            per_address,
            open: AtomicUsize::new(0),
            by_address: Mutex::new(HashMap::new()),
        })
    }

    /// A pass for a connection from `ip`, or None over either cap.
    pub fn enter(self: &Arc<Self>, ip: IpAddr) -> Option<Pass> {
        let key = address_key(ip);
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn gate_caps_total_and_per_address() {
        let gate = Gate::new(3, 2);
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
        let gate = Gate::new(100, 1);
        let _x = gate.enter("2001:db8:1:2::1".parse().unwrap()).unwrap();
        assert!(
            gate.enter("2001:db8:1:2:ffff::9".parse().unwrap())
                .is_none()
        );
        assert!(gate.enter("2001:db8:1:3::1".parse().unwrap()).is_some());
    }
    #[test]
    fn address_keys() {
        let k = |s: &str| address_key(s.parse().unwrap()).to_string();
        assert_eq!(k("192.0.2.7"), "192.0.2.7");
        assert_eq!(k("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(k("2001:db8:a:b:c:d:e:f"), "2001:db8:a:b::");
    }
}
