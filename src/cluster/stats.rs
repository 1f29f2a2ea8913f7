//! The cluster's counters for `/metrics`: Redis's state as this node last saw it, the relay
//! links this node holds by state, the frames they carried, and what fencing did. Plain
//! atomics bumped where things happen, read at scrape time by [`crate::metrics`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use prometheus_client::metrics::histogram::Histogram;

/// `kind` of a failed Redis call: it did not answer within `cluster.redis_timeout_ms`, or
/// it answered with an error (connection refused or broken, a script error).
pub const REDIS_ERRORS: [&str; 2] = ["timeout", "error"];

/// `state` of a relay link: making its first connection, carrying frames, or making a
/// broken one again.
pub const LINK_STATES: [&str; 3] = ["connecting", "open", "reconnecting"];

/// `direction` of relayed frames: from the member to its room's home, and back.
pub const DIRECTIONS: [&str; 2] = ["to_home", "from_home"];

/// Upper bounds (seconds) of the Redis call latency buckets: a loopback call takes well
/// under a millisecond, `cluster.redis_timeout_ms` defaults to one second.
const LATENCY_BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

#[derive(Debug)]
pub struct Stats {
    /// Whether this node's last Redis call succeeded.
    pub redis_up: AtomicBool,
    /// Nodes whose liveness key was in Redis at this node's last refresh (itself included).
    pub nodes_alive: AtomicU64,
    pub redis_errors: [AtomicU64; REDIS_ERRORS.len()],
    /// Seconds per Redis call (successful or not; a timeout counts as the timeout).
    pub redis_latency: Histogram,
    /// Links this node holds now, by [`LINK_STATES`].
    pub links: [AtomicI64; LINK_STATES.len()],
    /// Frames relayed, by [`DIRECTIONS`].
    pub frames: [AtomicU64; DIRECTIONS.len()],
    /// Links made again after a break.
    pub reconnects: AtomicU64,
    /// Rooms this node held that the directory gave another living node (a split home
    /// after a partition), whose members it handed over.
    pub rooms_handed_over: AtomicU64,
}

impl Default for Stats {
    fn default() -> Stats {
        Stats {
            redis_up: AtomicBool::new(false),
            nodes_alive: AtomicU64::new(0),
            redis_errors: Default::default(),
            redis_latency: Histogram::new(LATENCY_BUCKETS),
            links: Default::default(),
            frames: Default::default(),
            reconnects: AtomicU64::new(0),
            rooms_handed_over: AtomicU64::new(0),
        }
    }
}

/// A link's state as a gauge: counted under one state at a time, uncounted when dropped.
#[derive(Debug)]
pub struct LinkState {
    stats: Arc<Stats>,
    state: usize,
}

pub const CONNECTING: usize = 0;
pub const OPEN: usize = 1;
pub const RECONNECTING: usize = 2;
pub const TO_HOME: usize = 0;
pub const FROM_HOME: usize = 1;

impl LinkState {
    pub fn new(stats: Arc<Stats>) -> LinkState {
        stats.links[CONNECTING].fetch_add(1, Relaxed);
        LinkState {
            stats,
            state: CONNECTING,
        }
    }

    pub fn set(&mut self, state: usize) {
        if state != self.state {
            self.stats.links[self.state].fetch_sub(1, Relaxed);
            self.stats.links[state].fetch_add(1, Relaxed);
            self.state = state;
        }
    }

    pub fn frame(&self, direction: usize) {
        self.stats.frames[direction].fetch_add(1, Relaxed);
    }

    pub fn reconnected(&self) {
        self.stats.reconnects.fetch_add(1, Relaxed);
    }
}

impl Drop for LinkState {
    fn drop(&mut self) {
        self.stats.links[self.state].fetch_sub(1, Relaxed);
    }
}

impl Stats {
    /// Notes one Redis call: how long it took and whether it failed (by [`REDIS_ERRORS`]).
    pub fn redis_call(&self, took: Duration, failed: Option<usize>) {
        self.redis_latency.observe(took.as_secs_f64());
        self.redis_up.store(failed.is_none(), Relaxed);
        if let Some(kind) = failed {
            self.redis_errors[kind].fetch_add(1, Relaxed);
        }
    }

    /// The links now by state (never below zero: a scrape between two updates of one
    /// transition may see one count early).
    pub fn links_now(&self) -> impl Iterator<Item = (&'static str, i64)> + '_ {
        LINK_STATES
            .iter()
            .zip(&self.links)
            .map(|(s, n)| (*s, n.load(Relaxed).max(0)))
    }
}
