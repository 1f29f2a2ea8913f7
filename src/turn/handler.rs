//! Request dispatch: bytes from a client in, a reply (written into a reused buffer) or a
//! relay action out. Sync and socket-free apart from Allocate binding its relay socket, so
//! a fuzzer or benchmark can call [`Turn::handle`] directly (inside a tokio runtime).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::allocation::{BindError, State};
use super::auth::{Authed, Reject};
use super::channel_data::{self, MAX_CHANNEL, MIN_CHANNEL};
use super::codec::*;
use super::relay::{self, Family};
use super::server::{AddError, Allocation, ClientSink, FiveTuple, Turn, lock};
use super::stats::Stats;

pub const SOFTWARE_NAME: &[u8] = concat!("peerbox ", env!("CARGO_PKG_VERSION")).as_bytes();
const DEFAULT_LIFETIME: u32 = 600;
const MAX_LIFETIME: u32 = 3600;

/// What to do with a packet once handled.
#[derive(Debug)]
pub enum Action<'p> {
    /// Nothing (dropped, or an indication that needs no answer).
    None,
    /// Send the bytes written into `out` back to the client.
    Reply,
    /// Send `data` from the allocation's relay socket to `peer`.
    Relay {
        alloc: Arc<Allocation>,
        peer: SocketAddr,
        data: &'p [u8],
    },
}

fn reason(code: u16) -> &'static str {
    match code {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        420 => "Unknown Attribute",
        437 => "Allocation Mismatch",
        438 => "Stale Nonce",
        440 => "Address Family not Supported",
        441 => "Wrong Credentials",
        442 => "Unsupported Transport Protocol",
        443 => "Peer Address Family Mismatch",
        486 => "Allocation Quota Reached",
        508 => "Insufficient Capacity",
        _ => "Server Error",
    }
}

