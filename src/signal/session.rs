//! One WebSocket connection: a reader (parse, rate limit, talk to the hub, idle timeout) and a
//! writer (drain the bounded outbound queue, ping) in one task, ended by the peer, the idle
//! timer, a full queue, or the shutdown token, each with its close code.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::Hub;
use super::address::{Admission, Allowance, read_pause};
use super::password::{self, Key, Salt};
use super::protocol::{self, ClientMessage, MAX_CONTROL_BYTES, Resume, RoomChange, SignalError};
use super::room::{Entry, Member, Peer};
use crate::cluster::Home;
use crate::cluster::link::{HomeEnd, Link, Target};
use crate::config::Secret;
use crate::limit::{AddrKey, TokenBucket, lock};

/// How long the server waits for a close handshake or a last write before dropping the socket.
const CLOSE_WAIT: Duration = Duration::from_secs(1);
/// At most one `rate-limited` error per this long, so a flood cannot make the server talk.
const LIMIT_NOTICE_EVERY: Duration = Duration::from_secs(1);
/// The close code of a connection whose session another connection resumed (private use
/// range of RFC 6455; docs/protocol.md).
const REPLACED: u16 = 4001;
/// Frames written per flush when the queue has a backlog.
const BATCH: usize = 64;

type Sink<S> = SplitSink<WebSocketStream<S>, Message>;
type Stream<S> = SplitStream<WebSocketStream<S>>;

/// Who is at the other end of the WebSocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// A client (a browser, the seed's page, a script).
    Client,
    /// Another node of the cluster relaying one of its members (`cluster::link`): such a
    /// session is never relayed on to a third node.
    Node,
}

/// Serves one upgraded connection until it ends; never panics on input.
pub async fn run<S>(
    ws: WebSocketStream<S>,
    peer: SocketAddr,
    host: Option<String>,
    via: Via,
    hub: Arc<Hub>,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let id = uuid::Uuid::new_v4().to_string();
    // Only what the server chose goes in the span: the room is a field of the events that
    // change it (recording it here appended it again on every login).
    let span = tracing::info_span!("session", peer = %peer, session = %id);
    serve(ws, peer, host, via, hub, shutdown, id)
        .instrument(span)
        .await
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The client sent a close frame.
    Closed,
    /// The socket broke or ended without a close frame.
    Gone,
    Idle,
    TooBig,
    TooSlow,
    Shutdown,
    /// A frame broke RFC 6455 (bad opcode, reserved bits, unmasked, fragmented control...).
    Protocol,
    /// A text frame (or a close reason) that is not UTF-8.
    NotUtf8,
    /// The room's host removed it.
    Removed,
    /// Another connection resumed this session.
    Replaced,
    /// The room's home node ended the relay of this member (or could not be reached).
    Home,
    /// Its room was found homed on another node (a split home): it resumes there.
    Moved,
}

impl End {
    fn as_str(self) -> &'static str {
        match self {
            End::Closed => "closed",
            End::Gone => "gone",
            End::Idle => "idle timeout",
            End::TooBig => "message too big",
            End::TooSlow => "too slow",
            End::Shutdown => "server shutting down",
            End::Protocol => "protocol error",
            End::NotUtf8 => "invalid UTF-8",
            End::Removed => "removed by the host",
            End::Replaced => "resumed on another connection",
            End::Home => "home node gone",
            End::Moved => "room moved to another node",
        }
    }

    /// The `reason` label of `peerbox_ws_closed_total` ([`super::stats::CLOSE_REASONS`]).
    fn label(self) -> &'static str {
        match self {
            End::Closed => "closed",
            End::Gone => "gone",
            End::Idle => "idle",
            End::TooBig => "too_big",
            End::TooSlow => "too_slow",
            End::Shutdown => "shutdown",
            End::Protocol => "protocol",
            End::NotUtf8 => "not_utf8",
            End::Removed => "removed",
            End::Replaced => "replaced",
            End::Home => "home",
            End::Moved => "moved",
        }
    }

    /// The close frame the server sends, if any.
    fn close_frame(self) -> Option<CloseFrame> {
        let code = match self {
            End::Closed | End::Gone => return None,
            End::Idle => CloseCode::Normal,
            End::TooBig => CloseCode::Size,
            End::TooSlow | End::Removed => CloseCode::Policy,
            // Like a restart: the client reconnects and resumes, and its room is placed again.
            End::Shutdown | End::Home | End::Moved => CloseCode::Away,
            End::Protocol => CloseCode::Protocol,
            End::NotUtf8 => CloseCode::Invalid,
            End::Replaced => CloseCode::from(REPLACED),
        };
        Some(CloseFrame {
            code,
            reason: self.as_str().into(),
        })
    }

    /// How a read error ends the session.
    fn of_error(e: &WsError) -> End {
        match e {
            WsError::Capacity(_) => End::TooBig,
            WsError::Utf8(_) => End::NotUtf8,
            // EOF without a close frame: the peer is gone, there is nobody to tell.
            WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => End::Gone,
            WsError::Protocol(_) => End::Protocol,
            _ => End::Gone,
        }
    }
}

