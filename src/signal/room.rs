//! Room state as plain data: rooms -> members -> the bounded queue of each member's session.
//! No sockets here: every operation says what to send in an [`Outbox`], which the hub hands to
//! the queues once its lock is released. Joining and leaving are here; what a host may do
//! (settings, lobby, removal) is in [`host`].

mod host;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_util::sync::CancellationToken;

use super::password::{self, Key, Salt};
use super::protocol::{self, SignalError};
use crate::limit::AddrKey;

pub use host::Policy;

/// The way to reach one session: its outbound queue, bounded in frames and in bytes, and a
/// switch that disconnects it. Shared (`Arc`) by the session and its room entry, so routing
/// a frame clones one pointer.
#[derive(Debug)]
pub struct Peer {
    tx: mpsc::Sender<Utf8Bytes>,
    /// Cancelled when the session must go because its queue overflowed.
    pub kick: CancellationToken,
    /// Cancelled when the host removed it: the session sends what is queued, then closes.
    pub removed: CancellationToken,
    /// Cancelled when another connection resumed this session (its member now points there).
    pub replaced: CancellationToken,
    /// Cancelled when its room was taken away from this node (the cluster's directory gave
    /// it to another node): the session ends with 1001 and the client resumes on the home.
    pub moved: CancellationToken,
    /// Bytes queued and not yet taken by the writer.
    queued: AtomicUsize,
    max_bytes: usize,
}

/// Why a frame was not queued.
enum Refused {
    Full,
    Closed,
}

impl Peer {
    /// A peer and the receiving end its writer drains (with [`Peer::taken`]).
    pub fn new(frames: usize, bytes: usize) -> (Arc<Peer>, mpsc::Receiver<Utf8Bytes>) {
        let (tx, rx) = mpsc::channel(frames.max(1));
        let peer = Peer {
            tx,
            kick: CancellationToken::new(),
            removed: CancellationToken::new(),
            replaced: CancellationToken::new(),
            moved: CancellationToken::new(),
            queued: AtomicUsize::new(0),
            max_bytes: bytes,
        };
        (Arc::new(peer), rx)
    }

    fn queue(&self, frame: Utf8Bytes) -> Result<(), Refused> {
        let n = frame.len();
        let before = self.queued.fetch_add(n, Ordering::Relaxed);
        if before + n > self.max_bytes {
            self.queued.fetch_sub(n, Ordering::Relaxed);
            return Err(Refused::Full);
        }
        self.tx.try_send(frame).map_err(|e| {
            self.queued.fetch_sub(n, Ordering::Relaxed);
            match e {
                mpsc::error::TrySendError::Full(_) => Refused::Full,
                mpsc::error::TrySendError::Closed(_) => Refused::Closed,
            }
        })
    }

    /// Queues `frame` without waiting; a full queue disconnects the peer instead of growing.
    pub fn send(&self, frame: Utf8Bytes) {
        if let Err(Refused::Full) = self.queue(frame) {
            self.kick.cancel();
        }
    }

    /// Queues `frame` if there is room and drops it otherwise: for the error replies to a
    /// client's own bad messages, so that a client flooding faster than it reads loses
    /// replies, not its connection.
    pub fn send_or_drop(&self, frame: Utf8Bytes) {
        if self.queue(frame).is_err() {
            tracing::debug!("error reply dropped: outbound queue full");
        }
    }

    /// Its session has ended (the writer's end of the queue is gone).
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// The writer took `frame` off the queue.
    pub fn taken(&self, frame: &Utf8Bytes) {
        self.queued.fetch_sub(frame.len(), Ordering::Relaxed);
    }
}

/// Frames to send once the lock is released, in order.
#[derive(Default, Debug)]
pub struct Outbox(pub Vec<(Arc<Peer>, Utf8Bytes)>);

impl Outbox {
    fn push(&mut self, peer: &Arc<Peer>, frame: &Utf8Bytes) {
        self.0.push((peer.clone(), frame.clone()));
    }

    pub fn deliver(self) {
        for (peer, frame) in self.0 {
            peer.send(frame);
        }
    }
}

/// A session in a room, with the frames that announce it, built before the lock is taken.
#[derive(Debug)]
pub struct Member {
    pub id: String,
    pub username: String,
    /// The token its `joined` carries ([`super::resume`]).
    pub resume_token: String,
    pub peer: Arc<Peer>,
    /// The client address it is limited as (a room it creates counts against it).
    pub addr: AddrKey,
    /// The `login` the others get when it joins.
    pub login: Utf8Bytes,
    /// The `logout` the others get when it leaves.
    pub logout: Utf8Bytes,
    /// The `iceServers` of its `joined` (with its TURN credentials).
    pub ice_servers: Value,
    /// It announced SFU support in its login (`data.sfu`).
    pub sfu: bool,
}

