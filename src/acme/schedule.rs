//! When to renew and when to retry, as plain arithmetic on Unix seconds (tested below; the
//! task in `mod.rs` only sleeps until what these return). Every random choice comes in as a
//! number in [0, 1) so the tests can pin it.

use crate::tls::Validity;

/// The first retry after a failure, at most: Let's Encrypt allows 5 failed validations per
/// name and account an hour, and 5, 10, 20, 40 minutes spreads five tries over 75.
const FIRST_RETRY_MAX: i64 = 300;
/// ... and at least (a certificate that lives a minute, as in tests, retries within seconds).
const FIRST_RETRY_MIN: i64 = 1;
/// Retries never wait longer than a day.
const RETRY_MAX: i64 = 86_400;
/// Without a certificate's lifetime to scale by (none from a CA yet), failures back off as for
/// Let's Encrypt's 90 days.
const DEFAULT_LIFETIME: i64 = 90 * 86_400;

/// When to renew a certificate valid over `v`: a third of its lifetime before the end (as
/// certbot, Caddy and rustls-acme do; 30 days of Let's Encrypt's 90), moved earlier by up to
/// a tenth of that third by `jitter` so that many servers do not renew at the same second.
pub fn renew_at(v: Validity, jitter: f64) -> i64 {
    let lifetime = (v.not_after - v.not_before).max(0);
    let third = lifetime / 3;
    v.not_after - third - (third as f64 / 10.0 * jitter.clamp(0.0, 1.0)) as i64
}

/// How long to wait after the `failures`-th failure in a row (1 for the first): a first wait
/// of a thousandth of the lifetime within [1 s, 5 min], doubled each time, at most a tenth of
/// the lifetime (and a day), stretched by up to a quarter by `jitter`.
pub fn backoff(failures: u32, lifetime: Option<i64>, jitter: f64) -> i64 {
    let lifetime = lifetime.filter(|l| *l > 0).unwrap_or(DEFAULT_LIFETIME);
    let first = (lifetime / 1000).clamp(FIRST_RETRY_MIN, FIRST_RETRY_MAX);
    let cap = (lifetime / 10).clamp(first, RETRY_MAX);
    let exp = failures.saturating_sub(1).min(30);
    let delay = first.saturating_mul(1i64 << exp).min(cap);
    delay + (delay as f64 * 0.25 * jitter.clamp(0.0, 1.0)) as i64
}

/// A point in the CA's suggested renewal window (RFC 9773 §4.2: uniformly random inside it;
/// now when it has begun).
pub fn in_window(start: i64, end: i64, now: i64, pick: f64) -> i64 {
    if start <= now {
        return now;
    }
    let span = (end - start).max(0);
    start + (span as f64 * pick.clamp(0.0, 1.0)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    #[test]
    fn renewal_at_a_third_of_the_lifetime_left_minus_jitter() {
        let v = |days: i64| Validity {
            not_before: 1_000 * DAY,
            not_after: 1_000 * DAY + days * DAY,
        };
        let cases = [
            // (lifetime, jitter, renew at, in days after not_before)
            (v(90), 0.0, 60 * DAY),
            (v(90), 1.0, 57 * DAY),
            (v(90), 0.5, 58 * DAY + DAY / 2),
            (v(6), 0.0, 4 * DAY),
            // out-of-range jitter is clamped, not trusted
            (v(90), 7.0, 57 * DAY),
            (v(90), -1.0, 60 * DAY),
        ];
        for (validity, jitter, after) in cases {
            assert_eq!(
                renew_at(validity, jitter) - validity.not_before,
                after,
                "{validity:?} jitter {jitter}"
            );
        }
        // A 60-second test certificate renews at 40 s, or up to 2 s before.
        let short = Validity {
            not_before: 100,
            not_after: 160,
        };
        assert_eq!(renew_at(short, 0.0), 140);
        assert_eq!(renew_at(short, 1.0), 138);
        // A certificate whose dates are upside down is renewed at once.
        let bad = Validity {
            not_before: 200,
            not_after: 100,
        };
        assert_eq!(renew_at(bad, 0.5), 100);
    }

    #[test]
    fn backoff_doubles_from_a_first_wait_scaled_by_the_lifetime() {
        let cases: &[(u32, Option<i64>, i64)] = &[
            // Let's Encrypt's 90 days: 5 min, 10, 20, 40 ... at most a day.
            (1, Some(90 * DAY), 300),
            (2, Some(90 * DAY), 600),
            (3, Some(90 * DAY), 1_200),
            (4, Some(90 * DAY), 2_400),
            (9, Some(90 * DAY), 76_800),
            (10, Some(90 * DAY), DAY),
            (1_000, Some(90 * DAY), DAY),
            // No certificate yet: as for 90 days.
            (1, None, 300),
            (0, None, 300),
            // A 6-day certificate: 5 min first, at most 14.4 h (a tenth).
            (1, Some(6 * DAY), 300),
            (20, Some(6 * DAY), 6 * DAY / 10),
            // A 60 s test certificate: 1 s, 2 s, then 6 s (a tenth) at most.
            (1, Some(60), 1),
            (2, Some(60), 2),
            (3, Some(60), 4),
            (4, Some(60), 6),
            (30, Some(60), 6),
            (u32::MAX, Some(60), 6),
            // Nonsense lifetimes fall back to the default.
            (1, Some(0), 300),
            (1, Some(-5), 300),
        ];
        for &(failures, lifetime, want) in cases {
            assert_eq!(
                backoff(failures, lifetime, 0.0),
                want,
                "{failures} failures, lifetime {lifetime:?}"
            );
        }
        assert_eq!(backoff(1, Some(90 * DAY), 1.0), 375);
        assert_eq!(backoff(10, Some(90 * DAY), 1.0), DAY + DAY / 4);
    }

    #[test]
    fn a_point_in_the_suggested_window() {
        assert_eq!(in_window(100, 200, 50, 0.0), 100);
        assert_eq!(in_window(100, 200, 50, 0.5), 150);
        assert_eq!(in_window(100, 200, 50, 1.0), 200);
        // The window has begun: now.
        assert_eq!(in_window(100, 200, 150, 0.9), 150);
        assert_eq!(in_window(100, 200, 300, 0.9), 300);
        // A window that ends before it starts is its start.
        assert_eq!(in_window(100, 50, 0, 0.9), 100);
    }
}
