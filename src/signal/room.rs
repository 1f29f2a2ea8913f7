//! Room state as plain data: rooms -> members -> the bounded queue of each member's session.
//! No sockets here: every operation says what to send in an [`Outbox`], which the hub hands to
//! the queues once its lock is released.

use std::collections::HashMap;

use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_util::sync::CancellationToken;

use super::protocol::{Resume, SignalError};

/// The way to reach one session: its outbound queue, and a switch that disconnects it.
#[derive(Clone, Debug)]
pub struct Peer {
    pub tx: mpsc::Sender<Utf8Bytes>,
    /// Cancelled when the session must go because its queue overflowed.
    pub kick: CancellationToken,
}

impl Peer {
    /// Queues `frame` without waiting; a full queue disconnects the peer instead of growing.
    pub fn send(&self, frame: Utf8Bytes) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(frame) {
            self.kick.cancel();
        }
    }

    /// Queues `frame` if there is room and drops it otherwise: for the error replies to a
    /// client's own bad messages, so that a client flooding faster than it reads loses
    /// replies, not its connection.
    pub fn send_or_drop(&self, frame: Utf8Bytes) {
        if self.tx.try_send(frame).is_err() {
            tracing::debug!("error reply dropped: outbound queue full");
        }
    }
}

/// Frames to send once the lock is released, in order.
#[derive(Default, Debug)]
pub struct Outbox(pub Vec<(Peer, Utf8Bytes)>);

impl Outbox {
    fn push(&mut self, peer: &Peer, frame: &Utf8Bytes) {
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
    pub resume_token: String,
    pub peer: Peer,
    /// The `login` the others get when it joins.
    pub login: Utf8Bytes,
    /// The `logout` the others get when it leaves.
    pub logout: Utf8Bytes,
}

/// Every room, and which room each session is in.
#[derive(Debug)]
pub struct Rooms {
    rooms: HashMap<String, Vec<Member>>,
    room_of: HashMap<String, String>,
    capacity: usize,
    max_rooms: usize,
}

/// What a successful join tells the newcomer, and what it cost the rooms it left.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Joined {
    /// The other members: (session id, user name).
    pub members: Vec<(String, String)>,
    /// The room this session was in before, if it moved.
    pub left: Option<String>,
    /// Whether a resumed member was replaced.
    pub resumed: bool,
}

impl Rooms {
    pub fn new(capacity: usize, max_rooms: usize) -> Rooms {
        Rooms {
            rooms: HashMap::new(),
            room_of: HashMap::new(),
            capacity,
            max_rooms,
        }
    }

    pub fn exists(&self, room: &str) -> bool {
        self.rooms.contains_key(room)
    }

    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    pub fn room_of(&self, id: &str) -> Option<&str> {
        self.room_of.get(id).map(String::as_str)
    }

    /// Puts `me` in `room` (leaving its current room first, and replacing a resumed member);
    /// the others get its login.
    pub fn join(
        &mut self,
        me: Member,
        room: &str,
        resume: Option<&Resume>,
        out: &mut Outbox,
    ) -> Result<Joined, SignalError> {
        let mut joined = Joined {
            left: self.leave(&me.id, out),
            ..Joined::default()
        };
        if let Some(r) = resume {
            let matches = self.rooms.get(room).is_some_and(|members| {
                members
                    .iter()
                    .any(|m| m.id == r.session_id && same_secret(&m.resume_token, &r.token))
            });
            if matches {
                self.leave(&r.session_id, out);
                joined.resumed = true;
            }
        }
        match self.rooms.get(room) {
            Some(members) if members.len() >= self.capacity => {
                return Err(SignalError::Full(self.capacity));
            }
            None if self.rooms.len() >= self.max_rooms => return Err(SignalError::ServerFull),
            _ => {}
        }
        let members = self.rooms.entry(room.to_owned()).or_default();
        for m in members.iter() {
            out.push(&m.peer, &me.login);
            joined.members.push((m.id.clone(), m.username.clone()));
        }
        self.room_of.insert(me.id.clone(), room.to_owned());
        members.push(me);
        Ok(joined)
    }

