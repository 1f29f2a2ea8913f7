//! TURN over a stream (RFC 8656 over TCP, and over TLS on the HTTPS port): STUN messages and
//! ChannelData (padded to 4 bytes) back to back. One task per connection reads frames; a writer
//! task drains a bounded queue, so reading never waits on writing (a client that stops reading
//! loses its packets and answers, and costs the server nothing more). A connection admitted
//! through a [`crate::limit::Gate`] must start with a STUN message and hold an allocation soon
//! (and again soon after one ended), or it is closed; the allocation it made dies with it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::channel_data::stream_frame_len;
use super::codec::MAGIC;
use super::server::{ClientSink, FiveTuple, Proto, Turn};
use crate::limit::Pass;

/// Frames queued towards one client before packets are dropped.
const WRITE_QUEUE: usize = 512;
/// Bytes gathered into one write when frames are waiting (one TLS record, one syscall).
const WRITE_BATCH: usize = 16 * 1024;
/// A connection must hold an allocation this long after it opened, or it is closed: a
/// browser allocates within a round trip or two; a drip of bytes does not extend it.
pub const ALLOCATE_DEADLINE: Duration = Duration::from_secs(10);
/// How long a connection may take to send the first 8 bytes that show it is STUN.
pub const FIRST_BYTES_DEADLINE: Duration = Duration::from_secs(5);

/// True when `b` (at least 8 bytes) starts like a STUN message: the two top bits clear and the
/// magic cookie at offset 4 (RFC 8489 5). A fresh TURN connection always starts with one; a
/// check on the top bits alone would take `GET / HTTP/1.1` for ChannelData.
pub fn is_stun_start(b: &[u8]) -> bool {
    b.len() >= 8 && b[0] & 0xC0 == 0 && b[4..8] == MAGIC.to_be_bytes()
}

/// Accepts connections on a TURN listener until `shutdown`.
pub async fn run(turn: Arc<Turn>, listener: TcpListener, shutdown: CancellationToken) {
    let tasks = TaskTracker::new();
    loop {
        let Some((mut stream, client)) = crate::net::accept(&listener, &shutdown).await else {
            break;
        };
        let Some(pass) = turn.streams.enter(client.ip()) else {
            if turn.may_log() {
                tracing::debug!(%client, "too many turn tcp connections; refusing");
            }
            continue;
        };
        let (turn, shutdown) = (turn.clone(), shutdown.clone());
        tasks.spawn(async move {
            let mut first = [0u8; 8];
            let read = tokio::time::timeout(FIRST_BYTES_DEADLINE, stream.read_exact(&mut first));
            let ok = tokio::select! {
                _ = shutdown.cancelled() => false,
                r = read => matches!(r, Ok(Ok(_))) && is_stun_start(&first),
            };
            if !ok {
                if turn.may_log() {
                    tracing::debug!(%client, "not stun on a turn tcp connection; closing");
                }
                return;
            }
            let Ok(server) = stream.local_addr() else {
                return;
            };
            let _ = stream.set_nodelay(true);
            let five = FiveTuple {
                client,
                server,
                proto: Proto::Tcp,
            };
            serve(&turn, stream, five, first.to_vec(), pass, shutdown).await;
        });
    }
    tasks.close();
    tasks.wait().await;
}

/// Serves one TURN stream whose first bytes (`first`, already read) showed STUN, until the
/// client closes, the allocation deadline passes without an allocation, the allocation ends,
/// or `shutdown`.
pub async fn serve<S>(
    turn: &Turn,
    stream: S,
    five: FiveTuple,
    first: Vec<u8>,
    _pass: Pass,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let (tx, mut rx) = mpsc::channel::<Bytes>(WRITE_QUEUE);
    // Over TCP the frames waiting are gathered into one write. Over TLS each frame is a TLS
    // record of its own, as coturn sends them: coturn's own client reads one TURN frame per
    // record and loses the rest (measured: up to 40 % loss once frames were batched).
    let gather = five.proto == Proto::Tcp;
    let writer = tokio::spawn(async move {
        let mut batch = Vec::with_capacity(WRITE_BATCH);
        while let Some(b) = rx.recv().await {
            let ok = if gather {
                batch.clear();
                batch.extend_from_slice(&b);
                while batch.len() < WRITE_BATCH {
                    match rx.try_recv() {
                        Ok(b) => batch.extend_from_slice(&b),
                        Err(_) => break,
                    }
                }
                wr.write_all(&batch).await.is_ok()
            } else {
                let mut ok = wr.write_all(&b).await.is_ok();
                while ok {
                    match rx.try_recv() {
                        Ok(b) => ok = wr.write_all(&b).await.is_ok(),
                        Err(_) => break,
                    }
                }
                ok
            };
            if !ok || wr.flush().await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    let sink = ClientSink::Tcp(tx.clone());
    let mut buf: Vec<u8> = first;
    buf.reserve(8192);
    let mut out = Vec::with_capacity(1500);
    let mut chunk = vec![0u8; 16 * 1024];
    let deadline = tokio::time::sleep(ALLOCATE_DEADLINE);
    tokio::pin!(deadline);
    let mut allocated: Option<CancellationToken> = None;
    let ended = CancellationToken::new();
    'conn: loop {
        // Frames already buffered are handled before the next read.
        let mut start = 0;
        while buf.len() - start >= 4 {
            let Some(len) = stream_frame_len(&buf[start..]) else {
                if turn.may_log() {
                    tracing::debug!(client = %five.client, "junk on a turn stream; closing");
                }
                break 'conn;
            };
            if buf.len() - start < len {
                break;
            }
            if turn.process(&buf[start..start + len], five, &sink, &mut out) {
                // A client that does not read its answers loses them; the reader goes on.
                let _ = tx.try_send(Bytes::copy_from_slice(&out));
            }
            start += len;
        }
        buf.drain(..start);
        if allocated.is_none() {
            allocated = turn.lookup(&five).map(|a| a.cancel.clone());
        }
        let alloc_gone = allocated.as_ref().unwrap_or(&ended).clone();
        let n = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = alloc_gone.cancelled() => {
                // Deleted (Refresh 0) or expired: the connection may allocate again, soon.
                allocated = None;
                deadline.as_mut().reset(tokio::time::Instant::now() + ALLOCATE_DEADLINE);
                continue;
            }
            _ = &mut deadline, if allocated.is_none() => {
                if turn.may_log() {
                    tracing::debug!(client = %five.client, "no allocation in time on a turn stream; closing");
                }
                break;
            }
            r = rd.read(&mut chunk) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
        };
        buf.extend_from_slice(&chunk[..n]);
    }
    turn.remove(&five);
    drop(sink);
    drop(tx);
    let _ = writer.await;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn stun_start_table() {
        let mut allocate = vec![0x00, 0x03, 0x00, 0x08];
        allocate.extend_from_slice(&MAGIC.to_be_bytes());
        let cases: &[(&[u8], bool)] = &[
            (&allocate, true),
            (b"GET / HTTP/1.1\r\n", false),
            (b"PRI * HTTP/2.0\r\n", false),
            (&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01], false),
            // RFC 4571 framing (ICE-TCP): the cookie is at offset 6, not 4.
            (&[0x00, 0x1c, 0x00, 0x01, 0x00, 0x08, 0x21, 0x12], false),
            (&allocate[..7], false),
            (&[0x40, 0x00, 0x00, 0x04, 0x21, 0x12, 0xA4, 0x42], false),
        ];
        for (b, want) in cases {
            assert_eq!(is_stun_start(b), *want, "{b:?}");
        }
    }
}