impl Turn {
    /// Handles one datagram or one framed stream message from `five.client`. Replies are
    /// written into `out`; relayed data is borrowed from `pkt`.
    pub fn handle<'p>(
        &self,
        pkt: &'p [u8],
        five: FiveTuple,
        sink: &ClientSink,
        out: &mut Vec<u8>,
    ) -> Action<'p> {
        if channel_data::is_channel_data(pkt) {
            return self.channel_data(pkt, &five);
        }
        let msg = match Msg::parse(pkt) {
            Ok(m) => m,
            Err(e) => {
                if e == ParseError::NotStun && classic_binding(pkt, five.client, out) {
                    return Action::Reply;
                }
                Stats::inc(&self.stats.malformed);
                if self.may_log() {
                    tracing::debug!(client = %five.client, error = %e, len = pkt.len(), "dropping junk");
                }
                return Action::None;
            }
        };
        match msg.class() {
            INDICATION if msg.method() == SEND => self.send_indication(&msg, &five),
            REQUEST => {
                self.request(&msg, &five, sink, out);
                Action::Reply
            }
            _ => Action::None,
        }
    }

    /// Handles a packet and performs the relay action; true when `out` holds a reply.
    pub fn process(
        &self,
        pkt: &[u8],
        five: FiveTuple,
        sink: &ClientSink,
        out: &mut Vec<u8>,
    ) -> bool {
        match self.handle(pkt, five, sink, out) {
            Action::None => false,
            Action::Reply => true,
            Action::Relay { alloc, peer, data } => {
                relay::to_peer(&alloc, &self.stats, peer, data);
                false
            }
        }
    }

    fn channel_data<'p>(&self, pkt: &'p [u8], five: &FiveTuple) -> Action<'p> {
        let Some((channel, data)) = channel_data::parse(pkt) else {
            Stats::inc(&self.stats.malformed);
            return Action::None;
        };
        let Some(alloc) = self.lookup(five) else {
            return Action::None;
        };
        let now = Instant::now();
        let peer = {
            let mut s = lock(&alloc.state);
            let Some(peer) = s.channel_peer(channel, now) else {
                Stats::inc(&self.stats.denied_no_permission);
                return Action::None;
            };
            if !s.spend(data.len(), now) {
                Stats::inc(&self.stats.dropped_bandwidth);
                return Action::None;
            }
            peer
        };
        Action::Relay { alloc, peer, data }
    }

    fn send_indication<'p>(&self, msg: &Msg<'p>, five: &FiveTuple) -> Action<'p> {
        let Some(alloc) = self.lookup(five) else {
            return Action::None;
        };
        let (Some(peer), Some(data)) = (
            msg.get(XOR_PEER_ADDRESS)
                .and_then(|v| xor_addr(v, &msg.tid)),
            msg.get(DATA_ATTR),
        ) else {
            return Action::None;
        };
        let now = Instant::now();
        {
            let mut s = lock(&alloc.state);
            if !s.permitted(peer.ip(), now) {
                Stats::inc(&self.stats.denied_no_permission);
                return Action::None;
            }
            if !s.spend(data.len(), now) {
                Stats::inc(&self.stats.dropped_bandwidth);
                return Action::None;
            }
        }
        Action::Relay { alloc, peer, data }
    }

    fn request(&self, msg: &Msg<'_>, five: &FiveTuple, sink: &ClientSink, out: &mut Vec<u8>) {
        let unknown = msg.unknown_required();
        if !unknown.is_empty() {
            let list: Vec<u8> = unknown.iter().flat_map(|t| t.to_be_bytes()).collect();
            let mut w = Writer::new(out, msg.method(), ERROR, msg.tid);
            w.error(420, reason(420)).attr(UNKNOWN_ATTRIBUTES, &list);
            finish(&mut w, msg, None);
            return;
        }
        let method = msg.method();
        if method == BINDING {
            let mut w = Writer::new(out, BINDING, SUCCESS, msg.tid);
            let client = canonical(five.client);
            w.xor_addr(XOR_MAPPED_ADDRESS, client)
                .plain_addr(MAPPED_ADDRESS, client);
            finish(&mut w, msg, None);
            return;
        }
        if !matches!(
            method,
            ALLOCATE | REFRESH | CREATE_PERMISSION | CHANNEL_BIND
        ) {
            return self.error(out, msg, five, 400, None);
        }
        let authed = match self.authenticate(msg, five) {
            Ok(a) => a,
            Err(Reject::Unauthorized) => return self.error(out, msg, five, 401, None),
            Err(Reject::StaleNonce) => return self.error(out, msg, five, 438, None),
            Err(Reject::WrongCredentials) => return self.error(out, msg, five, 441, None),
            Err(Reject::BadRequest) => return self.error(out, msg, five, 400, None),
        };
        let result = match method {
            ALLOCATE => self.allocate(msg, five, sink, out, &authed),
            REFRESH => self.refresh(msg, out, &authed),
            CREATE_PERMISSION => self.create_permission(msg, out, &authed),
            _ => self.channel_bind(msg, out, &authed),
        };
        if let Err(code) = result {
            self.error(out, msg, five, code, Some(&authed.key));
        }
    }

    fn error(
        &self,
        out: &mut Vec<u8>,
        msg: &Msg<'_>,
        five: &FiveTuple,
        code: u16,
        key: Option<&[u8]>,
    ) {
        let mut w = Writer::new(out, msg.method(), ERROR, msg.tid);
        w.error(code, reason(code));
        if matches!(code, 401 | 438) {
            let nonce = self
                .nonces
                .issue(five.client, super::credentials::unix_now());
            w.attr(REALM, self.credentials.realm().as_bytes())
                .attr(NONCE, nonce.as_bytes());
        }
        finish(&mut w, msg, key);
    }

    fn allocate(
        &self,
        msg: &Msg<'_>,
        five: &FiveTuple,
        sink: &ClientSink,
        out: &mut Vec<u8>,
        authed: &Authed,
    ) -> Result<(), u16> {
        if let Some(a) = &authed.alloc {
            // A retransmitted Allocate gets the same answer; any other is a mismatch.
            if a.tid != msg.tid {
                return Err(437);
            }
            let left = lock(&a.state)
                .expires
                .saturating_duration_since(Instant::now());
            allocate_success(out, msg, a, five, left.as_secs() as u32, None);
            return Ok(());
        }
        match msg.get(REQUESTED_TRANSPORT) {
            Some([17, _, _, _]) => {}
            Some([_, _, _, _]) => return Err(442),
            _ => return Err(400),
        }
        let even = msg.get(EVEN_PORT);
        let family = msg.get(REQUESTED_ADDRESS_FAMILY);
        let token = msg.get(RESERVATION_TOKEN);
        if token.is_some() && (even.is_some() || family.is_some()) {
            return Err(400);
        }
        let family = match family {
            None | Some([1, _, _, _]) => Family::V4,
            Some([2, _, _, _]) => Family::V6,
            Some([_, _, _, _]) => return Err(440),
            Some(_) => return Err(400),
        };
        let reserve_next = match even {
            None => false,
            Some([b, ..]) => b & 0x80 != 0,
            Some([]) => return Err(400),
        };
        let lifetime = match lifetime_attr(msg)? {
            Some(l) => l.clamp(DEFAULT_LIFETIME, MAX_LIFETIME),
            None => DEFAULT_LIFETIME,
        };
        self.check_room(five, &authed.username)
            .map_err(|e| self.add_error(e))?;
        let turn = &self.config.turn;
        let (socket, advertised, reserved) = match token {
            Some(t) => {
                // The reserved socket was bound for the address family of the first one.
                let s = self.take_reservation(t).ok_or(508u16)?;
                let fam = Family::of(s.local_addr().map_err(|_| 508u16)?.ip());
                let (_, advertised) = relay::addresses(turn, fam, five).ok_or(440u16)?;
                (
                    tokio::net::UdpSocket::from_std(s).map_err(|_| 508u16)?,
                    advertised,
                    None,
                )
            }
            None => {
                let (bind, advertised) = relay::addresses(turn, family, five).ok_or(440u16)?;
                let (s, next) = relay::open(bind, &turn.relay_ports, even.is_some(), reserve_next)
                    .map_err(|e| {
                        tracing::warn!(error = %e, "cannot open a relay socket");
                        508u16
                    })?;
                (s, advertised, next)
            }
        };
        let now = Instant::now();
        let token = match reserved {
            Some(next) => Some(self.reserve(next, now).ok_or(508u16)?),
            None => None,
        };
        let port = socket.local_addr().map_err(|_| 508u16)?.port();
        let now = Instant::now();
        let expires =
            (now + Duration::from_secs(lifetime as u64)).min(now + turn.max_allocation_age);
        let alloc = Arc::new(Allocation {
            five: *five,
            relay: Arc::new(socket),
            relayed: SocketAddr::new(advertised, port),
            username: authed.username.clone(),
            key: authed.key.clone(),
            created: now,
            tid: msg.tid,
            state: Mutex::new(State::new(expires, turn.bandwidth_bytes_per_sec, now)),
            cancel: CancellationToken::new(),
            sink: sink.clone(),
        });
        self.add(alloc.clone()).map_err(|e| self.add_error(e))?;
        tracing::debug!(client = %five.client, relayed = %alloc.relayed, "allocation created");
        tokio::spawn(relay::run(alloc.clone(), self.stats.clone()));
        allocate_success(out, msg, &alloc, five, lifetime, token);
        Ok(())
    }

    fn add_error(&self, e: AddError) -> u16 {
        match e {
            AddError::Exists => 437,
            AddError::Quota => {
                Stats::inc(&self.stats.denied_quota);
                486
            }
        }
    }

    fn refresh(&self, msg: &Msg<'_>, out: &mut Vec<u8>, authed: &Authed) -> Result<(), u16> {
        let alloc = authed.alloc.as_ref().ok_or(437u16)?;
        let requested = lifetime_attr(msg)?;
        let granted = if requested == Some(0) {
            self.remove(&alloc.five);
            0
        } else {
            let want = requested.unwrap_or(DEFAULT_LIFETIME).min(MAX_LIFETIME);
            let now = Instant::now();
            let deadline = alloc.created + self.config.turn.max_allocation_age;
            let expires = (now + Duration::from_secs(want as u64)).min(deadline);
            lock(&alloc.state).expires = expires;
            expires.saturating_duration_since(now).as_secs() as u32
        };
        let mut w = Writer::new(out, REFRESH, SUCCESS, msg.tid);
        w.u32(LIFETIME, granted);
        finish(&mut w, msg, Some(&authed.key));
        Ok(())
    }

    fn create_permission(
        &self,
        msg: &Msg<'_>,
        out: &mut Vec<u8>,
        authed: &Authed,
    ) -> Result<(), u16> {
        let alloc = authed.alloc.as_ref().ok_or(437u16)?;
        let mut peers = Vec::new();
        for a in msg.attrs().map_while(Result::ok) {
            if a.typ == MESSAGE_INTEGRITY {
                break;
            }
            if a.typ == XOR_PEER_ADDRESS {
                peers.push(xor_addr(a.value, &msg.tid).ok_or(400u16)?);
                if peers.len() > 64 {
                    return Err(508);
                }
            }
        }
        if peers.is_empty() {
            return Err(400);
        }
        for p in &peers {
            self.check_peer(alloc, *p)?;
        }
        let now = Instant::now();
        {
            let mut s = lock(&alloc.state);
            for p in &peers {
                s.permit(p.ip(), now).map_err(|_| 508u16)?;
            }
        }
        let mut w = Writer::new(out, CREATE_PERMISSION, SUCCESS, msg.tid);
        finish(&mut w, msg, Some(&authed.key));
        Ok(())
    }

    fn channel_bind(&self, msg: &Msg<'_>, out: &mut Vec<u8>, authed: &Authed) -> Result<(), u16> {
        let alloc = authed.alloc.as_ref().ok_or(437u16)?;
        let channel = match msg.get(CHANNEL_NUMBER) {
            Some([a, b, _, _]) => u16::from_be_bytes([*a, *b]),
            _ => return Err(400),
        };
        if !(MIN_CHANNEL..=MAX_CHANNEL).contains(&channel) {
            return Err(400);
        }
        let peer = msg
            .get(XOR_PEER_ADDRESS)
            .and_then(|v| xor_addr(v, &msg.tid))
            .ok_or(400u16)?;
        self.check_peer(alloc, peer)?;
        lock(&alloc.state)
            .bind(channel, peer, Instant::now())
            .map_err(|e| match e {
                BindError::Conflict => 400u16,
                BindError::Full => 508,
            })?;
        let mut w = Writer::new(out, CHANNEL_BIND, SUCCESS, msg.tid);
        finish(&mut w, msg, Some(&authed.key));
        Ok(())
    }

    /// 403 for a peer the policy refuses (whatever its family), 443 for one of the other
    /// family than the relay.
    fn check_peer(&self, alloc: &Allocation, peer: SocketAddr) -> Result<(), u16> {
        if !self.policy.permits(peer.ip()) {
            Stats::inc(&self.stats.denied_peer);
            if self.may_log() {
                tracing::debug!(client = %alloc.five.client, peer = %peer.ip(), "peer address refused");
            }
            return Err(403);
        }
        if Family::of(peer.ip()) != Family::of(alloc.relayed.ip()) {
            return Err(443);
        }
        Ok(())
    }
}

