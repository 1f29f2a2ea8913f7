//! Room signalling: the seed-compatible `{type, from, to, data}` protocol over WebSocket
//! (`docs/protocol.md`).
//!
//! - [`protocol`]: parsing client frames, building server frames, error kinds.
//! - [`relay`]: the hot path: a frame's fields kept as raw text, `from` spliced in.
//! - [`room`]: rooms and members as plain data; operations say what to send.
//! - [`session`]: one connection's task: reader, writer, timers, rate limit, shutdown.
//!
//! The [`Hub`] owns the room state behind a `std::sync::Mutex` (as mini-redis's `Db` does):
//! critical sections are short and never cross an `.await`; frames are queued after unlocking.

pub mod protocol;
pub mod relay;
pub mod room;
pub mod session;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::config::RoomsConfig;
use protocol::{Resume, SignalError};
use room::{Member, Outbox, Rooms};

/// Gives each joining member the `iceServers` for its `joined` message.
pub trait IceProvider: Send + Sync {
    /// An `RTCIceServer[]` JSON array with credentials for this session. `host` is the host
    /// name the client reached this server by (the upgrade request's `Host` or
    /// `:authority`, without the port), used when no `hostname` is configured.
    fn ice_servers(&self, session: &str, host: Option<&str>) -> serde_json::Value;

    /// The session has ended for good (closed, timed out, kicked): its relay allocations may
    /// end after a grace period for reconnects.
    fn session_ended(&self, _session: &str) {}
}

/// Every room and every connected session.
pub struct Hub {
    pub(crate) config: RoomsConfig,
    pub(crate) ice: Arc<dyn IceProvider>,
    rooms: Mutex<Rooms>,
    connections: Mutex<Connections>,
}

#[derive(Default)]
struct Connections {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// A counted connection; dropping it gives the slot back.
pub(crate) struct Admission {
    hub: Arc<Hub>,
    ip: IpAddr,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut c = lock(&self.hub.connections);
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.per_ip.remove(&self.ip);
            }
        }
    }
}

/// A login that went through: what `joined` needs beyond what the session knows.
pub(crate) struct LoginOutcome {
    pub left: Option<String>,
    pub resumed: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The state stays consistent across a panic elsewhere: every update is a few map ops.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Hub {
    pub fn new(config: &RoomsConfig, ice: Arc<dyn IceProvider>) -> Arc<Hub> {
        Arc::new(Hub {
            config: config.clone(),
            ice,
            rooms: Mutex::new(Rooms::new(config.capacity, config.max_rooms)),
            connections: Mutex::new(Connections::default()),
        })
    }

    /// Counts a new connection from `ip`, or refuses it over `max_connections(_per_ip)`.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admission, SignalError> {
        let mut c = lock(&self.connections);
        let from_ip = c.per_ip.get(&ip).copied().unwrap_or(0);
        if c.total >= self.config.max_connections || from_ip >= self.config.max_connections_per_ip {
            return Err(SignalError::TooManyConnections);
        }
        c.total += 1;
        c.per_ip.insert(ip, from_ip + 1);
        Ok(Admission {
            hub: self.clone(),
            ip,
        })
    }

    /// Whether a room with this id exists now.
    pub fn room_exists(&self, room: &str) -> bool {
        lock(&self.rooms).exists(room)
    }

    /// How many rooms exist now.
    pub fn room_count(&self) -> usize {
        lock(&self.rooms).room_count()
    }

    /// Joins `me` to `room`. `joined` builds the newcomer's answer from the other members; it
    /// is queued before anyone else hears of the newcomer, so nothing can overtake it.
    pub(crate) fn login(
        &self,
        me: Member,
        room: &str,
        resume: Option<&Resume>,
        joined: impl FnOnce(&[(String, String)]) -> Utf8Bytes,
    ) -> Result<LoginOutcome, SignalError> {
        let mut out = Outbox::default();
        let peer = me.peer.clone();
        let result = {
            let mut rooms = lock(&self.rooms);
            match rooms.join(me, room, resume, &mut out) {
                Ok(j) => {
                    out.0.insert(0, (peer, joined(&j.members)));
                    Ok(LoginOutcome {
                        left: j.left,
                        resumed: j.resumed,
                    })
                }
                Err(e) => Err(e),
            }
        };
        out.deliver();
        result
    }

    /// Relays `frame` to member `to` of the sender's room.
    pub(crate) fn relay(&self, from: &str, to: &str, frame: Utf8Bytes) -> Result<(), SignalError> {
        // Queued under the lock: `send` never waits, and cloning the peer out of the lock
        // would cost more (its cancellation token clones and drops under a mutex of its own).
        lock(&self.rooms).route(from, to)?.send(frame);
        Ok(())
    }

    /// Takes `id` out of its room (the rest get its logout); returns the room it left.
    pub(crate) fn leave(&self, id: &str) -> Option<String> {
        let mut out = Outbox::default();
        let left = lock(&self.rooms).leave(id, &mut out);
        out.deliver();
        left
    }

    /// Whether `id` is in a room now.
    pub(crate) fn in_room(&self, id: &str) -> bool {
        lock(&self.rooms).room_of(id).is_some()
    }
}
