//! UDP listeners: binding with big buffers (and SO_REUSEPORT, one socket per core), and the
//! receive loop that hands each datagram to the handler with reused buffers.

use std::net::SocketAddr;
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use super::server::{ClientSink, FiveTuple, Proto, Turn};

/// coturn's default socket buffer size.
const BUFFER: usize = 4 << 20;

/// Binds the UDP listening socket(s) for one address: several SO_REUSEPORT sockets on Linux
/// (one per core, up to 4) so the kernel spreads clients over the runtime's threads.
pub fn bind(addr: SocketAddr) -> std::io::Result<Vec<UdpSocket>> {
    let n = if cfg!(target_os = "linux") {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
    } else {
        1
    };
    let first = bind_one(addr, n > 1)?;
    let addr = first.local_addr()?;
    let mut out = vec![UdpSocket::from_std(first)?];
    for _ in 1..n {
        match bind_one(addr, true) {
            Ok(s) => out.push(UdpSocket::from_std(s)?),
            Err(_) => break,
        }
    }
    Ok(out)
}

fn bind_one(addr: SocketAddr, reuse_port: bool) -> std::io::Result<std::net::UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    #[cfg(all(unix, not(any(target_os = "solaris", target_os = "illumos"))))]
    if reuse_port {
        s.set_reuse_port(true)?;
    }
    #[cfg(not(all(unix, not(any(target_os = "solaris", target_os = "illumos")))))]
    let _ = reuse_port;
    let _ = s.set_recv_buffer_size(BUFFER);
    let _ = s.set_send_buffer_size(BUFFER);
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// Datagrams handled in a row before the loop yields to the relay tasks on its thread.
const BATCH: usize = 64;

/// Serves one UDP socket on a thread of its own (a current-thread runtime) until `shutdown`.
/// Allocations made through it get their relay socket and task on that thread too, so a
/// packet is received, relayed and answered where the kernel woke us: no hand-off between
/// runtime workers (which cost a futex wake and a context switch per packet on a quiet
/// multi-threaded runtime). This is coturn's model of one relay thread per socket.
pub fn spawn(
    turn: Arc<Turn>,
    socket: UdpSocket,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let socket = socket.into_std()?;
    std::thread::Builder::new()
        .name("turn-udp".into())
        .spawn(move || {
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

/// Serves one UDP socket until `shutdown`: waits for readability, then drains the socket
/// with non-blocking receives (up to [`BATCH`] before yielding).
pub async fn run(turn: Arc<Turn>, socket: UdpSocket, shutdown: CancellationToken) {
    let socket = Arc::new(socket);
    let Ok(local) = socket.local_addr() else {
        return;
    };
    let sink = ClientSink::Udp(socket.clone());
    let mut buf = vec![0u8; 65_536];
    let mut out = Vec::with_capacity(1500);
    let stop = shutdown.cancelled();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            biased;
            _ = &mut stop => return,
            r = socket.readable() => if r.is_err() { continue },
        }
        let mut drained = false;
        for _ in 0..BATCH {
            let (n, client) = match socket.try_recv_from(&mut buf) {
                Ok(x) => x,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    drained = true;
                    break;
                }
                Err(e) => {
                    // ICMP errors from earlier sends surface here; the next read goes on.
                    if turn.may_log() {
                        tracing::debug!(error = %e, "udp receive failed");
                    }
                    continue;
                }
            };
            let five = FiveTuple {
                client,
                server: local,
                proto: Proto::Udp,
            };
            if turn.process(&buf[..n], five, &sink, &mut out) {
                let _ = socket.try_send_to(&out, client);
            }
        }
        if !drained {
            tokio::task::yield_now().await;
        }
    }
}