fn allocate_success(
    out: &mut Vec<u8>,
    msg: &Msg<'_>,
    a: &Allocation,
    five: &FiveTuple,
    lifetime: u32,
    token: Option<[u8; 8]>,
) {
    let mut w = Writer::new(out, ALLOCATE, SUCCESS, msg.tid);
    w.xor_addr(XOR_RELAYED_ADDRESS, a.relayed)
        .u32(LIFETIME, lifetime)
        .xor_addr(XOR_MAPPED_ADDRESS, canonical(five.client));
    if let Some(t) = token {
        w.attr(RESERVATION_TOKEN, &t);
    }
    finish(&mut w, msg, Some(&a.key));
}

fn lifetime_attr(msg: &Msg<'_>) -> Result<Option<u32>, u16> {
    match msg.get(LIFETIME) {
        None => Ok(None),
        Some(v) => Ok(Some(u32::from_be_bytes(v.try_into().map_err(|_| 400u16)?))),
    }
}

fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

/// SOFTWARE, then MESSAGE-INTEGRITY when the request was authenticated, then FINGERPRINT
/// when the request carried one.
fn finish(w: &mut Writer<'_>, msg: &Msg<'_>, key: Option<&[u8]>) {
    w.attr(SOFTWARE, SOFTWARE_NAME);
    if let Some(k) = key {
        w.integrity(k);
    }
    if msg.has(FINGERPRINT) {
        w.fingerprint();
    }
}

