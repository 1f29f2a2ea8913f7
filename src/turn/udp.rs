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

/// Serves one UDP socket until `shutdown`.
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
        let (n, client) = tokio::select! {
            biased;
            _ = &mut stop => return,
            r = socket.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    if turn.may_log() {
                        tracing::debug!(error = %e, "udp receive failed");
                    }
                    continue;
                }
            },
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
}
