//! Room state as plain data: rooms -> members -> the bounded queue of each member's session.
//! No sockets here: every operation says what to send in an [`Outbox`], which the hub hands to
//! the queues once its lock is released.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_util::sync::CancellationToken;

use super::protocol::SignalError;
use crate::limit::AddrKey;

/// The way to reach one session: its outbound queue, bounded in frames and in bytes, and a
/// switch that disconnects it. Shared (`Arc`) by the session and its room entry, so routing
/// a frame clones one pointer.
#[derive(Debug)]
pub struct Peer {
    tx: mpsc::Sender<Utf8Bytes>,
    /// Cancelled when the session must go because its queue overflowed.
    pub kick: CancellationToken,
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
    pub peer: Arc<Peer>,
    /// The client address it is limited as (a room it creates counts against it).
    pub addr: AddrKey,
    /// The `login` the others get when it joins.
    pub login: Utf8Bytes,
    /// The `logout` the others get when it leaves.
    pub logout: Utf8Bytes,
}

/// Every room, and which room each session is in.
#[derive(Debug)]
pub struct Rooms {
    rooms: HashMap<String, Room>,
    room_of: HashMap<String, String>,
    /// Rooms in existence by the address of the member that created them.
    created_by: HashMap<AddrKey, usize>,
    capacity: usize,
    max_rooms: usize,
    max_rooms_per_addr: usize,
}

#[derive(Debug)]
struct Room {
    members: Vec<Member>,
    creator: AddrKey,
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
}

impl Rooms {
    pub fn new(capacity: usize, max_rooms: usize, max_rooms_per_addr: usize) -> Rooms {
        Rooms {
            rooms: HashMap::new(),
            room_of: HashMap::new(),
            created_by: HashMap::new(),
            capacity,
            max_rooms,
            max_rooms_per_addr,
        }
    }

    /// Rooms, and members in them.
    pub fn counts(&self) -> (usize, usize) {
        (self.rooms.len(), self.room_of.len())
    }

    pub fn exists(&self, room: &str) -> bool {
        self.rooms.contains_key(room)
    }

    pub fn room_of(&self, id: &str) -> Option<&str> {
        self.room_of.get(id).map(String::as_str)
    }

    /// Puts `me` in `room`; the others get its login. The session was `previous` until now:
    /// it leaves the room it was in first. A different `me.id` is a resume the caller has
    /// verified: if that member is still in `room` on another connection (whose network
    /// blinked), `me` takes its place and nobody else hears of it; if it is elsewhere, it
    /// leaves there. Either way the old connection is told it was replaced.
    pub fn join(
        &mut self,
        me: Member,
        previous: &str,
        room: &str,
        out: &mut Outbox,
    ) -> Result<Joined, SignalError> {
        let mut joined = Joined {
            left: self.leave(previous, out),
            resumed: me.id != previous,
            ..Joined::default()
        };
        if joined.resumed {
            if let Some(members) = self.rooms.get_mut(room).map(|r| &mut r.members)
                && let Some(old) = members.iter_mut().find(|m| m.id == me.id)
            {
                let old = std::mem::replace(old, me);
                old.peer.replaced.cancel();
                joined.members = members
                    .iter()
                    .filter(|m| m.id != old.id)
                    .map(|m| (m.id.clone(), m.username.clone()))
                    .collect();
                return Ok(joined);
            }
            if let Some(old) = self.member(&me.id) {
                old.peer.replaced.cancel();
                self.leave(&me.id, out);
            }
        }
        let created = self.created_by.get(&me.addr).copied().unwrap_or(0);
        match self.rooms.get(room) {
            Some(r) if r.members.len() >= self.capacity => {
                return Err(SignalError::Full(self.capacity));
            }
            None if self.rooms.len() >= self.max_rooms => return Err(SignalError::ServerFull),
            None if created >= self.max_rooms_per_addr => return Err(SignalError::TooManyRooms),
            _ => {}
        }
        let members = &mut self
            .rooms
            .entry(room.to_owned())
            .or_insert_with(|| {
                *self.created_by.entry(me.addr).or_default() += 1;
                Room {
                    members: Vec::new(),
                    creator: me.addr,
                }
            })
            .members;
        for m in members.iter() {
            out.push(&m.peer, &me.login);
            joined.members.push((m.id.clone(), m.username.clone()));
        }
        self.room_of.insert(me.id.clone(), room.to_owned());
        members.push(me);
        Ok(joined)
    }

