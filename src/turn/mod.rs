//! STUN/TURN server (RFC 8656, 8489, 6156) over UDP and TCP, and the ephemeral credentials
//! handed out in `joined`.
//!
//! - [`credentials`] — TURN REST API credentials (`<expiry>:<session>`, HMAC-SHA1) and static users.
//! - [`nonce`] — stateless nonces (timestamp + HMAC over the client address).
//! - [`auth`] — the long-term credential check.
//! - [`codec`], [`channel_data`] — STUN and ChannelData framing.
//! - [`allocation`] — one allocation's permissions, channels, lifetime (plain data).
//! - [`policy`] — which peer addresses may be relayed to.
//! - [`server`] — the allocation table, quotas, sweeping.
//! - [`handler`] — request dispatch; [`Turn::handle`] is the socket-free entry point.
//! - [`relay`], [`udp`], [`tcp`] — the sockets.
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
pub mod stats;
pub mod tcp;
pub mod udp;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use credentials::Credentials;
pub use handler::Action;
pub use server::{ClientSink, FiveTuple, Proto, Turn};
pub use stats::Stats;

use crate::Config;

/// Binds the UDP listening socket(s) for one configured address.
pub fn bind_udp(addr: SocketAddr) -> std::io::Result<Vec<UdpSocket>> {
    udp::bind(addr)
}

/// Serves STUN/TURN until `shutdown` is cancelled, then drops every allocation.
pub async fn run(
    udp: Vec<UdpSocket>,
    tcp: Vec<TcpListener>,
    config: Arc<Config>,
    credentials: Arc<Credentials>,
    shutdown: CancellationToken,
) {
    let turn = start(udp, tcp, config, credentials, shutdown.clone());
    shutdown.cancelled().await;
    turn.remove_all();
}

/// Spawns the listeners and the sweeper; returns the shared state (for stats) right away.
pub fn start(
    udp: Vec<UdpSocket>,
    tcp: Vec<TcpListener>,
    config: Arc<Config>,
    credentials: Arc<Credentials>,
    shutdown: CancellationToken,
) -> Arc<Turn> {
    let mut listening: Vec<SocketAddr> = udp.iter().filter_map(|s| s.local_addr().ok()).collect();
    listening.extend(tcp.iter().filter_map(|l| l.local_addr().ok()));
    let max_tcp = config.turn.total_quota.saturating_mul(2).saturating_add(64);
    let turn = Turn::new(config, credentials, &listening);
    let tasks = TaskTracker::new();
    for s in udp {
        if let Err(e) = udp::spawn(turn.clone(), s, shutdown.clone()) {
            tracing::error!(error = %e, "cannot start a turn udp thread");
        }
    }
    for l in tcp {
        tasks.spawn(tcp::run(turn.clone(), l, max_tcp, shutdown.clone()));
    }
    tasks.spawn(server::sweeper(turn.clone(), shutdown.clone()));
    tasks.close();
    turn
}