async fn serve<S>(
    ws: WebSocketStream<S>,
    addr: SocketAddr,
    host: Option<String>,
    via: Via,
    hub: Arc<Hub>,
    shutdown: CancellationToken,
    id: String,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut sink, mut stream) = ws.split();
    let key = AddrKey::new(addr.ip(), hub.config.ipv6_prefix);
    let admission = match hub.admit(key) {
        Ok(a) => a,
        Err(refusal) => {
            hub.stats.closed("refused");
            hub.stats.error(&refusal.error);
            if refusal.log {
                tracing::info!(addr = %key, "connection refused: too many connections");
            } else {
                tracing::debug!("connection refused: too many connections");
            }
            let frame = Message::Text(refusal.error.to_frame());
            let _ = tokio::time::timeout(CLOSE_WAIT, sink.send(frame)).await;
            let close = CloseFrame {
                code: CloseCode::Policy,
                reason: "too many connections".into(),
            };
            finish(&mut sink, &mut stream, Some(close)).await;
            return;
        }
    };
    tracing::debug!("connected");
    hub.stats.connections_total.fetch_add(1, Ordering::Relaxed);
    let c = &hub.config;
    let (me, mut rx) = Peer::new(c.outbound_queue, c.outbound_queue_bytes);
    let now = std::time::Instant::now();
    let mut session = Session {
        me: me.clone(),
        messages: TokenBucket::new(c.messages_per_second.into(), c.message_burst.into(), now),
        bytes: TokenBucket::new(c.bytes_per_second as f64, c.byte_burst, now),
        shared: admission.allowance.clone(),
        admission,
        last_notice: None,
        in_room: false,
        pending: None,
        knock_deadline: None,
        hub: hub.clone(),
        id,
        host,
        via,
        addr,
        link: None,
        home_end: HomeEnd::default(),
    };
    let home_gone = session.home_end.gone.clone();
    // The payload of our last ping: only the pong that echoes it proves the peer reads.
    let ping = AtomicU64::new(0);
    let (idle, every) = (c.idle_timeout, c.ping_interval);
    let end = {
        let reader = read_loop(&mut stream, &mut session, idle, &ping);
        let writer = write_loop(&mut sink, &mut rx, &me, every, &ping);
        tokio::select! {
            e = reader => e,
            e = writer => e,
            _ = me.kick.cancelled() => End::TooSlow,
            _ = me.replaced.cancelled() => End::Replaced,
            _ = me.moved.cancelled() => End::Moved,
            _ = home_gone.cancelled() => End::Home,
            _ = shutdown.cancelled() => End::Shutdown,
        }
    };
    // The home's own close frame, if it sent one: the client hears what the home decided.
    let close = match end {
        End::Home => lock(&session.home_end.close)
            .take()
            .or_else(|| end.close_frame()),
        _ => end.close_frame(),
    };
    let (left, held) = hub.leave(&session.id, &me);
    if let Some(room) = left {
        tracing::info!(room = %escaped(&room), reason = end.as_str(), "left room");
    }
    // A resumed session lives on in another connection, with its relay allocations.
    if !held {
        hub.ice.session_ended(&session.id);
    }
    hub.stats.closed(end.label());
    tracing::debug!(reason = end.as_str(), "disconnected");
    drop(session);
    // Frames still queued are dropped with the receiver, before the close handshake's wait.
    drop(rx);
    finish(&mut sink, &mut stream, close).await;
}

/// Sends `close` (or completes the client's close handshake) and waits, briefly, for the
/// client to close too, so that the close frame is not lost to a connection reset.
async fn finish<S>(sink: &mut Sink<S>, stream: &mut Stream<S>, close: Option<CloseFrame>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        match close {
            Some(frame) => {
                sink.send(Message::Close(Some(frame))).await?;
                while let Some(Ok(_)) = stream.next().await {}
                Ok(())
            }
            None => sink.close().await,
        }
    })
    .await;
}

