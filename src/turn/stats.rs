//! TURN's counters: plain atomics bumped on the paths that matter, read at scrape time by
//! [`crate::metrics`] (no registry here, no locks on the relay path).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::server::Proto;

/// Per transport, indexed by [`Proto::index`].
pub type ByProto = [AtomicU64; Proto::ALL.len()];

#[derive(Debug, Default)]
pub struct Stats {
    /// Allocations in the table now.
    pub allocations_active: ByProto,
    /// Allocations ever added to the table.
    pub allocations_total: ByProto,
    /// STUN Binding requests answered (RFC 5389 and classic RFC 3489 ones).
    pub bindings: ByProto,
    pub denied_auth: AtomicU64,
    pub denied_peer: AtomicU64,
    pub denied_quota: AtomicU64,
    pub denied_no_permission: AtomicU64,
    pub dropped_bandwidth: AtomicU64,
    pub malformed: AtomicU64,
    pub client_to_peer_packets: AtomicU64,
    pub client_to_peer_bytes: AtomicU64,
    pub peer_to_client_packets: AtomicU64,
    pub peer_to_client_bytes: AtomicU64,
    /// Packets handed from one allocation straight to another (both people relaying).
    pub relayed_internally: AtomicU64,
}

impl Stats {
    pub(crate) fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    pub(crate) fn relayed(packets: &AtomicU64, bytes: &AtomicU64, n: usize) {
        packets.fetch_add(1, Relaxed);
        bytes.fetch_add(n as u64, Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Relaxed)
    }
}
