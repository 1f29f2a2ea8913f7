//! The forwarding table as plain data: which published track goes to which subscriber's
//! m-line, both ways, and the keyframe-request throttle. No sockets, no `Rtc`: the SFU task
//! asks this, then acts.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Keyframe requests for one published track (layer) at most this often: browsers ignore
/// requests closer together (libwebrtc's encoder feedback keeps 300 ms between key frames),
/// so one sent sooner would be lost; those in between are held and sent when it ends.
pub const KEYFRAME_GAP: Duration = Duration::from_millis(300);
/// A request whose key frame has not come within this long is taken to be lost and sent
/// again (until then, every request for the track is served by the coming key frame).
pub const KEYFRAME_RETRY: Duration = Duration::from_millis(500);

/// Published tracks (`(publisher, its mid)`) to subscriber m-lines (`(subscriber, mid)`).
#[derive(Debug)]
pub struct Table<P, M> {
    out: HashMap<(P, M), Vec<(P, M)>>,
    src: HashMap<(P, M), (P, M)>,
}

impl<P, M> Default for Table<P, M> {
    fn default() -> Self {
        Table {
            out: HashMap::new(),
            src: HashMap::new(),
        }
    }
}

impl<P: Copy + Eq + Hash, M: Copy + Eq + Hash> Table<P, M> {
    /// A new published track, with nobody subscribed yet.
    pub fn publish(&mut self, track: (P, M)) {
        self.out.entry(track).or_default();
    }

    /// `line` (a subscriber's sending m-line) carries `track` from now on.
    pub fn subscribe(&mut self, track: (P, M), line: (P, M)) -> bool {
        let Some(list) = self.out.get_mut(&track) else {
            return false;
        };
        if track.0 == line.0 || self.src.contains_key(&line) {
            return false;
        }
        list.push(line);
        self.src.insert(line, track);
        true
    }

    /// Where a packet of `track` goes.
    pub fn targets(&self, track: (P, M)) -> &[(P, M)] {
        self.out.get(&track).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Which track a subscriber's m-line carries (for its keyframe requests).
    pub fn source(&self, line: (P, M)) -> Option<(P, M)> {
        self.src.get(&line).copied()
    }

    /// A published track ended: the m-lines that carried it (to be stopped).
    pub fn unpublish(&mut self, track: (P, M)) -> Vec<(P, M)> {
        let lines = self.out.remove(&track).unwrap_or_default();
        for l in &lines {
            self.src.remove(l);
        }
        lines
    }

    /// A participant left: the m-lines of others that carried its tracks (to be stopped).
    pub fn remove(&mut self, p: P) -> Vec<(P, M)> {
        let tracks: Vec<_> = self.out.keys().filter(|t| t.0 == p).copied().collect();
        let mut stopped = Vec::new();
        for t in tracks {
            stopped.extend(self.unpublish(t));
        }
        let lines: Vec<_> = self.src.keys().filter(|l| l.0 == p).copied().collect();
        for l in lines {
            if let Some(t) = self.src.remove(&l)
                && let Some(list) = self.out.get_mut(&t)
            {
                list.retain(|x| *x != l);
            }
        }
        stopped
    }

    /// Published tracks, in no particular order.
    pub fn tracks(&self) -> impl Iterator<Item = (P, M)> + '_ {
        self.out.keys().copied()
    }
}

/// Keyframe requests per track, as good SFUs do them (mediasoup's key frame request
/// manager, LiveKit's PLI throttle): a request goes out at once; while its key frame is
/// awaited, further requests for the track are served by it and send nothing (one request
/// serves every new subscriber). Requests closer than [`KEYFRAME_GAP`] to the last one sent
/// are held and sent when the gap ends. A request whose key frame has not come within
/// [`KEYFRAME_RETRY`] is sent again by the timer ([`Throttle::due`]), whether or not anyone
/// asks again, up to [`KEYFRAME_TRIES`] times: a lost request, or one the browser ignored,
/// never leaves a subscriber waiting for a key frame that nobody asked for.
#[derive(Debug)]
pub struct Throttle<T> {
    tracks: HashMap<T, Pending>,
}