async fn read_loop<S>(
    stream: &mut Stream<S>,
    session: &mut Session,
    idle: Duration,
    ping: &AtomicU64,
) -> End
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // One timer for the whole session, moved only when it fires: a `timeout` around every
    // read would insert and remove a timer-wheel entry per frame.
    let mut last_seen = Instant::now();
    let timer = tokio::time::sleep_until(last_seen + idle);
    tokio::pin!(timer);
    // How long a knock at a lobby may wait for the host (armed while one waits).
    let knock = tokio::time::sleep_until(last_seen);
    tokio::pin!(knock);
    let mut armed = None;
    loop {
        if session.knock_deadline != armed {
            armed = session.knock_deadline;
            if let Some(at) = armed {
                knock.as_mut().reset(at);
            }
        }
        let next = tokio::select! {
            biased;
            next = stream.next() => next,
            () = &mut timer => {
                let deadline = last_seen + idle;
                if Instant::now() >= deadline {
                    return End::Idle;
                }
                timer.as_mut().reset(deadline);
                continue;
            }
            () = &mut knock, if armed.is_some() => {
                session.knock_deadline = None;
                if session.hub.expire_knock(&session.id) {
                    tracing::info!("lobby wait over");
                }
                continue;
            }
        };
        let msg = match next {
            None => return End::Gone,
            Some(Err(e)) => {
                let end = End::of_error(&e);
                tracing::debug!(error = %e, reason = end.as_str(), "read failed");
                return end;
            }
            Some(Ok(m)) => m,
        };
        let now = Instant::now();
        let pause = match msg {
            // Only an SFU answer may be longer than `rooms.max_message_bytes` (the socket
            // takes frames up to `protocol::MAX_SFU_FRAME_BYTES` when the SFU is on).
            Message::Text(text)
                if text.len() > session.hub.config.max_message_bytes
                    && !protocol::is_sfu_answer(&text) =>
            {
                return End::TooBig;
            }
            Message::Text(text) => session.on_frame(Ok(&text), text.len(), now),
            Message::Binary(b) => session.on_frame(Err(SignalError::Binary), b.len(), now),
            Message::Pong(p) => {
                // Only the echo of our own last ping proves that the peer reads what we
                // send; unsolicited pongs (and pings, and messages) do not keep it alive.
                let want = ping.load(Ordering::Relaxed);
                if want != 0 && p.as_ref() == want.to_be_bytes() {
                    last_seen = now;
                }
                session.on_control(p.len(), now)
            }
            Message::Ping(p) => session.on_control(p.len(), now),
            Message::Close(_) => return End::Closed,
            Message::Frame(_) => Duration::ZERO,
        };
        // A password to stretch: reading waits for it (milliseconds, on the blocking pool).
        session.run_pending().await;
        if !pause.is_zero() {
            // Over its allowance: what it sends next waits in its socket (and TCP slows it
            // down), so that a flood costs this server no more than the limits allow.
            tokio::time::sleep(pause).await;
        }
    }
}

async fn write_loop<S>(
    sink: &mut Sink<S>,
    rx: &mut mpsc::Receiver<Utf8Bytes>,
    me: &Peer,
    every: Duration,
    ping: &AtomicU64,
) -> End
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut ticks = tokio::time::interval_at(Instant::now() + every, every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let written = tokio::select! {
            frame = rx.recv() => match frame {
                Some(first) => {
                    // Let the other ready sessions run first: what they queue for this peer
                    // meanwhile goes out in the same write (fewer, fuller TCP segments under
                    // load; at low load nothing else is ready and this costs one re-poll).
                    // Not when the queue is half full: then it is drained at once.
                    if rx.len() < rx.max_capacity() / 2 {
                        tokio::task::yield_now().await;
                    }
                    write_batch(sink, rx, me, first).await
                }
                None => return End::Gone,
            },
            _ = me.removed.cancelled() => {
                // Removed by the host: its `removed` error is queued; what is queued goes out
                // before the close frame. (Here, not in `serve`: there a frame this loop had
                // taken but not written yet would be lost with it.)
                let _ = tokio::time::timeout(CLOSE_WAIT, async {
                    while let Ok(frame) = rx.try_recv() {
                        me.taken(&frame);
                        sink.feed(Message::Text(frame)).await?;
                    }
                    sink.flush().await
                })
                .await;
                return End::Removed;
            }
            _ = ticks.tick() => {
                // A fresh random payload each time, so a pong cannot be sent ahead blindly.
                let payload = ping_payload();
                ping.store(payload, Ordering::Relaxed);
                sink.send(Message::Ping(Bytes::copy_from_slice(&payload.to_be_bytes()))).await
            }
        };
        if let Err(e) = written {
            tracing::debug!(error = %e, "write failed");
            return End::Gone;
        }
    }
}

