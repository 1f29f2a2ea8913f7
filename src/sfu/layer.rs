//! Simulcast layer choice as plain data: what is known of a published video track's layers
//! (sizes from their keyframes, measured bitrates, which are still sent), the layer each
//! subscriber's view wants, the split of a subscriber's bandwidth over its videos, and one
//! subscriber m-line's switch, which happens only on a keyframe of the new layer. No
//! sockets, no `Rtc`: the SFU task asks this, then acts.

use std::time::{Duration, Instant};

/// A layer by index, smallest first: 0 is `l`, 1 `m`, 2 `h`. A track without simulcast has
/// only layer 0.
pub type Layer = usize;

/// The simulcast rids, by layer.
pub const RIDS: [&str; 3] = ["l", "m", "h"];

/// The layer a subscriber gets before it sent any `sfu-view`.
pub const DEFAULT_LAYER: Layer = 1;

/// What a layer is taken to be until its keyframes and bytes say otherwise: the sizes of a
/// 720p camera scaled down by 1, 2 and 4, and the client's `maxBitrate`s (bits/s).
const NOMINAL_SIZE: [(u32, u32); 3] = [(320, 180), (640, 360), (1280, 720)];
const NOMINAL_BPS: [u64; 3] = [150_000, 400_000, 1_200_000];

/// A layer not seen this long is taken to be stopped (the browser drops its top layers
/// when its own uplink is short).
const GONE_AFTER: Duration = Duration::from_millis(1500);
/// Bitrates are measured over windows this long.
const WINDOW: Duration = Duration::from_secs(1);
/// What a frame costs on the wire besides its payload, per RTP packet of up to
/// [`PACKET_PAYLOAD`] bytes: RTP header and extensions (~20), SRTP tag (10), UDP and IPv4
/// (28). The budget is a bandwidth estimate of wire bytes; at 12 videos of 500 kbit/s
/// (6 Mbit/s of payload) the headers are another ~0.35 Mbit/s.
const PACKET_OVERHEAD: usize = 60;
const PACKET_PAYLOAD: usize = 1150;

/// A frame's bytes on the wire.
fn wire_bytes(payload: usize) -> usize {
    payload + payload.div_ceil(PACKET_PAYLOAD).max(1) * PACKET_OVERHEAD
}

/// The layer a simulcast rid names (`None`: no simulcast, the one layer).
pub fn layer_of(rid: Option<&str>) -> Option<Layer> {
    match rid {
        None => Some(0),
        Some(r) => RIDS.iter().position(|x| *x == r),
    }
}