/// What a login brings besides the member: the session id it had until now when `me.id` is
/// one it resumed (verified by the caller), and its password stretched with the room's salt.
#[derive(Debug, Default, Clone, Copy)]
pub struct Entry<'a> {
    pub resumed_from: Option<&'a str>,
    pub password: Option<&'a Key>,
}

/// Every room, and which room each session is in (or knocks at).
#[derive(Debug)]
pub struct Rooms {
    rooms: HashMap<String, Room>,
    room_of: HashMap<String, String>,
    /// Sessions waiting in a room's lobby, and that room.
    knocking: HashMap<String, String>,
    /// Rooms in existence by the address of the member that created them.
    created_by: HashMap<AddrKey, usize>,
    capacity: usize,
    max_rooms: usize,
    max_rooms_per_addr: usize,
    /// How long a removed member's address and name are refused by the room.
    removal: Duration,
    /// Shortest id of a room a login may create.
    min_room_chars: usize,
    /// How long a knock waits for the host before it expires (the session's timer enforces
    /// it; `knocking` tells the knocker).
    lobby_wait: Duration,
    /// When a room uses the SFU.
    mode: ModeRule,
    /// With the SFU on: how many members a room of SFU clients may have
    /// (`sfu.max_room_members`; a mesh room keeps `capacity`).
    sfu_capacity: Option<usize>,
}

/// When a room is in SFU mode: with the SFU on, once it has more than `sfu_from` members that
/// all announce SFU support; back to a mesh at once when a member without it comes in, and
/// only after `mesh_after` of being at or below `sfu_from` when it shrinks (so that a member
/// who reloads does not move everyone twice).
#[derive(Debug, Clone, Copy)]
pub struct ModeRule {
    pub sfu_from: Option<usize>,
    pub mesh_after: Duration,
}

#[derive(Debug)]
struct Room {
    /// In the order they came in: the first is the one present longest.
    members: Vec<Member>,
    creator: AddrKey,
    /// The host's session id: always one of the members'.
    host: String,
    policy: Policy,
    /// Drawn when the room is made; stretches its password.
    salt: Salt,
    /// In SFU mode (told to every member with `mode` when it changes).
    sfu: bool,
    /// Since when the room, in SFU mode, has been small enough for a mesh.
    small_since: Option<Instant>,
}

impl Room {
    /// Tells every member the room's state (after the host or a setting changed).
    fn tell_state(&self, out: &mut Outbox) {
        let frame = protocol::room_state_frame(self.policy.state(&self.host));
        for m in &self.members {
            out.push(&m.peer, &frame);
        }
    }

    fn member(&self, id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    /// The mode the room has at `now` with `members`, and since when it has been small in SFU
    /// mode (see [`ModeRule`]).
    fn mode_at<'a>(
        &self,
        rule: ModeRule,
        members: impl Iterator<Item = &'a Member>,
        now: Instant,
    ) -> (bool, Option<Instant>) {
        let (mut n, mut all) = (0, true);
        for m in members {
            n += 1;
            all &= m.sfu;
        }
        let Some(from) = rule.sfu_from else {
            return (false, None);
        };
        if !all || n == 0 {
            return (false, None);
        }
        if n > from {
            return (true, None);
        }
        let since = self.small_since.unwrap_or(now);
        if !self.sfu || now.saturating_duration_since(since) >= rule.mesh_after {
            return (false, None);
        }
        (true, Some(since))
    }

    /// Recomputes the room's mode after a join, a leave or time passing; every member hears
    /// of a change.
    fn update_mode(&mut self, rule: ModeRule, now: Instant, out: &mut Outbox) {
        let (sfu, small_since) = self.mode_at(rule, self.members.iter(), now);
        self.small_since = small_since;
        if sfu != self.sfu {
            self.sfu = sfu;
            let frame = protocol::mode_frame(sfu);
            for m in &self.members {
                out.push(&m.peer, &frame);
            }
        }
    }

    /// Whether the room is in SFU mode with `me` in it (a change reaches the others in
    /// `mode`).
    fn sfu_with(&self, me: &Member, rule: ModeRule, now: Instant) -> bool {
        let with_me = self
            .members
            .iter()
            .filter(|m| m.id != me.id)
            .chain(std::iter::once(me));
        self.mode_at(rule, with_me, now).0
    }

