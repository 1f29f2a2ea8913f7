//! STUN/TURN server (RFC 8656, 8489, 6156) over UDP, TCP, and TLS or TCP on the HTTPS port,
//! and the ephemeral credentials handed out in `joined`.
//!
//! - [`credentials`] — TURN REST API credentials (`<expiry>:<session>`, HMAC-SHA1) and static users.
//! - [`nonce`] — stateless nonces (timestamp + HMAC over the client address).
//! - [`auth`] — the long-term credential check.
//! - [`codec`], [`channel_data`] — STUN and ChannelData framing.
//! - [`allocation`] — one allocation's permissions, channels, lifetime (plain data).
//! - [`policy`] — which peer addresses may be relayed to (own addresses only as live relays).
//! - [`server`] — the allocation table (by 5-tuple and by relay address), quotas per session,
//!   per client address and in total, sessions that ended, sweeping.
//! - [`handler`] — request dispatch; [`Turn::handle`] is the socket-free entry point.
//! - [`socket`] — UDP socket primitives (bind, send now, batched receive), no TURN state.
//! - [`relay`], [`udp`], [`tcp`] — the sockets; [`relay::to_allocation`] hands a packet from
//!   one allocation straight to another; [`tcp::serve`] is TURN over any stream (TCP, TLS).
//! - [`stats`] — counters.

pub mod allocation;
pub mod auth;
pub mod channel_data;
pub mod codec;
pub mod credentials;
pub mod handler;
pub mod nonce;
pub mod policy;
pub mod relay;
pub mod server;
pub mod socket;
pub mod stats;
pub mod tcp;
pub mod udp;

use std::sync::Arc;
use std::time::Instant;

use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::health::Health;

pub use credentials::Credentials;
pub use handler::Action;
pub use server::{ClientSink, FiveTuple, Proto, Turn};
pub use stats::Stats;

/// Binds the UDP listening socket(s) for one configured address.
pub fn bind_udp(addr: std::net::SocketAddr) -> std::io::Result<Vec<UdpSocket>> {
    udp::bind(addr)
}

/// Serves STUN/TURN on the given sockets until `shutdown` is cancelled, then drops every
/// allocation. `turn` is built by the caller (the composition root), which also hands it to
/// the HTTPS listeners for TURN over TLS and to the signalling hub for credentials. Each
/// socket is counted in `health` for as long as it is served.
pub async fn run(
    turn: Arc<Turn>,
    udp: Vec<UdpSocket>,
    tcp: Vec<TcpListener>,
    health: Arc<Health>,
    shutdown: CancellationToken,
) {
    let tasks = TaskTracker::new();
    for s in udp {
        if let Err(e) = udp::spawn(turn.clone(), s, health.serving(), shutdown.clone()) {
            tracing::error!(error = %e, "cannot start a turn udp thread");
        }
    }
    for l in tcp {
        let serving = health.serving();
        let (turn, stop) = (turn.clone(), shutdown.clone());
        tasks.spawn(async move {
            let _serving = serving;
            tcp::run(turn, l, stop).await;
        });
    }
    tasks.spawn(server::sweeper(turn.clone(), shutdown.clone()));
    tasks.close();
    shutdown.cancelled().await;
    turn.remove_all();
    tasks.wait().await;
}

/// The signalling hub asks TURN for each session's `iceServers`, and says when a session is
/// gone, so that its allocations end after a grace period instead of counting for an hour.
impl crate::signal::IceProvider for Turn {
    fn ice_servers(&self, session: &str, host: Option<&str>) -> serde_json::Value {
        self.session_alive(session);
        self.credentials.ice_servers(session, host)
    }

    fn session_ended(&self, session: &str) {
        self.session_ended_at(session, Instant::now());
    }
}
