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
/// A request whose key frame has not come within this long is taken to be lost: the next
/// one goes out (until then, every request for the track is served by the coming key frame).
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
/// serves every new subscriber); after the key frame, the next request waits for the end of
/// [`KEYFRAME_GAP`] (held, then sent). A request not answered within [`KEYFRAME_RETRY`] is
/// sent again on the next one.
#[derive(Debug)]
pub struct Throttle<T> {
    /// When the last request for each went out, and whether its key frame is awaited.
    sent: HashMap<T, (Instant, bool)>,
    held: HashMap<T, Instant>,
}

impl<T> Default for Throttle<T> {
    fn default() -> Self {
        Throttle {
            sent: HashMap::new(),
            held: HashMap::new(),
        }
    }
}

impl<T: Copy + Eq + Hash> Throttle<T> {
    /// Whether to send a request for `track` now; if not, it is served by the one awaited,
    /// or held for later.
    pub fn request(&mut self, track: T, now: Instant) -> bool {
        match self.sent.get(&track) {
            Some(&(t, true)) if now.saturating_duration_since(t) < KEYFRAME_RETRY => false,
            Some(&(t, _)) if now.saturating_duration_since(t) < KEYFRAME_GAP => {
                self.held.insert(track, t + KEYFRAME_GAP);
                false
            }
            _ => {
                self.sent.insert(track, (now, true));
                self.held.remove(&track);
                true
            }
        }
    }

    /// A key frame of `track` arrived: it serves every request so far (the awaited one and
    /// the held ones).
    pub fn on_keyframe(&mut self, track: T) {
        if let Some(s) = self.sent.get_mut(&track) {
            s.1 = false;
        }
        self.held.remove(&track);
    }

    /// Held requests whose time has come (each counts as sent now).
    pub fn due(&mut self, now: Instant) -> Vec<T> {
        let due: Vec<T> = self
            .held
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(t, _)| *t)
            .collect();
        for t in &due {
            self.held.remove(t);
            self.sent.insert(*t, (now, true));
        }
        due
    }

    /// When the next held request is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.held.values().min().copied()
    }

    pub fn forget(&mut self, track: T) {
        self.sent.remove(&track);
        self.held.remove(&track);
    }

    /// Drops every entry `keep` says no to.
    pub fn retain(&mut self, keep: impl Fn(&T) -> bool) {
        self.sent.retain(|t, _| keep(t));
        self.held.retain(|t, _| keep(t));
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
        assert_eq!(
            th.next_due(),
            None,
            "nothing held: the key frame serves them"
        );
        // The key frame came at 250; a subscriber arriving after it needs a new one, which
        // waits for the 300 ms gap (a browser would ignore it sooner).
        th.on_keyframe(1);
        assert!(!th.request(1, ms(260)));
        assert_eq!(th.next_due(), Some(ms(300)));
        assert!(th.due(ms(299)).is_empty());
        assert_eq!(th.due(ms(300)), vec![1]);
        assert!(th.due(ms(400)).is_empty(), "sent once");
        // That one is not answered: shared until 500 ms after it, then sent again.
        assert!(!th.request(1, ms(799)));
        assert!(th.request(1, ms(800)));
        // A key frame that comes by itself serves a held request.
        th.on_keyframe(1);
        assert!(!th.request(1, ms(900)));
        th.on_keyframe(1);
        assert_eq!(th.next_due(), None);
        assert!(th.request(1, ms(1100)), "after the gap: at once");
        th.forget(2);
        assert!(th.request(2, ms(1101)));
        th.retain(|t| *t != 1);
        assert!(th.request(1, ms(1102)));
    }
}
