//! The SFU's state, owned by its one task: every participant, the demux, the forwarding
//! table, the keyframe throttle and the timers. Each method takes one input (a datagram, a
//! command, a timeout), feeds it to the `Rtc` it belongs to, and drains what the `Rtc`s it
//! touched want done: datagrams sent at once (never waited for: a full socket buffer drops
//! UDP as the network would), media forwarded, keyframes requested, offers queued to the
//! member's signalling session.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use str0m::change::SdpAnswer;
use str0m::config::CryptoProvider;
use str0m::media::{KeyframeRequest, KeyframeRequestKind, MediaData, Mid};
use str0m::net::{Protocol, Receive, TcpType};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, RtcConfig};
use tokio::net::UdpSocket;

use super::demux::{Class, Demux, Route, classify};
use super::forward::{Table, Throttle};
use super::participant::{LineState, Participant};
use super::tcp::{self, Conns};
use super::{Command, Pid, Stats};
use crate::config::SfuConfig;
use crate::signal::protocol::SignalError;

/// How long a participant may take to connect (ICE and DTLS) after its `sfu-join`.
const CONNECT_WITHIN: Duration = Duration::from_secs(30);

pub struct Engine {
    config: SfuConfig,
    socket: Arc<UdpSocket>,
    /// The address in the SFU's ICE candidate (and the destination str0m is told).
    candidate: SocketAddr,
    provider: Arc<CryptoProvider>,
    stats: Arc<Stats>,
    next_pid: Pid,
    parts: HashMap<Pid, Participant>,
    by_session: HashMap<String, Pid>,
    rooms: HashMap<String, Vec<Pid>>,
    demux: Demux<Pid>,
    table: Table<Pid, Mid>,
    throttle: Throttle<(Pid, Mid)>,
    timers: BTreeSet<(Instant, Pid)>,
    /// Participants whose `Rtc` has output to drain.
    dirty: Vec<Pid>,
    /// ICE-TCP: the passive candidate's address (the HTTPS port) and the connections.
    tcp_candidate: Option<SocketAddr>,
    tcp: Conns,
}

impl Engine {
    pub fn new(
        config: SfuConfig,
        socket: Arc<UdpSocket>,
        candidate: SocketAddr,
        stats: Arc<Stats>,
    ) -> Engine {
        Engine {
            config,
            socket,
            candidate,
            provider: Arc::new(str0m::crypto::from_feature_flags()),
            stats,
            next_pid: 1,
            parts: HashMap::new(),
            by_session: HashMap::new(),
            rooms: HashMap::new(),
            demux: Demux::default(),
            table: Table::default(),
            throttle: Throttle::default(),
            timers: BTreeSet::new(),
            dirty: Vec::new(),
            tcp_candidate: None,
            tcp: Conns::default(),
        }
    }

    /// Offers a passive TCP candidate at `addr` (ICE-TCP on the HTTPS port) besides UDP.
    pub fn set_tcp_candidate(&mut self, addr: Option<SocketAddr>) {
        self.tcp_candidate = addr;
    }

    /// An ICE-TCP connection opened, sent a frame, or closed. A frame goes to the participant
    /// the connection was learned for, else (STUN naming a participant's ufrag) to that one;
    /// anything else closes the connection.
    pub fn on_tcp(&mut self, event: tcp::Event, now: Instant) {
        let (id, data) = match event {
            tcp::Event::Open { id, remote, tx } => return self.tcp.open(id, remote, tx, now),
            tcp::Event::Closed { id } => return self.tcp.close(id),
            tcp::Event::Frame { id, data } => (id, data),
        };
        let (Some((remote, owner)), Some(local)) = (self.tcp.get(id), self.tcp_candidate) else {
            return;
        };
        let p = owner.or_else(|| {
            (classify(&data) == Class::Stun)
                .then(|| self.demux.owner_of_ufrag(&data))
                .flatten()
        });
        let part = p.and_then(|p| Some((p, self.parts.get_mut(&p)?)));
        let Some((p, part)) = part else {
            self.stats.tcp_junk.fetch_add(1, Relaxed);
            self.tcp.close(id);
            return;
        };
        let Ok(receive) = Receive::new(Protocol::Tcp, remote, local, &data) else {
            self.stats.dropped(super::demux::Dropped::Junk);
            return;
        };
        if let Err(e) = part.rtc.handle_input(Input::Receive(now, receive)) {
            tracing::debug!(session = %part.session, error = %e, "sfu tcp input refused");
        }
        self.dirty.push(p);
        self.flush(now);
    }

