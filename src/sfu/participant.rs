//! One member's connection to the SFU: its str0m `Rtc` (ICE-lite, frame mode), the m-lines
//! it publishes on, the m-lines that carry other members' tracks to it, and the offer the
//! server is waiting to have answered. The server makes every offer: one at a time, the next
//! one once the last is answered.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use str0m::Rtc;
use str0m::change::SdpPendingOffer;
use str0m::media::{Direction, MediaKind, Mid, Simulcast, SimulcastLayer};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::Pid;
use super::layer::{Layers, RIDS, Switch};
use crate::signal::protocol::{self, SfuTrack};
use crate::signal::room::Peer;

/// What a published track is: the member's microphone, camera (simulcast) or screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    Mic,
    Camera,
    Screen,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Mic => "mic",
            Source::Camera => "camera",
            Source::Screen => "screen",
        }
    }

    fn kind(self) -> MediaKind {
        match self {
            Source::Mic => MediaKind::Audio,
            Source::Camera | Source::Screen => MediaKind::Video,
        }
    }
}

/// How long a bandwidth estimate holds against lower ones.
pub const ESTIMATE_HOLD: std::time::Duration = std::time::Duration::from_millis(1500);

/// A subscriber is told of its paused videos (`sfu-paused`) at most this often: the
/// allocation's hysteresis keeps changes rare, this bounds them.
pub const PAUSED_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// The m-lines a member publishes on, in the order of its first offer.
pub const PUBLISHED: [Source; 3] = [Source::Mic, Source::Camera, Source::Screen];

/// Where an m-line that carries another member's track is in its negotiation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineState {
    /// Wanted, not offered yet.
    ToOpen,
    Negotiating(Mid),
    Open(Mid),
    /// Its track ended: to be stopped in the next offer.
    ToStop(Mid),
    NegotiatingStop(Mid),
}

/// An m-line to this participant that carries `track` (publisher, the publisher's mid).
#[derive(Debug)]
pub struct Line {
    pub track: (Pid, Mid),
    /// The publisher's session id, for the track map.
    pub from: String,
    pub source: Source,
    pub state: LineState,
    /// Video: the layer it gets, and its switches.
    pub switch: Switch,
    /// Video: the size it is shown at (`sfu-view`), if the subscriber said.
    pub view: Option<(u32, u32)>,
    /// Video: paused because the subscriber's bandwidth cannot carry it (`sfu-paused`).
    pub paused: bool,
}

pub struct Participant {
    pub session: String,
    pub room: String,
    /// The member's signalling queue: offers and errors go there.
    pub peer: Arc<Peer>,
    pub rtc: Rtc,
    pub pending: Option<SdpPendingOffer>,
    /// The m-lines it publishes on (recvonly on the server's side), once offered.
    pub publish: Vec<(Mid, Source)>,
    /// Which of those have carried media (a published track the others subscribe to).
    pub live: Vec<Mid>,
    /// What is known of the layers of each video it publishes.
    pub layers: HashMap<Mid, Layers>,
    /// The bandwidth estimate to it (TWCC, bits/s), once str0m has one: the highest of
    /// the last [`ESTIMATE_HOLD`] (see [`Participant::on_estimate`]), and when that was.
    pub estimate: Option<u64>,
    estimate_at: Instant,
    /// Datagrams to it the socket would not take, and how many of them the last
    /// rebalance saw.
    pub send_dropped: u64,
    pub send_dropped_seen: u64,
    /// When its last `sfu-view` was applied.
    pub viewed: Option<Instant>,
    /// The paused videos it was last told of (`sfu-paused`: their mids), and when.
    pub paused_told: Vec<Mid>,
    pub paused_told_at: Option<Instant>,
    pub lines: Vec<Line>,
    /// When its `Rtc` wants to be woken (the key of its timer).
    pub timeout: Instant,
    pub joined: Instant,
    pub connected: bool,
    /// Since when its ICE is Disconnected (no consent checks for 15 s): it waits there,
    /// tracks and subscriptions kept, until checks come back or the grace ends.
    pub disconnected: Option<Instant>,
}

impl Participant {
    pub fn new(session: String, room: String, peer: Arc<Peer>, rtc: Rtc, now: Instant) -> Self {
        Participant {
            session,
            room,
            peer,
            rtc,
            pending: None,
            publish: Vec::new(),
            live: Vec::new(),
            layers: HashMap::new(),
            estimate: None,
            estimate_at: now,
            send_dropped: 0,
            send_dropped_seen: 0,
            viewed: None,
            paused_told: Vec::new(),
            paused_told_at: None,
            lines: Vec::new(),
            timeout: now,
            joined: now,
            connected: false,
            disconnected: None,
        }
    }

    /// A new bandwidth estimate. A higher one counts at once, a lower one once the last
    /// higher one is [`ESTIMATE_HOLD`] old: a single dip (the estimator's noise) does not
    /// move its videos down a layer, an estimate that stays low does.
    pub fn on_estimate(&mut self, bps: u64, now: Instant) {
        let held = now.saturating_duration_since(self.estimate_at) < ESTIMATE_HOLD;
        if self.estimate.is_none_or(|e| bps >= e || !held) {
            self.estimate = Some(bps);
            self.estimate_at = now;
        }
    }

    /// Another member's track to carry to this one.
    pub fn want(&mut self, track: (Pid, Mid), from: &str, source: Source) {
        if self.lines.iter().all(|l| l.track != track) {
            self.lines.push(Line {
                track,
                from: from.to_owned(),
                source,
                state: LineState::ToOpen,
                switch: Switch::default(),
                view: None,
                paused: false,
            });
        }
    }

