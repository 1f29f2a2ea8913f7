//! A minimal TURN client for the tests, built on the `stun` crate (an implementation other
//! than the server's own codec): long-term auth with nonce retry, Allocate, Refresh,
//! CreatePermission, ChannelBind, Send indications and ChannelData, over UDP, TCP or TLS.
#![allow(dead_code)]
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use stun::attributes::*;
use stun::error_code::ErrorCodeAttribute;
use stun::fingerprint::FINGERPRINT;
use stun::integrity::MessageIntegrity;
use stun::message::*;
use stun::xoraddr::XorMappedAddress;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

pub const ATTR_REQUESTED_ADDRESS_FAMILY: AttrType = AttrType(0x0017);

/// A byte stream to the server: TCP, or TLS over TCP.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

enum Transport {
    Udp(UdpSocket),
    Stream(Box<dyn Stream>, SocketAddr, Vec<u8>),
}

/// What arrived from the server that is not a response.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    Data(SocketAddr, Vec<u8>),
    Channel(u16, Vec<u8>),
}

pub struct Client {
    t: Transport,
    server: SocketAddr,
    pub username: String,
    pub password: String,
    realm: Option<String>,
    nonce: Option<Vec<u8>>,
    pending: Vec<Incoming>,
}

/// A response: success, or the error code.
pub type Reply = Result<Message, u16>;

pub fn error_code(m: &Message) -> Option<u16> {
    let mut e = ErrorCodeAttribute::default();
    e.get_from(m).ok().map(|_| e.code.0)
}

pub fn xor_attr(m: &Message, t: AttrType) -> Option<SocketAddr> {
    let mut a = XorMappedAddress::default();
    a.get_from_as(m, t).ok()?;
    Some(SocketAddr::new(a.ip, a.port))
}

fn xor_value(addr: SocketAddr, tid_msg: &Message, t: AttrType) -> Vec<u8> {
    let mut tmp = Message::new();
    tmp.transaction_id = tid_msg.transaction_id;
    XorMappedAddress {
        ip: addr.ip(),
        port: addr.port(),
    }
    .add_to_as(&mut tmp, t)
    .expect("xor address");
    tmp.get(t).expect("attr")
}

impl Client {
    pub async fn udp(server: SocketAddr, username: &str, password: &str) -> Client {
        Client::udp_from("127.0.0.1:0".parse().unwrap(), server, username, password).await
    }

    /// Over UDP from a chosen local address (another 127/8 address is another client).
    pub async fn udp_from(
        local: SocketAddr,
        server: SocketAddr,
        username: &str,
        password: &str,
    ) -> Client {
        let s = UdpSocket::bind(local).await.expect("bind");
        Client::new(Transport::Udp(s), server, username, password)
    }

    pub async fn tcp(server: SocketAddr, username: &str, password: &str) -> Client {
        let s = TcpStream::connect(server).await.expect("connect");
        let local = s.local_addr().unwrap();
        Client::stream(Box::new(s), local, server, username, password)
    }

    /// Over an already connected stream (e.g. TLS to the HTTPS port) whose local address is
    /// `local`.
    pub fn stream(
        s: Box<dyn Stream>,
        local: SocketAddr,
        server: SocketAddr,
        username: &str,
        password: &str,
    ) -> Client {
        Client::new(
            Transport::Stream(s, local, Vec::new()),
            server,
            username,
            password,
        )
    }

