//! STUN/TURN server (UDP and TCP) and the ephemeral credentials handed out in `joined`.
//! (Placeholder until the TURN server lands: credentials give no ICE servers, run only waits.)

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;

use crate::Config;

/// Issues TURN REST API credentials for a session (`<expiry>:<session id>`, HMAC-SHA1).
pub struct Credentials {}

impl Credentials {
    pub fn new(_config: &Config) -> Arc<Credentials> {
        Arc::new(Credentials {})
    }
}

impl crate::signal::IceProvider for Credentials {
    fn ice_servers(&self, _session: &str) -> serde_json::Value {
        serde_json::Value::Array(Vec::new())
    }
}

/// Binds the UDP listening socket(s) for one configured address.
pub fn bind_udp(addr: SocketAddr) -> std::io::Result<Vec<UdpSocket>> {
    let std = std::net::UdpSocket::bind(addr)?;
    std.set_nonblocking(true)?;
    Ok(vec![UdpSocket::from_std(std)?])
}

/// Serves STUN/TURN until `shutdown` is cancelled.
pub async fn run(
    _udp: Vec<UdpSocket>,
    _tcp: Vec<TcpListener>,
    _config: Arc<Config>,
    _credentials: Arc<Credentials>,
    shutdown: CancellationToken,
) {
    shutdown.cancelled().await;
}
