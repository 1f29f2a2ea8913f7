//! One WebSocket connection: a reader (parse, rate limit, talk to the hub, idle timeout) and a
//! writer (drain the bounded outbound queue, ping) in one task, ended by the peer, the idle
//! timer, a full queue, or the shutdown token, each with its close code.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::Hub;
use super::protocol::{self, ClientMessage, Joined, SignalError};
use super::room::{Member, Peer};

/// How long the server waits for a close handshake or a last write before dropping the socket.
const CLOSE_WAIT: Duration = Duration::from_secs(1);
/// At most one `rate-limited` error per this long, so a flood cannot make the server talk.
const LIMIT_NOTICE_EVERY: Duration = Duration::from_secs(1);
/// Frames written per flush when the queue has a backlog.
const BATCH: usize = 64;

type Sink<S> = SplitSink<WebSocketStream<S>, Message>;
type Stream<S> = SplitStream<WebSocketStream<S>>;

/// Serves one upgraded connection until it ends; never panics on input.
pub async fn run<S>(
    ws: WebSocketStream<S>,
    peer: SocketAddr,
    host: Option<String>,
    hub: Arc<Hub>,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let id = uuid::Uuid::new_v4().to_string();
    let span = tracing::info_span!(
        "session",
        peer = %peer,
        session = %id,
        room = tracing::field::Empty
    );
    serve(ws, peer, host, hub, shutdown, id)
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
        }
    }

    /// The close frame the server sends, if any.
    fn close_frame(self) -> Option<CloseFrame> {
        let code = match self {
            End::Closed | End::Gone => return None,
            End::Idle => CloseCode::Normal,
            End::TooBig => CloseCode::Size,
            End::TooSlow => CloseCode::Policy,
            End::Shutdown => CloseCode::Away,
        };
        Some(CloseFrame {
            code,
            reason: self.as_str().into(),
        })
    }
}

async fn serve<S>(
    ws: WebSocketStream<S>,
    addr: SocketAddr,
    host: Option<String>,
    hub: Arc<Hub>,
    shutdown: CancellationToken,
    id: String,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut sink, mut stream) = ws.split();
    let _admission = match hub.admit(addr.ip()) {
        Ok(a) => a,
        Err(e) => {
            tracing::info!("connection refused: too many connections");
            let _ = tokio::time::timeout(CLOSE_WAIT, sink.send(Message::Text(e.to_frame()))).await;
            let close = CloseFrame {
                code: CloseCode::Policy,
                reason: "too many connections".into(),
            };
            finish(&mut sink, &mut stream, Some(close)).await;
            return;
        }
    };
    tracing::debug!("connected");
    let (tx, mut rx) = mpsc::channel(hub.config.outbound_queue);
    let kick = CancellationToken::new();
    let mut session = Session {
        me: Peer {
            tx,
            kick: kick.clone(),
        },
        resume_token: format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        ),
        bucket: Bucket::new(hub.config.messages_per_second, hub.config.message_burst),
        last_notice: None,
        hub: hub.clone(),
        id,
        host,
    };
    let (idle, ping) = (hub.config.idle_timeout, hub.config.ping_interval);
    let end = {
        let reader = read_loop(&mut stream, &mut session, idle);
        let writer = write_loop(&mut sink, &mut rx, ping);
        tokio::select! {
            e = reader => e,
            e = writer => e,
            _ = kick.cancelled() => End::TooSlow,
            _ = shutdown.cancelled() => End::Shutdown,
        }
    };
    if let Some(room) = hub.leave(&session.id) {
        tracing::info!(room = %room, reason = end.as_str(), "left room");
    }
    hub.ice.session_ended(&session.id);
    tracing::debug!(reason = end.as_str(), "disconnected");
    drop(session);
    finish(&mut sink, &mut stream, end.close_frame()).await;
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

async fn read_loop<S>(stream: &mut Stream<S>, session: &mut Session, idle: Duration) -> End
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // One timer for the whole session, moved only when it fires: a `timeout` around every
    // read would insert and remove a timer-wheel entry per frame.
    let mut last_seen = Instant::now();
    let timer = tokio::time::sleep_until(last_seen + idle);
    tokio::pin!(timer);
    loop {
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
        };
        // Any frame, a pong included, proves the peer alive.
        last_seen = Instant::now();
        let msg = match next {
            None => return End::Gone,
            Some(Err(WsError::Capacity(_))) => return End::TooBig,
            Some(Err(e)) => {
                tracing::debug!(error = %e, "read failed");
                return End::Gone;
            }
            Some(Ok(m)) => m,
        };
        match msg {
            Message::Text(text) => session.on_message(Ok(&text), last_seen),
            Message::Binary(_) => session.on_message(Err(SignalError::Binary), last_seen),
            Message::Close(_) => return End::Closed,
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
        }
    }
}

async fn write_loop<S>(
    sink: &mut Sink<S>,
    rx: &mut mpsc::Receiver<Utf8Bytes>,
    every: Duration,
) -> End
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut ping = tokio::time::interval_at(Instant::now() + every, every);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
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
                    write_batch(sink, rx, first).await
                }
                None => return End::Gone,
            },
            _ = ping.tick() => sink.send(Message::Ping(Bytes::new())).await,
        };
        if let Err(e) = written {
            tracing::debug!(error = %e, "write failed");
            return End::Gone;
        }
    }
}

