//! Request dispatch: bytes from a client in, a reply (written into a reused buffer) or a
//! relay action out. Sync and socket-free apart from Allocate binding its relay socket, so
//! a fuzzer or benchmark can call [`Turn::handle`] directly (inside a tokio runtime).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::allocation::{BindError, Perm, State};
use super::auth::{Authed, Reject};
use super::channel_data::{self, MAX_CHANNEL, MIN_CHANNEL};
use super::codec::*;
use super::relay::{self, Family};
use super::server::{AddError, Allocation, ClientSink, FiveTuple, PeerKind, Turn, lock};
use super::stats::Stats;

pub const SOFTWARE_NAME: &[u8] = concat!("peerbox ", env!("CARGO_PKG_VERSION")).as_bytes();
const DEFAULT_LIFETIME: u32 = 600;
const MAX_LIFETIME: u32 = 3600;

/// STUN/TURN error codes (RFC 8489 14.8, RFC 8656 18).
pub mod code {
    pub const BAD_REQUEST: u16 = 400;
    pub const UNAUTHORIZED: u16 = 401;
    pub const FORBIDDEN: u16 = 403;
    pub const UNKNOWN_ATTRIBUTE: u16 = 420;
    pub const ALLOCATION_MISMATCH: u16 = 437;
    pub const STALE_NONCE: u16 = 438;
    pub const ADDRESS_FAMILY_NOT_SUPPORTED: u16 = 440;
    pub const WRONG_CREDENTIALS: u16 = 441;
    pub const UNSUPPORTED_TRANSPORT: u16 = 442;
    pub const PEER_ADDRESS_FAMILY_MISMATCH: u16 = 443;
    pub const ALLOCATION_QUOTA_REACHED: u16 = 486;
    pub const INSUFFICIENT_CAPACITY: u16 = 508;
}
use code::*;

/// What to do with a packet once handled.
#[derive(Debug)]
pub enum Action<'p> {
    /// Nothing (dropped, or an indication that needs no answer).
    None,
    /// Send the bytes written into `out` back to the client.
    Reply,
    /// Send `data` from the allocation's relay address to `peer`.
    Relay {
        alloc: Arc<Allocation>,
        peer: SocketAddr,
        data: &'p [u8],
        /// Out through the relay socket, or straight to another allocation of this server.
        kind: PeerKind,
    },
}