/// A non-zero random ping payload.
fn ping_payload() -> u64 {
    let r = uuid::Uuid::new_v4().as_u64_pair().0;
    r.max(1)
}

/// Writes `first` and whatever else is already queued, then flushes once.
async fn write_batch<S>(
    sink: &mut Sink<S>,
    rx: &mut mpsc::Receiver<Utf8Bytes>,
    me: &Peer,
    first: Utf8Bytes,
) -> Result<(), WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    me.taken(&first);
    sink.feed(Message::Text(first)).await?;
    for _ in 0..BATCH {
        match rx.try_recv() {
            Ok(frame) => {
                me.taken(&frame);
                sink.feed(Message::Text(frame)).await?
            }
            Err(_) => break,
        }
    }
    sink.flush().await
}

/// The per-connection state the reader works on.
struct Session {
    hub: Arc<Hub>,
    id: String,
    /// This session's own queue: answers go through the writer like everything else.
    me: Arc<Peer>,
    /// This connection's own allowances; `shared` is its address's, for all its connections.
    messages: TokenBucket,
    bytes: TokenBucket,
    shared: Arc<Mutex<Allowance>>,
    /// Holds the connection's slot in the hub's table until the session ends.
    admission: Admission,
    last_notice: Option<Instant>,
    /// Whether this session may be in a room (false is certain: only its own login puts it
    /// in one). Before a room, a frame too long for anything but a relay is not even parsed.
    in_room: bool,
    /// The host name the client reached us by, for `iceServers`.
    host: Option<String>,
    /// A message that needs a password stretched before the hub can take it.
    pending: Option<Pending>,
    /// While it knocks at a lobby: when it stops waiting.
    knock_deadline: Option<Instant>,
    via: Via,
    /// The client's address (a relay to another node carries it).
    addr: SocketAddr,
    /// While its room lives on another node: the relay there, which gets every frame.
    link: Option<Link>,
    /// Shared with the links it opens: how the home node ended one.
    home_end: HomeEnd,
}

/// A message waiting for something slow: its password to be stretched (with the salt of its
/// room), or the cluster's directory.
enum Pending {
    /// `randomCheck` for a room this node does not hold.
    Check { room: String },
    /// A login to a room this node does not hold: where does it live? `frame` is the login
    /// as sent, for the home node if that is another.
    Place {
        room: String,
        username: String,
        resume: Option<Resume>,
        password: Option<Secret>,
        sfu: bool,
        frame: Utf8Bytes,
    },
    Login {
        room: String,
        username: String,
        resume: Option<Resume>,
        password: Secret,
        salt: Salt,
        sfu: bool,
    },
    Configure {
        change: RoomChange,
        password: Secret,
        salt: Salt,
    },
}

/// What the allowances say about one frame.
struct Charge {
    allowed: bool,
    /// How long to stop reading before the next frame.
    pause: Duration,
}

impl Session {
    /// Charges a frame of `len` bytes: its bytes always (a frame over the byte allowance is
    /// read, and then reading pauses until the debt is paid), one message when both this
    /// connection and its address have one left.
    fn charge(&mut self, len: usize, now: Instant, control: bool) -> Charge {
        let now = now.into_std();
        let mut shared = lock(&self.shared);
        self.bytes.charge(len as u64, now);
        shared.bytes.charge(len as u64, now);
        let allowed = self.messages.has(1, now) && shared.messages.has(1, now);
        if allowed {
            self.messages.try_take(1, now);
            shared.messages.try_take(1, now);
        }
        if !allowed && control {
            // A ping cannot be dropped (it is answered as it is read): it is charged anyway.
            self.messages.charge(1, now);
            shared.messages.charge(1, now);
        }
        let mut pause = read_pause(&mut self.bytes, &mut shared, now);
        if control {
            // Pings are paced, never a reason to drop what follows: reading waits until the
            // next frame has its message.
            pause = pause
                .max(self.messages.wait(1, now))
                .max(shared.messages.wait(1, now));
        }
        if !allowed && shared.notices.try_take(1, now) {
            tracing::info!(addr = %self.admission.addr, "rate limiting a flood");
        }
        Charge { allowed, pause }
    }

