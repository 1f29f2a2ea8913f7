//! ICE-TCP on the HTTPS port: the SFU's passive TCP candidate (RFC 6544), RFC 4571 framing
//! (a 2-byte length in front of each STUN, DTLS or SRTP packet). The HTTPS port's demux hands
//! over a connection whose first bytes are a framed STUN message; [`serve`] reads its frames
//! into the SFU task and writes what the task queues for it. The task ([`Conns`]) learns a
//! connection as a participant's transport only when that participant's ICE agent answers an
//! integrity-checked Binding request that came on it, as for UDP source addresses.
//!
//! Bounded: at most [`Port`]'s slots connections at once, frames of at most [`MAX_FRAME`]
//! bytes, a write queue of [`WRITE_QUEUE`] frames per connection (full: the frame is dropped,
//! as UDP would; the SFU task never waits), closed after [`IDLE`] without a frame and after
//! [`UNPROVEN`] without being learned; a connection that sends anything but STUN for a known
//! participant first is closed at once. A closed connection is forgotten.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use super::{Pid, Stats};

/// Longest frame read or written (RFC 4571 allows 65,535; media packets stay under the MTU).
pub const MAX_FRAME: usize = 2048;
/// Frames waiting to be written to one connection.
pub const WRITE_QUEUE: usize = 256;
/// A connection without a frame from the client for this long is closed (ICE consent checks
/// come every few seconds).
pub const IDLE: Duration = Duration::from_secs(30);
/// A connection not learned as a participant's within this long is closed.
pub const UNPROVEN: Duration = Duration::from_secs(10);
/// Events from the connections to the SFU task waiting at once.
const EVENT_QUEUE: usize = 1024;

/// What a connection tells the SFU task.
#[derive(Debug)]
pub enum Event {
    Open {
        id: u64,
        remote: SocketAddr,
        tx: mpsc::Sender<Bytes>,
    },
    Frame {
        id: u64,
        data: Vec<u8>,
    },
    Closed {
        id: u64,
    },
}

/// The HTTPS port's way into the SFU: where connections are handed over.
#[derive(Debug, Clone)]
pub struct Port {
    events: mpsc::Sender<Event>,
    slots: Arc<Semaphore>,
    next_id: Arc<AtomicU64>,
    stats: Arc<Stats>,
}

/// The port and the SFU task's end of its events; `max` connections at once.
pub fn port(max: usize, stats: Arc<Stats>) -> (Port, mpsc::Receiver<Event>) {
    let (events, rx) = mpsc::channel(EVENT_QUEUE);
    let port = Port {
        events,
        slots: Arc::new(Semaphore::new(max)),
        next_id: Arc::new(AtomicU64::new(1)),
        stats,
    };
    (port, rx)
}

/// Serves one ICE-TCP connection (`first`: the bytes the demux read, replayed) until it closes,
/// goes idle, the SFU task drops it, or `stop`.
pub async fn serve<S>(port: Port, io: S, remote: SocketAddr, stop: CancellationToken)
where
    S: AsyncRead + AsyncWrite + Send + Unpin,
{
    let Ok(_slot) = port.slots.clone().try_acquire_owned() else {
        port.stats.tcp_refused.fetch_add(1, Relaxed);
        return;
    };
    let id = port.next_id.fetch_add(1, Relaxed);
    let (tx, mut rx) = mpsc::channel::<Bytes>(WRITE_QUEUE);
    if port
        .events
        .send(Event::Open { id, remote, tx })
        .await
        .is_err()
    {
        return;
    }
    let (mut r, mut w) = tokio::io::split(io);
    let events = port.events.clone();
    let read = async move {
        let mut buf = vec![0u8; MAX_FRAME];
        loop {
            let mut len = [0u8; 2];
            match tokio::time::timeout(IDLE, r.read_exact(&mut len)).await {
                Ok(Ok(_)) => {}
                _ => return,
            }
            let n = u16::from_be_bytes(len) as usize;
            if n == 0 || n > MAX_FRAME {
                return;
            }
            match tokio::time::timeout(IDLE, r.read_exact(&mut buf[..n])).await {
                Ok(Ok(_)) => {}
                _ => return,
            }
            let data = buf[..n].to_vec();
            if events.send(Event::Frame { id, data }).await.is_err() {
                return;
            }
        }
    };
    let write = async move {
        let mut out = Vec::with_capacity(MAX_FRAME + 2);
        // The task dropping its sender closes the connection.
        while let Some(frame) = rx.recv().await {
            out.clear();
            out.extend_from_slice(&(frame.len() as u16).to_be_bytes());
            out.extend_from_slice(&frame);
            if w.write_all(&out).await.is_err() {
                return;
            }
        }
        let _ = w.shutdown().await;
    };
    tokio::select! {
        _ = read => {}
        _ = write => {}
        _ = stop.cancelled() => {}
    }
    let _ = port.events.send(Event::Closed { id }).await;
}

struct Conn {
    remote: SocketAddr,
    tx: mpsc::Sender<Bytes>,
    /// The participant it was learned for.
    owner: Option<Pid>,
    opened: Instant,
}

/// The SFU task's view of the ICE-TCP connections.
#[derive(Default)]
pub struct Conns {
    by_id: HashMap<u64, Conn>,
    by_remote: HashMap<SocketAddr, u64>,
}

impl Conns {
    pub fn open(&mut self, id: u64, remote: SocketAddr, tx: mpsc::Sender<Bytes>, now: Instant) {
        if let Some(old) = self.by_remote.insert(remote, id) {
            self.by_id.remove(&old);
        }
        let conn = Conn {
            remote,
            tx,
            owner: None,
            opened: now,
        };
        self.by_id.insert(id, conn);
    }

