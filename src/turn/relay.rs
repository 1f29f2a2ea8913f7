//! Relay sockets: choosing the address to bind and to advertise, opening a UDP socket on a
//! random free port in `relay_ports`, and the per-allocation task that carries peer packets
//! back to the client (as ChannelData when a channel is bound, else a Data indication).
//!
//! Advertised address: `external_ip` when set (the admin's answer behind 1:1 NAT); else the
//! listening address when it is specific; else, for a wildcard listener, the local address
//! the client reached (a TCP connection's local address), or for UDP the source address the
//! kernel routes towards the client (found by connecting a throwaway UDP socket).

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use ring::rand::{SecureRandom, SystemRandom};
use tokio::net::UdpSocket;

use super::channel_data;
use super::codec::{self, DATA, INDICATION};
#[cfg(test)]
use super::server::Proto;
use super::server::{Allocation, FiveTuple, lock};
use super::stats::Stats;
use crate::config::TurnConfig;

/// Room before the payload in the receive buffer for the largest Data indication header:
/// 20 (STUN header) + 24 (XOR-PEER-ADDRESS, IPv6) + 4 (DATA header).
const HEAD: usize = 48;
const MAX_PAYLOAD: usize = 65_535;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(ip: IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }
}

/// (address to bind the relay socket to, address to advertise), or None when this server
/// has no address of `family` (440).
pub fn addresses(
    config: &TurnConfig,
    family: Family,
    five: &FiveTuple,
) -> Option<(IpAddr, IpAddr)> {
    let reached = five.server.ip().to_canonical();
    let listen: Vec<IpAddr> = config.listen.iter().map(|a| a.ip()).collect();
    let bind = if Family::of(reached) == family {
        reached
    } else {
        match family {
            Family::V4 => listen.iter().copied().find(|ip| ip.is_ipv4()).or_else(|| {
                listen
                    .contains(&IpAddr::V6(Ipv6Addr::UNSPECIFIED))
                    .then_some(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
            })?,
            Family::V6 => listen.iter().copied().find(|ip| ip.is_ipv6())?,
        }
    };
    if let Some(ext) = config.external_ip.filter(|ip| Family::of(*ip) == family) {
        return Some((bind, ext));
    }
    if !bind.is_unspecified() {
        return Some((bind, bind));
    }
    let client = five.client.ip().to_canonical();
    if Family::of(client) != family {
        return None;
    }
    let probe = std::net::UdpSocket::bind(SocketAddr::new(bind, 0)).ok()?;
    probe
        .connect(SocketAddr::new(client, five.client.port().max(1)))
        .ok()?;
    let ip = probe.local_addr().ok()?.ip();
    Some((bind, ip))
}

/// Binds a UDP socket on a random free port of `ports` (an even one when asked), with big
/// buffers. With `reserve_next`, also binds the port after it (EVEN-PORT with the R bit) and
/// returns that socket too.
pub fn open(
    bind: IpAddr,
    ports: &std::ops::RangeInclusive<u16>,
    even: bool,
    reserve_next: bool,
) -> std::io::Result<(UdpSocket, Option<std::net::UdpSocket>)> {
    let rng = SystemRandom::new();
    let (lo, hi) = (*ports.start() as u32, *ports.end() as u32);
    let span = hi - lo + 1;
    let mut last = std::io::Error::new(std::io::ErrorKind::AddrInUse, "no free relay port");
    for _ in 0..40 {
        let mut r = [0u8; 4];
        let _ = rng.fill(&mut r);
        let mut port = lo + u32::from_be_bytes(r) % span;
        if even && port % 2 == 1 {
            port = if port > lo { port - 1 } else { port + 1 };
        }
        if port > hi || (reserve_next && port + 1 > hi) {
            continue;
        }
        let s = match bind_one(SocketAddr::new(bind, port as u16)) {
            Ok(s) => s,
            Err(e) => {
                last = e;
                continue;
            }
        };
        let next = if reserve_next {
            match bind_one(SocketAddr::new(bind, port as u16 + 1)) {
                Ok(n) => Some(n),
                Err(e) => {
                    last = e;
                    continue;
                }
            }
        } else {
            None
        };
        return Ok((UdpSocket::from_std(s)?, next));
    }
    Err(last)
}

fn bind_one(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    super::socket::bind_one(addr, false, super::socket::RELAY_BUFFER)
}

/// Client -> peer: sends `data` from the relay socket, dropping it when the socket is full.
pub fn to_peer(alloc: &Allocation, stats: &Stats, peer: SocketAddr, data: &[u8]) {
    if super::socket::send_now(&alloc.relay, data, peer).is_ok() {
        Stats::relayed(
            &stats.client_to_peer_packets,
            &stats.client_to_peer_bytes,
            data.len(),
        );
    }
}

/// Client of `from` -> client of `to`, both allocations of this server: the packet is handed
/// over in-process, as if it had left `from`'s relay socket and arrived at `to`'s (the same
/// permission and bandwidth checks on both sides). No kernel round trip, and no reliance on
/// the network routing the server's own external address back to it (a 1:1 NAT often does
/// not hairpin).
pub fn to_allocation(from: &Allocation, to: &Allocation, stats: &Stats, data: &[u8]) {
    Stats::relayed(
        &stats.client_to_peer_packets,
        &stats.client_to_peer_bytes,
        data.len(),
    );
    Stats::inc(&stats.relayed_internally);
    let n = data.len().min(MAX_PAYLOAD);
    let deliver = |buf: &mut Vec<u8>| {
        buf[HEAD..HEAD + n].copy_from_slice(&data[..n]);
        forward(to, stats, buf, n, from.relayed, Via::Server);
    };
    // The thread's buffer is free here (this runs from a listener's receive path, never
    // inside a relay task's use of it); a fresh one is the fallback all the same.
    BUF.with(|b| match b.try_borrow_mut() {
        Ok(mut buf) => deliver(&mut buf),
        Err(_) => deliver(&mut vec![0u8; HEAD + MAX_PAYLOAD + 4]),
    });
}

thread_local! {
    /// One receive buffer per thread, shared by the relay tasks running there: a task only
    /// uses it between two awaits, so an allocation does not hold 64 KiB of its own.
    static BUF: RefCell<Vec<u8>> = RefCell::new(vec![0u8; HEAD + MAX_PAYLOAD + 4]);
}

/// Peer -> client, until the allocation is cancelled. The payload is received after
/// [`HEAD`] spare bytes of the thread's buffer and the header written in front of it.
/// `media` are the SFU's media addresses: from there a permission on one of our own addresses
/// counts (the SFU answers the client it relays for).
pub async fn run(alloc: Arc<Allocation>, stats: Arc<Stats>, media: Arc<[SocketAddr]>) {
    super::socket::serve_readable(&alloc.relay, &alloc.cancel, || {
        BUF.with_borrow_mut(|buf| {
            super::socket::recv_batch(&alloc.relay, buf, HEAD..HEAD + MAX_PAYLOAD, |buf, r| {
                if let Ok((n, peer)) = r {
                    let canonical = SocketAddr::new(peer.ip().to_canonical(), peer.port());
                    let via = if media.contains(&canonical) {
                        Via::Sfu
                    } else {
                        Via::Kernel
                    };
                    forward(&alloc, &stats, buf, n, peer, via);
                }
            })
        })
    })
    .await;
}

/// How a packet for the client arrived.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Via {
    /// On the relay socket, from the network.
    Kernel,
    /// From another allocation of this server.
    Server,
    /// On the relay socket, from the SFU's media address.
    Sfu,
}