/// The frame size a VP8 keyframe's header gives (RFC 6386 §9.1), from the frame's start:
/// 3 bytes of frame tag, the start code, then 14-bit width and height.
pub fn vp8_size(frame: &[u8]) -> Option<(u32, u32)> {
    let f = frame.get(..10)?;
    if f[0] & 1 != 0 || f[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let w = u32::from(u16::from_le_bytes([f[6], f[7]]) & 0x3fff);
    let h = u32::from(u16::from_le_bytes([f[8], f[9]]) & 0x3fff);
    (w > 0 && h > 0).then_some((w, h))
}

/// A bitrate measured over [`WINDOW`]s.
#[derive(Debug, Clone, Copy, Default)]
struct Meter {
    start: Option<Instant>,
    bytes: u64,
    bps: Option<u64>,
}

impl Meter {
    fn add(&mut self, bytes: usize, now: Instant) {
        let start = *self.start.get_or_insert(now);
        let took = now.saturating_duration_since(start);
        if took >= WINDOW {
            self.bps = Some(self.bytes * 8 * 1000 / (took.as_millis() as u64).max(1));
            self.start = Some(now);
            self.bytes = 0;
        }
        self.bytes += bytes as u64;
    }
}

/// What is known of one published video track's layers.
#[derive(Debug, Clone, Default)]
pub struct Layers {
    /// Whether it came with rids (three layers) or without (one).
    simulcast: bool,
    size: [Option<(u32, u32)>; 3],
    rate: [Meter; 3],
    seen: [Option<Instant>; 3],
}

impl Layers {
    /// A frame of `layer` arrived: `keyframe` is its payload when it is a keyframe.
    pub fn on_frame(
        &mut self,
        layer: Layer,
        simulcast: bool,
        bytes: usize,
        keyframe: Option<&[u8]>,
        now: Instant,
    ) {
        let Some(seen) = self.seen.get_mut(layer) else {
            return;
        };
        self.simulcast |= simulcast;
        *seen = Some(now);
        self.rate[layer].add(wire_bytes(bytes), now);
        if let Some(size) = keyframe.and_then(vp8_size) {
            self.size[layer] = Some(size);
        }
    }

    /// Whether it came with rids (keyframe requests then name the layer).
    pub fn is_simulcast(&self) -> bool {
        self.simulcast
    }

    fn count(&self) -> usize {
        if self.simulcast { 3 } else { 1 }
    }

    fn alive(&self, layer: Layer, now: Instant) -> bool {
        self.seen[layer].is_some_and(|t| now.saturating_duration_since(t) < GONE_AFTER)
    }

    /// The layers sent now, smallest first (all of them if none was seen lately: the choice
    /// then waits for the one it picked).
    fn available(&self, now: Instant) -> Vec<Layer> {
        let alive: Vec<Layer> = (0..self.count()).filter(|l| self.alive(*l, now)).collect();
        if alive.is_empty() {
            (0..self.count()).collect()
        } else {
            alive
        }
    }

    /// A layer's size: from its keyframe, else scaled from another layer's, else nominal.
    pub fn size(&self, layer: Layer) -> (u32, u32) {
        if let Some(s) = self.size[layer] {
            return s;
        }
        if !self.simulcast {
            return NOMINAL_SIZE[2];
        }
        for (other, s) in self.size.iter().enumerate() {
            if let Some((w, h)) = *s {
                let scale = |v: u32| {
                    if layer > other {
                        v << (layer - other)
                    } else {
                        v >> (other - layer)
                    }
                };
                return (scale(w), scale(h));
            }
        }
        NOMINAL_SIZE[layer]
    }

    /// A layer's bitrate on the wire (bits/s): measured, else nominal.
    pub fn bps(&self, layer: Layer) -> u64 {
        self.rate[layer].bps.unwrap_or(if self.simulcast {
            NOMINAL_BPS[layer]
        } else {
            NOMINAL_BPS[2]
        })
    }

    /// The layers a view may have, smallest first, and the one it wants: `None` before any
    /// `sfu-view` ([`DEFAULT_LAYER`]), `Some((0, 0))` for not shown (no layer), else the
    /// smallest sent layer at least as big as the view both ways (the biggest if none is).
    pub fn wanted(&self, view: Option<(u32, u32)>, now: Instant) -> Option<Layer> {
        let layers = self.available(now);
        let pick = match view {
            Some((0, _)) | Some((_, 0)) => return None,
            None => layers
                .iter()
                .copied()
                .filter(|l| *l <= DEFAULT_LAYER)
                .max()
                .unwrap_or(layers[0]),
            Some((w, h)) => layers
                .iter()
                .copied()
                .find(|l| {
                    let (lw, lh) = self.size(*l);
                    lw >= w && lh >= h
                })
                .unwrap_or(layers[layers.len() - 1]),
        };
        Some(pick)
    }

    /// The sent layer below `layer`, if any.
    fn below(&self, layer: Layer, now: Instant) -> Option<Layer> {
        self.available(now).into_iter().rev().find(|l| *l < layer)
    }
}

/// How much a subscriber wants to keep one video when its bandwidth cannot carry every one:
/// compared field by field, a higher one is kept longer. The biggest tile (pinned or
/// large) first, then screen shares, then whoever spoke last (the active speakers speak
/// now), then the bigger tile.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rank {
    /// Its view is the subscriber's biggest (and bigger than some other).
    pub largest: bool,
    pub screen: bool,
    /// When its publisher last spoke, if ever (later is kept longer).
    pub spoke: Option<Instant>,
    /// Its view's area in device pixels (0 before any `sfu-view`).
    pub area: u64,
}