    /// Takes `id` out of its room; the rest get its logout, an emptied room is deleted.
    /// Returns the room it was in.
    pub fn leave(&mut self, id: &str, out: &mut Outbox) -> Option<String> {
        let room = self.room_of.remove(id)?;
        if let Some(members) = self.rooms.get_mut(&room) {
            if let Some(i) = members.iter().position(|m| m.id == id) {
                let gone = members.swap_remove(i);
                for m in members.iter() {
                    out.push(&m.peer, &gone.logout);
                }
            }
            if members.is_empty() {
                self.rooms.remove(&room);
            }
        }
        Some(room)
    }

    /// Finds the member `to` in the room of `from`.
    pub fn route(&self, from: &str, to: &str) -> Result<&Peer, SignalError> {
        let room = self.room_of.get(from).ok_or(SignalError::NotInRoom)?;
        self.rooms
            .get(room)
            .and_then(|members| members.iter().find(|m| m.id == to))
            .map(|m| &m.peer)
            .ok_or(SignalError::UnknownPeer)
    }
}

/// Compares two secrets in time that depends only on their lengths.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Client {
        rx: mpsc::Receiver<Utf8Bytes>,
        peer: Peer,
    }

    fn client(queue: usize) -> Client {
        let (tx, rx) = mpsc::channel(queue);
        Client {
            rx,
            peer: Peer {
                tx,
                kick: CancellationToken::new(),
            },
        }
    }

    fn member(c: &Client, id: &str) -> Member {
        Member {
            id: id.into(),
            username: format!("user-{id}"),
            resume_token: format!("token-{id}"),
            peer: c.peer.clone(),
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
        Rejoin(
            usize,
            &'static str,
            &'static str,
            &'static str,
            &'static str,
        ),
        Leave(&'static str),
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
                "resume replaces the old member, even in a full room",
                2,
                vec![
                    (Join(0, "a", "r"), Ok(()), [none, none, none]),
                    (Join(1, "b", "r"), Ok(()), [&["login b"], none, none]),
                    (
                        Rejoin(2, "c", "r", "b", "token-b"),
                        Ok(()),
                        [&["logout b", "login c"], none, none],
                    ),
                ],
            ),
            (
                "wrong token is ignored",
                2,
                vec![
                    (Join(0, "a", "r"), Ok(()), [none, none, none]),
                    (Join(1, "b", "r"), Ok(()), [&["login b"], none, none]),
                    (
                        Rejoin(2, "c", "r", "b", "token-a"),
                        Err(SignalError::Full(2)),
                        [none, none, none],
                    ),
                ],
            ),
        ];
        for (name, capacity, steps) in table {
            let mut rooms = Rooms::new(capacity, 2);
            let mut clients: Vec<Client> = (0..3).map(|_| client(8)).collect();
            for (i, (op, want, frames)) in steps.into_iter().enumerate() {
                let mut out = Outbox::default();
                let got = match op {
                    Join(c, id, room) => rooms
                        .join(member(&clients[c], id), room, None, &mut out)
                        .map(drop),
                    Rejoin(c, id, room, old, token) => {
                        let r = Resume {
                            session_id: old.into(),
                            token: token.into(),
                        };
                        rooms
                            .join(member(&clients[c], id), room, Some(&r), &mut out)
                            .map(drop)
                    }
                    Leave(id) => {
                        rooms.leave(id, &mut out);
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
        let mut rooms = Rooms::new(10, 10);
        let mut out = Outbox::default();
        rooms.join(member(&a, "a"), "r", None, &mut out).ok();
        rooms.join(member(&b, "b"), "r", None, &mut out).ok();
        rooms.join(member(&c, "c"), "s", None, &mut out).ok();
        let j = rooms.join(member(&c, "d"), "r", None, &mut out);
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
        let mut rooms = Rooms::new(10, 1);
        let mut out = Outbox::default();
        assert!(rooms.join(member(&a, "a"), "r", None, &mut out).is_ok());
        assert!(rooms.exists("r"));
        assert_eq!(rooms.leave("a", &mut out), Some("r".into()));
        assert!(!rooms.exists("r"));
        assert_eq!(rooms.room_count(), 0);
        assert_eq!(rooms.leave("a", &mut out), None);
        assert!(rooms.join(member(&a, "a"), "q", None, &mut out).is_ok());
    }

    #[test]
    fn full_queue_kicks_the_peer() {
        let a = client(1);
        a.peer.send("1".into());
        assert!(!a.peer.kick.is_cancelled());
        a.peer.send("2".into());
        assert!(a.peer.kick.is_cancelled());
    }

    #[test]
    fn secrets_compare() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
        assert!(same_secret("", ""));
    }
}