    /// A ping or pong from the client.
    fn on_control(&mut self, len: usize, now: Instant) -> Duration {
        self.charge(len, now, true).pause
    }

    /// One text frame (or the error a frame already is); returns how long to pause reading.
    fn on_frame(&mut self, frame: Result<&str, SignalError>, len: usize, now: Instant) -> Duration {
        let Charge { allowed, pause } = self.charge(len, now, false);
        if !allowed {
            tracing::debug!("rate limited");
            self.hub.stats.rate_limited("messages");
            self.hub.stats.error(&SignalError::RateLimited);
            if self
                .last_notice
                .is_none_or(|t| now.duration_since(t) >= LIMIT_NOTICE_EVERY)
            {
                self.last_notice = Some(now);
                self.me.send_or_drop(SignalError::RateLimited.to_frame());
            }
            return pause;
        }
        let result = frame.and_then(|text| {
            if self.link.is_some() && self.relays(text) {
                return self.forward(text);
            }
            // Cheap checks first: before a room only a relay may be this long, and a
            // relay needs a room.
            if !self.in_room && text.len() > MAX_CONTROL_BYTES {
                return Err(SignalError::NotInRoom);
            }
            let msg = protocol::parse(text)?;
            self.handle(msg, text)
        });
        if let Err(e) = result {
            tracing::debug!(error_type = e.error_type(), "refused message");
            self.hub.stats.error(&e);
            self.me.send_or_drop(e.to_frame());
        }
        pause
    }

    /// Whether `text` goes to the home node over the link: everything but a login to
    /// another room, which ends the link (the home's session leaves the room) first.
    fn relays(&mut self, text: &str) -> bool {
        let to_other_room = match protocol::parse(text) {
            Ok(ClientMessage::Login { room, .. }) => {
                self.link.as_ref().is_some_and(|l| l.room != room)
            }
            _ => false,
        };
        if to_other_room {
            self.link = None;
            self.in_room = false;
            tracing::info!(reason = "login elsewhere", "left relayed room");
        }
        !to_other_room
    }

    /// Hands a frame to the link; a link whose queue is full (the home does not keep up)
    /// ends this session as too slow, as a full outbound queue does.
    fn forward(&mut self, text: &str) -> Result<(), SignalError> {
        let Some(link) = &self.link else {
            return Err(SignalError::NotInRoom);
        };
        if !link.forward(Utf8Bytes::from(text)) {
            tracing::debug!("relay to home node full");
            self.me.kick.cancel();
        }
        Ok(())
    }

    fn handle(&mut self, msg: ClientMessage<'_>, text: &str) -> Result<(), SignalError> {
        let kind = msg.kind();
        tracing::debug!(kind, "message");
        self.hub.stats.message(kind);
        match msg {
            ClientMessage::RandomCheck { room } => {
                let exists = self.hub.room_exists(&room);
                if !exists && self.hub.cluster.is_some() {
                    self.pending = Some(Pending::Check { room });
                } else {
                    self.me.send(protocol::random_check_result(&room, exists));
                }
            }
            ClientMessage::Login {
                room,
                username,
                resume,
                password,
                sfu,
            } if self.hub.cluster.is_some() && !self.hub.room_exists(&room) => {
                // Refused before anything changes, as on one node.
                self.take_credentials()?;
                self.pending = Some(Pending::Place {
                    room,
                    username,
                    resume,
                    password,
                    sfu,
                    frame: Utf8Bytes::from(text),
                });
            }
            ClientMessage::Login {
                room,
                username,
                resume,
                password,
                sfu,
            } => {
                self.take_credentials()?;
                self.login(room, username, resume, password, sfu)?
            }
            ClientMessage::Relay { to, fields, .. } => {
                let id = self.id.as_str();
                let relayed = self
                    .hub
                    .relay(id, &to, || protocol::relay_frame(&fields, id));
                if relayed == Err(SignalError::NotInRoom) {
                    self.in_room = false;
                }
                relayed?;
            }
            ClientMessage::Logout => match self.hub.leave(&self.id, &self.me).0 {
                Some(room) => {
                    self.in_room = false;
                    tracing::info!(room = %escaped(&room), reason = "logout", "left room");
                }
                None => {
                    self.in_room = false;
                    return Err(SignalError::NotInRoom);
                }
            },
            ClientMessage::IceServers => {
                self.take_credentials()?;
                let ice = self.hub.ice.ice_servers(&self.id, self.host.as_deref());
                self.me.send(protocol::ice_servers_frame(ice));
            }
            ClientMessage::Configure(mut change) => match change.password.take() {
                Some(Some(password)) => {
                    // The host check comes before the stretching it would cost.
                    let salt = self.hub.host_salt(&self.id)?;
                    self.take_stretch()?;
                    self.pending = Some(Pending::Configure {
                        change,
                        password,
                        salt,
                    });
                }
                cleared => self
                    .hub
                    .configure(&self.id, &change, cleared.map(|_| None))?,
            },
            ClientMessage::Host { action, to } => {
                self.hub.host_action(&self.id, action, &to)?;
                tracing::info!(action = kind, "host action");
            }
            ClientMessage::EndCall => {
                self.hub.end_call(&self.id)?;
                tracing::info!("call ended by the host");
            }
            ClientMessage::Sfu(request) => self.hub.sfu(&self.id, request)?,
        }
        Ok(())
    }

