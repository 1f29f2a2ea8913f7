//! Room passwords: never kept in clear. The host's password is stretched with PBKDF2-HMAC-SHA256
//! (ring) and a salt drawn when the room is made; a login's password is stretched with the
//! same salt and the two keys compared in constant time. Stretching costs milliseconds, so it
//! runs on the blocking pool, outside the hub's lock, never on a reactor thread.

use std::num::NonZeroU32;

use ring::pbkdf2;
use ring::rand::{SecureRandom as _, SystemRandom};

/// PBKDF2 rounds. The key lives in memory only, for the life of one room, and wrong guesses
/// are rate-limited per address: the rounds only matter if the server's memory leaks. Galène
/// hashes its (long-lived) group passwords with 4096; this is five times that (OpenSSL's
/// PBKDF2 at these rounds took 31 ms on the 2-core test machine under a load of 10).
const ROUNDS: u32 = 20_000;

pub const SALT_BYTES: usize = 16;
pub type Salt = [u8; SALT_BYTES];
/// A stretched password.
pub type Key = [u8; 32];

/// A fresh random salt for a new room.
pub fn salt() -> Salt {
    let mut s = [0u8; SALT_BYTES];
    if SystemRandom::new().fill(&mut s).is_err() {
        // The OS random source failed (it does not on Linux after boot): a UUID v4 is drawn
        // from it too, but through getrandom's own fallbacks.
        s.copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    }
    s
}

/// Stretches `password` with `salt` (blocking: call it from `spawn_blocking`).
pub fn stretch(salt: &Salt, password: &str) -> Key {
    derive(
        NonZeroU32::new(ROUNDS).unwrap_or(NonZeroU32::MIN),
        salt,
        password,
    )
}

fn derive(rounds: NonZeroU32, salt: &[u8], password: &str) -> Key {
    let mut key = [0u8; 32];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        rounds,
        salt,
        password.as_bytes(),
        &mut key,
    );
    key
}

/// Stretches on the blocking pool; `None` only if that pool is gone (the runtime is ending).
pub async fn stretch_async(salt: Salt, password: String) -> Option<Key> {
    tokio::task::spawn_blocking(move || stretch(&salt, &password))
        .await
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_password_and_salt_give_the_same_key() {
        let (s1, s2) = (salt(), salt());
        assert_ne!(s1, s2, "salts are random");
        assert_eq!(stretch(&s1, "open sesame"), stretch(&s1, "open sesame"));
        assert_ne!(stretch(&s1, "open sesame"), stretch(&s1, "open sesame!"));
        assert_ne!(stretch(&s1, "open sesame"), stretch(&s2, "open sesame"));
    }

    /// RFC 7914 section 11's PBKDF2-HMAC-SHA256 vector (1 round; the first 32 of its 64
    /// bytes): the salt and the password go in the right places.
    #[test]
    fn matches_the_rfc_7914_vector() {
        let key = derive(NonZeroU32::MIN, b"salt", "passwd");
        assert_eq!(
            crate::hex::encode(&key),
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
        );
    }
}
