//! Room signalling: the seed-compatible `{type, from, to, data}` protocol over WebSocket
//! (`docs/protocol.md`).
//!
//! - [`protocol`]: parsing client frames, building server frames, error kinds.
//! - [`relay`]: the hot path: a frame's fields kept as raw text, `from` spliced in.
//! - [`room`]: rooms and members as plain data; operations say what to send; a room's host's
//!   powers (lock, password, lobby, removal) in `room::host`.
//! - [`password`]: room passwords stretched (PBKDF2) off the reactor, compared in constant time.
//! - [`resume`]: resume tokens signed with a key that survives restarts.
//! - [`session`]: one connection's task: reader, writer, timers, rate limits, shutdown.
//! - [`address`]: connections and shared allowances per client address.
//! - [`stats`]: counters for `/metrics` (messages, errors, closes, limits).
//!
//! The [`Hub`] owns the room state behind a `std::sync::Mutex` (as mini-redis's `Db` does):
//! critical sections are short and never cross an `.await`; frames are queued after unlocking.

mod address;
pub mod password;
pub mod protocol;
pub mod relay;
pub mod resume;
pub mod room;
pub mod session;
pub mod stats;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::cluster::Cluster;
use crate::config::RoomsConfig;
use crate::limit::lock;
use address::Connections;
use password::{Key, Salt};
use protocol::{HostAction, RoomChange, SfuRequest, SignalError};
use resume::ResumeKey;
use room::{Entry, Member, Outbox, Peer, Rooms};

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
    /// `[cluster]`: the room directory and the links to other nodes; `None` on one node.
    pub(crate) cluster: Option<Arc<Cluster>>,
    rooms: Mutex<Rooms>,
    connections: Mutex<Connections>,
    /// The SFU task's command queue, when `[sfu] enabled`.
    sfu: Option<crate::sfu::Handle>,
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
    /// It waits in the lobby.
    pub knocking: bool,
}