    /// The open line on this participant's `mid`.
    pub fn open_line(&mut self, mid: Mid) -> Option<&mut Line> {
        self.lines
            .iter_mut()
            .find(|l| l.state == LineState::Open(mid))
    }

    /// The line on `mid` that is open or in the offer the participant is answering: it
    /// knows the mid (and shows the video) as soon as it has the offer, so its `sfu-view`
    /// for that mid may come before the server has its answer.
    pub fn offered_line(&mut self, mid: Mid) -> Option<&mut Line> {
        self.lines
            .iter_mut()
            .find(|l| matches!(l.state, LineState::Open(m) | LineState::Negotiating(m) if m == mid))
    }

    /// Forgets the line for `track` if it was never offered (an open one is stopped by
    /// [`Participant::stop`], one being offered once its answer finds the track gone).
    pub fn unwant(&mut self, track: (Pid, Mid)) {
        self.lines
            .retain(|l| !(l.track == track && l.state == LineState::ToOpen));
    }

    /// The track of publisher `p` carried on this participant's `mid` ended (or `p` left).
    pub fn stop(&mut self, mid: Mid) {
        for l in &mut self.lines {
            if l.state == LineState::Open(mid) {
                l.state = LineState::ToStop(mid);
            }
        }
    }

    /// Forgets lines for tracks of `p` that were never offered.
    pub fn forget_publisher(&mut self, p: Pid) {
        self.lines
            .retain(|l| !(l.track.0 == p && l.state == LineState::ToOpen));
    }

    /// The next offer, if anything changed and no offer waits for its answer: the
    /// `sfu-offer` frame to send.
    pub fn negotiate(&mut self) -> Option<Utf8Bytes> {
        if self.pending.is_some() {
            return None;
        }
        let mut change = self.rtc.sdp_api();
        if self.publish.is_empty() {
            let stream = Some(self.session.clone());
            for source in PUBLISHED {
                let simulcast = (source == Source::Camera).then(|| {
                    let mut s = Simulcast::new();
                    for rid in RIDS.iter().rev() {
                        s.add_recv_layer(SimulcastLayer::new(rid));
                    }
                    s
                });
                let track = Some(source.name().to_owned());
                let mid = change.add_media(
                    source.kind(),
                    Direction::RecvOnly,
                    stream.clone(),
                    track,
                    simulcast,
                );
                self.publish.push((mid, source));
            }
        }
        for l in &mut self.lines {
            match l.state {
                LineState::ToOpen => {
                    let stream = Some(l.from.clone());
                    let track = Some(l.source.name().to_owned());
                    let kind = l.source.kind();
                    let mid = change.add_media(kind, Direction::SendOnly, stream, track, None);
                    l.state = LineState::Negotiating(mid);
                }
                LineState::ToStop(mid) => {
                    change.stop_media(mid);
                    l.state = LineState::NegotiatingStop(mid);
                }
                _ => {}
            }
        }
        if !change.has_changes() {
            return None;
        }
        let (offer, pending) = change.apply()?;
        self.pending = Some(pending);
        let mids: Vec<(String, Source, Option<&str>)> = self
            .publish
            .iter()
            .map(|(m, s)| (m.to_string(), *s, None))
            .chain(self.lines.iter().filter_map(|l| match l.state {
                LineState::Negotiating(m) | LineState::Open(m) => {
                    Some((m.to_string(), l.source, Some(l.from.as_str())))
                }
                _ => None,
            }))
            .collect();
        let tracks: Vec<SfuTrack<'_>> = mids
            .iter()
            .map(|(mid, source, from)| SfuTrack {
                mid,
                kind: kind_name(source.kind()),
                source: source.name(),
                simulcast: from.is_none() && *source == Source::Camera,
                from: *from,
            })
            .collect();
        Some(protocol::sfu_offer_frame(&offer.to_sdp_string(), &tracks))
    }

    /// Sends `sfu-paused` if the videos paused for its bandwidth changed since it was last
    /// told, and that was at least [`PAUSED_EVERY`] ago (otherwise a later call sends it).
    pub fn tell_paused(&mut self, now: Instant) {
        let paused: Vec<(Mid, &Line)> = self
            .lines
            .iter()
            .filter_map(|l| match l.state {
                LineState::Open(m) if l.paused => Some((m, l)),
                _ => None,
            })
            .collect();
        let same = paused.len() == self.paused_told.len()
            && paused
                .iter()
                .zip(&self.paused_told)
                .all(|((m, _), t)| m == t);
        let recent = self
            .paused_told_at
            .is_some_and(|t| now.saturating_duration_since(t) < PAUSED_EVERY);
        if same || recent {
            return;
        }
        let mids: Vec<String> = paused.iter().map(|(m, _)| m.to_string()).collect();
        let list: Vec<protocol::SfuPaused<'_>> = paused
            .iter()
            .zip(&mids)
            .map(|((_, l), mid)| protocol::SfuPaused {
                mid,
                from: &l.from,
                source: l.source.name(),
            })
            .collect();
        let frame = protocol::sfu_paused_frame(&list);
        self.paused_told = paused.iter().map(|(m, _)| *m).collect();
        self.paused_told_at = Some(now);
        self.peer.send_or_drop(frame);
    }

    /// Whether `mid` is one it publishes on, and what.
    pub fn publishes_on(&self, mid: Mid) -> Option<Source> {
        self.publish
            .iter()
            .find(|(m, _)| *m == mid)
            .map(|(_, s)| *s)
    }

    /// The mid it publishes `source` on.
    pub fn mid_of(&self, source: Source) -> Option<Mid> {
        self.publish
            .iter()
            .find(|(_, s)| *s == source)
            .map(|(m, _)| *m)
    }
}

pub fn kind_name(kind: MediaKind) -> &'static str {
    if kind.is_audio() { "audio" } else { "video" }
}