/// One video a subscriber receives, for [`allocate`]: the layer its view wants, and what is
/// known of its track.
pub struct Want<'a> {
    pub wanted: Option<Layer>,
    pub layers: &'a Layers,
    /// The layer it gets now: one above it costs [`UP_MARGIN`] more, so that a layer that
    /// only just fits is kept but not climbed to (no flapping between two layers).
    pub current: Option<Layer>,
    pub rank: Rank,
    /// Paused for bandwidth now: it comes back only when its smallest layer fits at
    /// [`UP_MARGIN`] (no flapping between paused and forwarded).
    pub paused: bool,
}

/// What a layer above the current one is counted at, in percent of its bitrate.
pub const UP_MARGIN: u64 = 125;

/// What [`allocate`] gives one video.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// Not shown (a `0`x`0` view): nothing is sent, and nobody is told.
    Off,
    Layer(Layer),
    /// Shown, but even its smallest layer is over what is left of the budget: nothing is
    /// sent on its m-line, and the subscriber is told (`sfu-paused`).
    Paused,
}

impl Pick {
    /// The layer to forward, if any.
    pub fn layer(self) -> Option<Layer> {
        match self {
            Pick::Layer(l) => Some(l),
            Pick::Off | Pick::Paused => None,
        }
    }
}

