//! STUN message framing (RFC 8489): a zero-copy reader over a received datagram and a writer
//! into a reused buffer. MESSAGE-INTEGRITY is HMAC-SHA1 (ring); FINGERPRINT comes from the
//! `stun` crate. Hand-written because the server must never copy or panic on input.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ring::hmac;

pub const MAGIC: u32 = 0x2112_A442;
pub const HEADER: usize = 20;

// Methods.
pub const BINDING: u16 = 0x001;
pub const ALLOCATE: u16 = 0x003;
pub const REFRESH: u16 = 0x004;
pub const SEND: u16 = 0x006;
pub const DATA: u16 = 0x007;
pub const CREATE_PERMISSION: u16 = 0x008;
pub const CHANNEL_BIND: u16 = 0x009;

// Classes.
pub const REQUEST: u8 = 0;
pub const INDICATION: u8 = 1;
pub const SUCCESS: u8 = 2;
pub const ERROR: u8 = 3;

// Attributes.
pub const MAPPED_ADDRESS: u16 = 0x0001;
pub const CHANGE_REQUEST: u16 = 0x0003;
pub const USERNAME: u16 = 0x0006;
pub const MESSAGE_INTEGRITY: u16 = 0x0008;
pub const ERROR_CODE: u16 = 0x0009;
pub const UNKNOWN_ATTRIBUTES: u16 = 0x000A;
pub const CHANNEL_NUMBER: u16 = 0x000C;
pub const LIFETIME: u16 = 0x000D;
pub const XOR_PEER_ADDRESS: u16 = 0x0012;
pub const DATA_ATTR: u16 = 0x0013;
pub const REALM: u16 = 0x0014;
pub const NONCE: u16 = 0x0015;
pub const XOR_RELAYED_ADDRESS: u16 = 0x0016;
pub const REQUESTED_ADDRESS_FAMILY: u16 = 0x0017;
pub const EVEN_PORT: u16 = 0x0018;
pub const REQUESTED_TRANSPORT: u16 = 0x0019;
pub const DONT_FRAGMENT: u16 = 0x001A;
pub const XOR_MAPPED_ADDRESS: u16 = 0x0020;
pub const RESERVATION_TOKEN: u16 = 0x0022;
pub const PRIORITY: u16 = 0x0024;
pub const USE_CANDIDATE: u16 = 0x0025;
pub const PADDING: u16 = 0x0026;
pub const RESPONSE_PORT: u16 = 0x0027;
pub const SOFTWARE: u16 = 0x8022;
pub const FINGERPRINT: u16 = 0x8028;

/// Comprehension-required attributes (below 0x8000) this server understands; any other one
/// in a request earns a 420.
const UNDERSTOOD: &[u16] = &[
    MAPPED_ADDRESS,
    CHANGE_REQUEST,
    USERNAME,
    MESSAGE_INTEGRITY,
    ERROR_CODE,
    UNKNOWN_ATTRIBUTES,
    CHANNEL_NUMBER,
    LIFETIME,
    XOR_PEER_ADDRESS,
    DATA_ATTR,
    REALM,
    NONCE,
    XOR_RELAYED_ADDRESS,
    REQUESTED_ADDRESS_FAMILY,
    EVEN_PORT,
    REQUESTED_TRANSPORT,
    DONT_FRAGMENT,
    XOR_MAPPED_ADDRESS,
    RESERVATION_TOKEN,
    PRIORITY,
    USE_CANDIDATE,
    PADDING,
    RESPONSE_PORT,
];

/// Why bytes are not a STUN message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("shorter than a STUN header")]
    Short,
    #[error("not a STUN message (first bits or magic cookie)")]
    NotStun,
    #[error("length field disagrees with the datagram")]
    Length,
    #[error("attribute runs past the message")]
    Attribute,
}

/// A STUN message borrowed from the receive buffer.
#[derive(Debug, Clone, Copy)]
pub struct Msg<'a> {
    pub typ: u16,
    pub tid: [u8; 12],
    /// Exactly the message: header plus `length` bytes.
    pub raw: &'a [u8],
}

pub fn method_of(typ: u16) -> u16 {
    (typ & 0x000F) | ((typ & 0x00E0) >> 1) | ((typ & 0x3E00) >> 2)
}

