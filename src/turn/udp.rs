//! UDP listeners: binding with big buffers (and SO_REUSEPORT, one socket per core), and the
//! receive loop that hands each datagram to the handler with reused buffers.

use std::net::SocketAddr;
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use super::server::{ClientSink, FiveTuple, Proto, Turn};

/// coturn's default socket buffer size, for the listening sockets.
const BUFFER: usize = 4 << 20;
/// Buffers of one relay socket (one allocation's traffic).
pub const RELAY_BUFFER: usize = 1 << 20;

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

/// One non-blocking UDP socket on `addr` (IPv6 ones IPv6-only) with `buffer` bytes of send and
/// receive buffer: the listening sockets and every relay socket are made here.
pub fn bind_one(
    addr: SocketAddr,
    reuse_port: bool,
    buffer: usize,
) -> std::io::Result<std::net::UdpSocket> {
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
    let _ = s.set_recv_buffer_size(buffer);
    let _ = s.set_send_buffer_size(buffer);
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// Sends one datagram now, on the non-blocking socket itself. tokio's `try_send_to` first asks
/// the reactor whether the socket is writable, and a relay socket made moments ago has had no
/// readiness event yet: the first packet to a peer was dropped that way now and then. A UDP
/// send fails only when the kernel's buffer is full, and then the datagram is dropped, as it
/// would be on the wire.
pub fn send_now(socket: &UdpSocket, data: &[u8], to: SocketAddr) -> std::io::Result<usize> {
    socket2::SockRef::from(socket).send_to(data, &to.into())
}

/// Datagrams received in a row before a loop yields to the other tasks on its thread.
const BATCH: usize = 64;

/// Runs until `stop`: whenever `socket` is readable, calls `batch` (which receives with
/// [`recv_batch`]) and yields to the thread's other tasks when it did not run the socket dry.
/// The listening sockets and every relay socket are served this way.
pub async fn serve_readable(
    socket: &UdpSocket,
    stop: &CancellationToken,
    mut batch: impl FnMut() -> bool,
) {
    let stop = stop.cancelled();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            biased;
            _ = &mut stop => return,
            r = socket.readable() => if r.is_err() { continue },
        }
        if !batch() {
            tokio::task::yield_now().await;
        }
    }
}

/// Receives up to [`BATCH`] datagrams into `buf[into]` without waiting and hands each result
/// (length and sender, or an error such as an ICMP report of an earlier send) to `each`, with
/// the whole buffer. `true` when the socket ran dry.
pub fn recv_batch(
    socket: &UdpSocket,
    buf: &mut [u8],
    into: std::ops::Range<usize>,
    mut each: impl FnMut(&mut [u8], std::io::Result<(usize, SocketAddr)>),
) -> bool {
    for _ in 0..BATCH {
        let r = socket.try_recv_from(&mut buf[into.clone()]);
        if matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock) {
            return true;
        }
        each(buf, r);
    }
    false
}

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
