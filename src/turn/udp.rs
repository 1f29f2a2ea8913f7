//! UDP listeners: binding (SO_REUSEPORT, one socket per core), a thread per socket, and the
//! receive loop that hands each datagram to the handler with reused buffers.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use super::server::{ClientSink, FiveTuple, Proto, Turn};
use super::socket::{bind_one, recv_batch, serve_readable};
use crate::health::Serving;

/// coturn's default socket buffer size, for the listening sockets.
const BUFFER: usize = 4 << 20;

/// Binds the UDP listening socket(s) for one address: several SO_REUSEPORT sockets on Linux
/// (one per core, up to 4) so the kernel spreads clients over the runtime's threads.
pub fn bind(addr: SocketAddr) -> std::io::Result<Vec<UdpSocket>> {
    let n = if cfg!(target_os = "linux") {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
    } else {
        1
    };
    // A socket with SO_REUSEPORT shares its port with any other such socket of the same user:
    // a second peerbox would silently take half of the clients, and with port 0 the kernel may
    // even pick a port another group holds (tests saw datagrams vanish that way). So the port
    // is first claimed by a plain socket, which fails with "address in use" if anyone holds
    // it, and the group binds to it right after.
    let addr = if n > 1 {
        bind_one(addr, false, BUFFER)?.local_addr()?
    } else {
        addr
    };
    let first = bind_one(addr, n > 1, BUFFER)?;
    let mut out = vec![UdpSocket::from_std(first)?];
    for _ in 1..n {
        match bind_one(addr, true, BUFFER) {
            Ok(s) => out.push(UdpSocket::from_std(s)?),
            Err(_) => break,
        }
    }
    Ok(out)
}

/// Serves one UDP socket on a thread of its own (a current-thread runtime) until `shutdown`.
/// Allocations made through it get their relay socket and task on that thread too, so a
/// packet is received, relayed and answered where the kernel woke us: no hand-off between
/// runtime workers (which cost a futex wake and a context switch per packet on a quiet
/// multi-threaded runtime). This is coturn's model of one relay thread per socket.
/// `serving` is held by the thread for as long as it serves the socket.
pub fn spawn(
    turn: Arc<Turn>,
    socket: UdpSocket,
    serving: Serving,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let socket = socket.into_std()?;
    std::thread::Builder::new()
        .name("turn-udp".into())
        .spawn(move || {
            let _serving = serving;
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "cannot start a turn udp thread");
                    return;
                }
            };
            rt.block_on(async move {
                match UdpSocket::from_std(socket) {
                    Ok(socket) => run(turn, socket, shutdown).await,
                    Err(e) => tracing::error!(error = %e, "cannot register a turn udp socket"),
                }
            });
        })?;
    Ok(())
}

/// Serves one UDP socket until `shutdown`: every request is handled and answered where it
/// was received.
pub async fn run(turn: Arc<Turn>, socket: UdpSocket, shutdown: CancellationToken) {
    let socket = Arc::new(socket);
    let Ok(local) = socket.local_addr() else {
        return;
    };
    let sink = ClientSink::Udp(socket.clone());
    let mut buf = vec![0u8; 65_536];
    let mut out = Vec::with_capacity(1500);
    let whole = 0..buf.len();
    serve_readable(&socket, &shutdown, || {
        recv_batch(&socket, &mut buf, whole.clone(), |buf, r| match r {
            Ok((n, client)) => {
                let five = FiveTuple {
                    client,
                    server: local,
                    proto: Proto::Udp,
                };
                if turn.process(&buf[..n], five, &sink, &mut out) {
                    sink.send(&out, client);
                }
            }
            // ICMP errors from earlier sends surface here; the next read goes on.
            Err(e) => {
                if turn.may_log() {
                    tracing::debug!(error = %e, "udp receive failed");
                }
            }
        })
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Another SO_REUSEPORT socket of the same user on the port (a second peerbox, or another
    /// test's server) is "address in use", not a silent share of the clients.
    #[tokio::test]
    async fn a_port_held_by_another_reuseport_socket_is_refused() {
        let other = bind_one("127.0.0.1:0".parse().unwrap(), true, BUFFER).unwrap();
        let taken = other.local_addr().unwrap();
        let err = bind(taken).err().map(|e| e.kind());
        assert_eq!(err, Some(std::io::ErrorKind::AddrInUse));
        let free = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let ports: Vec<u16> = free
            .iter()
            .map(|s| s.local_addr().unwrap().port())
            .collect();
        assert!(
            ports.iter().all(|&p| p == ports[0] && p != taken.port()),
            "{ports:?}"
        );
    }
}