pub fn class_of(typ: u16) -> u8 {
    (((typ >> 7) & 0x2) | ((typ >> 4) & 0x1)) as u8
}

pub fn type_of(method: u16, class: u8) -> u16 {
    let c = class as u16;
    (method & 0x000F)
        | ((method & 0x0070) << 1)
        | ((method & 0x0F80) << 2)
        | ((c & 1) << 4)
        | ((c & 2) << 7)
}

impl<'a> Msg<'a> {
    /// Parses a STUN message at the start of `b` (trailing bytes are ignored, as on TCP the
    /// caller frames exactly). Every attribute's framing is checked here, so later look-ups
    /// cannot run past the end.
    pub fn parse(b: &'a [u8]) -> Result<Msg<'a>, ParseError> {
        if b.len() < HEADER {
            return Err(ParseError::Short);
        }
        let typ = u16::from_be_bytes([b[0], b[1]]);
        let len = u16::from_be_bytes([b[2], b[3]]) as usize;
        let cookie = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
        if typ & 0xC000 != 0 || cookie != MAGIC {
            return Err(ParseError::NotStun);
        }
        if len % 4 != 0 || HEADER + len > b.len() {
            return Err(ParseError::Length);
        }
        let raw = &b[..HEADER + len];
        let mut tid = [0u8; 12];
        tid.copy_from_slice(&raw[8..20]);
        let msg = Msg { typ, tid, raw };
        for a in msg.attrs() {
            a?;
        }
        Ok(msg)
    }

    pub fn method(&self) -> u16 {
        method_of(self.typ)
    }

    pub fn class(&self) -> u8 {
        class_of(self.typ)
    }

    pub fn attrs(&self) -> Attrs<'a> {
        Attrs {
            raw: self.raw,
            pos: HEADER,
        }
    }

    /// The first attribute of type `t` before MESSAGE-INTEGRITY (attributes after it, other
    /// than FINGERPRINT, must be ignored).
    pub fn get(&self, t: u16) -> Option<&'a [u8]> {
        for a in self.attrs().map_while(Result::ok) {
            if a.typ == t {
                return Some(a.value);
            }
            if a.typ == MESSAGE_INTEGRITY {
                return None;
            }
        }
        None
    }

    pub fn has(&self, t: u16) -> bool {
        self.attrs().map_while(Result::ok).any(|a| a.typ == t)
    }

    /// Comprehension-required attributes this server does not know (for a 420).
    pub fn unknown_required(&self) -> Vec<u16> {
        self.attrs()
            .map_while(Result::ok)
            .map(|a| a.typ)
            .filter(|t| *t < 0x8000 && !UNDERSTOOD.contains(t))
            .take(8)
            .collect()
    }

    /// Checks MESSAGE-INTEGRITY (HMAC-SHA1 with `key`). False when absent or wrong.
    pub fn check_integrity(&self, key: &[u8]) -> bool {
        let Some((off, value)) = self
            .attrs()
            .map_while(Result::ok)
            .find(|a| a.typ == MESSAGE_INTEGRITY)
            .map(|a| (a.offset, a.value))
        else {
            return false;
        };
        if value.len() != 20 {
            return false;
        }
        // The HMAC covers the message up to the attribute, with the length field saying
        // the message ends right after MESSAGE-INTEGRITY.
        let len = (off + 24 - HEADER) as u16;
        let k = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key);
        let mut ctx = hmac::Context::with_key(&k);
        ctx.update(&self.raw[..2]);
        ctx.update(&len.to_be_bytes());
        ctx.update(&self.raw[4..off]);
        let tag = ctx.sign();
        constant_time_eq(tag.as_ref(), value)
    }
}

/// Compares without an early exit, so the time taken says nothing of where they differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// One attribute: type, value (without padding), and offset of its header in the message.
#[derive(Debug, Clone, Copy)]
pub struct Attr<'a> {
    pub typ: u16,
    pub value: &'a [u8],
    pub offset: usize,
}

