//! Resume tokens a restarted server can still verify: an HMAC of (session id, room, issue
//! time) under a key kept in the ssl dir, so that after an upgrade or `systemctl restart` a
//! member reconnects with its own session id and its peer connections keep running
//! (docs/protocol.md, "resume"). Nothing about a token is stored: any server holding the key
//! checks it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// The key file's name in the ssl dir.
pub const KEY_FILE: &str = "session.key";
/// How long a token stays good after the `joined` that carried it. Every join issues a new
/// one; a call that lasts longer without one just renegotiates after a restart.
pub const LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Clock skew tolerated for an issue time in the future (a server whose clock stepped back).
const SKEW: u64 = 300;
const KEY_BYTES: usize = 32;
/// Domain separation: this key signs nothing else.
const CONTEXT: &[u8] = b"peerbox resume v1";

/// Where the key came from, for the startup log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Loaded(PathBuf),
    Created(PathBuf),
    /// The ssl dir could not hold it: tokens do not survive a restart.
    Ephemeral(String),
    /// Derived from `cluster.secret`: every node verifies every node's tokens.
    Cluster,
}

/// The key resume tokens are signed with.
pub struct ResumeKey {
    key: hmac::Key,
    /// False without system randomness: then no token verifies.
    usable: bool,
    pub origin: Origin,
}

impl std::fmt::Debug for ResumeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResumeKey")
            .field("key", &"***")
            .field("origin", &self.origin)
            .finish()
    }
}

