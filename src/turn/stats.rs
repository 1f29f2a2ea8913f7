//! Counters for a later `/metrics`: plain atomics, bumped on the paths that matter.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Debug, Default)]
pub struct Stats {
    pub allocations_active: AtomicU64,
    pub allocations_total: AtomicU64,
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