    /// Queues `me`'s `joined` (the other members, the room's state, its mode `sfu`) and
    /// returns those members.
    fn welcome(
        &self,
        room: &str,
        me: &Member,
        resumed: bool,
        capacity: usize,
        sfu: bool,
        out: &mut Outbox,
    ) -> Vec<(String, String)> {
        let others: Vec<(String, String)> = self
            .members
            .iter()
            .filter(|m| m.id != me.id)
            .map(|m| (m.id.clone(), m.username.clone()))
            .collect();
        let joined = protocol::joined_frame(protocol::Joined {
            session_id: &me.id,
            room,
            members: &others,
            ice_servers: &me.ice_servers,
            resume_token: &me.resume_token,
            resumed,
            capacity,
            state: self.policy.state(&self.host),
            sfu,
        });
        out.push(&me.peer, &joined);
        others
    }
}

/// What a successful join tells the newcomer, and what it cost the rooms it left.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Joined {
    /// The other members: (session id, user name).
    pub members: Vec<(String, String)>,
    /// The room this session was in before, if it moved.
    pub left: Option<String>,
    /// Whether the session took up a session id it had before (a verified resume).
    pub resumed: bool,
    /// Whether it waits in the lobby (and got `knocking`, not `joined`).
    pub knocking: bool,
}

impl Rooms {
    pub fn new(capacity: usize, max_rooms: usize, max_rooms_per_addr: usize) -> Rooms {
        Rooms {
            rooms: HashMap::new(),
            room_of: HashMap::new(),
            knocking: HashMap::new(),
            created_by: HashMap::new(),
            capacity,
            max_rooms,
            max_rooms_per_addr,
            removal: Duration::from_secs(600),
            min_room_chars: 1,
            lobby_wait: Duration::from_secs(300),
            mode: ModeRule {
                sfu_from: None,
                mesh_after: Duration::from_secs(15),
            },
            sfu_capacity: None,
        }
    }

    /// With the SFU on: a room whose members (and newcomer) all announce SFU support holds up
    /// to `members` (the larger of it and `capacity`), one with any other client `capacity`.
    pub fn with_sfu_capacity(mut self, members: Option<usize>) -> Rooms {
        self.sfu_capacity = members;
        self
    }

    /// How many members `room` may have with `me` coming in.
    fn capacity_for(&self, room: Option<&Room>, me: &Member) -> usize {
        match self.sfu_capacity {
            Some(c) if me.sfu && room.is_none_or(|r| r.members.iter().all(|m| m.sfu)) => {
                c.max(self.capacity)
            }
            _ => self.capacity,
        }
    }

    /// Rooms of more than `members` members that all announce SFU support use the SFU.
    pub fn with_sfu_from(mut self, members: Option<usize>) -> Rooms {
        self.mode.sfu_from = members;
        self
    }

    /// How long an SFU room stays one after it shrank to `sfu_from` or fewer members.
    pub fn with_mesh_after(mut self, wait: Duration) -> Rooms {
        self.mode.mesh_after = wait;
        self
    }

    /// When [`Rooms::settle`] has a room to move back to a mesh, if any waits.
    pub fn next_settle(&self) -> Option<Instant> {
        let after = self.mode.mesh_after;
        self.rooms
            .values()
            .filter_map(|r| r.small_since)
            .min()
            .map(|t| t + after)
    }

    /// Moves the SFU rooms that have been small for `rooms.mesh_after_secs` back to a mesh.
    pub fn settle(&mut self, now: Instant, out: &mut Outbox) {
        let rule = self.mode;
        for r in self.rooms.values_mut().filter(|r| r.small_since.is_some()) {
            r.update_mode(rule, now, out);
        }
    }

    /// The room `id` is in, whether it is in SFU mode, and `id`'s queue.
    pub fn sfu_state(&self, id: &str) -> Option<(&str, bool, &Arc<Peer>)> {
        let (name, r) = self.rooms.get_key_value(self.room_of.get(id)?)?;
        let m = r.member(id)?;
        Some((name.as_str(), r.sfu, &m.peer))
    }

    /// Rooms, and members in them.
    pub fn counts(&self) -> (usize, usize) {
        (self.rooms.len(), self.room_of.len())
    }

    /// Logins may create only rooms with ids of at least `chars` characters.
    pub fn with_min_room_chars(mut self, chars: usize) -> Rooms {
        self.min_room_chars = chars;
        self
    }

    /// How long a knock waits for the host (what `knocking` announces).
    pub fn with_lobby_wait(mut self, wait: Duration) -> Rooms {
        self.lobby_wait = wait;
        self
    }

    /// How long the address and name of a removed member are refused.
    pub fn with_removal(mut self, removal: Duration) -> Rooms {
        self.removal = removal;
        self
    }