    /// Finishes the message that waited (which may leave another wait: a login placed here
    /// whose password must be stretched).
    async fn run_pending(&mut self) {
        while let Some(pending) = self.pending.take() {
            self.finish_pending(pending).await;
        }
    }

    async fn finish_pending(&mut self, pending: Pending) {
        let result = match pending {
            Pending::Check { room } => self.check(&room).await,
            Pending::Place {
                room,
                username,
                resume,
                password,
                sfu,
                frame,
            } => {
                self.place(room, username, resume, password, sfu, frame)
                    .await
            }
            Pending::Login {
                room,
                username,
                resume,
                password,
                salt,
                sfu,
            } => match password::stretch_async(salt, password.expose().to_owned()).await {
                Some(key) => self.enter(room, username, resume, Some(&key), sfu),
                None => return,
            },
            Pending::Configure {
                change,
                password,
                salt,
            } => match password::stretch_async(salt, password.expose().to_owned()).await {
                Some(key) => self.hub.configure(&self.id, &change, Some(Some(key))),
                None => return,
            },
        };
        if let Err(e) = result {
            tracing::debug!(error_type = e.error_type(), "refused message");
            self.hub.stats.error(&e);
            self.me.send_or_drop(e.to_frame());
        }
    }

    /// Whether the address may have a password stretched now: every wrong one and every one
    /// a host sets spends one of the address's tries.
    fn take_stretch(&self) -> Result<(), SignalError> {
        let now = std::time::Instant::now();
        let mut shared = lock(&self.shared);
        if shared.passwords.try_take(1, now) {
            return Ok(());
        }
        if shared.notices.try_take(1, now) {
            tracing::info!(addr = %self.admission.addr, "password tries rate-limited");
        }
        Err(SignalError::PasswordRateLimited)
    }

    /// Spends one of the address's credential issues (`joined`, `iceServers`).
    fn take_credentials(&self) -> Result<(), SignalError> {
        let now = std::time::Instant::now();
        let mut shared = lock(&self.shared);
        if shared.credentials.try_take(1, now) {
            return Ok(());
        }
        if shared.notices.try_take(1, now) {
            tracing::info!(addr = %self.admission.addr, "credential issuance rate-limited");
        }
        self.hub.stats.rate_limited("credentials");
        Err(SignalError::CredentialsRateLimited)
    }

    /// `randomCheck` for a room not held here: asks the directory.
    async fn check(&mut self, room: &str) -> Result<(), SignalError> {
        let Some(cluster) = self.hub.cluster.clone() else {
            return Err(SignalError::Unavailable);
        };
        let exists = self.hub.room_exists(room) || cluster.exists(room).await?;
        self.me.send(protocol::random_check_result(room, exists));
        Ok(())
    }

