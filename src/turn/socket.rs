//! UDP socket primitives shared by the listeners ([`super::udp`]) and the relay sockets
//! ([`super::relay`]): binding with big buffers, sending without the reactor, and the
//! readiness loop that receives in batches. No TURN state here, so the table
//! ([`super::server`]) can send to a client without depending on the listeners.

use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

/// Buffers of one relay socket (one allocation's traffic).
pub const RELAY_BUFFER: usize = 1 << 20;

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
