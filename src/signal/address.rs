//! The hub's connection table: connections counted per client address (IPv6 per prefix,
//! [`AddrKey`]) and in total, and the allowances every connection from one address shares,
//! logged in or not: messages, bytes read, TURN credentials handed out, log lines.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Hub;
use super::protocol::SignalError;
use crate::config::RoomsConfig;
use crate::limit::{AddrKey, TokenBucket, lock};

/// Log lines about one address's refusals and floods: a burst, then one a minute.
const NOTICES_PER_MINUTE: f64 = 1.0;
const NOTICE_BURST: u64 = 5;
/// Wrong room passwords (and passwords a host sets) from one address: a few at once, then
/// one every 12 seconds; a guesser gets 300 guesses an hour.
const PASSWORDS_PER_MINUTE: f64 = 5.0;
const PASSWORD_BURST: u64 = 5;
/// Addresses with no connection and full allowances (nothing to remember) are forgotten when
/// the table reaches this many entries, then whenever it doubles since the last sweep: it
/// cannot grow with every address ever seen, and sweeping costs O(1) per connection.
const SWEEP_AT: usize = 1024;

/// What the connections of one address share.
#[derive(Debug)]
pub(crate) struct Allowance {
    pub messages: TokenBucket,
    pub bytes: TokenBucket,
    /// `joined` and `iceServers`: each hands out TURN credentials.
    pub credentials: TokenBucket,
    /// Room passwords stretched: each wrong one at a login, each one a host sets.
    pub passwords: TokenBucket,
    /// Info-level log lines about this address (refusals, floods).
    pub notices: TokenBucket,
}

impl Allowance {
    fn new(c: &RoomsConfig, now: Instant) -> Allowance {
        Allowance {
            messages: TokenBucket::new(
                c.ip_messages_per_second.into(),
                c.ip_message_burst.into(),
                now,
            ),
            bytes: TokenBucket::new(c.ip_bytes_per_second as f64, c.ip_byte_burst, now),
            credentials: TokenBucket::new(
                f64::from(c.credentials_per_minute) / 60.0,
                c.credential_burst.into(),
                now,
            ),
            passwords: TokenBucket::new(PASSWORDS_PER_MINUTE / 60.0, PASSWORD_BURST, now),
            notices: TokenBucket::new(NOTICES_PER_MINUTE / 60.0, NOTICE_BURST, now),
        }
    }

    /// Whether a fresh entry would be the same: nothing to remember about this address.
    fn is_full(&mut self, now: Instant) -> bool {
        self.messages.is_full(now)
            && self.bytes.is_full(now)
            && self.credentials.is_full(now)
            && self.passwords.is_full(now)
            && self.notices.is_full(now)
    }
}

#[derive(Default)]
pub(crate) struct Connections {
    total: usize,
    by_addr: HashMap<AddrKey, Entry>,
    next_sweep: usize,
}

struct Entry {
    connections: usize,
    allowance: Arc<Mutex<Allowance>>,
}

/// A counted connection; dropping it gives the slot back.
pub(crate) struct Admission {
    hub: Arc<Hub>,
    pub addr: AddrKey,
    pub allowance: Arc<Mutex<Allowance>>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut c = lock(&self.hub.connections);
        c.total = c.total.saturating_sub(1);
        if let Some(e) = c.by_addr.get_mut(&self.addr) {
            e.connections = e.connections.saturating_sub(1);
        }
    }
}

/// A refused connection: the error for the client, and whether to log it (bounded per
/// address).
pub(crate) struct Refusal {
    pub error: SignalError,
    pub log: bool,
}

impl Hub {
    /// Connections admitted and not ended.
    pub(crate) fn connections_now(&self) -> usize {
        lock(&self.connections).total
    }

