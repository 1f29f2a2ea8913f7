//! One member's connection to the SFU: its str0m `Rtc` (ICE-lite, frame mode), the m-lines
//! it publishes on, the m-lines that carry other members' tracks to it, and the offer the
//! server is waiting to have answered. The server makes every offer: one at a time, the next
//! one once the last is answered.

use std::sync::Arc;
use std::time::Instant;

use str0m::Rtc;
use str0m::change::SdpPendingOffer;
use str0m::media::{Direction, MediaKind, Mid};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::Pid;
use crate::signal::protocol::{self, SfuTrack};
use crate::signal::room::Peer;

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
    pub kind: MediaKind,
    pub state: LineState,
}

pub struct Participant {
    pub session: String,
    pub room: String,
    /// The member's signalling queue: offers and errors go there.
    pub peer: Arc<Peer>,
    pub rtc: Rtc,
    pub pending: Option<SdpPendingOffer>,
    /// The m-lines it publishes on (recvonly on the server's side), once offered.
    pub publish: Vec<(Mid, MediaKind)>,
    /// Which of those have carried media (a published track the others subscribe to).
    pub live: Vec<Mid>,
    pub lines: Vec<Line>,
    /// When its `Rtc` wants to be woken (the key of its timer).
    pub timeout: Instant,
    pub joined: Instant,
    pub connected: bool,
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
            lines: Vec::new(),
            timeout: now,
            joined: now,
            connected: false,
        }
    }

    /// Another member's track to carry to this one.
    pub fn want(&mut self, track: (Pid, Mid), from: &str, kind: MediaKind) {
        if self.lines.iter().all(|l| l.track != track) {
            self.lines.push(Line {
                track,
                from: from.to_owned(),
                kind,
                state: LineState::ToOpen,
            });
        }
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
            for kind in [MediaKind::Audio, MediaKind::Video] {
                let mid = change.add_media(kind, Direction::RecvOnly, stream.clone(), None, None);
                self.publish.push((mid, kind));
            }
        }
        for l in &mut self.lines {
            match l.state {
                LineState::ToOpen => {
                    let stream = Some(l.from.clone());
                    let mid = change.add_media(l.kind, Direction::SendOnly, stream, None, None);
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
        let mids: Vec<(String, &'static str, Option<&str>)> = self
            .publish
            .iter()
            .map(|(m, k)| (m.to_string(), kind_name(*k), None))
            .chain(self.lines.iter().filter_map(|l| match l.state {
                LineState::Negotiating(m) | LineState::Open(m) => {
                    Some((m.to_string(), kind_name(l.kind), Some(l.from.as_str())))
                }
                _ => None,
            }))
            .collect();
        let tracks: Vec<SfuTrack<'_>> = mids
            .iter()
            .map(|(mid, kind, from)| SfuTrack {
                mid,
                kind,
                from: *from,
            })
            .collect();
        Some(protocol::sfu_offer_frame(&offer.to_sdp_string(), &tracks))
    }

    /// Whether `mid` is one it publishes on.
    pub fn publishes_on(&self, mid: Mid) -> Option<MediaKind> {
        self.publish
            .iter()
            .find(|(m, _)| *m == mid)
            .map(|(_, k)| *k)
    }
}

pub fn kind_name(kind: MediaKind) -> &'static str {
    if kind.is_audio() { "audio" } else { "video" }
}