impl Hub {
    /// `cluster`: this node's part of a cluster (rooms elsewhere are relayed to their home);
    /// `sfu`: rooms move to the SFU behind it when they grow past `rooms.sfu_from`.
    pub fn new(
        config: &RoomsConfig,
        ice: Arc<dyn IceProvider>,
        resume: ResumeKey,
        cluster: Option<Arc<Cluster>>,
        sfu: Option<crate::sfu::Handle>,
    ) -> Arc<Hub> {
        let sfu_from = sfu.as_ref().map(|_| config.sfu_from);
        Arc::new(Hub {
            config: config.clone(),
            ice,
            resume,
            cluster,
            stats: stats::Stats::default(),
            rooms: Mutex::new(
                Rooms::new(config.capacity, config.max_rooms, config.max_rooms_per_ip)
                    .with_removal(config.removal)
                    .with_min_room_chars(config.min_room_chars)
                    .with_lobby_wait(config.lobby_wait)
                    .with_sfu_from(sfu_from)
                    .with_sfu_capacity(sfu.as_ref().map(|h| h.max_room_members))
                    .with_mesh_after(config.mesh_after),
            ),
            connections: Mutex::new(Connections::default()),
            sfu,
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

    /// The ids of the rooms held here (what this node re-publishes to the directory).
    pub fn room_ids(&self) -> Vec<String> {
        lock(&self.rooms).ids()
    }

    /// Tells the directory that `room`, which this node was the home of, is gone.
    fn closed(&self, room: Option<String>) {
        if let (Some(cluster), Some(room)) = (&self.cluster, room) {
            cluster.room_closed(&room);
        }
    }

    /// The SFU's counters, when it is on.
    pub fn sfu_stats(&self) -> Option<&crate::sfu::Stats> {
        self.sfu.as_ref().map(|h| &*h.stats)
    }

    /// Moves SFU rooms that have been small for `rooms.mesh_after_secs` back to a mesh
    /// (called every second by [`Hub::settle_every_second`]).
    pub fn settle(&self, now: Instant) {
        let mut out = Outbox::default();
        lock(&self.rooms).settle(now, &mut out);
        out.deliver();
    }

    /// Calls [`Hub::settle`] every second until `stop`.
    pub async fn settle_every_second(self: Arc<Hub>, stop: tokio_util::sync::CancellationToken) {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => self.settle(Instant::now()),
            }
        }
    }

    /// Whether a room with this id exists now.
    pub fn room_exists(&self, room: &str) -> bool {
        lock(&self.rooms).exists(room)
    }

    /// Joins `me` to `room` (or puts it in the room's lobby). Its `joined` is queued before
    /// anyone else hears of it, so nothing can overtake it.
    pub(crate) fn login(
        &self,
        me: Member,
        room: &str,
        entry: Entry<'_>,
    ) -> Result<LoginOutcome, SignalError> {
        let mut out = Outbox::default();
        let id = me.id.clone();
        let (result, closed) = {
            let mut rooms = lock(&self.rooms);
            let result = rooms.join(me, room, entry, Instant::now(), &mut out);
            let left = result.as_ref().ok().and_then(|j| j.left.as_ref());
            let closed = left.filter(|r| !rooms.exists(r)).cloned();
            (result, closed)
        };
        out.deliver();
        self.closed(closed);
        // Whatever room it was in before (a login elsewhere, or a refused one that left it),
        // its SFU connection there ends.
        self.sfu_leave(&id);
        result.map(|j| LoginOutcome {
            left: j.left,
            resumed: j.resumed,
            knocking: j.knocking,
        })
    }

    /// The salt a login to `room` must stretch its password with, if the room has one.
    pub(crate) fn password_salt(&self, room: &str) -> Option<Salt> {
        lock(&self.rooms).password_salt(room)
    }

    /// The salt of the room `id` is the host of, for a new password.
    pub(crate) fn host_salt(&self, id: &str) -> Result<Salt, SignalError> {
        lock(&self.rooms).host_salt(id)
    }

    /// `roomSettings` from `from` (host only), with its new password already stretched.
    pub(crate) fn configure(
        &self,
        from: &str,
        change: &RoomChange,
        password: Option<Option<Key>>,
    ) -> Result<(), SignalError> {
        let mut out = Outbox::default();
        let result = lock(&self.rooms).configure(from, change, password, Instant::now(), &mut out);
        out.deliver();
        result
    }

    /// A host's action on member (or knocker) `to`.
    pub(crate) fn host_action(
        &self,
        from: &str,
        action: HostAction,
        to: &str,
    ) -> Result<(), SignalError> {
        let mut out = Outbox::default();
        let mut removed = None;
        let now = Instant::now();
        let result = {
            let mut rooms = lock(&self.rooms);
            match action {
                HostAction::HandOver => rooms.hand_over(from, to, now, &mut out),
                HostAction::Admit => rooms.admit(from, to, now, &mut out),
                HostAction::Decline => rooms.decline(from, to, now, &mut out),
                HostAction::AskMute { audio } => rooms.ask_mute(from, to, audio, &mut out),
                HostAction::Remove => rooms
                    .remove_member(from, to, now, &mut out)
                    .map(|peer| removed = Some(peer)),
            }
        };
        out.deliver();
        // Only once its `removed` error is queued: the session sends what is queued, then
        // closes.
        if let Some(peer) = removed {
            peer.removed.cancel();
        }
        result
    }

    /// `endCall` from `from` (host only).
    pub(crate) fn end_call(&self, from: &str) -> Result<(), SignalError> {
        let mut out = Outbox::default();
        let (result, closed) = {
            let mut rooms = lock(&self.rooms);
            let room = rooms.room_of(from).map(str::to_owned);
            let result = rooms.end(from, &mut out);
            (result, room.filter(|r| !rooms.exists(r)))
        };
        out.deliver();
        self.closed(closed);
        result
    }

    /// The lobby wait of `id` is over; whether it was still waiting.
    pub(crate) fn expire_knock(&self, id: &str) -> bool {
        let mut out = Outbox::default();
        let waiting = lock(&self.rooms).expire_knock(id, Instant::now(), &mut out);
        out.deliver();
        waiting
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

    /// Takes `id` out of its room (or lobby) unless another connection than `peer` holds its
    /// seat now (the rest get its logout); returns the room it left, and whether another
    /// connection holds `id`.
    pub(crate) fn leave(&self, id: &str, peer: &Arc<Peer>) -> (Option<String>, bool) {
        let mut out = Outbox::default();
        let (left, held, closed) = {
            let mut rooms = lock(&self.rooms);
            let left = rooms.leave_if(id, peer, Instant::now(), &mut out);
            let closed = left.as_ref().filter(|r| !rooms.exists(r)).cloned();
            (left, rooms.holds(id), closed)
        };
        out.deliver();
        self.closed(closed);
        if left.is_some() {
            self.sfu_leave(id);
        }
        (left, held)
    }

    /// An `sfu-*` message from member `from`, handed to the SFU task (which answers it).
    pub(crate) fn sfu(&self, from: &str, request: SfuRequest) -> Result<(), SignalError> {
        let sfu = self.sfu.as_ref().ok_or(SignalError::SfuOff)?;
        let (room, peer) = {
            let rooms = lock(&self.rooms);
            let (room, mode, peer) = rooms.sfu_state(from).ok_or(SignalError::NotInRoom)?;
            if !mode && request == SfuRequest::Join {
                return Err(SignalError::NotSfu);
            }
            (room.to_owned(), peer.clone())
        };
        let session = from.to_owned();
        sfu.send(match request {
            SfuRequest::Join => crate::sfu::Command::Join {
                session,
                room,
                peer,
            },
            SfuRequest::Answer(sdp) => crate::sfu::Command::Answer { session, sdp },
            SfuRequest::Candidate(candidate) => {
                crate::sfu::Command::Candidate { session, candidate }
            }
            SfuRequest::Leave => crate::sfu::Command::Leave { session },
            SfuRequest::View(views) => crate::sfu::Command::View { session, views },
            SfuRequest::UnpublishScreen => crate::sfu::Command::UnpublishScreen { session },
        })
    }

    /// `id` left its room: its SFU connection, if any, ends. Should the queue be full, the
    /// SFU task finds out by itself (the session's queue closes, or ICE times out).
    fn sfu_leave(&self, id: &str) {
        if let Some(sfu) = &self.sfu {
            let _ = sfu.send(crate::sfu::Command::Leave {
                session: id.to_owned(),
            });
        }
    }

    /// `room` is homed on another node now (a split home found after a partition): every
    /// session in it here ends with 1001 and resumes there, through the directory. Nobody
    /// here hears a logout: the members meet again on the home. Returns how many went.
    pub fn room_moved(&self, room: &str) -> usize {
        let gone = lock(&self.rooms).evict(room);
        for (id, peer) in &gone {
            peer.moved.cancel();
            self.sfu_leave(id);
        }
        gone.len()
    }

    /// Whether `id` is in a room now.
    pub(crate) fn in_room(&self, id: &str) -> bool {
        lock(&self.rooms).room_of(id).is_some()
    }
}