    /// Counts a new connection from `addr`, or refuses it over `max_connections(_per_ip)`.
    pub(crate) fn admit(self: &Arc<Self>, addr: AddrKey) -> Result<Admission, Refusal> {
        let now = Instant::now();
        let mut c = lock(&self.connections);
        if c.by_addr.len() >= c.next_sweep.max(SWEEP_AT) {
            c.by_addr
                .retain(|_, e| e.connections > 0 || !lock(&e.allowance).is_full(now));
            c.next_sweep = 2 * c.by_addr.len();
        }
        let total = c.total;
        let entry = c.by_addr.entry(addr).or_insert_with(|| Entry {
            connections: 0,
            allowance: Arc::new(Mutex::new(Allowance::new(&self.config, now))),
        });
        if total >= self.config.max_connections
            || entry.connections >= self.config.max_connections_per_ip
        {
            let log = lock(&entry.allowance).notices.try_take(1, now);
            return Err(Refusal {
                error: SignalError::TooManyConnections,
                log,
            });
        }
        entry.connections += 1;
        let allowance = entry.allowance.clone();
        c.total += 1;
        Ok(Admission {
            hub: self.clone(),
            addr,
            allowance,
        })
    }
}

/// How long to stop reading after a frame: until the byte allowances of the connection and of
/// its address are out of debt again.
pub(crate) fn read_pause(own: &mut TokenBucket, shared: &mut Allowance, now: Instant) -> Duration {
    own.wait(0, now).max(shared.bytes.wait(0, now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;
    use std::path::Path;

    struct NoIce;
    impl super::super::IceProvider for NoIce {
        fn ice_servers(&self, _: &str, _: Option<&str>) -> serde_json::Value {
            serde_json::Value::Null
        }
    }

    fn hub(rooms: &str) -> Arc<Hub> {
        let c = Config::parse(&format!("[rooms]\n{rooms}"), Path::new("/")).expect("config");
        Hub::new(
            &c.rooms,
            Arc::new(NoIce),
            crate::signal::resume::ResumeKey::ephemeral(),
            None,
            None,
        )
    }

    fn key(ip: &str) -> AddrKey {
        AddrKey::new(ip.parse().expect("ip"), 64)
    }

    #[test]
    fn per_address_and_total_caps() {
        let h = hub("max_connections_per_ip = 2\nmax_connections = 3");
        let a1 = h.admit(key("2001:db8::1")).ok();
        let a2 = h.admit(key("2001:db8::2:3")).ok();
        assert!(a1.is_some() && a2.is_some());
        // A third address of the same /64 is the same client.
        assert!(h.admit(key("2001:db8::ffff:1")).is_err());
        let b = h.admit(key("2001:db8:0:1::1")).ok();
        assert!(b.is_some(), "another /64 is another client");
        assert!(h.admit(key("192.0.2.1")).is_err(), "the total is reached");
        drop(a1);
        assert!(
            h.admit(key("2001:db8::9")).is_ok(),
            "a slot given back is free"
        );
    }

    #[test]
    fn connections_of_one_address_share_one_allowance() {
        let h = hub("ip_messages_per_second = 1\nip_message_burst = 3");
        let (a, b) = (h.admit(key("192.0.2.1")), h.admit(key("192.0.2.1")));
        let (Ok(a), Ok(b)) = (a, b) else {
            panic!("admitted")
        };
        let now = Instant::now();
        assert!(lock(&a.allowance).messages.try_take(2, now));
        assert!(lock(&b.allowance).messages.try_take(1, now));
        assert!(!lock(&a.allowance).messages.try_take(1, now));
        // The allowance outlives the connections: reconnecting does not refill it.
        drop((a, b));
        let c = h.admit(key("192.0.2.1")).ok().expect("admitted");
        assert!(!lock(&c.allowance).messages.try_take(1, now));
    }

    #[test]
    fn refusals_are_logged_a_bounded_number_of_times() {
        let h = hub("max_connections_per_ip = 1");
        let _held = h.admit(key("192.0.2.1")).ok();
        let logged = (0..100)
            .filter(|_| h.admit(key("192.0.2.1")).err().is_some_and(|r| r.log))
            .count();
        assert_eq!(logged, NOTICE_BURST as usize);
    }

    #[test]
    fn forgotten_addresses_are_swept() {
        let h = hub("");
        for i in 0..(SWEEP_AT + 10) as u32 {
            drop(h.admit(key(&std::net::Ipv4Addr::from(i).to_string())));
        }
        assert!(lock(&h.connections).by_addr.len() <= SWEEP_AT);
    }
}