/// Sends the `n` bytes received at `buf[HEAD..]` from `peer` to the client, when the peer
/// has a permission: as ChannelData when a channel is bound, else as a Data indication.
/// From the network, a permission that allows only in-server traffic (one of our own
/// addresses) does not count: nothing on this machine but another allocation (handed over
/// in-process) or the SFU's media socket may talk to a client.
fn forward(
    alloc: &Allocation,
    stats: &Stats,
    buf: &mut [u8],
    n: usize,
    peer: SocketAddr,
    via: Via,
) {
    let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
    let now = Instant::now();
    let stream = alloc.five.proto.is_stream();
    let channel = {
        let mut s = lock(&alloc.state);
        let allowed = match s.permission(peer.ip(), now) {
            Some(p) => via != Via::Kernel || p.external,
            None => false,
        };
        if !allowed {
            Stats::inc(&stats.denied_no_permission);
            return;
        }
        if !s.spend(n, now) {
            Stats::inc(&stats.dropped_bandwidth);
            return;
        }
        s.channel_for(peer, now)
    };
    let frame = match channel {
        Some(c) => {
            buf[HEAD - 4..HEAD].copy_from_slice(&channel_data::header(c, n));
            let mut end = HEAD + n;
            if stream {
                let pad = (4 - n % 4) % 4;
                buf[end..end + pad].fill(0);
                end += pad;
            }
            &buf[HEAD - 4..end]
        }
        None => {
            let counter = alloc
                .indications
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            match data_indication(buf, n, peer, counter) {
                Some(r) => &buf[r],
                None => return,
            }
        }
    };
    if alloc.sink.send(frame, alloc.five.client) {
        Stats::relayed(
            &stats.peer_to_client_packets,
            &stats.peer_to_client_bytes,
            n,
        );
    }
}