/// Splits `budget` (bits/s) over a subscriber's videos. When even their smallest layers are
/// over it, whole videos are paused, lowest [`Rank`] first, until the rest fits (a paused
/// one counted at [`UP_MARGIN`]; the highest-ranked one never); a higher-ranked video that
/// does not fit does not keep a lower one that does from its place. Then each video left gets the layer its view wants
/// and, while the sum is over the budget, the biggest one steps down a layer (a layer above
/// the one it gets now counted at [`UP_MARGIN`]). LiveKit's stream allocator and Galène do
/// the same: a subscriber gets fewer videos whole rather than every video with its packets
/// dropped by the pacer.
pub fn allocate(wants: &[Want<'_>], budget: u64, now: Instant) -> Vec<Pick> {
    allocate_with(wants, budget, budget, now)
}

/// [`allocate`] with a budget of its own for pausing: `pausing` decides which videos are
/// paused, `budget` their layers. The SFU pauses by `sfu.max_subscriber_kbps` and picks
/// layers by the bandwidth estimate: an estimate climbs only on what is sent and dips at
/// every switch, so pausing by it would keep it low and darken tiles for nothing.
pub fn allocate_with(wants: &[Want<'_>], budget: u64, pausing: u64, now: Instant) -> Vec<Pick> {
    let mut chosen: Vec<Pick> = wants
        .iter()
        .map(|w| w.wanted.map_or(Pick::Off, Pick::Layer))
        .collect();
    let up = |bps: u64| bps * UP_MARGIN / 100;
    // Pausing: the smallest layers, highest rank first (ties: the earlier line).
    let mut order: Vec<usize> = (0..wants.len())
        .filter(|i| wants[*i].wanted.is_some())
        .collect();
    order.sort_by(|a, b| wants[*b].rank.cmp(&wants[*a].rank).then(a.cmp(b)));
    let mut left = pausing;
    for (k, &i) in order.iter().enumerate() {
        let w = &wants[i];
        let smallest = w.layers.available(now)[0];
        let bps = w.layers.bps(smallest);
        let cost = if w.paused { up(bps) } else { bps };
        // The first one is never paused: a call shows at least its main video, and its
        // packets let the bandwidth estimate climb (a subscriber sent nothing would stay at
        // its first estimate, under a one-layer video's nominal rate).
        if cost <= left || k == 0 {
            left = left.saturating_sub(cost);
        } else {
            chosen[i] = Pick::Paused;
        }
    }
    let rate = |i: usize, l: Pick| {
        l.layer().map_or(0, |l| {
            let bps = wants[i].layers.bps(l);
            if wants[i].current.is_some_and(|c| l > c) {
                up(bps)
            } else {
                bps
            }
        })
    };
    let mut total: u64 = (0..wants.len()).map(|i| rate(i, chosen[i])).sum();
    while total > budget {
        // The video whose step down saves the most.
        let step = (0..wants.len())
            .filter_map(|i| {
                let l = chosen[i].layer()?;
                let down = wants[i].layers.below(l, now)?;
                let (at, below) = (rate(i, Pick::Layer(l)), rate(i, Pick::Layer(down)));
                Some((at - below.min(at), i, down))
            })
            .max();
        let Some((saved, i, down)) = step else {
            break;
        };
        chosen[i] = Pick::Layer(down);
        total -= saved;
    }
    chosen
}

/// What [`Switch::admit`] says of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Drop,
    Forward,
    /// Forward: the first frame of a layer (a keyframe) after a switch or a pause.
    Switched,
}

/// One subscriber m-line's layer: the one forwarded now, the one it should get, and the
/// RTP time offset that keeps its timestamps going across a switch.
#[derive(Debug, Clone, Default)]
pub struct Switch {
    current: Option<Layer>,
    target: Option<Layer>,
    /// Congested: the current layer's frames are dropped up to its next keyframe.
    dropping: bool,
    /// Added to the publisher's RTP time (in its clock's units).
    offset: i64,
    /// The last time written out, and its wall clock.
    last: Option<(u64, Instant)>,
}

impl Switch {
    pub fn current(&self) -> Option<Layer> {
        self.current
    }

    pub fn target(&self) -> Option<Layer> {
        self.target
    }

    /// The layer it should get (`None`: pause). Returns the layer whose keyframe is needed
    /// (the new one, while it is not the current one).
    pub fn set_target(&mut self, target: Option<Layer>) -> Option<Layer> {
        self.target = target;
        if target.is_none() {
            self.current = None;
            self.dropping = false;
        }
        self.needs_keyframe()
    }

    /// The layer whose keyframe it waits for, if any.
    pub fn needs_keyframe(&self) -> Option<Layer> {
        if self.target != self.current {
            self.target
        } else if self.dropping {
            self.current
        } else {
            None
        }
    }

    /// The subscriber is congested: drop up to the next keyframe. Returns the layer whose
    /// keyframe is needed.
    pub fn drop_to_keyframe(&mut self) -> Option<Layer> {
        if self.current.is_some() {
            self.dropping = true;
        }
        self.needs_keyframe()
    }

    /// Whether a frame of `layer` goes to this m-line.
    pub fn admit(&mut self, layer: Layer, keyframe: bool) -> Verdict {
        if self.target == Some(layer) && self.current != self.target && keyframe {
            self.current = self.target;
            self.dropping = false;
            return Verdict::Switched;
        }
        if self.current != Some(layer) {
            return Verdict::Drop;
        }
        if self.dropping {
            if !keyframe {
                return Verdict::Drop;
            }
            self.dropping = false;
        }
        Verdict::Forward
    }

    /// The RTP time (in `rate` Hz) to write a forwarded frame with: the publisher's, moved
    /// after a switch so that the new layer's first frame follows the last one written by
    /// the wall-clock time between them.
    pub fn out_time(&mut self, time: u64, rate: u32, wallclock: Instant, switched: bool) -> u64 {
        if switched && let Some((t, w)) = self.last {
            let gap = wallclock.saturating_duration_since(w);
            let ticks = (gap.as_micros() as u64 * u64::from(rate) / 1_000_000).max(1);
            self.offset = t.wrapping_add(ticks).wrapping_sub(time) as i64;
        }
        let out = time.wrapping_add_signed(self.offset);
        self.last = Some((out, wallclock));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyframe(w: u16, h: u16) -> Vec<u8> {
        let mut f = vec![0x50, 0x01, 0x00, 0x9d, 0x01, 0x2a];
        f.extend_from_slice(&w.to_le_bytes());
        f.extend_from_slice(&h.to_le_bytes());
        f
    }

    /// A camera sending three layers of 1280x720 / 640x360 / 320x180.
    fn camera(now: Instant) -> Layers {
        let mut t = Layers::default();
        for (l, (w, h)) in [(0, (320, 180)), (1, (640, 360)), (2, (1280, 720))] {
            t.on_frame(l, true, 1000, Some(&keyframe(w, h)), now);
        }
        t
    }

    #[test]
    fn rids_and_vp8_sizes() {
        assert_eq!(layer_of(Some("h")), Some(2));
        assert_eq!(layer_of(Some("l")), Some(0));
        assert_eq!(layer_of(None), Some(0));
        assert_eq!(layer_of(Some("x")), None);
        assert_eq!(vp8_size(&keyframe(640, 360)), Some((640, 360)));
        let mut delta = keyframe(640, 360);
        delta[0] |= 1;
        assert_eq!(vp8_size(&delta), None);
        assert_eq!(vp8_size(&[0x50, 1, 0]), None);
        // The top two bits of each are the scaling, not the size.
        assert_eq!(
            vp8_size(&keyframe(0xc000 | 320, 0x4000 | 240)),
            Some((320, 240))
        );
    }

    #[test]
    fn the_view_picks_the_smallest_layer_that_covers_it() {
        let now = Instant::now();
        let t = camera(now);
        assert_eq!(t.wanted(None, now), Some(1), "m before any view");
        assert_eq!(t.wanted(Some((0, 0)), now), None, "not shown: paused");
        assert_eq!(t.wanted(Some((160, 90)), now), Some(0));
        assert_eq!(t.wanted(Some((320, 180)), now), Some(0));
        assert_eq!(t.wanted(Some((321, 100)), now), Some(1));
        assert_eq!(t.wanted(Some((600, 400)), now), Some(2), "taller than m");
        assert_eq!(
            t.wanted(Some((3840, 2160)), now),
            Some(2),
            "bigger than all"
        );
        // The top layer stops (the publisher's uplink is short): the biggest left serves.
        let later = now + Duration::from_secs(2);
        let mut t = t;
        t.on_frame(0, true, 1000, None, later);
        t.on_frame(1, true, 1000, None, later);
        assert_eq!(t.wanted(Some((1280, 720)), later), Some(1));
        // Sizes not seen yet are scaled from a seen one, then nominal.
        let mut u = Layers::default();
        u.on_frame(2, true, 1000, Some(&keyframe(960, 540)), now);
        assert_eq!(u.size(0), (240, 135));
        let mut v = Layers::default();
        v.on_frame(1, true, 1000, None, now);
        assert_eq!(v.size(1), (640, 360));
        // A track without simulcast has its one layer, unless not shown.
        let mut screen = Layers::default();
        screen.on_frame(0, false, 1000, Some(&keyframe(1920, 1080)), now);
        assert_eq!(screen.wanted(Some((3000, 2000)), now), Some(0));
        assert_eq!(screen.wanted(None, now), Some(0));
        assert_eq!(screen.wanted(Some((0, 0)), now), None);
    }

    fn want(layers: &Layers, wanted: Option<Layer>, current: Option<Layer>) -> Want<'_> {
        Want {
            wanted,
            layers,
            current,
            rank: Rank::default(),
            paused: false,
        }
    }

    #[test]
    fn a_budget_steps_the_biggest_video_down_first() {
        let now = Instant::now();
        let a = camera(now);
        let b = camera(now);
        let wants = [
            want(&a, Some(2), None),
            want(&b, Some(1), None),
            want(&b, None, None),
        ];
        use Pick::{Layer as L, Off};
        // Nominal rates: h 1.2M, m 400k, l 150k.
        for (budget, picks) in [
            (2_000_000, [L(2), L(1), Off]),
            (1_000_000, [L(1), L(1), Off]),
            (500_000, [L(0), L(0), Off]),
            (300_000, [L(0), L(0), Off]),
        ] {
            assert_eq!(allocate(&wants, budget, now), picks, "budget {budget}");
        }
    }

    #[test]
    fn a_layer_above_the_current_one_needs_headroom() {
        let now = Instant::now();
        let a = camera(now);
        let pick = |current, budget| allocate(&[want(&a, Some(1), current)], budget, now)[0];
        // `m` (400k nominal) in a budget of 450k: kept while on it, not climbed to from `l`
        // (400k x 1.25 = 500k); climbed to with 500k.
        assert_eq!(pick(Some(1), 450_000), Pick::Layer(1));
        assert_eq!(pick(Some(0), 450_000), Pick::Layer(0));
        assert_eq!(pick(Some(0), 500_000), Pick::Layer(1));
        assert_eq!(pick(Some(2), 450_000), Pick::Layer(1));
    }

    /// Four cameras (nominal `l` 150k each) at a subscriber that wants `l` of each, ranked
    /// as given: which are paused at each budget.
    #[test]
    fn over_budget_whole_videos_pause_lowest_rank_first() {
        let now = Instant::now();
        let cam = camera(now);
        let at = |s: u64| Some(now + Duration::from_secs(s));
        let ranks = [
            // 0: a small tile that never spoke.
            Rank {
                area: 160 * 90,
                ..Rank::default()
            },
            // 1: the pinned, big tile.
            Rank {
                largest: true,
                area: 1280 * 720,
                ..Rank::default()
            },
            // 2: spoke at 5 s; 3: spoke at 9 s (the later speaker is kept longer).
            Rank {
                spoke: at(5),
                area: 160 * 90,
                ..Rank::default()
            },
            Rank {
                spoke: at(9),
                area: 160 * 90,
                ..Rank::default()
            },
        ];
        let screen = Rank {
            screen: true,
            ..Rank::default()
        };
        assert!(
            screen > ranks[3] && ranks[1] > screen,
            "pinned, screens, speakers"
        );
        let wants: Vec<Want<'_>> = ranks
            .iter()
            .map(|r| Want {
                rank: *r,
                ..want(&cam, Some(0), None)
            })
            .collect();
        let paused = |budget| -> Vec<usize> {
            let picks = allocate(&wants, budget, now);
            (0..picks.len())
                .filter(|i| picks[*i] == Pick::Paused)
                .collect()
        };
        for (budget, expect) in [
            (600_000, vec![]),
            (599_999, vec![0]),
            (450_000, vec![0]),
            (449_999, vec![0, 2]),
            (300_000, vec![0, 2]),
            (150_000, vec![0, 2, 3]),
            // The pinned one is sent even over the budget.
            (149_999, vec![0, 2, 3]),
            (0, vec![0, 2, 3]),
        ] {
            assert_eq!(paused(budget), expect, "budget {budget}");
        }
        // The videos kept get their layer; not shown is off, not paused.
        let picks = allocate(&wants, 300_000, now);
        assert_eq!(picks[1], Pick::Layer(0));
        assert_eq!(picks[1].layer(), Some(0));
        assert_eq!(Pick::Paused.layer(), None);
        let off = [want(&cam, None, None), want(&cam, Some(0), None)];
        assert_eq!(allocate(&off, 0, now), vec![Pick::Off, Pick::Layer(0)]);
    }

    #[test]
    fn a_video_that_does_not_fit_leaves_room_for_a_smaller_one() {
        let now = Instant::now();
        // The pinned camera (l 150k, always kept), a screen share (one layer, 1.2M nominal)
        // ranked above another camera.
        let mut screen = Layers::default();
        screen.on_frame(0, false, 1000, Some(&keyframe(1920, 1080)), now);
        let cam = camera(now);
        let pinned = Rank {
            largest: true,
            ..Rank::default()
        };
        let wants = [
            Want {
                rank: pinned,
                ..want(&cam, Some(0), None)
            },
            Want {
                rank: Rank {
                    screen: true,
                    ..Rank::default()
                },
                ..want(&screen, Some(0), None)
            },
            want(&cam, Some(2), None),
        ];
        use Pick::{Layer as L, Paused};
        assert_eq!(
            allocate(&wants, 1_150_000, now),
            vec![L(0), Paused, L(1)],
            "the camera takes what the screen cannot use, stepped down to fit"
        );
        assert_eq!(allocate(&wants, 1_550_000, now), vec![L(0), L(0), L(0)]);
        // Pausing by a larger budget than the layers': nothing paused, layers stepped down.
        assert_eq!(
            allocate_with(&wants, 1_150_000, 2_000_000, now),
            vec![L(0), L(0), L(0)]
        );
    }

    #[test]
    fn a_paused_video_resumes_only_with_headroom() {
        let now = Instant::now();
        let cam = camera(now);
        // One kept camera (150k) and one paused: it needs 150k x 1.25 = 187.5k more.
        let wants = |paused| {
            [
                Want {
                    rank: Rank {
                        area: 1,
                        ..Rank::default()
                    },
                    ..want(&cam, Some(0), Some(0))
                },
                Want {
                    paused,
                    ..want(&cam, Some(0), None)
                },
            ]
        };
        for (budget, paused_now, expect) in [
            // While forwarded it is kept down to exactly its rate...
            (300_000, false, Pick::Layer(0)),
            (299_999, false, Pick::Paused),
            // ...while paused it comes back only with the headroom.
            (300_000, true, Pick::Paused),
            (337_499, true, Pick::Paused),
            (337_500, true, Pick::Layer(0)),
        ] {
            let picks = allocate(&wants(paused_now), budget, now);
            assert_eq!(picks[1], expect, "budget {budget}, paused {paused_now}");
        }
    }

    #[test]
    fn measured_rates_replace_nominal_ones() {
        let t0 = Instant::now();
        let mut t = Layers::default();
        // 50 frames of 1,000 bytes over 1 s on `l`, each one packet with 60 bytes of
        // headers: 424 kbit/s.
        for i in 0..=50 {
            t.on_frame(0, true, 1000, None, t0 + Duration::from_millis(i * 20));
        }
        assert_eq!(t.bps(0), 424_000);
        assert_eq!(wire_bytes(2300), 2300 + 2 * 60);
        assert_eq!(wire_bytes(2301), 2301 + 3 * 60);
        assert_eq!(t.bps(2), 1_200_000);
    }

    #[test]
    fn a_switch_waits_for_a_keyframe_of_the_new_layer() {
        let mut s = Switch::default();
        assert_eq!(s.set_target(Some(1)), Some(1));
        assert_eq!(s.admit(1, false), Verdict::Drop, "no keyframe yet");
        assert_eq!(s.admit(0, true), Verdict::Drop, "another layer");
        assert_eq!(s.admit(1, true), Verdict::Switched);
        assert_eq!(s.admit(1, false), Verdict::Forward);
        assert_eq!(s.needs_keyframe(), None);
        // Down to `l`: `m` goes on until `l`'s keyframe.
        assert_eq!(s.set_target(Some(0)), Some(0));
        assert_eq!(s.admit(1, false), Verdict::Forward);
        assert_eq!(s.admit(0, false), Verdict::Drop);
        assert_eq!(s.admit(0, true), Verdict::Switched);
        assert_eq!(s.admit(1, true), Verdict::Drop, "m is over");
        assert_eq!(s.current(), Some(0));
        // Congested: nothing until the next keyframe of `l`.
        assert_eq!(s.drop_to_keyframe(), Some(0));
        assert_eq!(s.admit(0, false), Verdict::Drop);
        assert_eq!(s.admit(0, true), Verdict::Forward);
        assert_eq!(s.admit(0, false), Verdict::Forward);
        // Not shown: nothing, at once; shown again: from a keyframe.
        assert_eq!(s.set_target(None), None);
        assert_eq!(s.admit(0, true), Verdict::Drop);
        assert_eq!(s.set_target(Some(0)), Some(0));
        assert_eq!(s.admit(0, true), Verdict::Switched);
        assert_eq!(s.target(), Some(0));
    }

    #[test]
    fn timestamps_go_on_across_a_switch() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut s = Switch::default();
        assert_eq!(s.out_time(1000, 90_000, ms(0), true), 1000, "first: as is");
        assert_eq!(s.out_time(4000, 90_000, ms(33), false), 4000);
        // The new layer's clock is elsewhere: its first frame comes 33 ms (2,970 ticks) on.
        assert_eq!(s.out_time(900_000, 90_000, ms(66), true), 6970);
        assert_eq!(s.out_time(903_000, 90_000, ms(99), false), 9970);
        // Around the 64-bit end (and back) without a panic.
        assert_eq!(s.out_time(5, 90_000, ms(132), true), 9970 + 2970);
        assert_eq!(s.out_time(3005, 90_000, ms(165), false), 9970 + 2970 + 3000);
    }
}
