//! Active speakers as plain data, from the RTP audio-level header extension (RFC 6464): a
//! level per member, smoothed over its packets, with hysteresis (speaking starts above one
//! level and ends below a lower one, or when its audio stops), the speakers loudest first,
//! and a new list at most every [`EVERY`]. No sockets: the SFU task feeds it levels and sends
//! what it returns.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// At most one new list this often.
pub const EVERY: Duration = Duration::from_millis(300);
/// Speaking starts when the smoothed level rises above this (dBov, 0 is loudest)...
const ON_DBOV: f32 = -45.0;
/// ...and ends when it falls below this one.
const OFF_DBOV: f32 = -55.0;
/// Audio that stopped this long ago (muted, or silence suppression) is not speaking.
const QUIET_AFTER: Duration = Duration::from_millis(600);
/// How much of a new level goes into the smoothed one (per 20 ms packet: ~100 ms).
const SMOOTHING: f32 = 0.2;

#[derive(Debug, Clone, Copy)]
struct Level {
    smoothed: f32,
    last: Instant,
    speaking: bool,
    /// The last packet at which it was speaking.
    spoke: Option<Instant>,
}

/// One room's speakers.
#[derive(Debug)]
pub struct Speakers<P> {
    levels: HashMap<P, Level>,
    /// The last list returned, and when.
    sent: Vec<P>,
    sent_at: Option<Instant>,
}

impl<P> Default for Speakers<P> {
    fn default() -> Self {
        Speakers {
            levels: HashMap::new(),
            sent: Vec::new(),
            sent_at: None,
        }
    }
}

impl<P: Copy + Eq + Hash + Ord> Speakers<P> {
    /// An audio packet of `p` with the level `dbov` (-127 to 0, as str0m gives it).
    pub fn on_level(&mut self, p: P, dbov: i8, now: Instant) {
        let dbov = f32::from(dbov.clamp(-127, 0));
        let l = self.levels.entry(p).or_insert(Level {
            smoothed: -127.0,
            last: now,
            speaking: false,
            spoke: None,
        });
        if now.saturating_duration_since(l.last) >= QUIET_AFTER {
            l.smoothed = -127.0;
        }
        l.smoothed += (dbov - l.smoothed) * SMOOTHING;
        l.last = now;
        l.speaking = if l.speaking {
            l.smoothed >= OFF_DBOV
        } else {
            l.smoothed > ON_DBOV
        };
        if l.speaking {
            l.spoke = Some(now);
        }
    }

    /// When `p` last spoke, if it did since it joined (the SFU keeps the videos of recent
    /// speakers longest when a subscriber's bandwidth is short).
    pub fn spoke_at(&self, p: P) -> Option<Instant> {
        self.levels.get(&p).and_then(|l| l.spoke)
    }

    /// `p` left: it speaks no more.
    pub fn remove(&mut self, p: P) {
        self.levels.remove(&p);
    }

    /// Who speaks at `now`, loudest first.
    fn speaking(&self, now: Instant) -> Vec<P> {
        let mut on: Vec<(f32, P)> = self
            .levels
            .iter()
            .filter(|(_, l)| l.speaking && now.saturating_duration_since(l.last) < QUIET_AFTER)
            .map(|(p, l)| (l.smoothed, *p))
            .collect();
        on.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        on.into_iter().map(|(_, p)| p).collect()
    }

    /// The new list, if it changed and the last one is at least [`EVERY`] old.
    pub fn poll(&mut self, now: Instant) -> Option<Vec<P>> {
        if self
            .sent_at
            .is_some_and(|t| now.saturating_duration_since(t) < EVERY)
        {
            return None;
        }
        let now_speaking = self.speaking(now);
        if now_speaking == self.sent {
            return None;
        }
        self.sent = now_speaking.clone();
        self.sent_at = Some(now);
        Some(now_speaking)
    }

    /// Whether it has nobody to track (the room can forget it).
    pub fn is_empty(&self) -> bool {
        self.levels.is_empty() && self.sent.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` packets 20 ms apart of `p` at `dbov`, from `t`; returns the time after them.
    fn talk(s: &mut Speakers<u8>, p: u8, dbov: i8, t: Instant, n: u64) -> Instant {
        for i in 0..n {
            s.on_level(p, dbov, t + Duration::from_millis(i * 20));
        }
        t + Duration::from_millis(n * 20)
    }

    #[test]
    fn loudest_first_with_hysteresis_at_most_every_300_ms() {
        let t0 = Instant::now();
        let mut s: Speakers<u8> = Speakers::default();
        // Silence (-127) and a quiet background (-60) are nobody speaking.
        talk(&mut s, 1, -127, t0, 10);
        let t = talk(&mut s, 2, -60, t0, 10);
        assert_eq!(s.poll(t), None);
        // 2 speaks at -30: on within a few packets.
        let t = talk(&mut s, 2, -30, t, 10);
        assert_eq!(s.poll(t), Some(vec![2]));
        // 1 speaks louder: within 300 ms of the last list nothing new...
        let t1 = talk(&mut s, 1, -10, t, 10);
        talk(&mut s, 2, -30, t, 10);
        assert_eq!(s.poll(t1), None);
        // ...then 1 first.
        let t2 = t + EVERY;
        assert_eq!(s.poll(t2), Some(vec![1, 2]));
        assert_eq!(s.poll(t2 + EVERY), None, "no change: nothing sent");
        // 2 drops to -50: between the two thresholds, it still speaks.
        let t3 = talk(&mut s, 2, -50, t2 + EVERY, 20);
        talk(&mut s, 1, -10, t2 + EVERY, 20);
        assert_eq!(s.poll(t3), None);
        // Below -55: it stops.
        let t4 = talk(&mut s, 2, -70, t3, 20);
        talk(&mut s, 1, -10, t3, 20);
        assert_eq!(s.poll(t4), Some(vec![1]));
        // 1's audio stops (muted): after 600 ms it is not speaking either.
        talk(&mut s, 2, -70, t4, 40);
        assert_eq!(s.poll(t4 + Duration::from_millis(700)), Some(vec![]));
        // When each last spoke: 1 until its audio stopped, 2 when it fell below -55 dBov.
        assert!(
            s.spoke_at(1) > s.spoke_at(2),
            "{:?}",
            (s.spoke_at(1), s.spoke_at(2))
        );
        assert!(
            s.spoke_at(2)
                .is_some_and(|t| t < t3 + Duration::from_millis(400))
        );
        // A member that leaves is gone from the list.
        let t5 = talk(&mut s, 3, -20, t4 + Duration::from_secs(2), 10);
        assert_eq!(s.poll(t5), Some(vec![3]));
        s.remove(3);
        assert_eq!(s.spoke_at(3), None);
        assert_eq!(s.poll(t5 + EVERY), Some(vec![]));
        s.remove(1);
        s.remove(2);
        assert!(s.is_empty());
    }
}