    /// A login to a room not held here: joins it here if this node is (or becomes) its home,
    /// or relays this member to the home node.
    async fn place(
        &mut self,
        room: String,
        username: String,
        resume: Option<Resume>,
        password: Option<Secret>,
        sfu: bool,
        frame: Utf8Bytes,
    ) -> Result<(), SignalError> {
        let Some(cluster) = self.hub.cluster.clone() else {
            return Err(SignalError::Unavailable);
        };
        let home = match cluster.place(&room).await {
            Ok(home) => home,
            Err(e) => {
                tracing::info!(room = %escaped(&room), "room not placed: directory unavailable");
                return Err(e);
            }
        };
        let (address, pin) = match home {
            Home::Here => return self.login(room, username, resume, password, sfu),
            // A relayed member goes no further: the directory moved the room meanwhile, and
            // the client's retry finds the new home from its own node.
            Home::Node { .. } if self.via == Via::Node => return Err(SignalError::Unavailable),
            Home::Node { address, id, pin } => {
                tracing::info!(room = %escaped(&room), home = %escaped(&id), "relaying to home node");
                (address, pin)
            }
        };
        // Leaving the room it is in here, if any, as a login elsewhere does on one node.
        let (left, _) = self.hub.leave(&self.id, &self.me);
        if let Some(left) = left {
            tracing::info!(room = %escaped(&left), reason = "login elsewhere", "left room");
        }
        let target = Target {
            home: address,
            pin,
            node: &cluster.config.node_id,
            secret: cluster.config.secret.expose(),
            client: self.addr,
            host: self.host.as_deref(),
            stats: cluster.stats.clone(),
        };
        let link = Link::open(
            target,
            room,
            self.me.clone(),
            self.hub.config.outbound_queue,
            self.home_end.clone(),
            frame,
        );
        self.link = Some(link);
        self.in_room = true;
        self.knock_deadline = None;
        Ok(())
    }

    /// A login (its credentials already taken) to a room held here, or one to be made here.
    fn login(
        &mut self,
        room: String,
        username: String,
        resume: Option<Resume>,
        password: Option<Secret>,
        sfu: bool,
    ) -> Result<(), SignalError> {
        if let Some(password) = password {
            if let Some(salt) = self.hub.password_salt(&room) {
                // A try is spent only by a wrong password, but one must be left to try.
                if !lock(&self.shared)
                    .passwords
                    .has(1, std::time::Instant::now())
                {
                    return Err(SignalError::PasswordRateLimited);
                }
                self.pending = Some(Pending::Login {
                    room,
                    username,
                    resume,
                    password,
                    salt,
                    sfu,
                });
                return Ok(());
            }
        }
        self.enter(room, username, resume, None, sfu)
    }

    /// The login itself, with the password (if any) stretched with the room's salt.
    fn enter(
        &mut self,
        room: String,
        username: String,
        resume: Option<Resume>,
        password: Option<&Key>,
        sfu: bool,
    ) -> Result<(), SignalError> {
        let previous = self.id.clone();
        if let Some(r) = resume.filter(|r| self.hub.resume.verify(&r.token, &r.session_id, &room))
            && r.session_id != self.id
        {
            // Its own session id again (after a restart or a network change): the others
            // keep their peer connections with it.
            tracing::info!(resumed = %escaped(&r.session_id), "session resumed");
            self.hub.ice.session_ended(&self.id);
            self.id = r.session_id;
        }
        let id = self.id.as_str();
        let member = Member {
            id: id.to_owned(),
            login: protocol::login_frame(id, &room, &username),
            logout: protocol::logout_frame(id, &username),
            username,
            resume_token: self.hub.resume.issue(id, &room),
            peer: self.me.clone(),
            addr: self.admission.addr,
            ice_servers: self.hub.ice.ice_servers(id, self.host.as_deref()),
            sfu,
        };
        let was_in_room = self.in_room && self.hub.in_room(id);
        let entry = Entry {
            resumed_from: (previous != id).then_some(previous.as_str()),
            password,
        };
        let outcome = match self.hub.login(member, &room, entry) {
            Ok(o) => o,
            Err(e) => {
                if was_in_room {
                    tracing::info!(reason = "login elsewhere", "left room");
                }
                self.in_room = false;
                self.knock_deadline = None;
                if e == SignalError::WrongPassword {
                    lock(&self.shared)
                        .passwords
                        .try_take(1, std::time::Instant::now());
                }
                return Err(e);
            }
        };
        self.in_room = true;
        if let Some(left) = outcome.left {
            tracing::info!(room = %escaped(&left), reason = "login elsewhere", "left room");
        }
        if outcome.knocking {
            self.knock_deadline = Some(Instant::now() + self.hub.config.lobby_wait);
            tracing::info!(room = %escaped(&room), "knocking");
        } else {
            self.knock_deadline = None;
            tracing::info!(room = %escaped(&room), resumed = outcome.resumed, "joined room");
        }
        Ok(())
    }
}