pub struct Attrs<'a> {
    raw: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Result<Attr<'a>, ParseError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.raw.len() {
            return None;
        }
        let rest = &self.raw[self.pos..];
        if rest.len() < 4 {
            self.pos = self.raw.len();
            return Some(Err(ParseError::Attribute));
        }
        let typ = u16::from_be_bytes([rest[0], rest[1]]);
        let len = u16::from_be_bytes([rest[2], rest[3]]) as usize;
        let padded = (len + 3) & !3;
        if rest.len() < 4 + padded {
            self.pos = self.raw.len();
            return Some(Err(ParseError::Attribute));
        }
        let a = Attr {
            typ,
            value: &rest[4..4 + len],
            offset: self.pos,
        };
        self.pos += 4 + padded;
        Some(Ok(a))
    }
}

/// Decodes an XOR-*-ADDRESS value (RFC 8489 14.2).
pub fn xor_addr(v: &[u8], tid: &[u8; 12]) -> Option<SocketAddr> {
    if v.len() < 4 {
        return None;
    }
    let port = u16::from_be_bytes([v[2], v[3]]) ^ (MAGIC >> 16) as u16;
    let mask = xor_mask(tid);
    match (v[1], v.len()) {
        (0x01, 8) => {
            let mut o = [0u8; 4];
            for i in 0..4 {
                o[i] = v[4 + i] ^ mask[i];
            }
            Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(o)), port))
        }
        (0x02, 20) => {
            let mut o = [0u8; 16];
            for i in 0..16 {
                o[i] = v[4 + i] ^ mask[i];
            }
            Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(o)), port))
        }
        _ => None,
    }
}

fn xor_mask(tid: &[u8; 12]) -> [u8; 16] {
    let mut m = [0u8; 16];
    m[..4].copy_from_slice(&MAGIC.to_be_bytes());
    m[4..].copy_from_slice(tid);
    m
}

/// Writes an XOR-*-ADDRESS value into `v`; returns its length (8 or 20).
pub fn encode_xor_addr(a: SocketAddr, tid: &[u8; 12], v: &mut [u8; 20]) -> usize {
    let mask = xor_mask(tid);
    v[0] = 0;
    v[2..4].copy_from_slice(&(a.port() ^ (MAGIC >> 16) as u16).to_be_bytes());
    match a.ip() {
        IpAddr::V4(ip) => {
            v[1] = 1;
            for (i, b) in ip.octets().iter().enumerate() {
                v[4 + i] = b ^ mask[i];
            }
            8
        }
        IpAddr::V6(ip) => {
            v[1] = 2;
            for (i, b) in ip.octets().iter().enumerate() {
                v[4 + i] = b ^ mask[i];
            }
            20
        }
    }
}

/// Writes a STUN message into a caller-owned buffer (cleared first, capacity kept).
pub struct Writer<'b> {
    buf: &'b mut Vec<u8>,
    tid: [u8; 12],
}

impl<'b> Writer<'b> {
    pub fn new(buf: &'b mut Vec<u8>, method: u16, class: u8, tid: [u8; 12]) -> Writer<'b> {
        buf.clear();
        buf.extend_from_slice(&type_of(method, class).to_be_bytes());
        buf.extend_from_slice(&[0, 0]);
        buf.extend_from_slice(&MAGIC.to_be_bytes());
        buf.extend_from_slice(&tid);
        Writer { buf, tid }
    }

    pub fn attr(&mut self, t: u16, v: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(&t.to_be_bytes());
        self.buf.extend_from_slice(&(v.len() as u16).to_be_bytes());
        self.buf.extend_from_slice(v);
        let pad = (4 - v.len() % 4) % 4;
        self.buf.extend_from_slice(&[0u8; 3][..pad]);
        self.set_len();
        self
    }

    pub fn u32(&mut self, t: u16, v: u32) -> &mut Self {
        self.attr(t, &v.to_be_bytes())
    }

    pub fn xor_addr(&mut self, t: u16, a: SocketAddr) -> &mut Self {
        let mut v = [0u8; 20];
        let n = encode_xor_addr(a, &self.tid, &mut v);
        self.attr(t, &v[..n])
    }

    /// MAPPED-ADDRESS (RFC 3489 style, not XORed), for old clients.
    pub fn plain_addr(&mut self, t: u16, a: SocketAddr) -> &mut Self {
        let mut v = [0u8; 20];
        v[2..4].copy_from_slice(&a.port().to_be_bytes());
        let n = match a.ip() {
            IpAddr::V4(ip) => {
                v[1] = 1;
                v[4..8].copy_from_slice(&ip.octets());
                8
            }
            IpAddr::V6(ip) => {
                v[1] = 2;
                v[4..20].copy_from_slice(&ip.octets());
                20
            }
        };
        self.attr(t, &v[..n])
    }

    pub fn error(&mut self, code: u16, reason: &str) -> &mut Self {
        let mut v = Vec::with_capacity(4 + reason.len());
        v.extend_from_slice(&[0, 0, (code / 100) as u8, (code % 100) as u8]);
        v.extend_from_slice(reason.as_bytes());
        self.attr(ERROR_CODE, &v)
    }

    pub fn integrity(&mut self, key: &[u8]) -> &mut Self {
        let len = (self.buf.len() - HEADER + 24) as u16;
        self.buf[2..4].copy_from_slice(&len.to_be_bytes());
        let k = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key);
        let tag = hmac::sign(&k, self.buf);
        self.attr(MESSAGE_INTEGRITY, tag.as_ref())
    }

