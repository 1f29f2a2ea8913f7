//! What a room's host may do, as plain data on [`Rooms`]: lock the room, set a password, keep a
//! lobby, turn chat history off, hand the role over, admit or decline a knocker, remove a
//! member (and refuse its address and name for a while), ask a member to mute, end the call.
//! Every operation checks first that its sender is the host of the room it is in.

use std::sync::Arc;
use std::time::Instant;

use super::{Member, Outbox, Peer, Room, Rooms, same_secret};
use crate::limit::AddrKey;
use crate::signal::password::{Key, Salt};
use crate::signal::protocol::{self, RoomChange, RoomState, SignalError};

/// Most sessions waiting in one lobby.
pub const MAX_WAITING: usize = 16;
/// Most removals one room remembers; the oldest is forgotten first.
const MAX_BANS: usize = 32;

/// A room's settings and the people it keeps out or waiting: bounded, and dropped with the
/// room.
#[derive(Debug)]
pub struct Policy {
    pub(super) locked: bool,
    pub(super) lobby: bool,
    /// Whether members offer chat history to newcomers (the server only carries the setting).
    pub(super) history: bool,
    pub(super) password: Option<Key>,
    /// Knockers, in the order they came.
    pub(super) waiting: Vec<Knocker>,
    bans: Vec<Ban>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            locked: false,
            lobby: false,
            history: true,
            password: None,
            waiting: Vec::new(),
            bans: Vec::new(),
        }
    }
}

/// A session waiting in a lobby, and since when (the host sees how long each has waited).
#[derive(Debug)]
pub(super) struct Knocker {
    pub(super) member: Member,
    pub(super) since: Instant,
}

/// A removed member, refused by its address and name until `until`.
#[derive(Debug)]
struct Ban {
    addr: AddrKey,
    username: String,
    until: Instant,
}

impl Policy {
    /// Whether a newcomer may come in (or knock): not removed lately, not locked out, and
    /// with the password if there is one.
    pub(super) fn admits(
        &self,
        me: &Member,
        password: Option<&Key>,
        now: Instant,
    ) -> Result<(), SignalError> {
        if self
            .bans
            .iter()
            .any(|b| b.until > now && b.addr == me.addr && b.username == me.username)
        {
            return Err(SignalError::Removed);
        }
        if self.locked {
            return Err(SignalError::Locked);
        }
        match (&self.password, password) {
            (None, _) => Ok(()),
            (Some(_), None) => Err(SignalError::PasswordRequired),
            (Some(want), Some(got)) if same_secret(want, got) => Ok(()),
            (Some(_), Some(_)) => Err(SignalError::WrongPassword),
        }
    }

    pub(super) fn state<'a>(&self, host: &'a str) -> RoomState<'a> {
        RoomState {
            host,
            locked: self.locked,
            lobby: self.lobby,
            password: self.password.is_some(),
            history: self.history,
        }
    }

    fn ban(&mut self, addr: AddrKey, username: String, until: Instant, now: Instant) {
        self.bans.retain(|b| b.until > now);
        if self.bans.len() >= MAX_BANS {
            self.bans.remove(0);
        }
        self.bans.push(Ban {
            addr,
            username,
            until,
        });
    }
}

impl Room {
    /// Sends the host the list of who waits.
    pub(super) fn tell_lobby(&self, now: Instant, out: &mut Outbox) {
        if let Some(host) = self.member(&self.host) {
            let frame = protocol::lobby_frame(self.policy.waiting.iter().map(|k| {
                let waited = now.saturating_duration_since(k.since);
                (k.member.id.as_str(), k.member.username.as_str(), waited)
            }));
            out.push(&host.peer, &frame);
        }
    }
}

impl Rooms {
    /// The salt of `room` when it has a password: a login must bring the password stretched
    /// with it.
    pub fn password_salt(&self, room: &str) -> Option<Salt> {
        self.rooms
            .get(room)
            .filter(|r| r.policy.password.is_some())
            .map(|r| r.salt)
    }

