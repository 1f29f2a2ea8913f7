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
        }
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

    /// How long the address and name of a removed member are refused.
    pub fn with_removal(mut self, removal: Duration) -> Rooms {
        self.removal = removal;
        self
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
            left: self.leave(entry.resumed_from.unwrap_or(&me.id), out),
            resumed: entry.resumed_from.is_some(),
            ..Joined::default()
        };
        if joined.resumed {
            if self
                .rooms
                .get(room)
                .is_some_and(|r| r.member(&me.id).is_some())
            {
                joined.members = self.reseat(room, me, out);
                return Ok(joined);
            }
            if let Some(old) = self.member(&me.id) {
                old.peer.replaced.cancel();
            }
            self.leave(&me.id, out);
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
        match self.rooms.get(room) {
            Some(r) if r.members.len() >= self.capacity => {
                return Err(SignalError::Full(self.capacity));
            }
            Some(r) if r.policy.lobby => {
                self.knock(room, me, out)?;
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
                };
                self.rooms.insert(room.to_owned(), fresh);
            }
        }
        let resumed = joined.resumed;
        joined.members = self.enter(room, me, resumed, out);
        Ok(joined)
    }

    /// `me` takes the seat its session id has in `room` on another connection: it gets
    /// `joined` (and, as host, the lobby's queue); the old connection is told it was replaced.
    /// Returns the other members.
    fn reseat(&mut self, room: &str, me: Member, out: &mut Outbox) -> Vec<(String, String)> {
        let capacity = self.capacity;
        let Some(r) = self.rooms.get_mut(room) else {
            return Vec::new();
        };
        let others: Vec<(String, String)> = r
            .members
            .iter()
            .filter(|m| m.id != me.id)
            .map(|m| (m.id.clone(), m.username.clone()))
            .collect();
        out.push(
            &me.peer,
            &protocol::joined_frame(protocol::Joined {
                session_id: &me.id,
                room,
                members: &others,
                ice_servers: &me.ice_servers,
                resume_token: &me.resume_token,
                resumed: true,
                capacity,
                state: r.policy.state(&r.host),
            }),
        );
        let is_host = r.host == me.id;
        if let Some(seat) = r.members.iter_mut().find(|m| m.id == me.id) {
            std::mem::replace(seat, me).peer.replaced.cancel();
        }
        if is_host && !r.policy.waiting.is_empty() {
            r.tell_lobby(out);
        }
        others
    }

    /// Adds `me` to the existing `room`: it gets `joined` (with the room's state), then the
    /// others get its login (and the state when `tell_all`: the host changed). Returns the
    /// other members.
    fn enter(
        &mut self,
        room: &str,
        me: Member,
        resumed: bool,
        out: &mut Outbox,
    ) -> Vec<(String, String)> {
        let capacity = self.capacity;
        let Some(r) = self.rooms.get_mut(room) else {
            return Vec::new();
        };
        let others: Vec<(String, String)> = r
            .members
            .iter()
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
            state: r.policy.state(&r.host),
        });
        // `joined` first: nothing the others send the newcomer can overtake it.
        out.push(&me.peer, &joined);
        for m in &r.members {
            out.push(&m.peer, &me.login);
        }
        self.room_of.insert(me.id.clone(), room.to_owned());
        r.members.push(me);
        others
    }

    /// Takes `id` out of its room (or lobby) unless another connection holds its seat now (a
    /// resumed session's old connection leaves nothing behind); see [`Rooms::leave`].
    pub fn leave_if(&mut self, id: &str, peer: &Arc<Peer>, out: &mut Outbox) -> Option<String> {
        match self.member(id) {
            Some(m) if !Arc::ptr_eq(&m.peer, peer) => None,
            _ => self.leave(id, out),
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
    pub fn leave(&mut self, id: &str, out: &mut Outbox) -> Option<String> {
        if let Some(room) = self.knocking.remove(id) {
            self.unknock(&room, id, out);
            return Some(room);
        }
        let room = self.room_of.remove(id)?;
        self.detach(&room, id, out);
        self.drop_if_empty(&room, out);
        Some(room)
    }

    /// Removes member `id` from `room` (the room of `id` is already forgotten): the others
    /// get its logout; a leaving host hands over to the member present longest, who also
    /// gets the lobby's queue.
    fn detach(&mut self, room: &str, id: &str, out: &mut Outbox) -> Option<Member> {
        let r = self.rooms.get_mut(room)?;
        let i = r.members.iter().position(|m| m.id == id)?;
        let gone = r.members.remove(i);
        for m in &r.members {
            out.push(&m.peer, &gone.logout);
        }
        if r.host == id {
            if let Some(next) = r.members.first() {
                r.host = next.id.clone();
                r.tell_state(out);
                if !r.policy.waiting.is_empty() {
                    r.tell_lobby(out);
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
            self.knocking.remove(&k.id);
            out.push(&k.peer, &closed);
        }
        let creator = r.creator;
        self.rooms.remove(room);
        if let Some(n) = self.created_by.get_mut(&creator) {
            *n -= 1;
            if *n == 0 {
                self.created_by.remove(&creator);
            }
        }
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
mod tests {
    use super::*;
    use crate::signal::protocol::{HostAction, RoomChange};

    pub(super) struct Client {
        rx: mpsc::Receiver<Utf8Bytes>,
        peer: Arc<Peer>,
    }

    pub(super) fn client(queue: usize) -> Client {
        let (peer, rx) = Peer::new(queue, usize::MAX);
        Client { rx, peer }
    }

    fn addr(ip: &str) -> AddrKey {
        AddrKey::new(ip.parse().expect("ip"), 64)
    }

    fn member(c: &Client, id: &str) -> Member {
        member_from(c, id, "192.0.2.1")
    }

    fn member_from(c: &Client, id: &str, ip: &str) -> Member {
        Member {
            id: id.into(),
            username: format!("user-{id}"),
            resume_token: format!("token-{id}"),
            peer: c.peer.clone(),
            addr: addr(ip),
            login: Utf8Bytes::from(format!("login {id}")),
            logout: Utf8Bytes::from(format!("logout {id}")),
            ice_servers: Value::Array(Vec::new()),
        }
    }

    /// What a client got, each frame in short: the test's own `login x`/`logout x` as is,
    /// the server's JSON frames by type and what matters in them.
    fn drain(c: &mut Client) -> Vec<String> {
        let mut got = Vec::new();
        while let Ok(f) = c.rx.try_recv() {
            got.push(summary(f.as_str()));
        }
        got
    }

    fn summary(frame: &str) -> String {
        let Ok(v) = serde_json::from_str::<Value>(frame) else {
            return frame.to_owned();
        };
        let d = &v["data"];
        let state = |d: &Value| {
            let mut s = format!("host={}", d["host"].as_str().unwrap_or_default());
            for flag in ["locked", "lobby", "password"] {
                if d[flag] == true {
                    s = format!("{s} {flag}");
                }
            }
            if d["history"] == false {
                s.push_str(" nohistory");
            }
            s
        };
        match v["type"].as_str().unwrap_or_default() {
            "joined" => format!("joined {}", state(&v["state"])),
            "roomState" => format!("state {}", state(d)),
            "lobby" => {
                let ids: Vec<&str> = d
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|k| k["sessionId"].as_str())
                    .collect();
                format!("lobby [{}]", ids.join(","))
            }
            "error" => format!(
                "error {}",
                v["message"]["errorType"].as_str().unwrap_or("?")
            ),
            "askMute" => format!("askMute {}", d["kind"].as_str().unwrap_or("?")),
            kind => kind.to_owned(),
        }
    }

    /// One step of a scenario: who does what. Clients are a, b, c, d (0..4); session ids are
    /// chosen by the step.
    pub(super) enum Op {
        Join(usize, &'static str, &'static str),
        /// As `Join`, from another address (192.0.2.2).
        JoinFrom2(usize, &'static str, &'static str),
        /// Join with a password (stretched as the hub would, with the room's salt).
        JoinPw(usize, &'static str, &'static str, &'static str),
        /// Client, its fresh id, room, the session id it resumes (verified by the caller).
        Rejoin(usize, &'static str, &'static str, &'static str),
        /// The connection of client N ends, as member id.
        LeaveIf(usize, &'static str),
        Leave(&'static str),
        /// `roomSettings` from a session: (locked, lobby, password: "" clears).
        Set(
            &'static str,
            Option<bool>,
            Option<bool>,
            Option<&'static str>,
        ),
        Host(&'static str, HostAction, &'static str),
        End(&'static str),
        Expire(&'static str),
    }

    /// A step, what it returns, and what each of a, b, c, d receives.
    pub(super) type Step = (Op, Result<(), SignalError>, [&'static [&'static str]; 4]);
    pub(super) const NONE: &[&str] = &[];

    /// Runs each scenario on fresh rooms (at most 2 rooms, 10 per address).
    pub(super) fn run(table: Vec<(&str, usize, Vec<Step>)>) {
        for (name, capacity, steps) in table {
            let mut rooms = Rooms::new(capacity, 2, 10);
            let mut clients: Vec<Client> = (0..4).map(|_| client(16)).collect();
            let now = Instant::now();
            for (i, (op, want, frames)) in steps.into_iter().enumerate() {
                let mut out = Outbox::default();
                let none = Entry::default();
                let got = match op {
                    Join(c, id, room) => rooms
                        .join(member(&clients[c], id), room, none, now, &mut out)
                        .map(drop),
                    JoinFrom2(c, id, room) => rooms
                        .join(
                            member_from(&clients[c], id, "192.0.2.2"),
                            room,
                            none,
                            now,
                            &mut out,
                        )
                        .map(drop),
                    JoinPw(c, id, room, pw) => {
                        let key = rooms
                            .password_salt(room)
                            .map(|salt| password::stretch(&salt, pw));
                        let entry = Entry {
                            password: key.as_ref(),
                            ..none
                        };
                        rooms
                            .join(member(&clients[c], id), room, entry, now, &mut out)
                            .map(drop)
                    }
                    Rejoin(c, fresh, room, old) => {
                        let entry = Entry {
                            resumed_from: Some(fresh),
                            ..none
                        };
                        rooms
                            .join(member(&clients[c], old), room, entry, now, &mut out)
                            .map(drop)
                    }
                    LeaveIf(c, id) => {
                        rooms.leave_if(id, &clients[c].peer, &mut out);
                        Ok(())
                    }
                    Leave(id) => {
                        rooms.leave(id, &mut out);
                        Ok(())
                    }
                    Set(from, locked, lobby, pw) => {
                        let key = pw.map(|pw| match (pw, rooms.host_salt(from)) {
                            ("", _) | (_, Err(_)) => None,
                            (pw, Ok(salt)) => Some(password::stretch(&salt, pw)),
                        });
                        let change = RoomChange {
                            locked,
                            lobby,
                            ..RoomChange::default()
                        };
                        rooms.configure(from, &change, key, &mut out)
                    }
                    Host(from, HostAction::Remove, to) => {
                        rooms.remove_member(from, to, now, &mut out).map(drop)
                    }
                    Host(from, action, to) => match action {
                        HostAction::HandOver => rooms.hand_over(from, to, &mut out),
                        HostAction::Admit => rooms.admit(from, to, &mut out),
                        HostAction::Decline => rooms.decline(from, to, &mut out),
                        HostAction::AskMute { audio } => rooms.ask_mute(from, to, audio, &mut out),
                        HostAction::Remove => unreachable!(),
                    },
                    End(from) => rooms.end(from, &mut out),
                    Expire(id) => {
                        rooms.expire_knock(id, &mut out);
                        Ok(())
                    }
                };
                out.deliver();
                assert_eq!(got, want, "{name}: step {i}");
                for (c, want) in clients.iter_mut().zip(frames) {
                    assert_eq!(drain(c), want.to_vec(), "{name}: step {i}");
                }
            }
        }
    }

    use Op::*;
    /// What a newcomer gets when it joins a room hosted by `a` with nothing set.
    const IN_A: &[&str] = &["joined host=a"];

    #[test]
    fn scenarios() {
        let table: Vec<(&str, usize, Vec<Step>)> = vec![
            (
                "join, forward login, leave, delete",
                3,
                vec![
                    (Join(0, "a", "r"), Ok(()), [IN_A, NONE, NONE, NONE]),
                    (Join(1, "b", "r"), Ok(()), [&["login b"], IN_A, NONE, NONE]),
                    (
                        Join(2, "c", "r"),
                        Ok(()),
                        [&["login c"], &["login c"], IN_A, NONE],
                    ),
                    (
                        Leave("b"),
                        Ok(()),
                        [&["logout b"], NONE, &["logout b"], NONE],
                    ),
                    (
                        Leave("a"),
                        Ok(()),
                        [NONE, NONE, &["logout a", "state host=c"], NONE],
                    ),
                    (Leave("c"), Ok(()), [NONE, NONE, NONE, NONE]),
                ],
            ),
            (
                "second login moves rooms",
                3,
                vec![
                    (Join(0, "a", "r"), Ok(()), [IN_A, NONE, NONE, NONE]),
                    (Join(1, "b", "r"), Ok(()), [&["login b"], IN_A, NONE, NONE]),
                    (
                        Join(2, "c", "s"),
                        Ok(()),
                        [NONE, NONE, &["joined host=c"], NONE],
                    ),
                    (
                        Join(1, "b", "s"),
                        Ok(()),
                        [&["logout b"], &["joined host=c"], &["login b"], NONE],
                    ),
                ],
            ),
            (
                "full at capacity 2",
                2,
                vec![
                    (Join(0, "a", "r"), Ok(()), [IN_A, NONE, NONE, NONE]),
                    (Join(1, "b", "r"), Ok(()), [&["login b"], IN_A, NONE, NONE]),
                    (
                        Join(2, "c", "r"),
                        Err(SignalError::Full(2)),
                        [NONE, NONE, NONE, NONE],
                    ),
                ],
            ),
            (
                "server full at 2 rooms",
                3,
                vec![
                    (Join(0, "a", "r"), Ok(()), [IN_A, NONE, NONE, NONE]),
                    (
                        Join(1, "b", "s"),
                        Ok(()),
                        [NONE, &["joined host=b"], NONE, NONE],
                    ),
                    (
                        Join(2, "c", "t"),
                        Err(SignalError::ServerFull),
                        [NONE, NONE, NONE, NONE],
                    ),
                    (
                        Join(2, "c", "s"),
                        Ok(()),
                        [NONE, &["login c"], &["joined host=b"], NONE],
                    ),
                ],
            ),
            (
                "resume in place takes the old connection's seat, even in a full room",
                2,
                vec![
                    (Join(0, "a", "r"), Ok(()), [IN_A, NONE, NONE, NONE]),
                    (Join(1, "b", "r"), Ok(()), [&["login b"], IN_A, NONE, NONE]),
                    (Rejoin(2, "x", "r", "b"), Ok(()), [NONE, NONE, IN_A, NONE]),
                    // The old connection's end takes nobody out; the new one is b.
                    (LeaveIf(1, "b"), Ok(()), [NONE, NONE, NONE, NONE]),
                    (LeaveIf(2, "b"), Ok(()), [&["logout b"], NONE, NONE, NONE]),
                ],
            ),
            (
                "resume after a restart joins with the old id, through the usual checks",
                2,
                vec![
                    (Join(0, "a", "r"), Ok(()), [IN_A, NONE, NONE, NONE]),
                    (
                        Rejoin(1, "x", "r", "b"),
                        Ok(()),
                        [&["login b"], IN_A, NONE, NONE],
                    ),
                    (
                        Rejoin(2, "y", "r", "c"),
                        Err(SignalError::Full(2)),
                        [NONE, NONE, NONE, NONE],
                    ),
                ],
            ),
        ];
        run(table);
    }

    #[test]
    fn members_list_and_routing() {
        let (a, b, c) = (client(8), client(8), client(8));
        let mut rooms = Rooms::new(10, 10, 10);
        let mut out = Outbox::default();
        let (none, now) = (Entry::default(), Instant::now());
        rooms.join(member(&a, "a"), "r", none, now, &mut out).ok();
        rooms.join(member(&b, "b"), "r", none, now, &mut out).ok();
        rooms.join(member(&c, "c"), "s", none, now, &mut out).ok();
        let j = rooms.join(member(&c, "d"), "r", none, now, &mut out);
        let names: Vec<_> = j.map(|j| j.members).unwrap_or_default();
        assert_eq!(
            names,
            vec![
                ("a".to_string(), "user-a".to_string()),
                ("b".to_string(), "user-b".to_string())
            ]
        );
        let cases = [
            ("a", "b", Ok(())),
            ("a", "a", Ok(())),
            ("a", "c", Err(SignalError::UnknownPeer)),
            ("c", "a", Err(SignalError::UnknownPeer)),
            ("x", "a", Err(SignalError::NotInRoom)),
            ("a", "", Err(SignalError::UnknownPeer)),
        ];
        for (from, to, want) in cases {
            assert_eq!(rooms.route(from, to).map(drop), want, "{from} -> {to}");
        }
    }

    #[test]
    fn emptied_room_is_deleted_and_reusable() {
        let a = client(8);
        let mut rooms = Rooms::new(10, 1, 10);
        let mut out = Outbox::default();
        let (none, now) = (Entry::default(), Instant::now());
        assert!(
            rooms
                .join(member(&a, "a"), "r", none, now, &mut out)
                .is_ok()
        );
        assert!(rooms.exists("r"));
        assert_eq!(rooms.leave("a", &mut out), Some("r".into()));
        assert!(!rooms.exists("r"));
        assert!(rooms.rooms.is_empty() && rooms.created_by.is_empty());
        assert_eq!(rooms.leave("a", &mut out), None);
        assert!(
            rooms
                .join(member(&a, "a"), "q", none, now, &mut out)
                .is_ok()
        );
    }

    #[test]
    fn full_queue_kicks_the_peer() {
        let a = client(1);
        a.peer.send("1".into());
        assert!(!a.peer.kick.is_cancelled());
        a.peer.send("2".into());
        assert!(a.peer.kick.is_cancelled());
    }

    /// A queue of few big frames is full by its bytes long before its frame count.
    #[test]
    fn queue_bytes_are_bounded() {
        let (peer, mut rx) = Peer::new(100, 10);
        peer.send_or_drop("123456".into());
        peer.send_or_drop("123456".into());
        assert!(!peer.kick.is_cancelled(), "an error reply never kicks");
        peer.send("1234".into());
        assert!(!peer.kick.is_cancelled(), "6 + 4 bytes fit in 10");
        let first = rx.try_recv().expect("queued");
        peer.taken(&first);
        peer.send("123456".into());
        assert!(!peer.kick.is_cancelled(), "the writer gave 6 bytes back");
        peer.send("1".into());
        assert!(peer.kick.is_cancelled(), "11 bytes do not fit");
    }

    #[test]
    fn rooms_created_per_address_are_capped() {
        let c = client(64);
        let mut rooms = Rooms::new(10, 100, 2);
        let mut out = Outbox::default();
        let mut join = |rooms: &mut Rooms, id: &str, ip: &str, room: &str| {
            rooms
                .join(
                    member_from(&c, id, ip),
                    room,
                    Entry::default(),
                    Instant::now(),
                    &mut out,
                )
                .map(drop)
        };
        // One /64: two rooms, then no third; joining an existing room is always fine.
        assert_eq!(join(&mut rooms, "a", "2001:db8::1", "r1"), Ok(()));
        assert_eq!(join(&mut rooms, "b", "2001:db8::2", "r2"), Ok(()));
        assert_eq!(
            join(&mut rooms, "c", "2001:db8::3", "r3"),
            Err(SignalError::TooManyRooms)
        );
        assert_eq!(join(&mut rooms, "c", "2001:db8::3", "r1"), Ok(()));
        // Another /64 and IPv4 have their own count.
        assert_eq!(join(&mut rooms, "d", "2001:db8:0:1::1", "r3"), Ok(()));
        assert_eq!(join(&mut rooms, "e", "192.0.2.9", "r4"), Ok(()));
        // A room counts against its creator until it is gone, whoever is left in it.
        let mut out = Outbox::default();
        rooms.leave("a", &mut out);
        assert_eq!(
            rooms
                .join(
                    member_from(&c, "f", "2001:db8::6"),
                    "r5",
                    Entry::default(),
                    Instant::now(),
                    &mut out,
                )
                .map(drop),
            Err(SignalError::TooManyRooms)
        );
        rooms.leave("c", &mut out);
        assert_eq!(
            rooms
                .join(
                    member_from(&c, "f", "2001:db8::6"),
                    "r5",
                    Entry::default(),
                    Instant::now(),
                    &mut out,
                )
                .map(drop),
            Ok(())
        );
    }

    #[test]
    fn secrets_compare() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"ab"));
        assert!(same_secret(b"", b""));
    }
}