    fn new(t: Transport, server: SocketAddr, username: &str, password: &str) -> Client {
        Client {
            t,
            server,
            username: username.into(),
            password: password.into(),
            realm: None,
            nonce: None,
            pending: Vec::new(),
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        match &self.t {
            Transport::Udp(s) => s.local_addr().unwrap(),
            Transport::Stream(_, local, _) => *local,
        }
    }

    pub async fn send_raw(&mut self, b: &[u8]) {
        match &mut self.t {
            Transport::Udp(s) => {
                s.send_to(b, self.server).await.expect("send");
            }
            Transport::Stream(s, _, _) => {
                s.write_all(b).await.expect("send");
                let pad = (4 - b.len() % 4) % 4;
                s.write_all(&[0u8; 3][..pad]).await.expect("send");
                s.flush().await.expect("flush");
            }
        }
    }

    /// The next datagram or stream frame, or None after `wait`.
    pub async fn recv_raw(&mut self, wait: Duration) -> Option<Vec<u8>> {
        match &mut self.t {
            Transport::Udp(s) => {
                let mut buf = vec![0u8; 70_000];
                let (n, _) = tokio::time::timeout(wait, s.recv_from(&mut buf))
                    .await
                    .ok()?
                    .ok()?;
                buf.truncate(n);
                Some(buf)
            }
            Transport::Stream(s, _, buf) => {
                let deadline = tokio::time::Instant::now() + wait;
                loop {
                    if buf.len() >= 4 {
                        let len = u16::from_be_bytes([buf[2], buf[3]]) as usize;
                        let total = if buf[0] & 0xC0 == 0x40 {
                            4 + ((len + 3) & !3)
                        } else {
                            20 + len
                        };
                        if buf.len() >= total {
                            let frame: Vec<u8> = buf.drain(..total).collect();
                            return Some(frame);
                        }
                    }
                    let mut chunk = vec![0u8; 70_000];
                    let n = tokio::time::timeout_at(deadline, s.read(&mut chunk))
                        .await
                        .ok()?
                        .ok()?;
                    if n == 0 {
                        return None;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
            }
        }
    }

    /// Builds a request of `method` with `attrs` (raw values; XOR addresses given as
    /// addresses), signed when a nonce is known.
    pub fn build(&self, method: Method, class: MessageClass, attrs: &[(AttrType, Val)]) -> Message {
        let mut m = Message::new();
        m.typ = MessageType::new(method, class);
        m.new_transaction_id().expect("tid");
        m.write_header();
        for (t, v) in attrs {
            match v {
                Val::Raw(b) => m.add(*t, b),
                Val::Addr(a) => {
                    let v = xor_value(*a, &m, *t);
                    m.add(*t, &v);
                }
            }
        }
        if let (Some(realm), Some(nonce)) = (&self.realm, &self.nonce) {
            m.add(ATTR_USERNAME, self.username.as_bytes());
            m.add(ATTR_REALM, realm.as_bytes());
            m.add(ATTR_NONCE, nonce);
            MessageIntegrity::new_long_term_integrity(
                self.username.clone(),
                realm.clone(),
                self.password.clone(),
            )
            .add_to(&mut m)
            .expect("integrity");
        }
        FINGERPRINT.add_to(&mut m).expect("fingerprint");
        m
    }

    /// Sends `m` and waits for the response with its transaction id (3 s, UDP retransmit
    /// once a second); other packets are kept for [`Client::recv`].
    pub async fn transact(&mut self, m: &Message) -> Option<Message> {
        for _ in 0..3 {
            self.send_raw(&m.raw).await;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
            loop {
                let now = tokio::time::Instant::now();
                if now >= deadline {
                    break;
                }
                let Some(b) = self.recv_raw(deadline - now).await else {
                    break;
                };
                if let Some(inc) = parse_incoming(&b) {
                    self.pending.push(inc);
                    continue;
                }
                let mut r = Message::new();
                r.raw = b;
                if r.decode().is_ok() && r.transaction_id == m.transaction_id {
                    return Some(r);
                }
            }
        }
        None
    }

    /// An authenticated request: learns realm and nonce from a 401/438 and retries once.
    pub async fn request(&mut self, method: Method, attrs: &[(AttrType, Val)]) -> Reply {
        for attempt in 0..2 {
            let m = self.build(method, CLASS_REQUEST, attrs);
            let r = self.transact(&m).await.ok_or(0u16)?;
            match error_code(&r) {
                None => return Ok(r),
                Some(code @ (401 | 438)) if attempt == 0 => {
                    let realm = r.get(ATTR_REALM).ok();
                    let nonce = r.get(ATTR_NONCE).ok();
                    if code == 401 && self.nonce.is_some() {
                        return Err(401);
                    }
                    match (realm, nonce) {
                        (Some(realm), Some(nonce)) => {
                            self.realm = Some(String::from_utf8(realm).expect("realm"));
                            self.nonce = Some(nonce);
                        }
                        _ => return Err(code),
                    }
                }
                Some(code) => return Err(code),
            }
        }
        Err(0)
    }

    /// Replaces the nonce (to test stale or forged ones).
    pub fn set_nonce(&mut self, nonce: &[u8]) {
        self.nonce = Some(nonce.to_vec());
    }

    pub async fn allocate(&mut self) -> Result<SocketAddr, u16> {
        let r = self
            .request(
                METHOD_ALLOCATE,
                &[(ATTR_REQUESTED_TRANSPORT, raw(&[17, 0, 0, 0]))],
            )
            .await?;
        Ok(xor_attr(&r, ATTR_XOR_RELAYED_ADDRESS).expect("XOR-RELAYED-ADDRESS"))
    }

    pub async fn refresh(&mut self, lifetime: u32) -> Result<u32, u16> {
        let r = self
            .request(
                METHOD_REFRESH,
                &[(ATTR_LIFETIME, raw(&lifetime.to_be_bytes()))],
            )
            .await?;
        let v = r.get(ATTR_LIFETIME).expect("LIFETIME");
        Ok(u32::from_be_bytes(v[..4].try_into().unwrap()))
    }

    pub async fn create_permission(&mut self, peers: &[SocketAddr]) -> Result<(), u16> {
        let attrs: Vec<_> = peers
            .iter()
            .map(|p| (ATTR_XOR_PEER_ADDRESS, Val::Addr(*p)))
            .collect();
        self.request(METHOD_CREATE_PERMISSION, &attrs)
            .await
            .map(|_| ())
    }

    pub async fn channel_bind(&mut self, channel: u16, peer: SocketAddr) -> Result<(), u16> {
        let mut n = [0u8; 4];
        n[..2].copy_from_slice(&channel.to_be_bytes());
        self.request(
            METHOD_CHANNEL_BIND,
            &[
                (ATTR_CHANNEL_NUMBER, raw(&n)),
                (ATTR_XOR_PEER_ADDRESS, Val::Addr(peer)),
            ],
        )
        .await
        .map(|_| ())
    }

    pub async fn send_indication(&mut self, peer: SocketAddr, data: &[u8]) {
        let saved = (self.realm.take(), self.nonce.take());
        let m = self.build(
            METHOD_SEND,
            CLASS_INDICATION,
            &[
                (ATTR_XOR_PEER_ADDRESS, Val::Addr(peer)),
                (ATTR_DATA, raw(data)),
            ],
        );
        (self.realm, self.nonce) = saved;
        self.send_raw(&m.raw).await;
    }

    pub async fn send_channel(&mut self, channel: u16, data: &[u8]) {
        let mut b = Vec::with_capacity(4 + data.len());
        b.extend_from_slice(&channel.to_be_bytes());
        b.extend_from_slice(&(data.len() as u16).to_be_bytes());
        b.extend_from_slice(data);
        self.send_raw(&b).await;
    }

    /// The next Data indication or ChannelData, or None after `wait`.
    pub async fn recv(&mut self, wait: Duration) -> Option<Incoming> {
        if !self.pending.is_empty() {
            return Some(self.pending.remove(0));
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let now = tokio::time::Instant::now();
            let b = self
                .recv_raw(deadline.saturating_duration_since(now))
                .await?;
            if let Some(i) = parse_incoming(&b) {
                return Some(i);
            }
        }
    }
}

fn parse_incoming(b: &[u8]) -> Option<Incoming> {
    if b.len() >= 4 && b[0] & 0xC0 == 0x40 {
        let len = u16::from_be_bytes([b[2], b[3]]) as usize;
        return Some(Incoming::Channel(
            u16::from_be_bytes([b[0], b[1]]),
            b.get(4..4 + len)?.to_vec(),
        ));
    }
    let mut m = Message::new();
    m.raw = b.to_vec();
    m.decode().ok()?;
    if m.typ != MessageType::new(METHOD_DATA, CLASS_INDICATION) {
        return None;
    }
    let peer = xor_attr(&m, ATTR_XOR_PEER_ADDRESS)?;
    Some(Incoming::Data(peer, m.get(ATTR_DATA).ok()?))
}

/// An attribute value for [`Client::build`].
pub enum Val {
    Raw(Vec<u8>),
    Addr(SocketAddr),
}

pub fn raw(b: &[u8]) -> Val {
    Val::Raw(b.to_vec())
}

/// A UDP peer on loopback.
pub struct Peer {
    pub socket: UdpSocket,
}

impl Peer {
    pub async fn new() -> Peer {
        Peer {
            socket: UdpSocket::bind("127.0.0.1:0").await.expect("bind peer"),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.socket.local_addr().unwrap()
    }

    pub async fn recv(&self, wait: Duration) -> Option<(Vec<u8>, SocketAddr)> {
        let mut buf = vec![0u8; 70_000];
        let (n, from) = tokio::time::timeout(wait, self.socket.recv_from(&mut buf))
            .await
            .ok()?
            .ok()?;
        buf.truncate(n);
        Some((buf, from))
    }
}
