//! What arrives on an HTTPS port, told apart by its first bytes: TLS (then, inside it, HTTP or
//! TURN), TURN over plain TCP, ICE-TCP to the SFU (RFC 4571 framed STUN), or plain HTTP sent
//! to the TLS port. Browsers send no ALPN on a
//! `turns:` connection and their first decrypted bytes are a STUN request, so after the
//! handshake ALPN decides when there is one (`stun.turn` -> TURN, `h2`/`http/1.1` -> HTTP) and
//! the first decrypted bytes when there is none. STUN is recognised by its magic cookie at
//! offset 4, never by the top bits alone: every HTTP method and the HTTP/2 preface start with
//! 0x40-0x7F, which is also where ChannelData's first byte lies.
//!
//! [`Prefixed`] replays the bytes read for the decision in front of the stream.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

use crate::turn::tcp::is_stun_start;

/// The first bytes of a connection to an HTTPS port, before any TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plain {
    /// A TLS record (handshake, 0x16).
    Tls,
    /// A STUN message: TURN over plain TCP.
    Turn,
    /// A 2-byte length, then a STUN header (cookie at offset 6): ICE-TCP to the SFU (RFC 6544
    /// with RFC 4571 framing).
    IceTcp,
    /// Something that starts like an HTTP request line (an upper-case method).
    Http,
    /// Anything else: closed.
    Other,
}

/// What a TLS connection without ALPN carries, by its first decrypted bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decrypted {
    Turn,
    Http,
}

/// Bytes needed to tell a STUN header (type, length, cookie) from anything else.
const STUN_PREFIX: usize = 8;
/// The same behind RFC 4571's 2-byte frame length.
const FRAMED_STUN_PREFIX: usize = 2 + STUN_PREFIX;
/// The highest first byte of an ICE-TCP connection: its first frame (a Binding request) is
/// shorter than 1,536 bytes.
const FRAMED_MAX_HIGH: u8 = 0x05;

/// Classifies `b`, the first bytes of a plain connection; None while more are needed.
pub fn plain(b: &[u8]) -> Option<Plain> {
    match *b.first()? {
        0x16 => Some(Plain::Tls),
        0x00 | 0x01 if b.len() < STUN_PREFIX => None,
        0x00 | 0x01 if is_stun_start(b) => Some(Plain::Turn),
        0x00..=FRAMED_MAX_HIGH if b.len() < FRAMED_STUN_PREFIX => None,
        0x00..=FRAMED_MAX_HIGH if is_framed_stun_start(b) => Some(Plain::IceTcp),
        b'A'..=b'Z' => Some(Plain::Http),
        _ => Some(Plain::Other),
    }
}

/// An RFC 4571 frame holding a STUN message: the frame's length covers at least a STUN
/// header, then a STUN type (top two bits zero) and the magic cookie.
fn is_framed_stun_start(b: &[u8]) -> bool {
    let len = u16::from_be_bytes([b[0], b[1]]) as usize;
    len >= 20 && is_stun_start(&b[2..])
}

/// Classifies `b`, the first decrypted bytes of a TLS connection without ALPN; None while
/// more are needed. Anything that is not STUN goes to HTTP, which answers what it cannot parse.
pub fn decrypted(b: &[u8]) -> Option<Decrypted> {
    match *b.first()? {
        0x00 | 0x01 if b.len() < STUN_PREFIX => None,
        0x00 | 0x01 if is_stun_start(b) => Some(Decrypted::Turn),
        _ => Some(Decrypted::Http),
    }
}