/// Writes `first` and whatever else is already queued, then flushes once.
async fn write_batch<S>(
    sink: &mut Sink<S>,
    rx: &mut mpsc::Receiver<Utf8Bytes>,
    first: Utf8Bytes,
) -> Result<(), WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    sink.feed(Message::Text(first)).await?;
    for _ in 0..BATCH {
        match rx.try_recv() {
            Ok(frame) => sink.feed(Message::Text(frame)).await?,
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
    me: Peer,
    resume_token: String,
    bucket: Bucket,
    last_notice: Option<Instant>,
    /// The host name the client reached us by, for `iceServers`.
    host: Option<String>,
}

impl Session {
    /// One text frame (or the error a frame already is).
    fn on_message(&mut self, frame: Result<&str, SignalError>, now: Instant) {
        if !self.bucket.take(now) {
            tracing::debug!("rate limited");
            if self
                .last_notice
                .is_none_or(|t| now.duration_since(t) >= LIMIT_NOTICE_EVERY)
            {
                self.last_notice = Some(now);
                self.me.send_or_drop(SignalError::RateLimited.to_frame());
            }
            return;
        }
        let result = frame
            .and_then(protocol::parse)
            .and_then(|msg| self.handle(msg));
        if let Err(e) = result {
            tracing::debug!(error_type = e.error_type(), "refused message");
            self.me.send_or_drop(e.to_frame());
        }
    }

    fn handle(&mut self, msg: ClientMessage<'_>) -> Result<(), SignalError> {
        tracing::debug!(kind = msg.kind(), "message");
        match msg {
            ClientMessage::RandomCheck { room } => {
                let exists = self.hub.room_exists(&room);
                self.me.send(protocol::random_check_result(&room, exists));
            }
            ClientMessage::Login {
                room,
                username,
                resume,
            } => self.login(room, username, resume)?,
            ClientMessage::Relay { to, fields, .. } => {
                let frame = protocol::relay_frame(&fields, &self.id);
                self.hub.relay(&self.id, &to, frame)?;
            }
            ClientMessage::Logout => match self.hub.leave(&self.id) {
                Some(room) => tracing::info!(room = %room, reason = "logout", "left room"),
                None => return Err(SignalError::NotInRoom),
            },
        }
        Ok(())
    }

    fn login(
        &mut self,
        room: String,
        username: String,
        resume: Option<protocol::Resume>,
    ) -> Result<(), SignalError> {
        let id = self.id.as_str();
        let member = Member {
            id: id.to_owned(),
            login: protocol::login_frame(id, &room, &username),
            logout: protocol::logout_frame(id, &username),
            username,
            resume_token: self.resume_token.clone(),
            peer: self.me.clone(),
        };
        let ice_servers = self.hub.ice.ice_servers(id, self.host.as_deref());
        let capacity = self.hub.config.capacity;
        let was_in_room = self.hub.in_room(id);
        let outcome = self.hub.login(member, &room, resume.as_ref(), |members| {
            protocol::joined_frame(Joined {
                session_id: id,
                room: &room,
                members,
                ice_servers,
                resume_token: &self.resume_token,
                capacity,
            })
        });
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                if was_in_room {
                    tracing::info!(reason = "login elsewhere", "left room");
                    tracing::Span::current().record("room", "");
                }
                return Err(e);
            }
        };
        if let Some(left) = outcome.left {
            tracing::info!(room = %left, reason = "login elsewhere", "left room");
        }
        tracing::Span::current().record("room", room.as_str());
        tracing::info!(resumed = outcome.resumed, "joined room");
        Ok(())
    }
}

/// A token bucket: `rate` tokens a second, up to `burst`.
struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(rate: u32, burst: u32) -> Bucket {
        let burst = f64::from(burst.max(1));
        Bucket {
            rate: f64::from(rate),
            burst,
            tokens: burst,
            last: Instant::now(),
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(10, 5);
        let granted = (0..8).filter(|_| b.take(t0)).count();
        assert_eq!(granted, 5);
        // 10 per second: 0.35 s later three more (3.5 tokens).
        let t1 = t0 + Duration::from_millis(350);
        let granted = (0..8).filter(|_| b.take(t1)).count();
        assert_eq!(granted, 3);
        // Never more than the burst, however long the pause.
        let t2 = t1 + Duration::from_secs(3600);
        let granted = (0..100).filter(|_| b.take(t2)).count();
        assert_eq!(granted, 5);
    }

    #[test]
    fn close_codes() {
        let cases = [
            (End::Closed, None),
            (End::Gone, None),
            (End::Idle, Some(1000)),
            (End::TooBig, Some(1009)),
            (End::TooSlow, Some(1008)),
            (End::Shutdown, Some(1001)),
        ];
        for (end, code) in cases {
            assert_eq!(
                end.close_frame().map(|f| u16::from(f.code)),
                code,
                "{end:?}"
            );
        }
        assert_eq!(
            End::Shutdown.close_frame().map(|f| f.reason.to_string()),
            Some("server shutting down".to_string())
        );
    }
}
