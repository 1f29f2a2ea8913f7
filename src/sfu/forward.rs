//! The forwarding table as plain data: which published track goes to which subscriber's
//! m-line, both ways, and the keyframe-request throttle. No sockets, no `Rtc`: the SFU task
//! asks this, then acts.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// At most one keyframe request per published track this often; requests in between are
/// held and sent when the interval ends (a new subscriber's first frames must not be lost).
pub const KEYFRAME_EVERY: Duration = Duration::from_millis(500);

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

/// One keyframe request per track per [`KEYFRAME_EVERY`]; the rest held until then.
#[derive(Debug)]
pub struct Throttle<T> {
    last: HashMap<T, Instant>,
    held: HashMap<T, Instant>,
    every: Duration,
}

impl<T> Default for Throttle<T> {
    fn default() -> Self {
        Throttle {
            last: HashMap::new(),
            held: HashMap::new(),
            every: KEYFRAME_EVERY,
        }
    }
}

impl<T: Copy + Eq + Hash> Throttle<T> {
    /// Whether to send a request for `track` now; if not, one is held for later.
    pub fn request(&mut self, track: T, now: Instant) -> bool {
        match self.last.get(&track) {
            Some(&t) if now.saturating_duration_since(t) < self.every => {
                self.held.insert(track, t + self.every);
                false
            }
            _ => {
                self.last.insert(track, now);
                self.held.remove(&track);
                true
            }
        }
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
            self.last.insert(*t, now);
        }
        due
    }

    /// When the next held request is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.held.values().min().copied()
    }

    pub fn forget(&mut self, track: T) {
        self.last.remove(&track);
        self.held.remove(&track);
    }

    /// Drops every entry `keep` says no to.
    pub fn retain(&mut self, keep: impl Fn(&T) -> bool) {
        self.last.retain(|t, _| keep(t));
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
    fn keyframe_requests_are_throttled_and_held() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut th: Throttle<u8> = Throttle::default();
        assert!(th.request(1, ms(0)));
        assert!(th.request(2, ms(10)), "per track");
        assert!(!th.request(1, ms(100)));
        assert!(!th.request(1, ms(200)), "still one held");
        assert_eq!(th.next_due(), Some(ms(500)));
        assert!(th.due(ms(499)).is_empty());
        assert_eq!(th.due(ms(500)), vec![1]);
        assert!(th.due(ms(600)).is_empty(), "sent once");
        // The held one counted as sent at 500.
        assert!(!th.request(1, ms(900)));
        assert!(th.request(1, ms(1000)));
        assert_eq!(th.next_due(), None, "a request in time clears the held one");
        th.forget(2);
        assert!(th.request(2, ms(1001)));
        th.retain(|t| *t != 1);
        assert!(th.request(1, ms(1002)));
    }
}