fn reason(code: u16) -> &'static str {
    match code {
        BAD_REQUEST => "Bad Request",
        UNAUTHORIZED => "Unauthorized",
        FORBIDDEN => "Forbidden",
        UNKNOWN_ATTRIBUTE => "Unknown Attribute",
        ALLOCATION_MISMATCH => "Allocation Mismatch",
        STALE_NONCE => "Stale Nonce",
        ADDRESS_FAMILY_NOT_SUPPORTED => "Address Family not Supported",
        WRONG_CREDENTIALS => "Wrong Credentials",
        UNSUPPORTED_TRANSPORT => "Unsupported Transport Protocol",
        PEER_ADDRESS_FAMILY_MISMATCH => "Peer Address Family Mismatch",
        ALLOCATION_QUOTA_REACHED => "Allocation Quota Reached",
        INSUFFICIENT_CAPACITY => "Insufficient Capacity",
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
                    Stats::inc(&self.stats.bindings[five.proto.index()]);
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
            Action::Relay {
                alloc,
                peer,
                data,
                kind,
            } => {
                match kind {
                    PeerKind::External => relay::to_peer(&alloc, &self.stats, peer, data),
                    PeerKind::Internal(to) => relay::to_allocation(&alloc, &to, &self.stats, data),
                }
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
        let (peer, perm) = {
            let mut s = lock(&alloc.state);
            let Some(found) = s.channel_peer(channel, now) else {
                Stats::inc(&self.stats.denied_no_permission);
                return Action::None;
            };
            if !s.spend(data.len(), now) {
                Stats::inc(&self.stats.dropped_bandwidth);
                return Action::None;
            }
            found
        };
        self.relay_action(alloc, peer, perm, data)
    }

    /// Where data for `peer` goes under its permission: to the allocation whose relay address
    /// it is (one of ours), else out through the kernel if the policy allowed that.
    fn relay_action<'p>(
        &self,
        alloc: Arc<Allocation>,
        peer: SocketAddr,
        perm: Perm,
        data: &'p [u8],
    ) -> Action<'p> {
        let kind = match perm.own.then(|| self.by_relayed(peer)).flatten() {
            Some(to) => PeerKind::Internal(to),
            None if perm.external || (perm.own && self.policy.is_media(peer)) => PeerKind::External,
            None => {
                Stats::inc(&self.stats.denied_peer);
                return Action::None;
            }
        };
        Action::Relay {
            alloc,
            peer,
            data,
            kind,
        }
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
        let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
        let now = Instant::now();
        let perm = {
            let mut s = lock(&alloc.state);
            let Some(perm) = s.permission(peer.ip(), now) else {
                Stats::inc(&self.stats.denied_no_permission);
                return Action::None;
            };
            if !s.spend(data.len(), now) {
                Stats::inc(&self.stats.dropped_bandwidth);
                return Action::None;
            }
            perm
        };
        self.relay_action(alloc, peer, perm, data)
    }

    fn request(&self, msg: &Msg<'_>, five: &FiveTuple, sink: &ClientSink, out: &mut Vec<u8>) {
        let unknown = msg.unknown_required();
        if !unknown.is_empty() {
            let list: Vec<u8> = unknown.iter().flat_map(|t| t.to_be_bytes()).collect();
            let mut w = Writer::new(out, msg.method(), ERROR, msg.tid);
            w.error(UNKNOWN_ATTRIBUTE, reason(UNKNOWN_ATTRIBUTE))
                .attr(UNKNOWN_ATTRIBUTES, &list);
            finish(&mut w, msg, None);
            return;
        }
        let method = msg.method();
        if method == BINDING {
            Stats::inc(&self.stats.bindings[five.proto.index()]);
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
            return self.error(out, msg, five, BAD_REQUEST, None);
        }
        let authed = match self.authenticate(msg, five) {
            Ok(a) => a,
            Err(r) => {
                let code = match r {
                    Reject::Unauthorized => UNAUTHORIZED,
                    Reject::StaleNonce => STALE_NONCE,
                    Reject::WrongCredentials => WRONG_CREDENTIALS,
                    Reject::BadRequest => BAD_REQUEST,
                };
                return self.error(out, msg, five, code, None);
            }
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
        if matches!(code, UNAUTHORIZED | STALE_NONCE) {
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
                return Err(ALLOCATION_MISMATCH);
            }
            let left = lock(&a.state)
                .expires
                .saturating_duration_since(Instant::now());
            allocate_success(out, msg, a, five, left.as_secs() as u32, None);
            return Ok(());
        }
        match msg.get(REQUESTED_TRANSPORT) {
            Some([17, _, _, _]) => {}
            Some([_, _, _, _]) => return Err(UNSUPPORTED_TRANSPORT),
            _ => return Err(BAD_REQUEST),
        }
        let even = msg.get(EVEN_PORT);
        let family = msg.get(REQUESTED_ADDRESS_FAMILY);
        let token = msg.get(RESERVATION_TOKEN);
        if token.is_some() && (even.is_some() || family.is_some()) {
            return Err(BAD_REQUEST);
        }
        let family = match family {
            None | Some([1, _, _, _]) => Family::V4,
            Some([2, _, _, _]) => Family::V6,
            Some([_, _, _, _]) => return Err(ADDRESS_FAMILY_NOT_SUPPORTED),
            Some(_) => return Err(BAD_REQUEST),
        };
        let reserve_next = match even {
            None => false,
            Some([b, ..]) => b & 0x80 != 0,
            Some([]) => return Err(BAD_REQUEST),
        };
        let lifetime = match lifetime_attr(msg)? {
            Some(l) => l.clamp(DEFAULT_LIFETIME, MAX_LIFETIME),
            None => DEFAULT_LIFETIME,
        };
        let owner = self.credentials.owner(&authed.username).to_owned();
        self.check_room(five, &owner)
            .map_err(|e| self.add_error(e, five))?;
        let turn = &self.config.turn;
        let (socket, advertised, reserved) = match token {
            Some(t) => {
                // The reserved socket was bound for the address family of the first one.
                let s = self.take_reservation(t).ok_or(INSUFFICIENT_CAPACITY)?;
                let fam = Family::of(s.local_addr().map_err(|_| INSUFFICIENT_CAPACITY)?.ip());
                let (_, advertised) =
                    relay::addresses(turn, fam, five).ok_or(ADDRESS_FAMILY_NOT_SUPPORTED)?;
                (
                    tokio::net::UdpSocket::from_std(s).map_err(|_| INSUFFICIENT_CAPACITY)?,
                    advertised,
                    None,
                )
            }
            None => {
                let (bind, advertised) =
                    relay::addresses(turn, family, five).ok_or(ADDRESS_FAMILY_NOT_SUPPORTED)?;
                let (s, next) = relay::open(bind, &turn.relay_ports, even.is_some(), reserve_next)
                    .map_err(|e| {
                        tracing::warn!(error = %e, "cannot open a relay socket");
                        INSUFFICIENT_CAPACITY
                    })?;
                (s, advertised, next)
            }
        };
        let now = Instant::now();
        let token = match reserved {
            Some(next) => Some(self.reserve(next, now).ok_or(INSUFFICIENT_CAPACITY)?),
            None => None,
        };
        let port = socket
            .local_addr()
            .map_err(|_| INSUFFICIENT_CAPACITY)?
            .port();
        let now = Instant::now();
        // The answer says what the allocation really gets: `max_allocation_age` caps it.
        let granted = Duration::from_secs(lifetime as u64).min(turn.max_allocation_age);
        let alloc = Arc::new(Allocation {
            five: *five,
            relay: Arc::new(socket),
            relayed: SocketAddr::new(advertised.to_canonical(), port),
            username: authed.username.clone(),
            owner,
            key: authed.key.clone(),
            created: now,
            tid: msg.tid,
            state: Mutex::new(State::new(now + granted, turn.bandwidth_bytes_per_sec, now)),
            cancel: CancellationToken::new(),
            sink: sink.clone(),
            indications: Default::default(),
        });
        self.add(alloc.clone())
            .map_err(|e| self.add_error(e, five))?;
        tracing::debug!(client = %five.client, relayed = %alloc.relayed, "allocation created");
        tokio::spawn(relay::run(
            alloc.clone(),
            self.stats.clone(),
            self.policy.media(),
        ));
        allocate_success(out, msg, &alloc, five, granted.as_secs() as u32, token);
        Ok(())
    }

    fn add_error(&self, e: AddError, five: &FiveTuple) -> u16 {
        if e == AddError::Exists {
            return ALLOCATION_MISMATCH;
        }
        Stats::inc(&self.stats.denied_quota);
        if self.may_log() {
            tracing::info!(client = %five.client, quota = ?e, "allocation refused: quota reached");
        }
        ALLOCATION_QUOTA_REACHED
    }

    fn refresh(&self, msg: &Msg<'_>, out: &mut Vec<u8>, authed: &Authed) -> Result<(), u16> {
        let alloc = authed.alloc.as_ref().ok_or(ALLOCATION_MISMATCH)?;
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
        let alloc = authed.alloc.as_ref().ok_or(ALLOCATION_MISMATCH)?;
        let mut peers = Vec::new();
        for a in msg.attrs().map_while(Result::ok) {
            if a.typ == MESSAGE_INTEGRITY {
                break;
            }
            if a.typ == XOR_PEER_ADDRESS {
                peers.push(xor_addr(a.value, &msg.tid).ok_or(BAD_REQUEST)?);
                if peers.len() > 64 {
                    return Err(INSUFFICIENT_CAPACITY);
                }
            }
        }
        if peers.is_empty() {
            return Err(BAD_REQUEST);
        }
        let now = Instant::now();
        let mut perms = Vec::with_capacity(peers.len());
        for p in &peers {
            perms.push((p.ip().to_canonical(), self.check_peer(alloc, *p, now)?));
        }
        {
            let mut s = lock(&alloc.state);
            for (ip, perm) in perms {
                s.permit(ip, perm, now).map_err(|_| INSUFFICIENT_CAPACITY)?;
            }
        }
        let mut w = Writer::new(out, CREATE_PERMISSION, SUCCESS, msg.tid);
        finish(&mut w, msg, Some(&authed.key));
        Ok(())
    }

    fn channel_bind(&self, msg: &Msg<'_>, out: &mut Vec<u8>, authed: &Authed) -> Result<(), u16> {
        let alloc = authed.alloc.as_ref().ok_or(ALLOCATION_MISMATCH)?;
        let channel = match msg.get(CHANNEL_NUMBER) {
            Some([a, b, _, _]) => u16::from_be_bytes([*a, *b]),
            _ => return Err(BAD_REQUEST),
        };
        if !(MIN_CHANNEL..=MAX_CHANNEL).contains(&channel) {
            return Err(BAD_REQUEST);
        }
        let peer = msg
            .get(XOR_PEER_ADDRESS)
            .and_then(|v| xor_addr(v, &msg.tid))
            .ok_or(BAD_REQUEST)?;
        let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
        let now = Instant::now();
        let perm = self.check_peer(alloc, peer, now)?;
        lock(&alloc.state)
            .bind(channel, peer, perm, now)
            .map_err(|e| match e {
                BindError::Conflict => BAD_REQUEST,
                BindError::Full => INSUFFICIENT_CAPACITY,
            })?;
        let mut w = Writer::new(out, CHANNEL_BIND, SUCCESS, msg.tid);
        finish(&mut w, msg, Some(&authed.key));
        Ok(())
    }

    /// The permission a peer gets, or 403 for a peer the policy refuses (whatever its
    /// family; on one of our own addresses, a port that is no live allocation's relay port),
    /// 443 for one of the other family than the relay.
    fn check_peer(&self, alloc: &Allocation, peer: SocketAddr, now: Instant) -> Result<Perm, u16> {
        let v = self.policy.check(peer.ip());
        let internal = v.own && self.by_relayed(peer).is_some();
        if !(internal || self.policy.kernel(v, peer)) {
            Stats::inc(&self.stats.denied_peer);
            if self.may_log() {
                tracing::debug!(client = %alloc.five.client, peer = %peer, "peer address refused");
            }
            return Err(FORBIDDEN);
        }
        if Family::of(peer.ip().to_canonical()) != Family::of(alloc.relayed.ip()) {
            return Err(PEER_ADDRESS_FAMILY_MISMATCH);
        }
        Ok(Perm::new(v, now))
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
        Some(v) => Ok(Some(u32::from_be_bytes(
            v.try_into().map_err(|_| BAD_REQUEST)?,
        ))),
    }
}

fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

/// For an authenticated request SOFTWARE and MESSAGE-INTEGRITY; then FINGERPRINT when the
/// request carried one. Answers to unauthenticated requests stay minimal (no SOFTWARE): a
/// spoofed request must not get much more back than it sent.
fn finish(w: &mut Writer<'_>, msg: &Msg<'_>, key: Option<&[u8]>) {
    if let Some(k) = key {
        w.attr(SOFTWARE, SOFTWARE_NAME);
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::Config;
    use crate::turn::{Credentials, Proto};

    fn turn() -> Arc<Turn> {
        let config = Arc::new(
            Config::parse("[turn]\nusers = [\"u:p\"]", std::path::Path::new("/")).unwrap(),
        );
        let creds = Credentials::new(&config);
        Turn::new(config, creds, &[])
    }

    fn five() -> FiveTuple {
        FiveTuple {
            client: "192.0.2.1:5000".parse().unwrap(),
            server: "203.0.113.10:3478".parse().unwrap(),
            proto: Proto::Udp,
        }
    }

    fn request(method: u16, attrs: &[(u16, &[u8])]) -> Vec<u8> {
        let mut b = Vec::new();
        let mut w = Writer::new(&mut b, method, REQUEST, [7; 12]);
        for (t, v) in attrs {
            w.attr(*t, v);
        }
        b
    }

    /// What the handler makes of unauthenticated and malformed input: the answer's class and
    /// error code, and which attributes it carries (never SOFTWARE: answers to spoofable
    /// requests stay small).
    #[tokio::test]
    async fn unauthenticated_answers() {
        let t = turn();
        let transport: &[u8] = &[17, 0, 0, 0];
        // The answer's class and error code; None: no answer at all.
        type Want = Option<(u8, Option<u16>)>;
        let cases: Vec<(&str, Vec<u8>, Want)> = vec![
            ("binding", request(BINDING, &[]), Some((SUCCESS, None))),
            (
                "allocate without credentials",
                request(ALLOCATE, &[(REQUESTED_TRANSPORT, transport)]),
                Some((ERROR, Some(UNAUTHORIZED))),
            ),
            (
                "refresh",
                request(REFRESH, &[]),
                Some((ERROR, Some(UNAUTHORIZED))),
            ),
            (
                "unknown method",
                request(0x0FF, &[]),
                Some((ERROR, Some(BAD_REQUEST))),
            ),
            (
                "unknown comprehension-required attribute",
                request(ALLOCATE, &[(0x0031, b"x")]),
                Some((ERROR, Some(UNKNOWN_ATTRIBUTE))),
            ),
            ("junk", b"GET / HTTP/1.1\r\n\r\n".to_vec(), None),
            (
                "channel data without allocation",
                vec![0x40, 0, 0, 1, 9],
                None,
            ),
            ("truncated", request(BINDING, &[])[..10].to_vec(), None),
        ];
        for (name, pkt, want) in cases {
            let mut out = Vec::new();
            let action = t.handle(&pkt, five(), &ClientSink::Discard, &mut out);
            match want {
                None => assert!(matches!(action, Action::None), "{name}: {action:?}"),
                Some((class, code)) => {
                    assert!(matches!(action, Action::Reply), "{name}: {action:?}");
                    let m = Msg::parse(&out).unwrap();
                    assert_eq!(m.class(), class, "{name}");
                    let got = m
                        .get(ERROR_CODE)
                        .map(|v| u16::from(v[2]) * 100 + u16::from(v[3]));
                    assert_eq!(got, code, "{name}");
                    assert!(
                        !m.has(SOFTWARE),
                        "{name}: SOFTWARE on an unauthenticated answer"
                    );
                    if code == Some(UNAUTHORIZED) {
                        assert!(m.has(REALM) && m.has(NONCE), "{name}: realm and nonce");
                    }
                }
            }
        }
    }
}