impl ResumeKey {
    /// Reads `dir/session.key`, or creates it (mode 0600, written atomically) when absent. A
    /// key that cannot be read or written leaves an in-memory key, logged as such: resuming
    /// still works until the next restart.
    pub fn load_or_create(dir: &Path) -> ResumeKey {
        let path = dir.join(KEY_FILE);
        let loaded = match std::fs::read(&path) {
            Ok(bytes) if bytes.len() == KEY_BYTES => {
                return ResumeKey::from_bytes(&bytes, Origin::Loaded(path));
            }
            Ok(bytes) => Err(format!(
                "{} holds {} bytes, not {KEY_BYTES}",
                path.display(),
                bytes.len()
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        };
        let bytes = match random_key() {
            Some(b) => b,
            // No randomness: a key nobody can guess is impossible, so no token verifies.
            None => return ResumeKey::unusable(),
        };
        let origin = match loaded.and_then(|()| write_private(&path, &bytes)) {
            Ok(()) => Origin::Created(path),
            Err(why) => Origin::Ephemeral(why),
        };
        ResumeKey::from_bytes(&bytes, origin)
    }

    /// The key every node of a cluster derives from the shared `cluster.secret`, so that a
    /// member resumes its session on whichever node it reconnects to.
    pub fn shared(secret: &str) -> ResumeKey {
        let derived = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
            b"peerbox cluster resume key v1",
        );
        ResumeKey::from_bytes(derived.as_ref(), Origin::Cluster)
    }

    /// A key of its own, kept in memory (tests, and an ssl dir that cannot be written).
    pub fn ephemeral() -> ResumeKey {
        match random_key() {
            Some(b) => ResumeKey::from_bytes(&b, Origin::Ephemeral("in memory".into())),
            None => ResumeKey::unusable(),
        }
    }

    fn from_bytes(bytes: &[u8], origin: Origin) -> ResumeKey {
        ResumeKey {
            key: hmac::Key::new(hmac::HMAC_SHA256, bytes),
            usable: true,
            origin,
        }
    }

    /// Without randomness every token is refused: signs with a key of zeros but never
    /// verifies (see [`ResumeKey::verify`]).
    fn unusable() -> ResumeKey {
        ResumeKey {
            usable: false,
            ..ResumeKey::from_bytes(&[0; KEY_BYTES], Origin::Ephemeral("no randomness".into()))
        }
    }

    /// A token for `session` in `room`, issued now.
    pub fn issue(&self, session: &str, room: &str) -> String {
        self.issue_at(session, room, unix_now())
    }

    fn issue_at(&self, session: &str, room: &str, issued: u64) -> String {
        let tag = hmac::sign(&self.key, &message(session, room, issued));
        let mut raw = Vec::with_capacity(8 + tag.as_ref().len());
        raw.extend_from_slice(&issued.to_be_bytes());
        raw.extend_from_slice(tag.as_ref());
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Whether `token` was issued by this key for `session` in `room`, less than
    /// [`LIFETIME`] ago. Constant time in the tag.
    pub fn verify(&self, token: &str, session: &str, room: &str) -> bool {
        self.verify_at(token, session, room, unix_now())
    }

    fn verify_at(&self, token: &str, session: &str, room: &str, now: u64) -> bool {
        if !self.usable {
            return false;
        }
        let Ok(raw) = URL_SAFE_NO_PAD.decode(token) else {
            return false;
        };
        let Some((issued, tag)) = raw.split_first_chunk::<8>() else {
            return false;
        };
        let issued = u64::from_be_bytes(*issued);
        let fresh = issued <= now + SKEW && now.saturating_sub(issued) < LIFETIME.as_secs();
        fresh && hmac::verify(&self.key, &message(session, room, issued), tag).is_ok()
    }
}

/// What is signed: each part length-prefixed, so that no two (session, room) pairs share one.
fn message(session: &str, room: &str, issued: u64) -> Vec<u8> {
    let mut m = Vec::with_capacity(CONTEXT.len() + session.len() + room.len() + 24);
    m.extend_from_slice(CONTEXT);
    for part in [session.as_bytes(), room.as_bytes()] {
        m.extend_from_slice(&(part.len() as u64).to_be_bytes());
        m.extend_from_slice(part);
    }
    m.extend_from_slice(&issued.to_be_bytes());
    m
}

fn random_key() -> Option<[u8; KEY_BYTES]> {
    let mut bytes = [0u8; KEY_BYTES];
    match SystemRandom::new().fill(&mut bytes) {
        Ok(()) => Some(bytes),
        Err(_) => {
            tracing::error!("no system randomness: resume tokens are disabled");
            None
        }
    }
}

/// Writes `bytes` to `path` readable by its owner only: a temporary file, synced, renamed.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = path.with_extension("key.tmp");
    let written = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut f = options.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    written.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot write {}: {e}", path.display())
    })
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_800_000_000;

    #[test]
    fn a_token_verifies_for_its_session_and_room_only() {
        let k = ResumeKey::ephemeral();
        let t = k.issue_at("s1", "room", T);
        assert!(k.verify_at(&t, "s1", "room", T + 10));
        for (session, room) in [("s2", "room"), ("s1", "room2"), ("s1r", "oom"), ("", "")] {
            assert!(!k.verify_at(&t, session, room, T + 10), "{session}/{room}");
        }
        assert!(!ResumeKey::ephemeral().verify_at(&t, "s1", "room", T + 10));
    }

    #[test]
    fn tokens_expire_and_cannot_come_from_the_future() {
        let k = ResumeKey::ephemeral();
        let t = k.issue_at("s", "r", T);
        assert!(k.verify_at(&t, "s", "r", T + LIFETIME.as_secs() - 1));
        assert!(!k.verify_at(&t, "s", "r", T + LIFETIME.as_secs()));
        assert!(k.verify_at(&t, "s", "r", T - SKEW));
        assert!(!k.verify_at(&t, "s", "r", T - SKEW - 1));
    }

    #[test]
    fn malformed_or_tampered_tokens_are_refused() {
        let k = ResumeKey::ephemeral();
        let t = k.issue_at("s", "r", T);
        let mut raw = URL_SAFE_NO_PAD.decode(&t).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        let flipped = URL_SAFE_NO_PAD.encode(&raw);
        let short = &t[..t.len() - 2];
        for bad in ["", "!!!", "AAAA", short, flipped.as_str(), &t[..11]] {
            assert!(!k.verify_at(bad, "s", "r", T), "{bad:?}");
        }
    }

    #[test]
    fn the_key_survives_a_restart_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let first = ResumeKey::load_or_create(dir.path());
        assert!(
            matches!(first.origin, Origin::Created(_)),
            "{:?}",
            first.origin
        );
        let t = first.issue_at("s", "r", T);
        let second = ResumeKey::load_or_create(dir.path());
        assert!(
            matches!(second.origin, Origin::Loaded(_)),
            "{:?}",
            second.origin
        );
        assert!(second.verify_at(&t, "s", "r", T + 1));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions();
            assert_eq!(mode.mode() & 0o777, 0o600);
        }
    }

    #[test]
    fn a_broken_key_file_is_kept_and_an_in_memory_key_used() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(KEY_FILE), b"short").unwrap();
        let k = ResumeKey::load_or_create(dir.path());
        assert!(matches!(&k.origin, Origin::Ephemeral(why) if why.contains("5 bytes")));
        assert_eq!(std::fs::read(dir.path().join(KEY_FILE)).unwrap(), b"short");
        let t = k.issue_at("s", "r", T);
        assert!(k.verify_at(&t, "s", "r", T));
    }
}
