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

use str0m::bwe::{Bitrate, BweKind};
use str0m::change::SdpAnswer;
use str0m::config::CryptoProvider;
use str0m::media::{KeyframeRequest, KeyframeRequestKind, MediaData, MediaTime, Mid};
use str0m::net::{Protocol, Receive, TcpType};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, RtcConfig};
use tokio::net::UdpSocket;

use super::demux::{Class, Demux, Route, classify};
use super::forward::{Table, Throttle};
use super::layer::{self, Layer, Layers, Pick, RIDS, Rank, Verdict, Want};
use super::participant::{Line, LineState, Participant, Source};
use super::speakers::Speakers;
use super::tcp::{self, Conns};
use super::{Command, Pid, Stats};
use crate::config::SfuConfig;
use crate::signal::protocol::{self, SfuView, SignalError};

/// How long a participant may take to connect (ICE and DTLS) after its `sfu-join`.
const CONNECT_WITHIN: Duration = Duration::from_secs(30);
/// How long a participant may stay ICE Disconnected before it is removed. str0m's ICE-lite
/// agent says Disconnected once no consent check came for 15 s; with this grace a member
/// silent for 30 s in all (RFC 7675's consent lifetime, after which a browser calls the
/// connection failed and joins again) is let go, one whose checks come back sooner keeps
/// its tracks and subscriptions and its media resumes without a new `sfu-join`.
const DISCONNECTED_GRACE: Duration = Duration::from_secs(15);
/// The bandwidth estimate to a subscriber before str0m has one of its own.
const INITIAL_ESTIMATE: u64 = 1_000_000;
/// Packets kept per video m-line to a subscriber, for NACK resends and probing (str0m's
/// default is 1,000): 300 are over 2 s of a 1.2 Mbit/s top layer, and each one a
/// subscription holds is ~1.2 kB.
const SEND_BUFFER_VIDEO: usize = 300;
/// How long a sent packet stays resendable (str0m keeps 3 s): libwebrtc's sender keeps
/// its packets at least 1 s (`RtpPacketHistory`), Janus 200 ms or more with the RTT. A NACK
/// later than this comes after the receiver's jitter buffer gave up on the packet; at
/// 500 kbit/s the 2 s saved are ~100 packets, ~120 kB per subscription.
const RESEND_WITHIN: Duration = Duration::from_secs(1);
/// str0m's own cap on resends: beyond 15% of what is sent, queued resends are dropped.
const RESEND_RATIO_CAP: Option<f32> = Some(0.15);
/// What one forwarded audio track is taken to need (Opus with headers), bits/s.
const AUDIO_BPS: u64 = 40_000;
/// A published video track: (publisher, mid, layer), the key of keyframe requests.
type LayerKey = (Pid, Mid, Layer);

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
    throttle: Throttle<LayerKey>,
    /// Each room's active speakers.
    speakers: HashMap<String, Speakers<Pid>>,
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
            speakers: HashMap::new(),
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

    /// Ends participants whose session is gone, whose `Rtc` died, that never connected, or
    /// that stayed ICE Disconnected past the grace.
    pub fn sweep(&mut self, now: Instant) {
        let since = |t: Instant| now.saturating_duration_since(t);
        let gone: Vec<(Pid, &'static str)> = self
            .parts
            .iter()
            .filter_map(|(id, p)| {
                let why = if p.peer.is_closed() || !p.rtc.is_alive() {
                    "gone"
                } else if !p.connected && since(p.joined) > CONNECT_WITHIN {
                    "never connected"
                } else if p
                    .disconnected
                    .is_some_and(|t| since(t) > DISCONNECTED_GRACE)
                {
                    "ice disconnected"
                } else {
                    return None;
                };
                Some((*id, why))
            })
            .collect();
        for (p, why) in gone {
            self.remove(p, why);
        }
        self.tcp.sweep(now);
        self.flush(now);
    }

    /// Every [`super::TICK`]: each subscriber's layers again (views, estimates, congestion),
    /// and each room's speakers.
    pub fn tick(&mut self, now: Instant) {
        let all: Vec<Pid> = self.parts.keys().copied().collect();
        for p in all {
            self.rebalance(p, now);
        }
        let mut frames = Vec::new();
        for (room, sp) in &mut self.speakers {
            if let Some(list) = sp.poll(now) {
                let ids = list
                    .iter()
                    .filter_map(|p| self.parts.get(p).map(|x| x.session.as_str()));
                frames.push((room.clone(), protocol::sfu_speakers_frame(ids)));
            }
        }
        self.speakers.retain(|_, sp| !sp.is_empty());
        for (room, frame) in frames {
            for p in self.rooms.get(&room).into_iter().flatten() {
                if let Some(part) = self.parts.get(p) {
                    part.peer.send_or_drop(frame.clone());
                }
            }
        }
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
            Command::View { session, views } => self.view(&session, &views, now),
            Command::UnpublishScreen { session } => {
                if let Some(&p) = self.by_session.get(&session) {
                    self.unpublish(p, Source::Screen);
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
        // VP8 and Opus only (what the web client sends, and what the SFU reads key frames
        // and sizes of): every m-line of an offer and its answer lists only those, which
        // keeps a big room's SDP small.
        let mut rtc = RtcConfig::new()
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .set_send_buffer_video(SEND_BUFFER_VIDEO)
            .set_ice_lite(true)
            .set_crypto_provider(self.provider.clone())
            .enable_bwe(Some(Bitrate::bps(INITIAL_ESTIMATE)))
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
        // The first offer carries the publish m-lines only; every track already published in
        // the room follows in the next offer, once this one is answered. Chromium 156 passed
        // the frames of receivers made by a first remote offer around their encoded-frame
        // transforms (E2EE), while those made by later offers work.
        if let Some(frame) = part.negotiate() {
            part.peer.send(frame);
        }
        for other in self.rooms.get(&room).into_iter().flatten() {
            if let Some(o) = self.parts.get(other) {
                for mid in &o.live {
                    if let Some(source) = o.publishes_on(*mid) {
                        part.want((*other, *mid), &o.session, source);
                    }
                }
            }
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
                opened.push((l.track, m, l.source != Source::Mic));
            }
        }
        part.lines
            .retain(|l| !matches!(l.state, LineState::NegotiatingStop(_)));
        for (track, m, video) in opened {
            let open = self.table.subscribe(track, (p, m));
            if let Some(part) = self.parts.get_mut(&p) {
                if video && let Some(tx) = part.rtc.direct_api().stream_tx_by_mid(m, None) {
                    tx.set_rtx_cache(SEND_BUFFER_VIDEO, RESEND_WITHIN, RESEND_RATIO_CAP);
                }
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
        }
        // Its new videos get their layers (and the keyframes to start them).
        self.rebalance(p, Instant::now());
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
        if let Some(sp) = self.speakers.get_mut(&part.room) {
            sp.remove(p);
        }
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
                        part.send_dropped += 1;
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
            // Not a leave: a few seconds of loss or a starved machine end in Disconnected,
            // and the member's checks coming back end it. `sweep` removes it past the grace.
            Event::IceConnectionStateChange(state) => {
                if let Some(part) = self.parts.get_mut(&p) {
                    let was = part.disconnected;
                    part.disconnected = match state {
                        IceConnectionState::Disconnected => was.or(Some(now)),
                        IceConnectionState::Connected | IceConnectionState::Completed => None,
                        _ => was,
                    };
                    if was.is_some() != part.disconnected.is_some() {
                        tracing::info!(session = %part.session, ?state, "sfu ice");
                    }
                }
            }
            Event::MediaData(d) => self.on_media(p, d, now),
            Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. }) => {
                if let Some(part) = self.parts.get_mut(&p) {
                    part.on_estimate(estimate.as_u64(), now);
                }
            }
            Event::KeyframeRequest(r) => self.on_keyframe_request(p, r, now),
            _ => {}
        }
    }

    fn on_media(&mut self, p: Pid, d: MediaData, now: Instant) {
        let track = (p, d.mid);
        let Some(part) = self.parts.get_mut(&p) else {
            return;
        };
        let Some(source) = part.publishes_on(d.mid) else {
            return;
        };
        let Some(layer) = layer::layer_of(d.rid.as_deref()) else {
            return;
        };
        let video = source != Source::Mic;
        let keyframe = video && d.is_keyframe();
        let level = d.ext_vals.audio_level;
        if video {
            let layers = part.layers.entry(d.mid).or_default();
            let key = keyframe.then_some(&d.data[..]);
            layers.on_frame(layer, d.rid.is_some(), d.data.len(), key, now);
            if keyframe {
                self.throttle.on_keyframe((p, d.mid, layer));
            }
        } else if let Some(level) = level {
            let room = part.room.clone();
            self.speakers
                .entry(room)
                .or_default()
                .on_level(p, level, now);
        }
        let Some(part) = self.parts.get_mut(&p) else {
            return;
        };
        if !part.live.contains(&d.mid) {
            // A video track appears with a keyframe (not with the stragglers of a share
            // that just ended); everyone else in the room gets an m-line for it.
            if video && !keyframe {
                self.keyframe((p, d.mid, layer), now);
                return;
            }
            part.live.push(d.mid);
            self.table.publish(track);
            let (room, from) = (part.room.clone(), part.session.clone());
            let others: Vec<Pid> = self.rooms.get(&room).cloned().unwrap_or_default();
            for o in others.into_iter().filter(|o| *o != p) {
                if let Some(sub) = self.parts.get_mut(&o) {
                    sub.want(track, &from, source);
                }
                self.renegotiate(o);
            }
        }
        if !d.contiguous {
            self.keyframe((p, d.mid, layer), now);
        }
        let targets = self.table.targets(track).to_vec();
        for (s, m) in targets {
            let Some(sub) = self.parts.get_mut(&s) else {
                continue;
            };
            let mut time = d.time;
            if video {
                let Some(line) = sub.open_line(m) else {
                    continue;
                };
                let verdict = line.switch.admit(layer, keyframe);
                if verdict == Verdict::Drop {
                    continue;
                }
                let switched = verdict == Verdict::Switched;
                let t =
                    (line.switch).out_time(time.numer(), time.denom(), d.network_time, switched);
                time = MediaTime::new(t, d.time.frequency());
            }
            let Some(mut writer) = sub.rtc.writer(m) else {
                continue;
            };
            let Some(pt) = writer.match_params(d.params) else {
                continue;
            };
            if let Some(level) = level {
                writer = writer.audio_level(level, d.ext_vals.voice_activity.unwrap_or(false));
            }
            if writer
                .write(pt, d.network_time, time, d.data.clone())
                .is_ok()
            {
                self.stats.forwarded.fetch_add(1, Relaxed);
            }
            self.dirty.push(s);
        }
    }

    fn on_keyframe_request(&mut self, s: Pid, r: KeyframeRequest, now: Instant) {
        let Some(track) = self.table.source((s, r.mid)) else {
            return;
        };
        let layer = self
            .parts
            .get_mut(&s)
            .and_then(|sub| sub.open_line(r.mid))
            .and_then(|l| l.switch.current().or(l.switch.target()));
        if let Some(layer) = layer {
            self.keyframe((track.0, track.1, layer), now);
        }
    }

    /// `sfu-view` from `session`: the sizes its videos are shown at (applied at once, or at
    /// the next tick if the last one was less than [`super::VIEW_EVERY`] ago).
    fn view(&mut self, session: &str, views: &[SfuView], now: Instant) {
        let Some(&p) = self.by_session.get(session) else {
            return;
        };
        let Some(part) = self.parts.get_mut(&p) else {
            return;
        };
        for v in views {
            let mid: Mid = v.mid.as_str().into();
            if let Some(line) = part.offered_line(mid).filter(|l| l.source != Source::Mic) {
                line.view = Some((v.width, v.height));
            }
        }
        let recent = part
            .viewed
            .is_some_and(|t| now.saturating_duration_since(t) < super::VIEW_EVERY);
        if !recent {
            part.viewed = Some(now);
            self.rebalance(p, now);
        }
    }

    /// Picks the layer of each video `s` receives, from its views, its bandwidth estimate
    /// and `sfu.max_subscriber_kbps`, pausing whole videos when even their smallest layers
    /// do not fit (see [`layer::allocate`]; the subscriber is told, `sfu-paused`); a
    /// subscriber whose datagrams the socket refused since the last time drops its videos
    /// up to their next keyframes.
    fn rebalance(&mut self, s: Pid, now: Instant) {
        let Some(sub) = self.parts.get(&s) else {
            return;
        };
        let none = Layers::default();
        let speakers = self.speakers.get(&sub.room);
        let mut audio = 0;
        let mut idx = Vec::new();
        let mut wants = Vec::new();
        let area = |l: &Line| l.view.map_or(0, |(w, h)| u64::from(w) * u64::from(h));
        let shown = || {
            sub.lines
                .iter()
                .filter(|l| matches!(l.state, LineState::Open(_)) && l.source != Source::Mic)
                .map(area)
        };
        let (biggest, smallest) = (shown().max().unwrap_or(0), shown().min().unwrap_or(0));
        for (i, l) in sub.lines.iter().enumerate() {
            if !matches!(l.state, LineState::Open(_)) {
                continue;
            }
            if l.source == Source::Mic {
                audio += AUDIO_BPS;
                continue;
            }
            let layers = self
                .parts
                .get(&l.track.0)
                .and_then(|o| o.layers.get(&l.track.1))
                .unwrap_or(&none);
            let rank = Rank {
                largest: area(l) == biggest && biggest > smallest,
                screen: l.source == Source::Screen,
                spoke: speakers.and_then(|sp| sp.spoke_at(l.track.0)),
                area: area(l),
            };
            idx.push(i);
            wants.push(Want {
                wanted: layers.wanted(l.view, now),
                layers,
                current: l.switch.current(),
                rank,
                paused: l.paused,
            });
        }
        let ceiling = self.config.max_subscriber_kbps * 1000;
        let estimate = sub.estimate.unwrap_or(INITIAL_ESTIMATE).min(ceiling);
        let budget = estimate.saturating_sub(audio);
        // Layers by the estimate, pausing by the ceiling: estimates dip at every switch and
        // climb only on what is sent, so pausing by them darkens tiles a lower layer keeps
        // playing (q-sfu's freeze doubled); a video over the ceiling is paused.
        let pausing = ceiling.saturating_sub(audio);
        let chosen = layer::allocate_with(&wants, budget, pausing, now);
        let desired: u64 = wants
            .iter()
            .filter_map(|w| w.wanted.map(|l| w.layers.bps(l)))
            .sum::<u64>()
            + audio;
        drop(wants);
        let Some(sub) = self.parts.get_mut(&s) else {
            return;
        };
        let congested = sub.send_dropped > sub.send_dropped_seen;
        sub.send_dropped_seen = sub.send_dropped;
        // Probing up to half again what it wants keeps the estimate above it (an estimate
        // that only reaches what is sent flaps around it), and lets paused videos return.
        sub.rtc
            .bwe()
            .set_desired_bitrate(Bitrate::bps((desired * 3 / 2).min(ceiling)));
        let mut requests = Vec::new();
        for (k, i) in idx.into_iter().enumerate() {
            let line = &mut sub.lines[i];
            line.paused = chosen[k] == Pick::Paused;
            let mut need = line.switch.set_target(chosen[k].layer());
            if congested {
                need = line.switch.drop_to_keyframe();
            }
            if let Some(l) = need {
                requests.push((line.track.0, line.track.1, l));
            }
        }
        sub.tell_paused(now);
        for r in requests {
            self.keyframe(r, now);
        }
    }

    /// `p` stopped publishing `source`: every m-line that carried it stops.
    fn unpublish(&mut self, p: Pid, source: Source) {
        let Some(part) = self.parts.get_mut(&p) else {
            return;
        };
        let Some(mid) = part.mid_of(source) else {
            return;
        };
        if !part.live.contains(&mid) {
            return;
        }
        part.live.retain(|m| *m != mid);
        part.layers.remove(&mid);
        let room = part.room.clone();
        self.throttle.retain(|t| !(t.0 == p && t.1 == mid));
        for (s, m) in self.table.unpublish((p, mid)) {
            if let Some(sub) = self.parts.get_mut(&s) {
                sub.stop(m);
            }
        }
        let others: Vec<Pid> = self.rooms.get(&room).cloned().unwrap_or_default();
        for o in others.into_iter().filter(|o| *o != p) {
            if let Some(sub) = self.parts.get_mut(&o) {
                sub.unwant((p, mid));
            }
            self.renegotiate(o);
        }
    }

    /// A keyframe request for one layer of a track, through the throttle.
    fn keyframe(&mut self, key: LayerKey, now: Instant) {
        if self.throttle.request(key, now) {
            self.send_keyframe_request(key);
        }
    }

    fn send_keyframe_request(&mut self, (p, mid, layer): LayerKey) {
        let Some(part) = self.parts.get_mut(&p) else {
            return;
        };
        let simulcast = part.layers.get(&mid).is_some_and(Layers::is_simulcast);
        let rid = simulcast.then(|| RIDS[layer.min(2)].into());
        if let Some(mut writer) = part.rtc.writer(mid)
            && writer
                .request_keyframe(rid, KeyframeRequestKind::Pli)
                .is_ok()
        {
            self.stats.keyframe_requests.fetch_add(1, Relaxed);
            self.dirty.push(p);
        }
    }
}