    /// The salt of the room `id` is the host of (to stretch a new password with).
    pub fn host_salt(&self, id: &str) -> Result<Salt, SignalError> {
        let room = self.hosted(id)?;
        self.rooms
            .get(&room)
            .map(|r| r.salt)
            .ok_or(SignalError::NotInRoom)
    }

    /// The room `from` is the host of.
    fn hosted(&self, from: &str) -> Result<String, SignalError> {
        let room = self.room_of.get(from).ok_or(SignalError::NotInRoom)?;
        let r = self.rooms.get(room).ok_or(SignalError::NotInRoom)?;
        if r.host != from {
            return Err(SignalError::NotHost);
        }
        Ok(room.clone())
    }

    /// `roomSettings`: `password` is the new password already stretched (`Some(None)`
    /// clears it). Turning the lobby off lets everyone waiting in.
    pub fn configure(
        &mut self,
        from: &str,
        change: &RoomChange,
        password: Option<Option<Key>>,
        now: Instant,
        out: &mut Outbox,
    ) -> Result<(), SignalError> {
        let room = self.hosted(from)?;
        let Some(r) = self.rooms.get_mut(&room) else {
            return Err(SignalError::NotInRoom);
        };
        let p = &mut r.policy;
        p.locked = change.locked.unwrap_or(p.locked);
        p.lobby = change.lobby.unwrap_or(p.lobby);
        p.history = change.history.unwrap_or(p.history);
        if let Some(key) = password {
            p.password = key;
        }
        r.tell_state(out);
        if !r.policy.lobby && !r.policy.waiting.is_empty() {
            let waiting = std::mem::take(&mut r.policy.waiting);
            r.tell_lobby(now, out);
            for k in waiting {
                self.knocking.remove(&k.member.id);
                self.let_in(&room, k.member, now, out);
            }
        }
        Ok(())
    }

    /// `handOver`: `to` becomes the host.
    pub fn hand_over(
        &mut self,
        from: &str,
        to: &str,
        now: Instant,
        out: &mut Outbox,
    ) -> Result<(), SignalError> {
        let room = self.hosted(from)?;
        let Some(r) = self.rooms.get_mut(&room) else {
            return Err(SignalError::NotInRoom);
        };
        if r.member(to).is_none() {
            return Err(SignalError::UnknownPeer);
        }
        r.host = to.to_owned();
        r.tell_state(out);
        if !r.policy.waiting.is_empty() {
            r.tell_lobby(now, out);
        }
        Ok(())
    }

    /// `admit`: the knocker `to` comes in (or hears that the room is full).
    pub fn admit(
        &mut self,
        from: &str,
        to: &str,
        now: Instant,
        out: &mut Outbox,
    ) -> Result<(), SignalError> {
        let room = self.hosted(from)?;
        let k = self.take_knocker(&room, to, now, out)?;
        self.let_in(&room, k, now, out);
        Ok(())
    }

    /// `decline`: the knocker `to` is sent away.
    pub fn decline(
        &mut self,
        from: &str,
        to: &str,
        now: Instant,
        out: &mut Outbox,
    ) -> Result<(), SignalError> {
        let room = self.hosted(from)?;
        let k = self.take_knocker(&room, to, now, out)?;
        out.push(&k.peer, &SignalError::Declined.to_frame());
        Ok(())
    }

    /// `remove`: member `to` leaves (the others get its logout) and hears why; its address
    /// and name are refused by this room for the removal time. Returns its peer, for the
    /// hub to close once the outbox is delivered.
    pub fn remove_member(
        &mut self,
        from: &str,
        to: &str,
        now: Instant,
        out: &mut Outbox,
    ) -> Result<Arc<Peer>, SignalError> {
        let room = self.hosted(from)?;
        if to == from || self.room_of.get(to) != Some(&room) {
            return Err(SignalError::UnknownPeer);
        }
        self.room_of.remove(to);
        let gone = self
            .detach(&room, to, now, out)
            .ok_or(SignalError::UnknownPeer)?;
        out.push(&gone.peer, &SignalError::Removed.to_frame());
        if let Some(r) = self.rooms.get_mut(&room) {
            r.policy
                .ban(gone.addr, gone.username, now + self.removal, now);
        }
        Ok(gone.peer)
    }