/// One track's request state.
#[derive(Debug, Clone, Copy)]
struct Pending {
    /// When the last request went out.
    sent: Instant,
    /// How many times the awaited request went out; 0 once its key frame came.
    tries: u8,
    /// A request waiting for the gap to end.
    held: Option<Instant>,
}

/// How many times one request is sent before the throttle stops asking (the next request
/// starts again): 3 s of asking for a layer the publisher does not send costs six packets.
pub const KEYFRAME_TRIES: u8 = 6;

impl Pending {
    /// Whether the last request's key frame is still awaited (and so serves new ones).
    fn awaited(&self, now: Instant) -> bool {
        self.tries > 0
            && (self.tries < KEYFRAME_TRIES
                || now.saturating_duration_since(self.sent) < KEYFRAME_RETRY)
    }

    /// When the timer must act: a held request's time, or an awaited one's retry.
    fn due_at(&self) -> Option<Instant> {
        self.held.or_else(|| {
            (self.tries > 0 && self.tries < KEYFRAME_TRIES).then(|| self.sent + KEYFRAME_RETRY)
        })
    }
}

impl<T> Default for Throttle<T> {
    fn default() -> Self {
        Throttle {
            tracks: HashMap::new(),
        }
    }
}

impl<T: Copy + Eq + Hash> Throttle<T> {
    /// Whether to send a request for `track` now; if not, it is served by the one awaited,
    /// or held for later.
    pub fn request(&mut self, track: T, now: Instant) -> bool {
        match self.tracks.get_mut(&track) {
            Some(p) if p.awaited(now) || p.held.is_some() => false,
            Some(p) if now.saturating_duration_since(p.sent) < KEYFRAME_GAP => {
                p.held = Some(p.sent + KEYFRAME_GAP);
                false
            }
            _ => {
                self.tracks.insert(
                    track,
                    Pending {
                        sent: now,
                        tries: 1,
                        held: None,
                    },
                );
                true
            }
        }
    }

    /// A key frame of `track` arrived: it serves every request so far (the awaited one and
    /// the held ones).
    pub fn on_keyframe(&mut self, track: T) {
        if let Some(p) = self.tracks.get_mut(&track) {
            p.tries = 0;
            p.held = None;
        }
    }

    /// Requests to send now: held ones whose gap ended and awaited ones unanswered for
    /// [`KEYFRAME_RETRY`] (each counts as sent now).
    pub fn due(&mut self, now: Instant) -> Vec<T> {
        let mut due = Vec::new();
        for (t, p) in &mut self.tracks {
            if p.due_at().is_some_and(|at| at <= now) {
                p.tries = if p.held.take().is_some() {
                    1
                } else {
                    p.tries + 1
                };
                p.sent = now;
                due.push(*t);
            }
        }
        due
    }

