//! Listener plumbing shared by every TCP listener (HTTPS, the port-80 redirect, monitoring,
//! TURN over TCP): the accept loop with its back-off.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// How long accepting pauses after an error (EMFILE and friends), instead of spinning on it.
/// It also bounds the warnings to 20 a second.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The next connection, or `None` once `stop` is cancelled.
pub async fn accept(
    listener: &TcpListener,
    stop: &CancellationToken,
) -> Option<(TcpStream, SocketAddr)> {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return None,
            r = listener.accept() => match r {
                Ok(pair) => return Some(pair),
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
}
