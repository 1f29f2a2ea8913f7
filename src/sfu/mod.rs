//! The selective forwarding unit for big rooms (issue #11), off by default (`[sfu]`).
//!
//! One task ([`run`]) owns the media UDP socket and every participant: one str0m `Rtc` per
//! member (ICE-lite, DTLS-SRTP, frame mode, NACK/RTX by str0m). The signalling hub talks to
//! it through a bounded command queue ([`Handle`]): a full queue answers that client
//! `sfu-busy`. The task answers through each member's own signalling queue.
//! - [`demux`]: which participant a datagram belongs to (map lookups by STUN ufrag, then by a
//!   proven source address; junk dropped on the first byte).
//! - [`forward`]: the forwarding table (published track -> subscriber m-lines, both ways)
//!   and the keyframe-request throttle.
//! - [`layer`]: simulcast layer choice per subscriber m-line (view size, bandwidth) and
//!   switching on keyframes.
//! - [`speakers`]: active speakers from audio levels.
//! - [`participant`]: one member's `Rtc` and its negotiation (the server makes every offer).
//! - [`engine`]: the task's state and what each input does to it.
//! - [`tcp`]: ICE-TCP on the HTTPS port (a passive TCP candidate next to the UDP one).

pub mod demux;
mod engine;
pub mod forward;
pub mod layer;
mod participant;
pub mod speakers;
pub mod tcp;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::SfuConfig;
use crate::signal::protocol::SignalError;
use crate::signal::room::Peer;

/// A participant's id inside the SFU task.
pub type Pid = u64;

/// Largest datagram read from the media socket.
const MAX_DATAGRAM: usize = 2048;
/// Send and receive buffers of the media socket (capped by the kernel's `net.core.rmem_max` /
/// `wmem_max`). The default 208 KiB hold ~70 ms of a 40-member room's inbound media: a burst
/// of work in the task (a round of offers while a room fills) overflowed it, and the drops
/// took members' connectivity checks with the media.
const SOCKET_BUFFER: usize = 4 << 20;
/// How often participants whose session ended (or that never connected) are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// How often layers are chosen again (estimates move, layers stop) and speakers looked at.
const TICK: Duration = Duration::from_millis(250);
/// A subscriber's `sfu-view` is applied at once at most this often (the rest at the next
/// [`TICK`]).
const VIEW_EVERY: Duration = Duration::from_millis(250);

/// What the signalling hub asks of the SFU task.
#[derive(Debug)]
pub enum Command {
    /// Connect `session` (a member of `room`, in SFU mode) to the SFU: it gets `sfu-offer`.
    Join {
        session: String,
        room: String,
        peer: Arc<Peer>,
    },
    Answer {
        session: String,
        sdp: String,
    },
    Candidate {
        session: String,
        candidate: String,
    },
    /// It sent `sfu-leave`, or left its room.
    Leave {
        session: String,
    },
    /// `sfu-view`: the sizes its remote videos are shown at.
    View {
        session: String,
        views: Vec<crate::signal::protocol::SfuView>,
    },
    /// `sfu-unpublish {source: "screen"}`.
    UnpublishScreen {
        session: String,
    },
}

/// The hub's end of the SFU task's command queue.
#[derive(Debug, Clone)]
pub struct Handle {
    tx: mpsc::Sender<Command>,
    pub stats: Arc<Stats>,
    /// `sfu.max_room_members`: a room of SFU clients may hold this many members.
    pub max_room_members: usize,
}

impl Handle {
    /// Queues `command` without waiting: a full queue is `sfu-busy` for that client.
    pub fn send(&self, command: Command) -> Result<(), SignalError> {
        self.tx.try_send(command).map_err(|_| {
            self.stats.busy.fetch_add(1, Relaxed);
            SignalError::SfuBusy
        })
    }
}

/// The SFU's counters.
#[derive(Debug, Default)]
pub struct Stats {
    pub joined: AtomicU64,
    /// Media frames written to subscribers.
    pub forwarded: AtomicU64,
    pub keyframe_requests: AtomicU64,
    /// Datagrams dropped by the demux, by [`demux::Dropped`].
    pub dropped_junk: AtomicU64,
    pub dropped_unknown_ufrag: AtomicU64,
    pub dropped_unknown_addr: AtomicU64,
    /// Datagrams the socket would not take at once.
    pub send_dropped: AtomicU64,
    /// Commands refused because the queue was full.
    pub busy: AtomicU64,
    /// ICE-TCP connections refused for want of a slot.
    pub tcp_refused: AtomicU64,
    /// ICE-TCP connections closed because their first frames were not a known
    /// participant's STUN.
    pub tcp_junk: AtomicU64,
    /// Participants now.
    pub participants: AtomicU64,
}

impl Stats {
    fn dropped(&self, why: demux::Dropped) {
        let c = match why {
            demux::Dropped::Junk => &self.dropped_junk,
            demux::Dropped::UnknownUfrag => &self.dropped_unknown_ufrag,
            demux::Dropped::UnknownAddr => &self.dropped_unknown_addr,
        };
        c.fetch_add(1, Relaxed);
    }
}