    /// Takes `id` out of its room if it is still `peer`'s (a resumed session's old
    /// connection leaves nothing behind); see [`Rooms::leave`].
    pub fn leave_if(&mut self, id: &str, peer: &Arc<Peer>, out: &mut Outbox) -> Option<String> {
        let current = self.member(id).is_some_and(|m| Arc::ptr_eq(&m.peer, peer));
        if current { self.leave(id, out) } else { None }
    }

    /// Whether some connection is member `id` of a room.
    pub fn holds(&self, id: &str) -> bool {
        self.room_of.contains_key(id)
    }

    fn member(&self, id: &str) -> Option<&Member> {
        let room = self.room_of.get(id)?;
        self.rooms.get(room)?.members.iter().find(|m| m.id == id)
    }

    /// Takes `id` out of its room; the rest get its logout, an emptied room is deleted.
    /// Returns the room it was in.
    pub fn leave(&mut self, id: &str, out: &mut Outbox) -> Option<String> {
        let room = self.room_of.remove(id)?;
        if let Some(r) = self.rooms.get_mut(&room) {
            if let Some(i) = r.members.iter().position(|m| m.id == id) {
                let gone = r.members.swap_remove(i);
                for m in r.members.iter() {
                    out.push(&m.peer, &gone.logout);
                }
            }
            if r.members.is_empty() {
                let creator = r.creator;
                self.rooms.remove(&room);
                if let Some(n) = self.created_by.get_mut(&creator) {
                    *n -= 1;
                    if *n == 0 {
                        self.created_by.remove(&creator);
                    }
                }
            }
        }
        Some(room)
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

#[cfg(test)]
mod tests {
    use super::*;

    struct Client {
        rx: mpsc::Receiver<Utf8Bytes>,
        peer: Arc<Peer>,
    }

    fn client(queue: usize) -> Client {
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
            peer: c.peer.clone(),
            addr: addr(ip),
            login: Utf8Bytes::from(format!("login {id}")),
            logout: Utf8Bytes::from(format!("logout {id}")),
        }
    }

    fn drain(c: &mut Client) -> Vec<String> {
        let mut got = Vec::new();
        while let Ok(f) = c.rx.try_recv() {
            got.push(f.as_str().to_owned());
        }
        got
    }

    /// One step of a scenario: who does what, and what each of a, b, c receives.
    enum Op {
        Join(usize, &'static str, &'static str),
        /// Client, its fresh id, room, the session id it resumes (verified by the caller).
        Resume(usize, &'static str, &'static str, &'static str),
        Leave(&'static str),
        /// The connection of client N ends, as member id.
        LeaveIf(usize, &'static str),
    }

    #[test]
    fn scenarios() {
        use Op::*;
        type Step = (Op, Result<(), SignalError>, [&'static [&'static str]; 3]);
        let none: &[&str] = &[];
        let table: Vec<(&str, usize, Vec<Step>)> = vec![
            (
                "join, forward login, leave, delete",
                3,
                vec![
                    (Join(0, "a", "r"), Ok(()), [none, none, none]),
                    (Join(1, "b", "r"), Ok(()), [&["login b"], none, none]),
                    (
                        Join(2, "c", "r"),
                        Ok(()),
                        [&["login c"], &["login c"], none],
                    ),
                    (Leave("b"), Ok(()), [&["logout b"], none, &["logout b"]]),
                    (Leave("a"), Ok(()), [none, none, &["logout a"]]),
                    (Leave("c"), Ok(()), [none, none, none]),
                ],
            ),
            (
                "second login moves rooms",
                3,
                vec![
                    (Join(0, "a", "r"), Ok(()), [none, none, none]),
                    (Join(1, "b", "r"), Ok(()), [&["login b"], none, none]),
                    (Join(2, "c", "s"), Ok(()), [none, none, none]),
                    (
                        Join(1, "b", "s"),
                        Ok(()),
                        [&["logout b"], none, &["login b"]],
                    ),
                ],
            ),
            (
                "full at capacity 2",
                2,
                vec![
                    (Join(0, "a", "r"), Ok(()), [none, none, none]),
                    (Join(1, "b", "r"), Ok(()), [&["login b"], none, none]),
                    (
                        Join(2, "c", "r"),
                        Err(SignalError::Full(2)),
                        [none, none, none],
                    ),
                ],
            ),
            (
                "server full at 2 rooms",
                3,
                vec![
                    (Join(0, "a", "r"), Ok(()), [none, none, none]),
                    (Join(1, "b", "s"), Ok(()), [none, none, none]),
                    (
                        Join(2, "c", "t"),
                        Err(SignalError::ServerFull),
                        [none, none, none],
                    ),
                    (Join(2, "c", "s"), Ok(()), [none, &["login c"], none]),
                ],
            ),
            (
                "resume in place takes the old connection's seat, even in a full room",
                2,
                vec![
                    (Join(0, "a", "r"), Ok(()), [none, none, none]),
                    (Join(1, "b", "r"), Ok(()), [&["login b"], none, none]),
                    (Resume(2, "x", "r", "b"), Ok(()), [none, none, none]),
                    // The old connection's end takes nobody out; the new one is b.
                    (LeaveIf(1, "b"), Ok(()), [none, none, none]),
                    (Leave("b"), Ok(()), [&["logout b"], none, none]),
                ],
            ),
            (
                "resume after a restart joins with the old id",
                3,
                vec![
                    (Join(0, "a", "r"), Ok(()), [none, none, none]),
                    (Resume(1, "x", "r", "b"), Ok(()), [&["login b"], none, none]),
                    (LeaveIf(1, "b"), Ok(()), [&["logout b"], none, none]),
                ],
            ),
            (
                "resume into another room takes the member out of its old one",
                3,
                vec![
                    (Join(0, "a", "r"), Ok(()), [none, none, none]),
                    (Join(1, "b", "r"), Ok(()), [&["login b"], none, none]),
                    (Join(2, "c", "s"), Ok(()), [none, none, none]),
                    (
                        Resume(2, "c", "s", "b"),
                        Ok(()),
                        [&["logout b"], none, none],
                    ),
                ],
            ),
        ];
        for (name, capacity, steps) in table {
            let mut rooms = Rooms::new(capacity, 2, 10);
            let mut clients: Vec<Client> = (0..3).map(|_| client(8)).collect();
            for (i, (op, want, frames)) in steps.into_iter().enumerate() {
                let mut out = Outbox::default();
                let got = match op {
                    Join(c, id, room) => rooms
                        .join(member(&clients[c], id), id, room, &mut out)
                        .map(drop),
                    Resume(c, fresh, room, old) => rooms
                        .join(member(&clients[c], old), fresh, room, &mut out)
                        .map(drop),
                    Leave(id) => {
                        rooms.leave(id, &mut out);
                        Ok(())
                    }
                    LeaveIf(c, id) => {
                        rooms.leave_if(id, &clients[c].peer, &mut out);
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

    #[test]
    fn members_list_and_routing() {
        let (a, b, c) = (client(8), client(8), client(8));
        let mut rooms = Rooms::new(10, 10, 10);
        let mut out = Outbox::default();
        rooms.join(member(&a, "a"), "a", "r", &mut out).ok();
        rooms.join(member(&b, "b"), "b", "r", &mut out).ok();
        rooms.join(member(&c, "c"), "c", "s", &mut out).ok();
        let j = rooms.join(member(&c, "d"), "d", "r", &mut out);
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
        assert!(rooms.join(member(&a, "a"), "a", "r", &mut out).is_ok());
        assert!(rooms.exists("r"));
        assert_eq!(rooms.leave("a", &mut out), Some("r".into()));
        assert!(!rooms.exists("r"));
        assert!(rooms.rooms.is_empty() && rooms.created_by.is_empty());
        assert_eq!(rooms.leave("a", &mut out), None);
        assert!(rooms.join(member(&a, "a"), "a", "q", &mut out).is_ok());
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
                .join(member_from(&c, id, ip), id, room, &mut out)
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
                .join(member_from(&c, "f", "2001:db8::6"), "f", "r5", &mut out)
                .map(drop),
            Err(SignalError::TooManyRooms)
        );
        rooms.leave("c", &mut out);
        assert_eq!(
            rooms
                .join(member_from(&c, "f", "2001:db8::6"), "f", "r5", &mut out)
                .map(drop),
            Ok(())
        );
    }
}
