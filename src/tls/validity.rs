//! A certificate's validity dates and what they mean at a given time: whether a reload may put
//! it in place of the served one, and what an admin must hear before browsers refuse it.

use rustls_pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::time::ASN1Time;

/// How long before expiry peerbox starts warning: Let's Encrypt renews 30 days ahead, so a
/// certificate this close to its end means renewal is failing.
pub const WARN_DAYS: i64 = 14;

const DAY: i64 = 86_400;

/// The leaf's notBefore and notAfter, in Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: i64,
    pub not_after: i64,
}

/// What a certificate's dates mean at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    NotYetValid,
    Expired,
    /// Valid, but less than [`WARN_DAYS`] left (`days_left` rounded down).
    ExpiresSoon {
        days_left: i64,
    },
    Valid,
}

impl Validity {
    pub fn of(leaf: &CertificateDer<'_>) -> Result<Validity, String> {
        let (_, cert) = X509Certificate::from_der(leaf.as_ref()).map_err(|e| e.to_string())?;
        let v = cert.validity();
        Ok(Validity {
            not_before: v.not_before.timestamp(),
            not_after: v.not_after.timestamp(),
        })
    }

    pub fn state(&self, now: i64) -> State {
        if now < self.not_before {
            State::NotYetValid
        } else if now > self.not_after {
            State::Expired
        } else if self.not_after - now < WARN_DAYS * DAY {
            State::ExpiresSoon {
                days_left: (self.not_after - now) / DAY,
            }
        } else {
            State::Valid
        }
    }

    /// Why browsers refuse this certificate at `now`, if they do.
    pub fn refusal(&self, now: i64) -> Option<String> {
        match self.state(now) {
            State::NotYetValid => Some(format!("not valid before {}", date(self.not_before))),
            State::Expired => Some(format!("expired on {}", date(self.not_after))),
            State::ExpiresSoon { .. } | State::Valid => None,
        }
    }

    /// One sentence for an admin when the dates need attention at `now`.
    pub fn problem(&self, now: i64) -> Option<String> {
        match self.state(now) {
            State::ExpiresSoon { days_left } => Some(format!(
                "expires in {days_left} days, on {}: renewal is failing or not set up",
                date(self.not_after)
            )),
            State::Valid => None,
            _ => self
                .refusal(now)
                .map(|why| format!("is {why}: browsers refuse it")),
        }
    }
}

/// A date as openssl prints one (`Jun  1 12:00:00 2025 +00:00`).
pub fn date(unix: i64) -> String {
    ASN1Time::from_timestamp(unix).map_or_else(|_| format!("{unix} (Unix time)"), |t| t.to_string())
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_at_each_edge() {
        let v = Validity {
            not_before: 1_000 * DAY,
            not_after: 1_100 * DAY,
        };
        let cases = [
            (1_000 * DAY - 1, State::NotYetValid),
            (1_000 * DAY, State::Valid),
            (1_086 * DAY, State::Valid),
            (1_086 * DAY + 1, State::ExpiresSoon { days_left: 13 }),
            (1_099 * DAY + 1, State::ExpiresSoon { days_left: 0 }),
            (1_100 * DAY, State::ExpiresSoon { days_left: 0 }),
            (1_100 * DAY + 1, State::Expired),
        ];
        for (now, want) in cases {
            assert_eq!(v.state(now), want, "at {now}");
        }
    }

    #[test]
    fn sentences_name_the_date() {
        let v = Validity {
            not_before: 1_735_689_600, // 2025-01-01
            not_after: 1_767_225_600,  // 2026-01-01
        };
        assert_eq!(
            v.refusal(1_735_689_599).as_deref(),
            Some("not valid before Jan  1 00:00:00 2025 +00:00")
        );
        let expired = v.problem(1_767_225_601).unwrap();
        assert!(
            expired.contains("expired on Jan  1 00:00:00 2026")
                && expired.contains("browsers refuse"),
            "{expired}"
        );
        let soon = v.problem(1_767_225_600 - 3 * DAY - 5).unwrap();
        assert!(soon.starts_with("expires in 3 days"), "{soon}");
        assert_eq!(v.problem(1_750_000_000), None);
        assert_eq!(v.refusal(1_767_225_600 - 3 * DAY), None);
    }
}