    pub fn fingerprint(&mut self) -> &mut Self {
        let len = (self.buf.len() - HEADER + 8) as u16;
        self.buf[2..4].copy_from_slice(&len.to_be_bytes());
        let crc = stun::fingerprint::fingerprint_value(self.buf);
        self.u32(FINGERPRINT, crc)
    }

    fn set_len(&mut self) {
        let len = (self.buf.len() - HEADER) as u16;
        self.buf[2..4].copy_from_slice(&len.to_be_bytes());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn type_encoding_round_trips() {
        for (method, class, typ) in [
            (BINDING, REQUEST, 0x0001),
            (BINDING, SUCCESS, 0x0101),
            (BINDING, ERROR, 0x0111),
            (ALLOCATE, REQUEST, 0x0003),
            (ALLOCATE, ERROR, 0x0113),
            (SEND, INDICATION, 0x0016),
            (DATA, INDICATION, 0x0017),
            (CHANNEL_BIND, SUCCESS, 0x0109),
        ] {
            assert_eq!(type_of(method, class), typ);
            assert_eq!(method_of(typ), method);
            assert_eq!(class_of(typ), class);
        }
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        let mut ok = Vec::new();
        Writer::new(&mut ok, BINDING, REQUEST, [7; 12]).attr(SOFTWARE, b"x");
        let cases: Vec<(Vec<u8>, Option<ParseError>)> = vec![
            (vec![], Some(ParseError::Short)),
            (vec![0; 19], Some(ParseError::Short)),
            (vec![0xff; 20], Some(ParseError::NotStun)),
            (ok[..ok.len() - 4].to_vec(), Some(ParseError::Length)),
            (
                {
                    let mut b = ok.clone();
                    b[22..24].copy_from_slice(&100u16.to_be_bytes());
                    b
                },
                Some(ParseError::Attribute),
            ),
            (ok.clone(), None),
        ];
        for (bytes, want) in cases {
            assert_eq!(Msg::parse(&bytes).err(), want, "{bytes:?}");
        }
    }

    #[test]
    fn integrity_and_addresses_round_trip() {
        let mut buf = Vec::new();
        let a: SocketAddr = "[2001:db8::1]:4242".parse().unwrap();
        let b: SocketAddr = "192.0.2.1:9".parse().unwrap();
        Writer::new(&mut buf, ALLOCATE, REQUEST, [3; 12])
            .xor_addr(XOR_PEER_ADDRESS, a)
            .xor_addr(XOR_PEER_ADDRESS, b)
            .integrity(b"key")
            .fingerprint();
        let m = Msg::parse(&buf).unwrap();
        assert!(m.check_integrity(b"key"));
        assert!(!m.check_integrity(b"other"));
        let peers: Vec<_> = m
            .attrs()
            .map_while(Result::ok)
            .filter(|x| x.typ == XOR_PEER_ADDRESS)
            .filter_map(|x| xor_addr(x.value, &m.tid))
            .collect();
        assert_eq!(peers, vec![a, b]);
        // The stun crate agrees on both MESSAGE-INTEGRITY and FINGERPRINT.
        let mut sm = stun::message::Message::new();
        sm.unmarshal_binary(&buf).unwrap();
        stun::integrity::MessageIntegrity(b"key".to_vec())
            .check(&mut sm)
            .unwrap();
        stun::fingerprint::FINGERPRINT.check(&sm).unwrap();
    }
}
