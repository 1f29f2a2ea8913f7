//! `--room-key SECRET`: the load members encrypt their video frames end to end as the web app
//! does in SFU rooms (web/src/rtc/frameCipher.ts, docs/architecture.md), so that a browser in
//! the room decrypts and shows them. The frame key is HKDF-SHA-256 of the room secret (the
//! link's fragment, as UTF-8), salt the room id, info "peerbox sfu frame key", 16 bytes for
//! AES-128-GCM. A frame goes out as: its first bytes in the clear (10 of a VP8 key frame, 3 of
//! a delta frame: what the SFU and the receiver's depacketizer read), the rest sealed with the
//! clear bytes as additional data (ciphertext, then the 16-byte tag), then the 12-byte IV: 8
//! random bytes per sender and a 32-bit big-endian frame counter.

use std::sync::{Arc, OnceLock};

use anyhow::{Context, anyhow};
use ring::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hkdf::{HKDF_SHA256, Salt};
use ring::rand::{SecureRandom, SystemRandom};

const INFO: &[u8] = b"peerbox sfu frame key";
pub const IV_BYTES: usize = 12;

/// How many leading bytes of a VP8 frame stay readable (frameCipher.ts `clearBytes`).
fn clear_bytes(frame: &[u8]) -> usize {
    let key = frame.first().is_some_and(|t| t & 1 == 0);
    (if key { 10 } else { 3 }).min(frame.len())
}

/// One room's frame key.
pub struct FrameKey(LessSafeKey);

impl FrameKey {
    /// The key the web app derives from `secret` for `room` (frameCipher.ts `deriveFrameKey`).
    pub fn derive(secret: &str, room: &str) -> anyhow::Result<FrameKey> {
        let prk = Salt::new(HKDF_SHA256, room.as_bytes()).extract(secret.as_bytes());
        let okm = prk
            .expand(&[INFO], &AES_128_GCM)
            .map_err(|_| anyhow!("HKDF expand"))?;
        Ok(FrameKey(LessSafeKey::new(UnboundKey::from(okm))))
    }
}

/// The run's frame key: one room, one key, set once from `--room-key` before any member starts.
static RUN_KEY: OnceLock<Arc<FrameKey>> = OnceLock::new();

/// Makes every member of this run encrypt its frames with `secret`'s key for `room`.
pub fn use_room_key(secret: &str, room: &str) -> anyhow::Result<()> {
    let key = Arc::new(FrameKey::derive(secret, room)?);
    RUN_KEY
        .set(key)
        .map_err(|_| anyhow!("the room key is set once"))
}

/// One sender's IVs (a random prefix and a frame counter, so no two frames share one) and key.
pub struct Sealer {
    key: Arc<FrameKey>,
    prefix: [u8; 8],
    counter: u32,
    rng: SystemRandom,
}

impl Sealer {
    pub fn new(key: Arc<FrameKey>) -> anyhow::Result<Sealer> {
        let rng = SystemRandom::new();
        let mut prefix = [0u8; 8];
        rng.fill(&mut prefix)
            .map_err(|_| anyhow!("no randomness"))?;
        Ok(Sealer {
            key,
            prefix,
            counter: 0,
            rng,
        })
    }

    /// A sealer with the run's key, or None when the run has none (frames go out as they are).
    pub fn for_run() -> anyhow::Result<Option<Sealer>> {
        RUN_KEY.get().cloned().map(Sealer::new).transpose()
    }

    fn next_iv(&mut self) -> anyhow::Result<[u8; IV_BYTES]> {
        let mut iv = [0u8; IV_BYTES];
        iv[..8].copy_from_slice(&self.prefix);
        iv[8..].copy_from_slice(&self.counter.to_be_bytes());
        self.counter = self.counter.wrapping_add(1);
        // After 2^32 frames a new prefix keeps IVs unique (as the app does).
        if self.counter == 0 {
            self.rng
                .fill(&mut self.prefix)
                .map_err(|_| anyhow!("no randomness"))?;
        }
        Ok(iv)
    }

    /// The frame as the app's encrypting transform sends it.
    pub fn seal(&mut self, frame: &[u8]) -> anyhow::Result<Vec<u8>> {
        let iv = self.next_iv()?;
        seal_with(&self.key, frame, iv)
    }
}