    /// When the task must wake next, if anything waits.
    pub fn next_wake(&self) -> Option<Instant> {
        let t = self.timers.first().map(|(t, _)| *t);
        match (t, self.throttle.next_due()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn participants(&self) -> usize {
        self.parts.len()
    }

    pub fn on_datagram(&mut self, packet: &[u8], source: SocketAddr, now: Instant) {
        let p = match self.demux.route(packet, source) {
            Route::To(p) => p,
            Route::Drop(why) => {
                self.stats.dropped(why);
                return;
            }
        };
        let Some(part) = self.parts.get_mut(&p) else {
            return;
        };
        let Ok(receive) = Receive::new(Protocol::Udp, source, self.candidate, packet) else {
            self.stats.dropped(super::demux::Dropped::Junk);
            return;
        };
        if let Err(e) = part.rtc.handle_input(Input::Receive(now, receive)) {
            tracing::debug!(session = %part.session, error = %e, "sfu input refused");
        }
        self.dirty.push(p);
        self.flush(now);
    }

    pub fn on_timeout(&mut self, now: Instant) {
        while let Some(&(t, p)) = self.timers.first() {
            if t > now {
                break;
            }
            self.timers.pop_first();
            if let Some(part) = self.parts.get_mut(&p) {
                let _ = part.rtc.handle_input(Input::Timeout(now));
                self.dirty.push(p);
            }
        }
        for track in self.throttle.due(now) {
            self.send_keyframe_request(track);
        }
        self.flush(now);
    }

    /// Ends participants whose session is gone, whose `Rtc` died, or that never connected.
    pub fn sweep(&mut self, now: Instant) {
        let gone: Vec<Pid> = self
            .parts
            .iter()
            .filter(|(_, p)| {
                p.peer.is_closed()
                    || !p.rtc.is_alive()
                    || (!p.connected && now.saturating_duration_since(p.joined) > CONNECT_WITHIN)
            })
            .map(|(id, _)| *id)
            .collect();
        for p in gone {
            self.remove(p, "gone");
        }
        self.tcp.sweep(now);
        self.flush(now);
    }

    pub fn on_command(&mut self, command: Command, now: Instant) {
        match command {
            Command::Join {
                session,
                room,
                peer,
            } => {
                if let Err(e) = self.join(session, room, peer.clone(), now) {
                    peer.send_or_drop(e.to_frame());
                }
            }
            Command::Answer { session, sdp } => self.answer(&session, &sdp),
            Command::Candidate { session, candidate } => {
                let Some(part) = self.part_of(&session) else {
                    return;
                };
                match Candidate::from_sdp_string(&candidate) {
                    Ok(c) => part.rtc.add_remote_candidate(c),
                    Err(_) => part
                        .peer
                        .send_or_drop(SignalError::WrongType("data.candidate").to_frame()),
                }
            }
            Command::Leave { session } => {
                if let Some(&p) = self.by_session.get(&session) {
                    self.remove(p, "left");
                }
            }
        }
        self.flush(now);
    }

    fn part_of(&mut self, session: &str) -> Option<&mut Participant> {
        let p = *self.by_session.get(session)?;
        self.dirty.push(p);
        self.parts.get_mut(&p)
    }

    fn join(
        &mut self,
        session: String,
        room: String,
        peer: Arc<crate::signal::room::Peer>,
        now: Instant,
    ) -> Result<(), SignalError> {
        if let Some(&old) = self.by_session.get(&session) {
            self.remove(old, "rejoined");
        }
        let in_room = self.rooms.get(&room).map_or(0, Vec::len);
        if in_room >= self.config.max_room_members {
            return Err(SignalError::SfuFull(self.config.max_room_members));
        }
        if self.parts.len() >= self.config.max_participants {
            return Err(SignalError::SfuBusy);
        }
        let mut rtc = RtcConfig::new()
            .set_ice_lite(true)
            .set_crypto_provider(self.provider.clone())
            .build(now);
        let candidate = Candidate::host(self.candidate, "udp").map_err(|_| SignalError::SfuBusy)?;
        rtc.add_local_candidate(candidate);
        if let Some(addr) = self.tcp_candidate {
            let tcp = Candidate::builder()
                .tcp()
                .host(addr)
                .tcptype(TcpType::Passive)
                .build()
                .map_err(|_| SignalError::SfuBusy)?;
            rtc.add_local_candidate(tcp);
        }
        let ufrag = rtc.direct_api().local_ice_credentials().ufrag;
        let p = self.next_pid;
        self.next_pid += 1;
        if !self.demux.insert(p, &ufrag) {
            return Err(SignalError::SfuBusy);
        }
        let mut part = Participant::new(session.clone(), room.clone(), peer, rtc, now);
        // Every track already published in the room.
        for other in self.rooms.get(&room).into_iter().flatten() {
            if let Some(o) = self.parts.get(other) {
                for mid in &o.live {
                    if let Some(kind) = o.publishes_on(*mid) {
                        part.want((*other, *mid), &o.session, kind);
                    }
                }
            }
        }
        if let Some(frame) = part.negotiate() {
            part.peer.send(frame);
        }
        tracing::info!(session = %session, participants = self.parts.len() + 1, "sfu joined");
        self.by_session.insert(session, p);
        self.rooms.entry(room).or_default().push(p);
        self.parts.insert(p, part);
        self.stats.joined.fetch_add(1, Relaxed);
        self.dirty.push(p);
        Ok(())
    }

    fn answer(&mut self, session: &str, sdp: &str) {
        let Some(&p) = self.by_session.get(session) else {
            return;
        };
        let Some(part) = self.parts.get_mut(&p) else {
            return;
        };
        let Some(pending) = part.pending.take() else {
            part.peer.send_or_drop(SignalError::SfuNotJoined.to_frame());
            return;
        };
        let accepted = SdpAnswer::from_sdp_string(sdp)
            .ok()
            .and_then(|a| part.rtc.sdp_api().accept_answer(pending, a).ok());
        if accepted.is_none() {
            tracing::debug!(session = %session, "sfu answer refused");
            part.peer
                .send_or_drop(SignalError::WrongType("data.sdp").to_frame());
            self.remove(p, "bad answer");
            return;
        }
        let mut opened = Vec::new();
        for l in &mut part.lines {
            if let LineState::Negotiating(m) = l.state {
                opened.push((l.track, m));
            }
        }
        part.lines
            .retain(|l| !matches!(l.state, LineState::NegotiatingStop(_)));
        for (track, m) in opened {
            let open = self.table.subscribe(track, (p, m));
            if let Some(part) = self.parts.get_mut(&p) {
                for l in &mut part.lines {
                    if l.state == LineState::Negotiating(m) {
                        l.state = if open {
                            LineState::Open(m)
                        } else {
                            LineState::ToStop(m)
                        };
                    }
                }
            }
            if open {
                // The newcomer's first frames are useless until a keyframe comes.
                self.keyframe(track, Instant::now());
            }
        }
        self.renegotiate(p);
        self.dirty.push(p);
    }

    /// Sends `p` its next offer, if something changed and none is pending.
    fn renegotiate(&mut self, p: Pid) {
        if let Some(part) = self.parts.get_mut(&p)
            && let Some(frame) = part.negotiate()
        {
            part.peer.send(frame);
            self.dirty.push(p);
        }
    }

    fn remove(&mut self, p: Pid, why: &'static str) {
        let Some(part) = self.parts.remove(&p) else {
            return;
        };
        tracing::info!(session = %part.session, reason = why, "sfu left");
        self.demux.remove(p);
        self.tcp.forget(p);
        self.by_session.remove(&part.session);
        self.timers.remove(&(part.timeout, p));
        if let Some(list) = self.rooms.get_mut(&part.room) {
            list.retain(|x| *x != p);
            if list.is_empty() {
                self.rooms.remove(&part.room);
            }
        }
        self.throttle.retain(|t| t.0 != p);
        let stopped = self.table.remove(p);
        let mut touched: Vec<Pid> = stopped.iter().map(|(s, _)| *s).collect();
        for (s, m) in stopped {
            if let Some(sub) = self.parts.get_mut(&s) {
                sub.stop(m);
            }
        }
        for other in self.rooms.get(&part.room).into_iter().flatten() {
            if let Some(o) = self.parts.get_mut(other) {
                o.forget_publisher(p);
            }
            touched.push(*other);
        }
        touched.sort_unstable();
        touched.dedup();
        for s in touched {
            self.renegotiate(s);
        }
    }

    /// Drains every participant with output until none has any.
    fn flush(&mut self, now: Instant) {
        while let Some(p) = self.dirty.pop() {
            let events = self.drain(p);
            for e in events {
                self.on_event(p, e, now);
            }
        }
    }

    /// Sends what `p`'s `Rtc` wants sent, sets its timer, and returns its events.
    fn drain(&mut self, p: Pid) -> Vec<Event> {
        let mut events = Vec::new();
        let Some(part) = self.parts.get_mut(&p) else {
            return events;
        };
        loop {
            match part.rtc.poll_output() {
                Ok(Output::Transmit(t)) => {
                    let bytes: &[u8] = &t.contents;
                    // A binding success response: its agent checked the request's integrity,
                    // so the address (or TCP connection) it came from is this participant's.
                    let proven = classify(bytes) == Class::Stun && bytes.starts_with(&[0x01, 0x01]);
                    let sent = match t.proto {
                        Protocol::Tcp => self.tcp.send(p, t.destination, bytes, proven),
                        _ => {
                            if proven {
                                self.demux.learn(p, t.destination);
                            }
                            self.socket.try_send_to(bytes, t.destination).is_ok()
                        }
                    };
                    if !sent {
                        self.stats.send_dropped.fetch_add(1, Relaxed);
                    }
                }
                Ok(Output::Timeout(at)) => {
                    self.timers.remove(&(part.timeout, p));
                    part.timeout = at;
                    self.timers.insert((at, p));
                    break;
                }
                Ok(Output::Event(e)) => events.push(e),
                Err(e) => {
                    tracing::debug!(session = %part.session, error = %e, "sfu rtc failed");
                    part.rtc.disconnect();
                    break;
                }
            }
        }
        events
    }

    fn on_event(&mut self, p: Pid, e: Event, now: Instant) {
        match e {
            Event::Connected => {
                if let Some(part) = self.parts.get_mut(&p) {
                    part.connected = true;
                    tracing::debug!(session = %part.session, "sfu connected");
                }
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.remove(p, "ice disconnected");
            }
            Event::MediaData(d) => self.on_media(p, d, now),
            Event::KeyframeRequest(r) => self.on_keyframe_request(p, r, now),
            _ => {}
        }
    }

    fn on_media(&mut self, p: Pid, d: MediaData, now: Instant) {
        // Simulcast layers are not chosen yet: only the top one (or none) is forwarded.
        if d.rid.as_ref().is_some_and(|r| &**r != "h") {
            return;
        }
        let track = (p, d.mid);
        let Some(part) = self.parts.get_mut(&p) else {
            return;
        };
        let Some(kind) = part.publishes_on(d.mid) else {
            return;
        };
        if !part.live.contains(&d.mid) {
            // A track appeared: everyone else in the room gets an m-line for it.
            part.live.push(d.mid);
            self.table.publish(track);
            let (room, from) = (part.room.clone(), part.session.clone());
            let others: Vec<Pid> = self.rooms.get(&room).cloned().unwrap_or_default();
            for o in others.into_iter().filter(|o| *o != p) {
                if let Some(sub) = self.parts.get_mut(&o) {
                    sub.want(track, &from, kind);
                }
                self.renegotiate(o);
            }
        }
        if !d.contiguous {
            self.keyframe(track, now);
        }
        let targets = self.table.targets(track).to_vec();
        if targets.is_empty() {
            return;
        }
        let data = d.data;
        for (s, m) in targets {
            let Some(sub) = self.parts.get_mut(&s) else {
                continue;
            };
            let Some(writer) = sub.rtc.writer(m) else {
                continue;
            };
            let Some(pt) = writer.match_params(d.params) else {
                continue;
            };
            if writer
                .write(pt, d.network_time, d.time, data.clone())
                .is_ok()
            {
                self.stats.forwarded.fetch_add(1, Relaxed);
            }
            self.dirty.push(s);
        }
    }

    fn on_keyframe_request(&mut self, s: Pid, r: KeyframeRequest, now: Instant) {
        if let Some(track) = self.table.source((s, r.mid)) {
            self.keyframe(track, now);
        }
    }

    /// A keyframe request for `track`, through the throttle.
    fn keyframe(&mut self, track: (Pid, Mid), now: Instant) {
        if self.throttle.request(track, now) {
            self.send_keyframe_request(track);
        }
    }

    fn send_keyframe_request(&mut self, (p, mid): (Pid, Mid)) {
        let Some(part) = self.parts.get_mut(&p) else {
            return;
        };
        if let Some(mut writer) = part.rtc.writer(mid)
            && writer
                .request_keyframe(None, KeyframeRequestKind::Pli)
                .is_ok()
        {
            self.stats.keyframe_requests.fetch_add(1, Relaxed);
            self.dirty.push(p);
        }
    }
}