/// An RFC 3489 Binding request (no magic cookie): answer with MAPPED-ADDRESS only.
fn classic_binding(pkt: &[u8], client: SocketAddr, out: &mut Vec<u8>) -> bool {
    if pkt.len() < HEADER || pkt[..2] != [0, 1] {
        return false;
    }
    let len = u16::from_be_bytes([pkt[2], pkt[3]]) as usize;
    if len % 4 != 0 || HEADER + len > pkt.len() {
        return false;
    }
    let client = canonical(client);
    out.clear();
    out.extend_from_slice(&[0x01, 0x01, 0, 0]);
    out.extend_from_slice(&pkt[4..20]);
    out.extend_from_slice(&MAPPED_ADDRESS.to_be_bytes());
    match client {
        SocketAddr::V4(a) => {
            out.extend_from_slice(&[0, 8, 0, 1]);
            out.extend_from_slice(&a.port().to_be_bytes());
            out.extend_from_slice(&a.ip().octets());
        }
        SocketAddr::V6(a) => {
            out.extend_from_slice(&[0, 20, 0, 2]);
            out.extend_from_slice(&a.port().to_be_bytes());
            out.extend_from_slice(&a.ip().octets());
        }
    }
    let body = (out.len() - HEADER) as u16;
    out[2..4].copy_from_slice(&body.to_be_bytes());
    true
}