    /// The ids of every room.
    pub fn ids(&self) -> Vec<String> {
        self.rooms.keys().cloned().collect()
    }

    pub fn exists(&self, room: &str) -> bool {
        self.rooms.contains_key(room)
    }

    pub fn room_of(&self, id: &str) -> Option<&str> {
        self.room_of.get(id).map(String::as_str)
    }

    /// Puts `me` in `room` (leaving its current room first), or in its lobby; the others get
    /// its login.
    ///
    /// A resume (`entry.resumed_from`: `me.id` is a session id the caller verified this
    /// connection had before): when that member is still in `room` on another connection
    /// (whose network blinked), `me` takes its seat (and host role) past every check, and
    /// nobody else hears of it; when it is elsewhere it leaves there. Either way the old
    /// connection is told it was replaced. Otherwise, in order: a removed member is refused,
    /// a locked room, a wrong or missing password, a full room; then a room with a lobby
    /// makes the newcomer knock.
    pub fn join(
        &mut self,
        me: Member,
        room: &str,
        entry: Entry<'_>,
        now: Instant,
        out: &mut Outbox,
    ) -> Result<Joined, SignalError> {
        let mut joined = Joined {
            left: self.leave(entry.resumed_from.unwrap_or(&me.id), now, out),
            resumed: entry.resumed_from.is_some(),
            ..Joined::default()
        };
        if joined.resumed {
            if self
                .rooms
                .get(room)
                .is_some_and(|r| r.member(&me.id).is_some())
            {
                joined.members = self.reseat(room, me, now, out);
                return Ok(joined);
            }
            if let Some(old) = self.member(&me.id) {
                old.peer.replaced.cancel();
            }
            self.leave(&me.id, now, out);
        }
        let created = self.created_by.get(&me.addr).copied().unwrap_or(0);
        match self.rooms.get(room) {
            Some(r) => r.policy.admits(&me, entry.password, now)?,
            None if self.rooms.len() >= self.max_rooms => return Err(SignalError::ServerFull),
            None if created >= self.max_rooms_per_addr => return Err(SignalError::TooManyRooms),
            None if room.chars().count() < self.min_room_chars => {
                return Err(SignalError::RoomNameTooShort(self.min_room_chars));
            }
            None => {}
        }
        let capacity = self.capacity_for(self.rooms.get(room), &me);
        match self.rooms.get(room) {
            Some(r) if r.members.len() >= capacity => {
                return Err(SignalError::Full(capacity));
            }
            Some(r) if r.policy.lobby => {
                self.knock(room, me, now, out)?;
                joined.knocking = true;
                return Ok(joined);
            }
            Some(_) => {}
            None => {
                *self.created_by.entry(me.addr).or_default() += 1;
                let fresh = Room {
                    members: Vec::new(),
                    creator: me.addr,
                    host: me.id.clone(),
                    policy: Policy::default(),
                    salt: password::salt(),
                    sfu: false,
                    small_since: None,
                };
                self.rooms.insert(room.to_owned(), fresh);
            }
        }
        let resumed = joined.resumed;
        joined.members = self.enter(room, me, resumed, now, out);
        Ok(joined)
    }

    /// `me` takes the seat its session id has in `room` on another connection: it gets
    /// `joined` (and, as host, the lobby's queue); the old connection is told it was replaced.
    /// Returns the other members.
    fn reseat(
        &mut self,
        room: &str,
        me: Member,
        now: Instant,
        out: &mut Outbox,
    ) -> Vec<(String, String)> {
        let capacity = self.capacity_for(self.rooms.get(room), &me);
        let Some(r) = self.rooms.get_mut(room) else {
            return Vec::new();
        };
        let sfu = r.sfu_with(&me, self.mode, now);
        let others = r.welcome(room, &me, true, capacity, sfu, out);
        let is_host = r.host == me.id;
        if let Some(seat) = r.members.iter_mut().find(|m| m.id == me.id) {
            std::mem::replace(seat, me).peer.replaced.cancel();
        }
        r.update_mode(self.mode, now, out);
        if is_host && !r.policy.waiting.is_empty() {
            r.tell_lobby(now, out);
        }
        others
    }

    /// Adds `me` to the existing `room`: it gets `joined` (with the room's state), then the
    /// others get its login. Returns the other members.
    fn enter(
        &mut self,
        room: &str,
        me: Member,
        resumed: bool,
        now: Instant,
        out: &mut Outbox,
    ) -> Vec<(String, String)> {
        let capacity = self.capacity_for(self.rooms.get(room), &me);
        let Some(r) = self.rooms.get_mut(room) else {
            return Vec::new();
        };
        // `joined` first: nothing the others send the newcomer can overtake it.
        let sfu = r.sfu_with(&me, self.mode, now);
        let others = r.welcome(room, &me, resumed, capacity, sfu, out);
        for m in &r.members {
            out.push(&m.peer, &me.login);
        }
        self.room_of.insert(me.id.clone(), room.to_owned());
        r.members.push(me);
        r.update_mode(self.mode, now, out);
        others
    }