    /// `askMute`: relays the host's request to member `to`.
    pub fn ask_mute(
        &mut self,
        from: &str,
        to: &str,
        audio: bool,
        out: &mut Outbox,
    ) -> Result<(), SignalError> {
        let room = self.hosted(from)?;
        let m = self
            .rooms
            .get(&room)
            .and_then(|r| r.member(to))
            .filter(|_| to != from)
            .ok_or(SignalError::UnknownPeer)?;
        out.push(&m.peer, &protocol::ask_mute_frame(from, audio));
        Ok(())
    }

    /// `endCall`: every member gets `ended` and is out of the room, which is deleted (so
    /// whoever waits in its lobby hears that it closed).
    pub fn end(&mut self, from: &str, out: &mut Outbox) -> Result<(), SignalError> {
        let room = self.hosted(from)?;
        let ended = protocol::ended_frame(from);
        if let Some(r) = self.rooms.get_mut(&room) {
            for m in r.members.drain(..) {
                self.room_of.remove(&m.id);
                out.push(&m.peer, &ended);
            }
        }
        self.drop_if_empty(&room, out);
        Ok(())
    }

    /// Puts `me` in the lobby of `room`; it gets `knocking` (with how long it may wait), the
    /// host the new list.
    pub(super) fn knock(
        &mut self,
        room: &str,
        me: Member,
        now: Instant,
        out: &mut Outbox,
    ) -> Result<(), SignalError> {
        let Some(r) = self.rooms.get_mut(room) else {
            return Err(SignalError::NotInRoom);
        };
        if r.policy.waiting.len() >= MAX_WAITING {
            return Err(SignalError::LobbyFull);
        }
        out.push(&me.peer, &protocol::knocking_frame(room, self.lobby_wait));
        self.knocking.insert(me.id.clone(), room.to_owned());
        r.policy.waiting.push(Knocker {
            member: me,
            since: now,
        });
        r.tell_lobby(now, out);
        Ok(())
    }

    /// Takes knocker `id` out of the lobby of `room` (it is already out of `knocking`).
    pub(super) fn unknock(
        &mut self,
        room: &str,
        id: &str,
        now: Instant,
        out: &mut Outbox,
    ) -> Option<Member> {
        let r = self.rooms.get_mut(room)?;
        let i = r.policy.waiting.iter().position(|k| k.member.id == id)?;
        let k = r.policy.waiting.remove(i);
        r.tell_lobby(now, out);
        Some(k.member)
    }

    /// The knock of `id` waited too long: it leaves the lobby and is told. Whether it was
    /// still waiting (not admitted or declined meanwhile).
    pub fn expire_knock(&mut self, id: &str, now: Instant, out: &mut Outbox) -> bool {
        let Some(room) = self.knocking.remove(id) else {
            return false;
        };
        if let Some(k) = self.unknock(&room, id, now, out) {
            out.push(&k.peer, &SignalError::LobbyTimeout.to_frame());
        }
        true
    }

    fn take_knocker(
        &mut self,
        room: &str,
        id: &str,
        now: Instant,
        out: &mut Outbox,
    ) -> Result<Member, SignalError> {
        if self.knocking.get(id).map(String::as_str) != Some(room) {
            return Err(SignalError::UnknownPeer);
        }
        self.knocking.remove(id);
        self.unknock(room, id, now, out)
            .ok_or(SignalError::UnknownPeer)
    }

