//! The long-term credential mechanism (RFC 8489 9.2) with stateless nonces. A request on an
//! existing allocation is checked against the key that allocation was created with, so a
//! call outlives its credential's expiry; a new allocation needs an unexpired credential.

use std::sync::Arc;

use super::codec::{MESSAGE_INTEGRITY, Msg, NONCE, REALM, USERNAME};
use super::credentials::unix_now;
use super::nonce::Verdict;
use super::server::{Allocation, FiveTuple, Turn};
use super::stats::Stats;

/// A request that passed authentication.
pub struct Authed {
    pub username: String,
    pub key: Vec<u8>,
    /// The allocation on this 5-tuple, if any (its key was the one checked).
    pub alloc: Option<Arc<Allocation>>,
}

/// Why authentication failed: the error to answer with.
pub enum Reject {
    /// 401 with REALM and a fresh NONCE.
    Unauthorized,
    /// 438 with a fresh NONCE.
    StaleNonce,
    /// 441: the username differs from the one the allocation was made with.
    WrongCredentials,
    /// 400: MESSAGE-INTEGRITY without the attributes that go with it.
    BadRequest,
}

impl Turn {
    pub(crate) fn authenticate(&self, msg: &Msg<'_>, five: &FiveTuple) -> Result<Authed, Reject> {
        let r = self.check(msg, five);
        if matches!(r, Err(Reject::Unauthorized | Reject::WrongCredentials)) {
            Stats::inc(&self.stats.denied_auth);
        }
        r
    }

    fn check(&self, msg: &Msg<'_>, five: &FiveTuple) -> Result<Authed, Reject> {
        if !msg.has(MESSAGE_INTEGRITY) {
            return Err(Reject::Unauthorized);
        }
        let (Some(user), Some(realm), Some(nonce)) =
            (msg.get(USERNAME), msg.get(REALM), msg.get(NONCE))
        else {
            return Err(Reject::BadRequest);
        };
        let now = unix_now();
        match self.nonces.check(nonce, five.client, now) {
            Verdict::Valid => {}
            Verdict::Stale | Verdict::Invalid => return Err(Reject::StaleNonce),
        }
        if realm != self.credentials.realm().as_bytes() {
            return Err(Reject::Unauthorized);
        }
        let user = std::str::from_utf8(user).map_err(|_| Reject::Unauthorized)?;
        if let Some(alloc) = self.lookup(five) {
            if alloc.username != user {
                return Err(Reject::WrongCredentials);
            }
            if !msg.check_integrity(&alloc.key) {
                return Err(Reject::Unauthorized);
            }
            return Ok(Authed {
                username: alloc.username.clone(),
                key: alloc.key.clone(),
                alloc: Some(alloc),
            });
        }
        let pass = self
            .credentials
            .password(user)
            .ok_or(Reject::Unauthorized)?;
        let key = self.credentials.key(user, &pass.password);
        if !msg.check_integrity(&key) {
            return Err(Reject::Unauthorized);
        }
        if pass.expires.is_some_and(|t| t < now) {
            return Err(Reject::Unauthorized);
        }
        Ok(Authed {
            username: user.to_owned(),
            key,
            alloc: None,
        })
    }
}