/// Text a client chose (a room id, a header), made safe for a log line: control characters,
/// line and paragraph separators, bidirectional overrides and other invisible format
/// characters are written as `\u{..}`, backslashes doubled, and the whole cut at
/// [`LOGGED_CHARS`] characters, so that it can neither forge nor reorder nor blow up a line.
pub(crate) fn escaped(text: &str) -> Escaped<'_> {
    Escaped(text)
}

/// Most characters of one client-chosen value that reach the log.
pub(crate) const LOGGED_CHARS: usize = 128;

pub(crate) struct Escaped<'a>(&'a str);

impl std::fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write as _;
        for (i, c) in self.0.chars().enumerate() {
            if i == LOGGED_CHARS {
                return f.write_str("...");
            }
            match c {
                '\\' => f.write_str("\\\\")?,
                c if c.is_control() || is_invisible_format(c) => {
                    write!(f, "\\u{{{:x}}}", c as u32)?
                }
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// Unicode format characters that change how a line reads without being seen: bidi
/// embeddings, overrides and isolates, marks, zero-width characters, separators.
fn is_invisible_format(c: char) -> bool {
    matches!(c,
        '\u{00ad}' | '\u{061c}' | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}'
        | '\u{2060}'..='\u{206f}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_codes() {
        let cases = [
            (End::Closed, None),
            (End::Gone, None),
            (End::Idle, Some(1000)),
            (End::TooBig, Some(1009)),
            (End::TooSlow, Some(1008)),
            (End::Shutdown, Some(1001)),
            (End::Protocol, Some(1002)),
            (End::NotUtf8, Some(1007)),
            (End::Removed, Some(1008)),
            (End::Replaced, Some(4001)),
            (End::Home, Some(1001)),
            (End::Moved, Some(1001)),
        ];
        for (end, code) in cases {
            assert_eq!(
                end.close_frame().map(|f| u16::from(f.code)),
                code,
                "{end:?}"
            );
            // Every end is counted under a label the metrics list.
            assert!(
                super::super::stats::CLOSE_REASONS.contains(&end.label()),
                "{end:?}"
            );
        }
        assert_eq!(
            End::Shutdown.close_frame().map(|f| f.reason.to_string()),
            Some("server shutting down".to_string())
        );
    }

    #[test]
    fn read_errors_map_to_ends() {
        use tokio_tungstenite::tungstenite::error::CapacityError;
        let cases = [
            (
                WsError::Capacity(CapacityError::MessageTooLong {
                    size: 2,
                    max_size: 1,
                }),
                End::TooBig,
            ),
            (WsError::Utf8("bad".into()), End::NotUtf8),
            (
                WsError::Protocol(ProtocolError::NonZeroReservedBits),
                End::Protocol,
            ),
            (
                WsError::Protocol(ProtocolError::UnmaskedFrameFromClient),
                End::Protocol,
            ),
            (
                WsError::Protocol(ProtocolError::InvalidOpcode(3)),
                End::Protocol,
            ),
            (
                WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake),
                End::Gone,
            ),
            (WsError::ConnectionClosed, End::Gone),
            (
                WsError::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset)),
                End::Gone,
            ),
        ];
        for (e, want) in cases {
            assert_eq!(End::of_error(&e), want, "{e}");
        }
    }

    #[test]
    fn client_text_is_escaped_for_logs() {
        let long = "x".repeat(LOGGED_CHARS + 10);
        let cases = [
            ("room-1", "room-1".to_string()),
            ("Zoë's café", "Zoë's café".to_string()),
            ("a\nWARN forged", "a\\u{a}WARN forged".to_string()),
            ("nul\0bs\u{8}", "nul\\u{0}bs\\u{8}".to_string()),
            ("rtl\u{202e}txt", "rtl\\u{202e}txt".to_string()),
            ("ls\u{2028}ps\u{2029}", "ls\\u{2028}ps\\u{2029}".to_string()),
            ("esc\u{1b}[31m", "esc\\u{1b}[31m".to_string()),
            ("c1\u{85}", "c1\\u{85}".to_string()),
            ("zw\u{200b}", "zw\\u{200b}".to_string()),
            ("back\\u{a}", "back\\\\u{a}".to_string()),
            (long.as_str(), format!("{}...", "x".repeat(LOGGED_CHARS))),
        ];
        for (text, want) in cases {
            assert_eq!(escaped(text).to_string(), want, "{text:?}");
        }
    }
}
