//! Stateless nonces: `hex(timestamp, 32 bits) || hex(HMAC-SHA256(server key, timestamp ||
//! client address)[..8])`, 24 characters: short, because every 401 carries one and answers to
//! unauthenticated requests must stay small (a spoofed request must not be amplified much).
//! Checking one needs no table, so a flood from spoofed sources costs no memory; a nonce is
//! good for [`NONCE_LIFETIME`] from the address it was issued to, then 438 hands a fresh one.

use std::net::{IpAddr, SocketAddr};

use ring::hmac;

pub const NONCE_LIFETIME: u64 = 600;
/// Bytes of the HMAC kept: 64 bits, to be guessed within a nonce's ten minutes per address.
const TAG: usize = 8;
/// Characters of a nonce.
const LEN: usize = 8 + 2 * TAG;

pub struct Nonces {
    key: hmac::Key,
}

/// What a nonce from a request is worth.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Valid,
    Stale,
    Invalid,
}

impl Nonces {
    pub fn new(key: &[u8]) -> Nonces {
        Nonces {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
        }
    }

    pub fn issue(&self, client: SocketAddr, now: u64) -> String {
        // Seconds fit 32 bits until 2106.
        let now = now & 0xFFFF_FFFF;
        format!(
            "{now:08x}{}",
            crate::hex::encode(&self.tag(client, now).as_ref()[..TAG])
        )
    }

    pub fn check(&self, nonce: &[u8], client: SocketAddr, now: u64) -> Verdict {
        if nonce.len() != LEN {
            return Verdict::Invalid;
        }
        let Some(ts) = std::str::from_utf8(&nonce[..8])
            .ok()
            .and_then(|s| u64::from_str_radix(s, 16).ok())
        else {
            return Verdict::Invalid;
        };
        if !super::codec::constant_time_eq(self.issue(client, ts).as_bytes(), nonce) {
            return Verdict::Invalid;
        }
        if ts > now + 5 || now.saturating_sub(ts) > NONCE_LIFETIME {
            Verdict::Stale
        } else {
            Verdict::Valid
        }
    }

    fn tag(&self, client: SocketAddr, ts: u64) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(&ts.to_be_bytes());
        match client.ip() {
            IpAddr::V4(ip) => ctx.update(&ip.octets()),
            IpAddr::V6(ip) => ctx.update(&ip.octets()),
        }
        ctx.update(&client.port().to_be_bytes());
        ctx.sign()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        let n = Nonces::new(b"k");
        let a: SocketAddr = "192.0.2.1:5000".parse().unwrap();
        let b: SocketAddr = "192.0.2.1:5001".parse().unwrap();
        let nonce = n.issue(a, 1000);
        assert_eq!(nonce.len(), 24);
        let cases: &[(&[u8], SocketAddr, u64, Verdict)] = &[
            (nonce.as_bytes(), a, 1000, Verdict::Valid),
            (nonce.as_bytes(), a, 1600, Verdict::Valid),
            (nonce.as_bytes(), a, 1601, Verdict::Stale),
            (nonce.as_bytes(), b, 1000, Verdict::Invalid),
            (b"", a, 1000, Verdict::Invalid),
            (&[0xff; 24], a, 1000, Verdict::Invalid),
            (b"000003e8000000000000000000", a, 1000, Verdict::Invalid),
        ];
        for (nonce, addr, now, want) in cases {
            assert_eq!(&n.check(nonce, *addr, *now), want);
        }
        assert_eq!(
            Nonces::new(b"other").check(nonce.as_bytes(), a, 1000),
            Verdict::Invalid
        );
    }
}