/// The command queue: the hub's [`Handle`] and the task's receiving end.
pub fn channel(config: &SfuConfig) -> (Handle, mpsc::Receiver<Command>) {
    let (tx, rx) = mpsc::channel(config.command_queue);
    let handle = Handle {
        tx,
        stats: Arc::default(),
        max_room_members: config.max_room_members,
    };
    (handle, rx)
}

/// What the SFU task needs besides its socket.
pub struct Deps {
    pub config: SfuConfig,
    pub commands: mpsc::Receiver<Command>,
    pub stats: Arc<Stats>,
    /// ICE-TCP: the address of the passive TCP candidate (the HTTPS port) and the connections'
    /// events, when the HTTPS port hands connections over.
    pub tcp: Option<(SocketAddr, mpsc::Receiver<tcp::Event>)>,
}

/// ICE-TCP connections at once: two per participant the SFU may hold.
pub fn max_tcp(config: &SfuConfig) -> usize {
    config.max_participants.saturating_mul(2)
}

/// The address of the passive TCP candidate: the UDP candidate's IP (else the HTTPS listen
/// address's) on the HTTPS port `https`.
pub fn tcp_candidate_addr(config: &SfuConfig, https: SocketAddr) -> SocketAddr {
    match config.candidate_ip(None) {
        Some(ip) => SocketAddr::new(ip, https.port()),
        None => https,
    }
}

/// The address the SFU's candidate advertises: `sfu.public_ip` (or `turn.external_ip`), else
/// the socket's own address.
pub fn candidate_addr(config: &SfuConfig, local: SocketAddr) -> SocketAddr {
    match config.candidate_ip(None) {
        Some(ip) => SocketAddr::new(ip, local.port()),
        None => local,
    }
}

/// The media socket on `addr`, with [`SOCKET_BUFFER`]s; a warning names the sysctl when the
/// kernel gave less (the Debian package raises the cap, a hand install may not).
pub fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = crate::turn::socket::bind_one(addr, false, SOCKET_BUFFER)?;
    // Linux reports twice what it grants (the bookkeeping share); other kernels what they grant.
    let got = socket2::SockRef::from(&socket)
        .recv_buffer_size()
        .unwrap_or(0);
    if got < SOCKET_BUFFER {
        tracing::warn!(
            asked = SOCKET_BUFFER,
            got,
            "sfu media socket buffer capped by the kernel: a busy room may drop datagrams; \
             raise it with `sysctl -w net.core.rmem_max=4194304 net.core.wmem_max=4194304`"
        );
    }
    UdpSocket::from_std(socket)
}

/// Serves the media socket until `shutdown`.
pub async fn run(socket: UdpSocket, deps: Deps, shutdown: CancellationToken) {
    let Deps {
        config,
        mut commands,
        stats,
        tcp,
    } = deps;
    let (tcp_candidate, mut tcp_events) = match tcp {
        Some((a, rx)) => (Some(a), Some(rx)),
        None => (None, None),
    };
    let local = match socket.local_addr() {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "sfu socket has no address");
            return;
        }
    };
    let candidate = candidate_addr(&config, local);
    if candidate.ip().is_unspecified() {
        tracing::warn!(
            listen = %local,
            "sfu.listen is a wildcard and no sfu.public_ip or turn.external_ip is set: \
             clients are told an unreachable address"
        );
    }
    tracing::info!(listen = %local, candidate = %candidate, tcp = ?tcp_candidate, "sfu serving");
    let socket = Arc::new(socket);
    let mut engine = engine::Engine::new(config, socket.clone(), candidate, stats.clone());
    engine.set_tcp_candidate(tcp_candidate);
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut sweep = tokio::time::interval(SWEEP_EVERY);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let wake = engine
            .next_wake()
            .unwrap_or_else(|| Instant::now() + SWEEP_EVERY);
        // Not `biased`: a socket that always has a datagram would starve the `Rtc` timeouts
        // (str0m's pacer sends on them), the commands (answers) and the sweep.
        tokio::select! {
            _ = shutdown.cancelled() => break,
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, source)) => engine.on_datagram(&buf[..n], source, Instant::now()),
                // ICMP errors of earlier sends surface here; the socket goes on.
                Err(e) => tracing::trace!(error = %e, "sfu recv"),
            },
            c = commands.recv() => match c {
                Some(c) => engine.on_command(c, Instant::now()),
                None => break,
            },
            Some(e) = next_tcp(&mut tcp_events) => engine.on_tcp(e, Instant::now()),
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {
                engine.on_timeout(Instant::now());
            }
            _ = sweep.tick() => engine.sweep(Instant::now()),
            _ = tick.tick() => engine.tick(Instant::now()),
        }
        stats
            .participants
            .store(engine.participants() as u64, Relaxed);
    }
    tracing::info!("sfu stopped");
}

/// The next ICE-TCP event, or never when there is no ICE-TCP.
async fn next_tcp(rx: &mut Option<mpsc::Receiver<tcp::Event>>) -> Option<tcp::Event> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