    /// Takes `id` out of its room (or lobby) unless another connection holds its seat now (a
    /// resumed session's old connection leaves nothing behind); see [`Rooms::leave`].
    pub fn leave_if(
        &mut self,
        id: &str,
        peer: &Arc<Peer>,
        now: Instant,
        out: &mut Outbox,
    ) -> Option<String> {
        match self.member(id) {
            Some(m) if !Arc::ptr_eq(&m.peer, peer) => None,
            _ => self.leave(id, now, out),
        }
    }

    /// Whether some connection is member `id` of a room.
    pub fn holds(&self, id: &str) -> bool {
        self.room_of.contains_key(id)
    }

    fn member(&self, id: &str) -> Option<&Member> {
        self.rooms.get(self.room_of.get(id)?)?.member(id)
    }

    /// Takes `id` out of its room (or its lobby); the rest get its logout, an emptied room is
    /// deleted. Returns the room it was in (or knocking at).
    pub fn leave(&mut self, id: &str, now: Instant, out: &mut Outbox) -> Option<String> {
        if let Some(room) = self.knocking.remove(id) {
            self.unknock(&room, id, now, out);
            return Some(room);
        }
        let room = self.room_of.remove(id)?;
        self.detach(&room, id, now, out);
        self.drop_if_empty(&room, out);
        Some(room)
    }

    /// Removes member `id` from `room` (the room of `id` is already forgotten): the others
    /// get its logout; a leaving host hands over to the member present longest, who also
    /// gets the lobby's queue.
    fn detach(&mut self, room: &str, id: &str, now: Instant, out: &mut Outbox) -> Option<Member> {
        let r = self.rooms.get_mut(room)?;
        let i = r.members.iter().position(|m| m.id == id)?;
        let gone = r.members.remove(i);
        for m in &r.members {
            out.push(&m.peer, &gone.logout);
        }
        r.update_mode(self.mode, now, out);
        if r.host == id {
            if let Some(next) = r.members.first() {
                r.host = next.id.clone();
                r.tell_state(out);
                if !r.policy.waiting.is_empty() {
                    r.tell_lobby(now, out);
                }
            }
        }
        Some(gone)
    }

    /// Deletes `room` if nobody is in it; whoever waits in its lobby is told.
    fn drop_if_empty(&mut self, room: &str, out: &mut Outbox) {
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        if !r.members.is_empty() {
            return;
        }
        let closed = SignalError::LobbyClosed.to_frame();
        for k in r.policy.waiting.drain(..) {
            self.knocking.remove(&k.member.id);
            out.push(&k.member.peer, &closed);
        }
        let creator = r.creator;
        self.rooms.remove(room);
        self.uncount(creator);
    }

    /// One room fewer created by `creator`.
    fn uncount(&mut self, creator: AddrKey) {
        if let Some(n) = self.created_by.get_mut(&creator) {
            *n -= 1;
            if *n == 0 {
                self.created_by.remove(&creator);
            }
        }
    }

    /// Takes `room` away whole, telling nobody (the caller ends every session in it): its
    /// members and the sessions knocking at it, with their session ids.
    pub fn evict(&mut self, room: &str) -> Vec<(String, Arc<Peer>)> {
        let Some(mut r) = self.rooms.remove(room) else {
            return Vec::new();
        };
        let mut gone = Vec::with_capacity(r.members.len() + r.policy.waiting.len());
        for m in r.members.drain(..) {
            self.room_of.remove(&m.id);
            gone.push((m.id, m.peer));
        }
        for k in r.policy.waiting.drain(..) {
            self.knocking.remove(&k.member.id);
            gone.push((k.member.id, k.member.peer));
        }
        self.uncount(r.creator);
        gone
    }

    /// Finds the member `to` in the room of `from`.
    pub fn route(&self, from: &str, to: &str) -> Result<&Arc<Peer>, SignalError> {
        let room = self.room_of.get(from).ok_or(SignalError::NotInRoom)?;
        self.rooms
            .get(room)
            .and_then(|r| r.members.iter().find(|m| m.id == to))
            .map(|m| &m.peer)
            .ok_or(SignalError::UnknownPeer)
    }
}

/// Compares two secrets in time that depends only on their lengths.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests;