fn seal_with(key: &FrameKey, frame: &[u8], iv: [u8; IV_BYTES]) -> anyhow::Result<Vec<u8>> {
    let n = clear_bytes(frame);
    let mut out = Vec::with_capacity(frame.len() + 16 + IV_BYTES);
    out.extend_from_slice(frame);
    let mut body = out.split_off(n);
    key.0
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(iv),
            Aad::from(&frame[..n]),
            &mut body,
        )
        .map_err(|_| anyhow!("AES-GCM seal"))
        .context("encrypting a frame")?;
    out.extend_from_slice(&body);
    out.extend_from_slice(&iv);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Opens a sealed frame as the app's decrypting transform does (frameCipher.ts `decryptFrame`).
    fn open(key: &FrameKey, sealed: &[u8]) -> Option<Vec<u8>> {
        let n = clear_bytes(sealed);
        let (rest, iv) = sealed.split_at(sealed.len().checked_sub(IV_BYTES)?);
        let nonce = Nonce::try_assume_unique_for_key(iv).ok()?;
        let mut body = rest[n..].to_vec();
        let plain = key
            .0
            .open_in_place(nonce, Aad::from(&rest[..n]), &mut body)
            .ok()?;
        Some([&rest[..n], plain].concat())
    }

    const KEY_FRAME_HEAD: [u8; 10] = [0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01];

    #[test]
    fn the_same_bytes_as_the_web_app() -> anyhow::Result<()> {
        // Made with WebCrypto exactly as frameCipher.ts does (deriveFrameKey, encryptFrame) for
        // secret "s3cr3t-room-key", room "room-1", this frame and IV: ciphertext and tag.
        let key = FrameKey::derive("s3cr3t-room-key", "room-1")?;
        let frame: Vec<u8> = KEY_FRAME_HEAD.iter().copied().chain(1..=8).collect();
        let iv = [1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 5];
        let sealed = seal_with(&key, &frame, iv)?;
        let hex: String = sealed[10..sealed.len() - IV_BYTES]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hex, "db2fac837f1238ec24dc36ca34c870696759e02eb08bfd68");
        assert_eq!(&sealed[..10], &KEY_FRAME_HEAD);
        assert_eq!(&sealed[sealed.len() - IV_BYTES..], &iv);
        Ok(())
    }

    #[test]
    fn a_sealed_frame_opens_with_the_same_room_key_only() -> anyhow::Result<()> {
        let key = Arc::new(FrameKey::derive("s3cr3t-room-key", "room-1")?);
        let mut s = Sealer::new(key.clone())?;
        let key_frame: Vec<u8> = KEY_FRAME_HEAD
            .iter()
            .copied()
            .chain((0..200).map(|i| i as u8))
            .collect();
        let sealed = s.seal(&key_frame)?;
        assert_eq!(
            &sealed[..10],
            &key_frame[..10],
            "the VP8 header stays readable"
        );
        assert_ne!(&sealed[10..20], &key_frame[10..20], "the rest is not");
        assert_eq!(sealed.len(), key_frame.len() + 16 + IV_BYTES);
        assert_eq!(open(&key, &sealed).as_deref(), Some(&key_frame[..]));
        let other = FrameKey::derive("s3cr3t-room-key", "room-2")?;
        assert!(
            open(&other, &sealed).is_none(),
            "another room's key does not open it"
        );
        let delta = [0x31u8, 0x02, 0x00, 7, 7, 7];
        let sealed = s.seal(&delta)?;
        assert_eq!(&sealed[..3], &delta[..3]);
        assert_eq!(open(&key, &sealed).as_deref(), Some(&delta[..]));
        Ok(())
    }

    #[test]
    fn two_frames_never_share_an_iv() -> anyhow::Result<()> {
        let mut s = Sealer::new(Arc::new(FrameKey::derive("k", "r")?))?;
        let a = s.seal(&[0x31, 0, 0, 1])?;
        let b = s.seal(&[0x31, 0, 0, 1])?;
        assert_ne!(a[a.len() - IV_BYTES..], b[b.len() - IV_BYTES..]);
        Ok(())
    }
}