    /// When the next request is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.tracks.values().filter_map(Pending::due_at).min()
    }

    pub fn forget(&mut self, track: T) {
        self.tracks.remove(&track);
    }

    /// Drops every entry `keep` says no to.
    pub fn retain(&mut self, keep: impl Fn(&T) -> bool) {
        self.tracks.retain(|t, _| keep(t));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_subscribe_forward_and_leave() {
        let mut t: Table<u32, u8> = Table::default();
        assert!(t.targets((1, 0)).is_empty());
        assert!(!t.subscribe((1, 0), (2, 5)), "no such track");
        t.publish((1, 0));
        t.publish((1, 1));
        t.publish((2, 0));
        assert!(t.subscribe((1, 0), (2, 5)));
        assert!(t.subscribe((1, 0), (3, 5)));
        assert!(t.subscribe((1, 1), (3, 6)));
        assert!(t.subscribe((2, 0), (3, 7)));
        assert!(!t.subscribe((1, 0), (1, 9)), "nobody receives itself");
        assert!(!t.subscribe((1, 1), (3, 5)), "one track per m-line");
        assert_eq!(t.targets((1, 0)), &[(2, 5), (3, 5)]);
        assert_eq!(t.source((3, 6)), Some((1, 1)));
        // Subscriber 3 leaves: nothing goes to it any more; its own tracks' lines stop.
        t.publish((3, 0));
        assert!(t.subscribe((3, 0), (1, 4)));
        assert_eq!(t.remove(3), vec![(1, 4)]);
        assert_eq!(t.targets((1, 0)), &[(2, 5)]);
        assert!(t.targets((1, 1)).is_empty());
        assert!(t.targets((2, 0)).is_empty());
        assert_eq!(t.source((3, 6)), None);
        assert_eq!(t.source((1, 4)), None);
        // Publisher 1 ends a track: the line that carried it is to be stopped.
        assert_eq!(t.unpublish((1, 0)), vec![(2, 5)]);
        assert_eq!(t.source((2, 5)), None);
        let mut left: Vec<_> = t.tracks().collect();
        left.sort();
        assert_eq!(left, vec![(1, 1), (2, 0)]);
    }

    #[test]
    fn keyframe_requests_go_out_at_once_and_are_shared() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut th: Throttle<u8> = Throttle::default();
        // A new subscriber's request goes out at once; others while it is awaited share it.
        assert!(th.request(1, ms(0)));
        assert!(th.request(2, ms(10)), "per track");
        assert!(!th.request(1, ms(100)), "served by the awaited key frame");
        assert!(!th.request(1, ms(200)));
        th.on_keyframe(2);
        // The key frame came at 250; a subscriber arriving after it needs a new one, which
        // waits for the 300 ms gap after the last request (a browser would ignore it sooner).
        th.on_keyframe(1);
        assert_eq!(th.next_due(), None, "nothing awaited, nothing held");
        assert!(!th.request(1, ms(260)));
        assert!(!th.request(1, ms(270)), "held once");
        assert_eq!(th.next_due(), Some(ms(300)));
        assert!(th.due(ms(299)).is_empty());
        assert_eq!(th.due(ms(300)), vec![1]);
        assert!(th.due(ms(400)).is_empty(), "sent once");
        assert!(!th.request(1, ms(500)), "shared while awaited");
        // A key frame that comes by itself serves a held request.
        th.on_keyframe(1);
        assert!(!th.request(1, ms(550)));
        th.on_keyframe(1);
        assert_eq!(th.next_due(), None);
        assert!(th.request(1, ms(1100)), "after the gap: at once");
        th.forget(2);
        assert!(th.request(2, ms(1101)));
        th.retain(|t| *t != 1);
        assert!(th.request(1, ms(1102)));
    }

    #[test]
    fn an_unanswered_request_is_sent_again_by_the_timer() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut th: Throttle<u8> = Throttle::default();
        // The browser ignores this one (or it is lost); nobody asks again.
        assert!(th.request(1, ms(0)));
        assert_eq!(th.next_due(), Some(ms(500)));
        assert!(th.due(ms(499)).is_empty());
        assert_eq!(th.due(ms(500)), vec![1], "re-sent without a new request");
        assert!(!th.request(1, ms(600)), "still awaited: shared");
        assert_eq!(th.next_due(), Some(ms(1000)));
        // It keeps asking, a bounded number of times, then stops.
        let mut sent = 2;
        let mut now = 1000;
        while let Some(at) = th.next_due() {
            assert_eq!(at, ms(now));
            assert_eq!(th.due(at), vec![1]);
            sent += 1;
            now += 500;
        }
        assert_eq!(sent, KEYFRAME_TRIES as u64);
        assert!(!th.request(1, ms(now - 1)), "the last try is still awaited");
        assert!(
            th.request(1, ms(now)),
            "given up: the next request starts again"
        );
        // Answered: the timer stops.
        th.on_keyframe(1);
        assert_eq!(th.next_due(), None);
    }
}