    /// Forgets connection `id` (dropping its sender closes it, if it was still open).
    pub fn close(&mut self, id: u64) {
        if let Some(c) = self.by_id.remove(&id)
            && self.by_remote.get(&c.remote) == Some(&id)
        {
            self.by_remote.remove(&c.remote);
        }
    }

    /// The remote address and the learned owner of connection `id`, if it is open.
    pub fn get(&self, id: u64) -> Option<(SocketAddr, Option<Pid>)> {
        self.by_id.get(&id).map(|c| (c.remote, c.owner))
    }

    /// Queues `frame` for the connection from `remote`, when it is `p`'s or not yet anyone's;
    /// `learn` (a Binding success response from `p`'s agent) makes it `p`'s. False: no such
    /// connection, another's, or its queue is full (the frame is dropped).
    pub fn send(&mut self, p: Pid, remote: SocketAddr, frame: &[u8], learn: bool) -> bool {
        let Some(c) = self
            .by_remote
            .get(&remote)
            .and_then(|id| self.by_id.get_mut(id))
        else {
            return false;
        };
        match c.owner {
            Some(o) if o != p => return false,
            None if learn => c.owner = Some(p),
            _ => {}
        }
        c.tx.try_send(Bytes::copy_from_slice(frame)).is_ok()
    }

    /// Closes `p`'s connections (it left).
    pub fn forget(&mut self, p: Pid) {
        let ids: Vec<u64> = self
            .by_id
            .iter()
            .filter(|(_, c)| c.owner == Some(p))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.close(id);
        }
    }

    /// Closes connections not learned within [`UNPROVEN`].
    pub fn sweep(&mut self, now: Instant) {
        let ids: Vec<u64> = self
            .by_id
            .iter()
            .filter(|(_, c)| {
                c.owner.is_none() && now.saturating_duration_since(c.opened) > UNPROVEN
            })
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.close(id);
        }
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// A connection is anyone's until a participant's Binding success response goes out on
    /// it; then only that participant's frames go there. Unproven ones are swept, a
    /// participant's go with it, and a full queue drops rather than waits.
    #[tokio::test]
    async fn learned_by_one_participant_then_bounded() {
        let now = Instant::now();
        let mut c = Conns::default();
        let (tx, mut rx) = mpsc::channel(2);
        c.open(1, addr("192.0.2.1:5000"), tx, now);
        assert!(c.send(7, addr("192.0.2.1:5000"), b"a", false));
        assert!(c.send(7, addr("192.0.2.1:5000"), b"b", true));
        assert_eq!(c.get(1), Some((addr("192.0.2.1:5000"), Some(7))));
        assert!(!c.send(8, addr("192.0.2.1:5000"), b"x", true), "another's");
        assert!(
            !c.send(7, addr("192.0.2.1:5000"), b"c", false),
            "queue full"
        );
        assert_eq!(rx.recv().await.unwrap(), Bytes::from_static(b"a"));
        assert!(
            !c.send(7, addr("192.0.2.9:1"), b"x", false),
            "no such connection"
        );

        let (tx2, mut rx2) = mpsc::channel(2);
        c.open(2, addr("192.0.2.2:5000"), tx2, now);
        c.sweep(now + UNPROVEN + Duration::from_secs(1));
        assert_eq!(c.len(), 1, "the unproven one is gone");
        assert!(rx2.recv().await.is_none(), "and closed");
        c.forget(7);
        assert!(c.is_empty());
        // A closed connection's id is forgotten; a stale close does not hit a newer one.
        let (tx3, _rx3) = mpsc::channel(2);
        c.open(3, addr("192.0.2.1:5000"), tx3, now);
        c.close(1);
        assert!(c.get(3).is_some());
    }

    /// Frames come in as sent; an oversized or empty frame closes the connection, and so does
    /// the task dropping it.
    #[tokio::test]
    async fn framing() {
        let stats = Arc::new(Stats::default());
        let (port, mut events) = port(1, stats.clone());
        let (mut client, server) = tokio::io::duplex(8192);
        let stop = CancellationToken::new();
        let task = tokio::spawn(serve(
            port.clone(),
            server,
            addr("192.0.2.1:1"),
            stop.clone(),
        ));
        let Some(Event::Open { id, tx, .. }) = events.recv().await else {
            panic!("open");
        };
        // A second connection finds no slot.
        let (_c2, s2) = tokio::io::duplex(64);
        serve(port.clone(), s2, addr("192.0.2.1:2"), stop.clone()).await;
        assert_eq!(stats.tcp_refused.load(Relaxed), 1);

        client.write_all(&[0, 3, 1, 2, 3, 0, 1, 9]).await.unwrap();
        for want in [vec![1, 2, 3], vec![9]] {
            match events.recv().await {
                Some(Event::Frame { id: i, data }) => {
                    assert_eq!((i, data), (id, want));
                }
                other => panic!("{other:?}"),
            }
        }
        tx.send(Bytes::from_static(b"hey")).await.unwrap();
        let mut got = [0u8; 5];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"\x00\x03hey");
        drop(tx);
        task.await.unwrap();
        assert!(matches!(events.recv().await, Some(Event::Closed { .. })));

        for bad in [
            vec![0u8, 0],
            ((MAX_FRAME + 1) as u16).to_be_bytes().to_vec(),
        ] {
            let (mut client, server) = tokio::io::duplex(8192);
            let task = tokio::spawn(serve(
                port.clone(),
                server,
                addr("192.0.2.1:3"),
                stop.clone(),
            ));
            let Some(Event::Open { tx: _tx, .. }) = events.recv().await else {
                panic!("open");
            };
            client.write_all(&bad).await.unwrap();
            task.await.unwrap();
            assert!(matches!(events.recv().await, Some(Event::Closed { .. })));
        }
    }
}
