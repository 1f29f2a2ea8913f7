//! Room signalling: the seed-compatible `{type, from, to, data}` protocol over WebSocket
//! (`docs/protocol.md`).
//!
//! - [`protocol`]: parsing client frames, building server frames, error kinds.
//! - [`relay`]: the hot path: a frame's fields kept as raw text, `from` spliced in.
//! - [`room`]: rooms and members as plain data; operations say what to send.
//! - [`resume`]: resume tokens signed with a key that survives restarts.
//! - [`session`]: one connection's task: reader, writer, timers, rate limits, shutdown.
//! - [`address`]: connections and shared allowances per client address.
//! - [`stats`]: counters for `/metrics` (messages, errors, closes, limits).
//!
//! The [`Hub`] owns the room state behind a `std::sync::Mutex` (as mini-redis's `Db` does):
//! critical sections are short and never cross an `.await`; frames are queued after unlocking.

mod address;
pub mod protocol;
pub mod relay;
pub mod resume;
pub mod room;
pub mod session;
pub mod stats;

use std::sync::{Arc, Mutex};

use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::config::RoomsConfig;
use crate::limit::lock;
use address::Connections;
use protocol::SignalError;
use resume::ResumeKey;
use room::{Member, Outbox, Peer, Rooms};

/// Gives each joining member the `iceServers` for its `joined` message, and any client the
/// answer to its `iceServers` request (both charged to the address's credential allowance).
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
    pub(crate) resume: ResumeKey,
    pub stats: stats::Stats,
    rooms: Mutex<Rooms>,
    connections: Mutex<Connections>,
}

/// What signalling holds now, for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gauges {
    pub rooms: usize,
    pub members: usize,
    /// WebSocket sessions admitted and not ended.
    pub connections: usize,
}

/// A login that went through: what `joined` needs beyond what the session knows.
pub(crate) struct LoginOutcome {
    pub left: Option<String>,
    pub resumed: bool,
}

impl Hub {
    pub fn new(config: &RoomsConfig, ice: Arc<dyn IceProvider>, resume: ResumeKey) -> Arc<Hub> {
        Arc::new(Hub {
            config: config.clone(),
            ice,
            resume,
            stats: stats::Stats::default(),
            rooms: Mutex::new(Rooms::new(
                config.capacity,
                config.max_rooms,
                config.max_rooms_per_ip,
            )),
            connections: Mutex::new(Connections::default()),
        })
    }

    /// Rooms, members and connections now (each read under its own short lock).
    pub fn gauges(&self) -> Gauges {
        let (rooms, members) = lock(&self.rooms).counts();
        let connections = self.connections_now();
        Gauges {
            rooms,
            members,
            connections,
        }
    }

    /// Whether a room with this id exists now.
    pub fn room_exists(&self, room: &str) -> bool {
        lock(&self.rooms).exists(room)
    }

    /// Joins `me` (until now session `previous`; see [`Rooms::join`]) to `room`. `joined`
    /// builds the newcomer's answer from the other members; it is queued before anyone else
    /// hears of the newcomer, so nothing can overtake it.
    pub(crate) fn login(
        &self,
        me: Member,
        previous: &str,
        room: &str,
        joined: impl FnOnce(&[(String, String)]) -> Utf8Bytes,
    ) -> Result<LoginOutcome, SignalError> {
        let mut out = Outbox::default();
        let peer = me.peer.clone();
        let result = {
            let mut rooms = lock(&self.rooms);
            match rooms.join(me, previous, room, &mut out) {
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

    /// Relays the frame `build` makes to member `to` of the sender's room. The route is
    /// checked first, so that nothing is built for a frame that goes nowhere, and the frame
    /// is built outside the lock (it copies the whole frame).
    pub(crate) fn relay(
        &self,
        from: &str,
        to: &str,
        build: impl FnOnce() -> Utf8Bytes,
    ) -> Result<(), SignalError> {
        let peer = lock(&self.rooms).route(from, to)?.clone();
        peer.send(build());
        Ok(())
    }

    /// Takes `id` out of its room if `peer` is still its connection (the rest get its
    /// logout); returns the room it left, and whether another connection holds `id` now.
    pub(crate) fn leave(&self, id: &str, peer: &Arc<Peer>) -> (Option<String>, bool) {
        let mut out = Outbox::default();
        let (left, held) = {
            let mut rooms = lock(&self.rooms);
            let left = rooms.leave_if(id, peer, &mut out);
            (left, rooms.holds(id))
        };
        out.deliver();
        (left, held)
    }

    /// Whether `id` is in a room now.
    pub(crate) fn in_room(&self, id: &str) -> bool {
        lock(&self.rooms).room_of(id).is_some()
    }
}