    /// A knocker comes in, or hears that the room filled up meanwhile.
    fn let_in(&mut self, room: &str, k: Member, now: Instant, out: &mut Outbox) {
        let full = self
            .rooms
            .get(room)
            .is_none_or(|r| r.members.len() >= self.capacity);
        if full {
            out.push(&k.peer, &SignalError::Full(self.capacity).to_frame());
            return;
        }
        self.enter(room, k, false, now, out);
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{NONE, Op::*, Step, run};
    use super::*;
    use crate::signal::protocol::HostAction::*;

    const IN_A: &[&str] = &["joined host=a"];

    #[test]
    fn host_scenarios() {
        let table: Vec<(&str, usize, Vec<Step>)> = vec![
            (
                "only the host may act; the role passes to the member present longest",
                4,
                vec![
                    (Join(0, "a", "r"), Ok(()), [IN_A, NONE, NONE, NONE]),
                    (Join(1, "b", "r"), Ok(()), [&["login b"], IN_A, NONE, NONE]),
                    (
                        Join(2, "c", "r"),
                        Ok(()),
                        [&["login c"], &["login c"], IN_A, NONE],
                    ),
                    (
                        Host("b", HandOver, "c"),
                        Err(SignalError::NotHost),
                        [NONE; 4],
                    ),
                    (
                        Set("b", Some(true), None, None),
                        Err(SignalError::NotHost),
                        [NONE; 4],
                    ),
                    (
                        Set("b", None, None, Some("pw")),
                        Err(SignalError::NotHost),
                        [NONE; 4],
                    ),
                    (Host("b", Remove, "c"), Err(SignalError::NotHost), [NONE; 4]),
                    (Host("b", Admit, "c"), Err(SignalError::NotHost), [NONE; 4]),
                    (
                        Host("b", Decline, "c"),
                        Err(SignalError::NotHost),
                        [NONE; 4],
                    ),
                    (
                        Host("b", AskMute { audio: true }, "a"),
                        Err(SignalError::NotHost),
                        [NONE; 4],
                    ),
                    (End("b"), Err(SignalError::NotHost), [NONE; 4]),
                    (End("x"), Err(SignalError::NotInRoom), [NONE; 4]),
                    (
                        Host("a", HandOver, "nobody"),
                        Err(SignalError::UnknownPeer),
                        [NONE; 4],
                    ),
                    (
                        Host("a", HandOver, "b"),
                        Ok(()),
                        [
                            &["state host=b"],
                            &["state host=b"],
                            &["state host=b"],
                            NONE,
                        ],
                    ),
                    (
                        Host("a", HandOver, "a"),
                        Err(SignalError::NotHost),
                        [NONE; 4],
                    ),
                    (
                        Leave("b"),
                        Ok(()),
                        [
                            &["logout b", "state host=a"],
                            NONE,
                            &["logout b", "state host=a"],
                            NONE,
                        ],
                    ),
                ],
            ),
            (
                "lock and password",
                4,
                vec![
                    (Join(0, "a", "r"), Ok(()), [IN_A, NONE, NONE, NONE]),
                    (
                        Set("a", Some(true), None, None),
                        Ok(()),
                        [&["state host=a locked"], NONE, NONE, NONE],
                    ),
                    (Join(1, "b", "r"), Err(SignalError::Locked), [NONE; 4]),
                    (
                        Set("a", Some(false), None, Some("secret")),
                        Ok(()),
                        [&["state host=a password"], NONE, NONE, NONE],
                    ),
                    (
                        Join(1, "b", "r"),
                        Err(SignalError::PasswordRequired),
                        [NONE; 4],
                    ),
                    (
                        JoinPw(1, "b", "r", "Secret"),
                        Err(SignalError::WrongPassword),
                        [NONE; 4],
                    ),
                    (
                        JoinPw(1, "b", "r", "secret"),
                        Ok(()),
                        [&["login b"], &["joined host=a password"], NONE, NONE],
                    ),
                    (
                        Set("a", None, None, Some("")),
                        Ok(()),
                        [&["state host=a"], &["state host=a"], NONE, NONE],
                    ),
                    (
                        Join(2, "c", "r"),
                        Ok(()),
                        [&["login c"], &["login c"], IN_A, NONE],
                    ),
                ],
            ),
            (
                "lobby: knock, admit, decline, the host leaves, the next host sees the queue",
                4,
                vec![
                    (Join(0, "a", "r"), Ok(()), [IN_A, NONE, NONE, NONE]),
                    (Join(1, "b", "r"), Ok(()), [&["login b"], IN_A, NONE, NONE]),
                    (
                        Set("a", None, Some(true), None),
                        Ok(()),
                        [&["state host=a lobby"], &["state host=a lobby"], NONE, NONE],
                    ),
                    (
                        Join(2, "c", "r"),
                        Ok(()),
                        [&["lobby [c]"], NONE, &["knocking"], NONE],
                    ),
                    (
                        Join(3, "d", "r"),
                        Ok(()),
                        [&["lobby [c,d]"], NONE, NONE, &["knocking"]],
                    ),
                    (Host("b", Admit, "c"), Err(SignalError::NotHost), [NONE; 4]),
                    (
                        Host("a", Admit, "c"),
                        Ok(()),
                        [
                            &["lobby [d]", "login c"],
                            &["login c"],
                            &["joined host=a lobby"],
                            NONE,
                        ],
                    ),
                    (
                        Host("a", Decline, "c"),
                        Err(SignalError::UnknownPeer),
                        [NONE; 4],
                    ),
                    (
                        Leave("a"),
                        Ok(()),
                        [
                            NONE,
                            &["logout a", "state host=b lobby", "lobby [d]"],
                            &["logout a", "state host=b lobby"],
                            NONE,
                        ],
                    ),
                    (
                        Host("b", Decline, "d"),
                        Ok(()),
                        [NONE, &["lobby []"], NONE, &["error declined"]],
                    ),
                    (
                        Join(3, "d", "r"),
                        Ok(()),
                        [NONE, &["lobby [d]"], NONE, &["knocking"]],
                    ),
                    (
                        Expire("d"),
                        Ok(()),
                        [NONE, &["lobby []"], NONE, &["error lobby-timeout"]],
                    ),
                    (
                        Join(3, "d", "r"),
                        Ok(()),
                        [NONE, &["lobby [d]"], NONE, &["knocking"]],
                    ),
                    (
                        Set("b", None, Some(false), None),
                        Ok(()),
                        [
                            NONE,
                            &["state host=b", "lobby []", "login d"],
                            &["state host=b", "login d"],
                            &["joined host=b"],
                        ],
                    ),
                ],
            ),
            (
                "a lobby whose last member leaves closes; knocking into a full room is refused",
                2,
                vec![
                    (Join(0, "a", "r"), Ok(()), [IN_A, NONE, NONE, NONE]),
                    (
                        Set("a", None, Some(true), None),
                        Ok(()),
                        [&["state host=a lobby"], NONE, NONE, NONE],
                    ),
                    (
                        Join(1, "b", "r"),
                        Ok(()),
                        [&["lobby [b]"], &["knocking"], NONE, NONE],
                    ),
                    (
                        Leave("a"),
                        Ok(()),
                        [NONE, &["error lobby-closed"], NONE, NONE],
                    ),
                    (
                        Join(1, "b", "r"),
                        Ok(()),
                        [NONE, &["joined host=b"], NONE, NONE],
                    ),
                    (
                        Join(0, "a", "r"),
                        Ok(()),
                        [&["joined host=b"], &["login a"], NONE, NONE],
                    ),
                    (
                        Set("b", None, Some(true), None),
                        Ok(()),
                        [&["state host=b lobby"], &["state host=b lobby"], NONE, NONE],
                    ),
                    (Join(2, "c", "r"), Err(SignalError::Full(2)), [NONE; 4]),
                ],
            ),
            (
                "remove: the member goes and its address and name stay out",
                4,
                vec![
                    (Join(0, "a", "r"), Ok(()), [IN_A, NONE, NONE, NONE]),
                    (Join(1, "b", "r"), Ok(()), [&["login b"], IN_A, NONE, NONE]),
                    (
                        Host("a", Remove, "a"),
                        Err(SignalError::UnknownPeer),
                        [NONE; 4],
                    ),
                    (
                        Host("a", Remove, "b"),
                        Ok(()),
                        [&["logout b"], &["error removed"], NONE, NONE],
                    ),
                    (
                        Host("a", Remove, "b"),
                        Err(SignalError::UnknownPeer),
                        [NONE; 4],
                    ),
                    (Join(1, "b", "r"), Err(SignalError::Removed), [NONE; 4]),
                    (
                        JoinFrom2(1, "b", "r"),
                        Ok(()),
                        [&["login b"], IN_A, NONE, NONE],
                    ),
                    (
                        Host("a", AskMute { audio: false }, "b"),
                        Ok(()),
                        [NONE, &["askMute video"], NONE, NONE],
                    ),
                    (
                        Host("a", AskMute { audio: true }, "a"),
                        Err(SignalError::UnknownPeer),
                        [NONE; 4],
                    ),
                ],
            ),
            (
                "end the call: everyone is out, the lobby closes, the id is free",
                4,
                vec![
                    (Join(0, "a", "r"), Ok(()), [IN_A, NONE, NONE, NONE]),
                    (Join(1, "b", "r"), Ok(()), [&["login b"], IN_A, NONE, NONE]),
                    (
                        Set("a", None, Some(true), None),
                        Ok(()),
                        [&["state host=a lobby"], &["state host=a lobby"], NONE, NONE],
                    ),
                    (
                        Join(2, "c", "r"),
                        Ok(()),
                        [&["lobby [c]"], NONE, &["knocking"], NONE],
                    ),
                    (
                        End("a"),
                        Ok(()),
                        [&["ended"], &["ended"], &["error lobby-closed"], NONE],
                    ),
                    (End("a"), Err(SignalError::NotInRoom), [NONE; 4]),
                    (
                        Join(1, "b", "r"),
                        Ok(()),
                        [NONE, &["joined host=b"], NONE, NONE],
                    ),
                ],
            ),
            (
                "a resumed host keeps its role, past the lock, and nobody hears of it",
                4,
                vec![
                    (Join(0, "a", "r"), Ok(()), [IN_A, NONE, NONE, NONE]),
                    (Join(1, "b", "r"), Ok(()), [&["login b"], IN_A, NONE, NONE]),
                    (
                        Set("a", Some(true), None, None),
                        Ok(()),
                        [
                            &["state host=a locked"],
                            &["state host=a locked"],
                            NONE,
                            NONE,
                        ],
                    ),
                    (
                        Rejoin(2, "c", "r", "a"),
                        Ok(()),
                        [NONE, NONE, &["joined host=a locked"], NONE],
                    ),
                    (Leave("b"), Ok(()), [NONE, NONE, &["logout b"], NONE]),
                    (
                        Rejoin(3, "d", "r", "a"),
                        Ok(()),
                        [NONE, NONE, NONE, &["joined host=a locked"]],
                    ),
                ],
            ),
        ];
        run(table);
    }

    /// A room's removals are bounded: the oldest is forgotten first.
    #[test]
    fn bans_are_bounded() {
        let mut p = Policy::default();
        let now = Instant::now();
        let later = now + std::time::Duration::from_secs(60);
        for i in 0..(MAX_BANS + 5) {
            let ip = std::net::IpAddr::from([10, 0, 0, i as u8]);
            p.ban(AddrKey::new(ip, 64), format!("n{i}"), later, now);
        }
        assert_eq!(p.bans.len(), MAX_BANS);
        assert_eq!(p.bans[0].username, "n5");
        // Expired ones go first.
        p.ban(
            AddrKey::new([10, 1, 0, 0].into(), 64),
            "x".into(),
            later,
            later,
        );
        assert_eq!(p.bans.len(), 1);
    }
}