/// Reads from `io` into `buf` until `classify` decides (or the stream ends: then what was
/// read is classified as it is, and `None` means it was too short to say). The caller puts a
/// deadline around it.
pub async fn read_until<R, T>(
    io: &mut R,
    buf: &mut Vec<u8>,
    classify: impl Fn(&[u8]) -> Option<T>,
) -> io::Result<Option<T>>
where
    R: AsyncRead + Unpin,
{
    let mut chunk = [0u8; 512];
    loop {
        if let Some(t) = classify(buf) {
            return Ok(Some(t));
        }
        let n = io.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A stream with bytes already read from it put back in front.
pub struct Prefixed<IO> {
    prefix: Vec<u8>,
    pos: usize,
    io: IO,
}

impl<IO> Prefixed<IO> {
    pub fn new(prefix: Vec<u8>, io: IO) -> Prefixed<IO> {
        Prefixed { prefix, pos: 0, io }
    }

    pub fn get_ref(&self) -> &IO {
        &self.io
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Prefixed<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.pos < this.prefix.len() {
            let n = (this.prefix.len() - this.pos).min(buf.remaining());
            buf.put_slice(&this.prefix[this.pos..this.pos + n]);
            this.pos += n;
            if this.pos == this.prefix.len() {
                this.prefix = Vec::new();
                this.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Prefixed<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    fn stun_allocate() -> Vec<u8> {
        let mut b = vec![0x00, 0x03, 0x00, 0x08, 0x21, 0x12, 0xA4, 0x42];
        b.extend_from_slice(&[7; 12]);
        b.extend_from_slice(&[0x00, 0x19, 0x00, 0x04, 17, 0, 0, 0]);
        b
    }

    #[test]
    fn plain_table() {
        let stun = stun_allocate();
        let cases: &[(&[u8], Option<Plain>)] = &[
            (b"", None),
            (&[0x16], Some(Plain::Tls)),
            (&[0x16, 0x03, 0x01, 0x02, 0x00], Some(Plain::Tls)),
            (&stun[..1], None),
            (&stun[..7], None),
            (&stun[..8], Some(Plain::Turn)),
            (&stun, Some(Plain::Turn)),
            // A Binding request (type 0x0001) is STUN too.
            (
                &[0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42],
                Some(Plain::Turn),
            ),
            // RFC 4571 framed STUN (ICE-TCP: cookie at offset 6) is not TURN: the SFU's.
            (
                &[0x00, 0x1c, 0x00, 0x01, 0x00, 0x08, 0x21, 0x12, 0xA4, 0x42],
                Some(Plain::IceTcp),
            ),
            (
                &[0x00, 0x1c, 0x00, 0x01, 0x00, 0x08, 0x21, 0x12, 0xA4],
                None,
            ),
            (&[0x00, 0x1c, 0x00, 0x01, 0x00, 0x08, 0x21, 0x12], None),
            // A longer first frame (a Binding request with many attributes).
            (
                &[0x02, 0x10, 0x00, 0x01, 0x01, 0xfc, 0x21, 0x12, 0xA4, 0x42],
                Some(Plain::IceTcp),
            ),
            (&[0x02, 0x10, 0x00, 0x01], None),
            // Framed, but not STUN: no cookie, a frame too short for a header, a type with
            // the top bits set, or a first frame too long.
            (
                &[0x00, 0x1c, 0x00, 0x01, 0x00, 0x08, 0, 0, 0, 0],
                Some(Plain::Other),
            ),
            (
                &[0x00, 0x10, 0x00, 0x01, 0x00, 0x08, 0x21, 0x12, 0xA4, 0x42],
                Some(Plain::Other),
            ),
            (
                &[0x00, 0x1c, 0x40, 0x01, 0x00, 0x08, 0x21, 0x12, 0xA4, 0x42],
                Some(Plain::Other),
            ),
            (
                &[0x06, 0x00, 0x00, 0x01, 0x00, 0x08, 0x21, 0x12, 0xA4, 0x42],
                Some(Plain::Other),
            ),
            (b"GET / HTTP/1.1\r\n", Some(Plain::Http)),
            (b"G", Some(Plain::Http)),
            (b"POST /x HTTP/1.1\r\n", Some(Plain::Http)),
            (b"HEAD / HTTP/1.0\r\n", Some(Plain::Http)),
            (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", Some(Plain::Http)),
            // ChannelData cannot open a connection (it needs a ChannelBind first).
            (&[0x40, 0x00, 0x00, 0x04, 1, 2, 3, 4], Some(Plain::Other)),
            (b"\x80junk", Some(Plain::Other)),
            (b"get lowercase", Some(Plain::Other)),
        ];
        for (b, want) in cases {
            assert_eq!(plain(b), *want, "{b:?}");
        }
    }

    #[test]
    fn decrypted_table() {
        let stun = stun_allocate();
        let cases: &[(&[u8], Option<Decrypted>)] = &[
            (b"", None),
            (&stun[..3], None),
            (&stun, Some(Decrypted::Turn)),
            (b"GET /ws HTTP/1.1\r\n", Some(Decrypted::Http)),
            (b"PRI * HTTP/2.0\r\n", Some(Decrypted::Http)),
            // Starts like STUN but no cookie: HTTP answers (with a 400).
            (&[0x00, 0x03, 0x00, 0x08, 0, 0, 0, 0], Some(Decrypted::Http)),
        ];
        for (b, want) in cases {
            assert_eq!(decrypted(b), *want, "{b:?}");
        }
    }

    /// Split reads: the decision waits for enough bytes, whatever the chunking, and the
    /// bytes read are replayed in order.
    #[tokio::test]
    async fn split_reads_then_replay() {
        let stun = stun_allocate();
        for split in 1..stun.len() {
            let (mut a, mut b) = tokio::io::duplex(64);
            let (x, y) = (stun[..split].to_vec(), stun[split..].to_vec());
            let writer = tokio::spawn(async move {
                a.write_all(&x).await.unwrap();
                tokio::task::yield_now().await;
                a.write_all(&y).await.unwrap();
                a.write_all(b"tail").await.unwrap();
                a
            });
            let mut buf = Vec::new();
            let got = read_until(&mut b, &mut buf, plain).await.unwrap();
            assert_eq!(got, Some(Plain::Turn), "split at {split}");
            let _a = writer.await.unwrap();
            let mut p = Prefixed::new(buf, b);
            let mut all = vec![0u8; stun.len() + 4];
            p.read_exact(&mut all).await.unwrap();
            assert_eq!(&all[..stun.len()], &stun[..]);
            assert_eq!(&all[stun.len()..], b"tail");
        }
    }

    #[tokio::test]
    async fn a_short_stream_is_undecided() {
        let (mut a, mut b) = tokio::io::duplex(64);
        a.write_all(&[0x00, 0x03]).await.unwrap();
        drop(a);
        let mut buf = Vec::new();
        assert_eq!(read_until(&mut b, &mut buf, plain).await.unwrap(), None);
    }
}
