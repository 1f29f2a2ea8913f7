//! Scenario tables for rooms and their hosts: who does what, what each client receives.

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
        sfu: false,
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
                    rooms.leave_if(id, &clients[c].peer, now, &mut out);
                    Ok(())
                }
                Leave(id) => {
                    rooms.leave(id, now, &mut out);
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
                    rooms.configure(from, &change, key, now, &mut out)
                }
                Host(from, HostAction::Remove, to) => {
                    rooms.remove_member(from, to, now, &mut out).map(drop)
                }
                Host(from, action, to) => match action {
                    HostAction::HandOver => rooms.hand_over(from, to, now, &mut out),
                    HostAction::Admit => rooms.admit(from, to, now, &mut out),
                    HostAction::Decline => rooms.decline(from, to, now, &mut out),
                    HostAction::AskMute { audio } => rooms.ask_mute(from, to, audio, &mut out),
                    HostAction::Remove => unreachable!(),
                },
                End(from) => rooms.end(from, &mut out),
                Expire(id) => {
                    rooms.expire_knock(id, now, &mut out);
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
    assert_eq!(rooms.leave("a", now, &mut out), Some("r".into()));
    assert!(!rooms.exists("r"));
    assert!(rooms.rooms.is_empty() && rooms.created_by.is_empty());
    assert_eq!(rooms.leave("a", now, &mut out), None);
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
    rooms.leave("a", Instant::now(), &mut out);
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
    rooms.leave("c", Instant::now(), &mut out);
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

/// The host's lobby list says how long each knocker has waited, by the clock the caller
/// passes in (the rooms read none of their own).
#[test]
fn lobby_wait_is_measured_with_the_callers_clock() {
    let (mut a, b, mut c) = (client(8), client(8), client(8));
    let mut rooms = Rooms::new(10, 1, 10);
    let mut out = Outbox::default();
    let (none, t0) = (Entry::default(), Instant::now());
    let later = |secs: u64| t0 + Duration::from_secs(secs);
    assert!(rooms.join(member(&a, "a"), "r", none, t0, &mut out).is_ok());
    assert!(rooms.join(member(&c, "c"), "r", none, t0, &mut out).is_ok());
    let lobby = RoomChange {
        lobby: Some(true),
        ..RoomChange::default()
    };
    assert!(rooms.configure("a", &lobby, None, t0, &mut out).is_ok());
    assert!(
        rooms
            .join(member(&b, "b"), "r", none, later(2), &mut out)
            .is_ok()
    );
    assert!(rooms.hand_over("a", "c", later(14), &mut out).is_ok());
    out.deliver();
    let waited = |c: &mut Client| {
        let mut got = Vec::new();
        while let Ok(f) = c.rx.try_recv() {
            let v: Value = serde_json::from_str(f.as_str()).unwrap_or_default();
            if v["type"] == "lobby" {
                got.push(v["data"][0]["waitedSecs"].as_f64().unwrap_or(-1.0));
            }
        }
        got
    };
    assert_eq!(waited(&mut a), vec![0.0], "told when b knocked");
    assert_eq!(waited(&mut c), vec![12.0], "the new host, 12 s later");
}

/// The `mode` values a client got, and the mode of its `joined` ("joined:<mode>").
fn modes(c: &mut Client) -> Vec<String> {
    let mut got = Vec::new();
    while let Ok(f) = c.rx.try_recv() {
        let Ok(v) = serde_json::from_str::<Value>(f.as_str()) else {
            continue;
        };
        match v["type"].as_str() {
            Some("joined") => got.push(format!("joined:{}", v["mode"].as_str().unwrap_or("?"))),
            Some("mode") => got.push(v["data"]["mode"].as_str().unwrap_or("?").to_owned()),
            _ => {}
        }
    }
    got
}

#[test]
fn rooms_past_sfu_from_with_only_sfu_clients_use_the_sfu() {
    let mut rooms = Rooms::new(10, 2, 10)
        .with_sfu_from(Some(2))
        .with_mesh_after(Duration::ZERO);
    let mut cs: Vec<Client> = (0..4).map(|_| client(16)).collect();
    let now = Instant::now();
    let join = |rooms: &mut Rooms, c: &Client, id: &str, sfu: bool| {
        let mut out = Outbox::default();
        let mut m = member(c, id);
        m.sfu = sfu;
        rooms
            .join(m, "r", Entry::default(), now, &mut out)
            .expect("join");
        out.deliver();
    };
    join(&mut rooms, &cs[0], "a", true);
    join(&mut rooms, &cs[1], "b", true);
    assert_eq!(modes(&mut cs[0]), ["joined:mesh"]);
    assert_eq!(modes(&mut cs[1]), ["joined:mesh"]);
    // The third SFU client takes the room past sfu_from = 2.
    join(&mut rooms, &cs[2], "c", true);
    assert_eq!(modes(&mut cs[0]), ["sfu"]);
    assert_eq!(modes(&mut cs[2]), ["joined:sfu", "sfu"]);
    assert_eq!(rooms.sfu_state("a").map(|s| s.1), Some(true));
    // A client without SFU support turns it back into a mesh, for everyone.
    join(&mut rooms, &cs[3], "d", false);
    assert_eq!(modes(&mut cs[3]), ["joined:mesh", "mesh"]);
    assert_eq!(modes(&mut cs[1]), ["sfu", "mesh"]);
    // It leaves: the SFU again; then one more leaves: mesh (2 is not past 2).
    let mut out = Outbox::default();
    rooms.leave("d", now, &mut out);
    out.deliver();
    assert_eq!(modes(&mut cs[0]), ["mesh", "sfu"]);
    let mut out = Outbox::default();
    rooms.leave("c", now, &mut out);
    out.deliver();
    assert_eq!(modes(&mut cs[0]), ["mesh"]);
    assert_eq!(modes(&mut cs[1]), ["sfu", "mesh"]);
    assert_eq!(modes(&mut cs[2]), ["mesh", "sfu"]);
    // Without the SFU, never.
    let mut plain = Rooms::new(10, 2, 10);
    for (i, id) in ["e", "f", "g", "h"].iter().enumerate() {
        let mut out = Outbox::default();
        let mut m = member(&cs[i], id);
        m.sfu = true;
        plain
            .join(m, "p", Entry::default(), now, &mut out)
            .expect("join");
        out.deliver();
    }
    for c in &mut cs {
        assert!(modes(c).iter().all(|m| m == "joined:mesh"));
    }
}

/// A room taken away whole (its home is another node now): members and knockers are handed
/// back to the caller, nobody is told anything, and nothing of the room is left to count.
#[test]
fn an_evicted_room_leaves_nothing_behind() {
    let (mut a, mut b, mut k, mut other) = (client(8), client(8), client(8), client(8));
    let mut rooms = Rooms::new(10, 2, 1);
    let mut out = Outbox::default();
    let (none, now) = (Entry::default(), Instant::now());
    assert!(
        rooms
            .join(member(&a, "a"), "r", none, now, &mut out)
            .is_ok()
    );
    assert!(
        rooms
            .join(member(&b, "b"), "r", none, now, &mut out)
            .is_ok()
    );
    let lobby = RoomChange {
        lobby: Some(true),
        ..RoomChange::default()
    };
    assert!(rooms.configure("a", &lobby, None, now, &mut out).is_ok());
    assert!(
        rooms
            .join(member(&k, "k"), "r", none, now, &mut out)
            .is_ok()
    );
    let other_ip = member_from(&other, "o", "198.51.100.1");
    assert!(rooms.join(other_ip, "s", none, now, &mut out).is_ok());
    out.deliver();
    for c in [&mut a, &mut b, &mut k, &mut other] {
        drain(c);
    }

    let mut gone: Vec<String> = rooms.evict("r").into_iter().map(|(id, _)| id).collect();
    gone.sort();
    assert_eq!(gone, ["a", "b", "k"]);
    assert!(!rooms.exists("r") && rooms.exists("s"));
    assert_eq!(rooms.counts(), (1, 1));
    assert!(!rooms.holds("a") && rooms.room_of("k").is_none());
    for c in [&mut a, &mut b, &mut k, &mut other] {
        assert_eq!(drain(c), Vec::<String>::new());
    }
    assert!(rooms.evict("r").is_empty());
    // The creator's address may make a room again (max_rooms_per_addr = 1).
    let mut out = Outbox::default();
    assert!(
        rooms
            .join(member(&a, "a"), "t", none, now, &mut out)
            .is_ok()
    );
}

#[test]
fn a_shrunk_sfu_room_goes_back_to_a_mesh_only_after_mesh_after() {
    let mut rooms = Rooms::new(10, 2, 10)
        .with_sfu_from(Some(2))
        .with_mesh_after(Duration::from_secs(15));
    let mut cs: Vec<Client> = (0..4).map(|_| client(16)).collect();
    let t0 = Instant::now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    let join = |rooms: &mut Rooms, c: &Client, id: &str, now: Instant| {
        let mut out = Outbox::default();
        let mut m = member(c, id);
        m.sfu = true;
        rooms
            .join(m, "r", Entry::default(), now, &mut out)
            .expect("join");
        out.deliver();
    };
    let leave = |rooms: &mut Rooms, id: &str, now: Instant| {
        let mut out = Outbox::default();
        rooms.leave(id, now, &mut out);
        out.deliver();
    };
    let settle = |rooms: &mut Rooms, now: Instant| {
        let mut out = Outbox::default();
        rooms.settle(now, &mut out);
        out.deliver();
    };
    for (c, id) in cs.iter().zip(["a", "b", "c"]) {
        join(&mut rooms, c, id, at(0));
    }
    assert_eq!(modes(&mut cs[0]), ["joined:mesh", "sfu"]);
    for c in &mut cs {
        modes(c);
    }
    assert_eq!(rooms.next_settle(), None);
    // c leaves at 10 s: two members, but the room stays on the SFU for 15 s.
    leave(&mut rooms, "c", at(10));
    assert!(modes(&mut cs[0]).is_empty());
    assert_eq!(rooms.sfu_state("a").map(|s| s.1), Some(true));
    assert_eq!(rooms.next_settle(), Some(at(25)));
    settle(&mut rooms, at(24));
    assert!(modes(&mut cs[0]).is_empty(), "not yet at 24 s");
    // Someone comes back within the delay: the room never left the SFU, and the newcomer is
    // told so.
    join(&mut rooms, &cs[2], "c", at(20));
    assert_eq!(modes(&mut cs[2]), ["joined:sfu"]);
    assert!(modes(&mut cs[0]).is_empty());
    assert_eq!(rooms.next_settle(), None);
    // It leaves again at 30 s, b at 31 s; d joins at 32 s (two members: still small).
    leave(&mut rooms, "c", at(30));
    leave(&mut rooms, "b", at(31));
    join(&mut rooms, &cs[3], "d", at(32));
    assert_eq!(modes(&mut cs[3]), ["joined:sfu"]);
    settle(&mut rooms, at(44));
    assert!(modes(&mut cs[0]).is_empty());
    // 15 s after it first became small (30 s): a mesh, for everyone.
    settle(&mut rooms, at(45));
    assert_eq!(modes(&mut cs[0]), ["mesh"]);
    assert_eq!(modes(&mut cs[3]), ["mesh"]);
    assert_eq!(rooms.sfu_state("a").map(|s| s.1), Some(false));
    assert_eq!(rooms.next_settle(), None);
}

#[test]
fn a_room_of_sfu_clients_holds_sfu_capacity_members_a_mesh_capacity() {
    let mut rooms = Rooms::new(2, 2, 10)
        .with_sfu_from(Some(1))
        .with_sfu_capacity(Some(4));
    let cs: Vec<Client> = (0..6).map(|_| client(16)).collect();
    let now = Instant::now();
    let mut join = |i: usize, sfu: bool| {
        let mut out = Outbox::default();
        let mut m = member(&cs[i], &format!("m{i}"));
        m.sfu = sfu;
        let r = rooms.join(m, "r", Entry::default(), now, &mut out);
        out.deliver();
        r.map(drop)
    };
    for i in 0..4 {
        assert_eq!(join(i, true), Ok(()), "SFU member {i}");
    }
    assert_eq!(
        join(4, true),
        Err(SignalError::Full(4)),
        "past sfu capacity"
    );
    // A client without SFU support would make it a mesh of 5: refused at the mesh's 2.
    assert_eq!(join(5, false), Err(SignalError::Full(2)));
    // Without the SFU every room has the one capacity.
    let mut plain = Rooms::new(2, 2, 10);
    for (i, c) in cs.iter().take(3).enumerate() {
        let mut out = Outbox::default();
        let mut m = member(c, &format!("p{i}"));
        m.sfu = true;
        let r = plain
            .join(m, "p", Entry::default(), now, &mut out)
            .map(drop);
        assert_eq!(
            r,
            if i < 2 {
                Ok(())
            } else {
                Err(SignalError::Full(2))
            }
        );
    }
}