/// Writes a Data indication header in front of the `n` payload bytes at `buf[HEAD..]` and
/// pads the payload; returns the message's range. None when it would not fit in STUN.
fn data_indication(
    buf: &mut [u8],
    n: usize,
    peer: SocketAddr,
    counter: u64,
) -> Option<std::ops::Range<usize>> {
    let mut tid = [0u8; 12];
    tid[4..].copy_from_slice(&counter.to_be_bytes());
    let mut addr = [0u8; 20];
    let alen = codec::encode_xor_addr(peer, &tid, &mut addr);
    let head = 20 + 4 + alen + 4;
    let pad = (4 - n % 4) % 4;
    let body = head - 20 + n + pad;
    if body > 65_532 {
        return None;
    }
    let start = HEAD - head;
    let h = &mut buf[start..HEAD];
    h[0..2].copy_from_slice(&codec::type_of(DATA, INDICATION).to_be_bytes());
    h[2..4].copy_from_slice(&(body as u16).to_be_bytes());
    h[4..8].copy_from_slice(&codec::MAGIC.to_be_bytes());
    h[8..20].copy_from_slice(&tid);
    h[20..22].copy_from_slice(&codec::XOR_PEER_ADDRESS.to_be_bytes());
    h[22..24].copy_from_slice(&(alen as u16).to_be_bytes());
    h[24..24 + alen].copy_from_slice(&addr[..alen]);
    h[24 + alen..26 + alen].copy_from_slice(&codec::DATA_ATTR.to_be_bytes());
    h[26 + alen..28 + alen].copy_from_slice(&(n as u16).to_be_bytes());
    buf[HEAD + n..HEAD + n + pad].fill(0);
    Some(start..HEAD + n + pad)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn data_indication_parses_back() {
        for peer in ["192.0.2.1:7", "[2001:db8::5]:9000"] {
            let peer: SocketAddr = peer.parse().unwrap();
            for n in [0usize, 1, 5, 100] {
                let mut buf = vec![0u8; HEAD + MAX_PAYLOAD + 4];
                for (i, b) in buf[HEAD..HEAD + n].iter_mut().enumerate() {
                    *b = i as u8;
                }
                let r = data_indication(&mut buf, n, peer, 42).unwrap();
                let m = codec::Msg::parse(&buf[r]).unwrap();
                assert_eq!((m.method(), m.class()), (DATA, INDICATION));
                let got = codec::xor_addr(m.get(codec::XOR_PEER_ADDRESS).unwrap(), &m.tid);
                assert_eq!(got, Some(peer));
                let data = m.get(codec::DATA_ATTR).unwrap();
                assert_eq!(data.len(), n);
                assert!(data.iter().enumerate().all(|(i, b)| *b == i as u8));
            }
        }
    }

    #[test]
    fn advertised_address_rules() {
        let cfg = |extra: &str| {
            crate::Config::parse(&format!("[turn]\n{extra}"), std::path::Path::new("/"))
                .unwrap()
                .turn
        };
        let five = |client: &str, server: &str| FiveTuple {
            client: client.parse().unwrap(),
            server: server.parse().unwrap(),
            proto: Proto::Udp,
        };
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let c = cfg("listen = [\"127.0.0.1:3478\"]");
        let f = five("127.0.0.1:5000", "127.0.0.1:3478");
        assert_eq!(
            addresses(&c, Family::V4, &f),
            Some((ip("127.0.0.1"), ip("127.0.0.1")))
        );
        assert_eq!(addresses(&c, Family::V6, &f), None);
        let c = cfg("listen = [\"127.0.0.1:3478\"]\nexternal_ip = \"203.0.113.9\"");
        assert_eq!(
            addresses(&c, Family::V4, &f),
            Some((ip("127.0.0.1"), ip("203.0.113.9")))
        );
        let c = cfg("listen = [\"0.0.0.0:3478\"]");
        let f = five("127.0.0.1:5000", "0.0.0.0:3478");
        assert_eq!(
            addresses(&c, Family::V4, &f),
            Some((ip("0.0.0.0"), ip("127.0.0.1")))
        );
        let c = cfg("listen = [\"127.0.0.1:3478\", \"[::1]:3478\"]");
        assert_eq!(addresses(&c, Family::V6, &f), Some((ip("::1"), ip("::1"))));
    }
}
