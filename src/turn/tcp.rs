//! TCP listeners (RFC 8656 over a stream): STUN messages and ChannelData (padded to 4 bytes)
//! back to back. One task per connection reads frames; a writer task drains a bounded queue.
//! The allocation a connection made dies with the connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::channel_data::stream_frame_len;
use super::server::{ClientSink, FiveTuple, Proto, Turn};

/// Frames queued towards one client before packets are dropped.
const WRITE_QUEUE: usize = 512;
/// A connection without an allocation for this long is closed.
const IDLE: Duration = Duration::from_secs(60);

/// Accepts connections until `shutdown`; at most `max` at a time.
pub async fn run(turn: Arc<Turn>, listener: TcpListener, max: usize, shutdown: CancellationToken) {
    let open = Arc::new(AtomicUsize::new(0));
    loop {
        let (stream, client) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    if turn.may_log() {
                        tracing::debug!(error = %e, "tcp accept failed");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if open.load(Relaxed) >= max {
            if turn.may_log() {
                tracing::debug!(%client, "too many turn tcp connections; refusing");
            }
            continue;
        }
        open.fetch_add(1, Relaxed);
        let (turn, open, shutdown) = (turn.clone(), open.clone(), shutdown.clone());
        tokio::spawn(async move {
            connection(&turn, stream, shutdown).await;
            open.fetch_sub(1, Relaxed);
        });
    }
}

async fn connection(turn: &Turn, stream: TcpStream, shutdown: CancellationToken) {
    let (Ok(client), Ok(server)) = (stream.peer_addr(), stream.local_addr()) else {
        return;
    };
    let _ = stream.set_nodelay(true);
    let five = FiveTuple {
        client,
        server,
        proto: Proto::Tcp,
    };
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Bytes>(WRITE_QUEUE);
    let writer = tokio::spawn(async move {
        while let Some(b) = rx.recv().await {
            if wr.write_all(&b).await.is_err() {
                break;
            }
        }
    });
    let sink = ClientSink::Tcp(tx.clone());
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut out = Vec::with_capacity(1500);
    let mut chunk = vec![0u8; 65_536];
    'conn: loop {
        let n = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = tokio::time::timeout(IDLE, rd.read(&mut chunk)) => match r {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => n,
                Err(_) => {
                    if turn.lookup(&five).is_none() {
                        break;
                    }
                    continue;
                }
            },
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut start = 0;
        while buf.len() - start >= 4 {
            let Some(len) = stream_frame_len(&buf[start..]) else {
                if turn.may_log() {
                    tracing::debug!(%client, "junk on turn tcp connection; closing");
                }
                break 'conn;
            };
            if buf.len() - start < len {
                break;
            }
            if turn.process(&buf[start..start + len], five, &sink, &mut out)
                && tx.send(Bytes::copy_from_slice(&out)).await.is_err()
            {
                break 'conn;
            }
            start += len;
        }
        buf.drain(..start);
    }
    turn.remove(&five);
    drop(sink);
    drop(tx);
    let _ = writer.await;
}
