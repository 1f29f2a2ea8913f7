//! Why an attempt failed, as one sentence an admin can act on: the CA's RFC 8555 problem
//! documents (port closed, DNS not pointing here, a TLS-terminating proxy, CAA, rate limits)
//! and the failures around them (directory unreachable, timeouts, an unusable certificate).

use crate::config::Challenge;

/// An attempt that did not end with a certificate installed.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// No answer from the directory (DNS, TCP, TLS, HTTP), or one that is not ACME.
    #[error("{0}")]
    Unreachable(String),
    /// The CA answered with a problem document outside validation (account, order, finalize).
    #[error("{0}")]
    Refused(instant_acme::Problem),
    /// The CA tried the challenge and it failed; `problem` is its reason when it said one.
    #[error("{challenge:?} validation failed")]
    Validation {
        challenge: Challenge,
        problem: Option<instant_acme::Problem>,
    },
    /// The CA offers none of the challenges the config allows.
    #[error("none of the allowed challenges is offered")]
    NoChallenge { offered: Vec<String> },
    #[error("timed out: {0}")]
    Timeout(&'static str),
    #[error("{0}")]
    Local(String),
}

impl From<instant_acme::Error> for Failure {
    fn from(e: instant_acme::Error) -> Failure {
        match e {
            instant_acme::Error::Api(p) => Failure::Refused(p),
            instant_acme::Error::Timeout(_) => Failure::Timeout("the CA's answer"),
            other => Failure::Unreachable(other.to_string()),
        }
    }
}

impl Failure {
    /// The problem type without its `urn:ietf:params:acme:error:` prefix.
    pub fn kind(&self) -> Option<&str> {
        let p = match self {
            Failure::Refused(p) => p,
            Failure::Validation {
                problem: Some(p), ..
            } => p,
            _ => return None,
        };
        let t = p.r#type.as_deref()?;
        Some(t.strip_prefix("urn:ietf:params:acme:error:").unwrap_or(t))
    }

    /// One sentence for the admin: what went wrong and what to change.
    pub fn advice(&self, host: &str, directory: &str) -> String {
        let detail = |p: &Option<instant_acme::Problem>| {
            p.as_ref()
                .and_then(|p| p.detail.clone())
                .unwrap_or_else(|| "no detail given".into())
        };
        match self {
            Failure::Unreachable(e) => format!(
                "cannot reach the ACME directory {directory}: {e}. Check this server's outbound \
                 HTTPS and DNS, the acme.directory URL, and for a private CA acme.ca_file"
            ),
            Failure::Timeout(what) => {
                format!("timed out waiting for {what} from {directory}; retrying later")
            }
            Failure::Local(e) => e.clone(),
            Failure::NoChallenge { offered } => format!(
                "the CA offers only {} for {host}, and acme.challenge allows none of them",
                offered.join(", ")
            ),
            Failure::Refused(p) => {
                let d = detail(&Some(p.clone()));
                match self.kind() {
                    Some("rateLimited") => format!(
                        "the CA's rate limit was hit: {d}. peerbox retries later on its own; \
                         restarting does not help"
                    ),
                    Some("rejectedIdentifier") => {
                        format!("the CA refuses to issue for {host}: {d}")
                    }
                    Some("caa") => caa(host, &d),
                    Some("invalidContact" | "unsupportedContact") => {
                        format!("the CA refuses the address in acme.contact: {d}")
                    }
                    _ => format!(
                        "the CA refused: {d} ({})",
                        p.r#type.as_deref().unwrap_or("?")
                    ),
                }
            }
            Failure::Validation { challenge, problem } => {
                let d = detail(problem);
                let port = challenge.port();
                let name = challenge.name();
                match self.kind() {
                    Some("connection") => format!(
                        "the CA could not connect to {host} on port {port} for {name}: {d}. Open \
                         port {port}/tcp in the firewall and forward it to peerbox"
                    ),
                    Some("dns") => format!(
                        "the CA could not look up {host}: {d}. Create an A record (and AAAA if \
                         this server has IPv6) for {host} pointing to this server"
                    ),
                    Some("unauthorized" | "incorrectResponse") => {
                        let mut s = format!(
                            "the CA reached {host} on port {port}, but not peerbox's {name} \
                             answer: {d}. Check that the A/AAAA records of {host} point to this \
                             server and that nothing else (another web server, a proxy, a load \
                             balancer) answers port {port}"
                        );
                        if *challenge == Challenge::TlsAlpn01 {
                            s.push_str(&tls_proxy());
                        }
                        s
                    }
                    Some("tls") => {
                        format!(
                            "TLS with {host}:{port} failed during validation: {d}{}",
                            tls_proxy()
                        )
                    }
                    Some("caa") => caa(host, &d),
                    Some("rateLimited") => format!(
                        "the CA's rate limit was hit: {d}. peerbox retries later on its own"
                    ),
                    _ => format!("{name} validation of {host} failed: {d}"),
                }
            }
        }
    }
}

fn tls_proxy() -> String {
    ". A proxy that terminates TLS in front of peerbox breaks tls-alpn-01: pass port 443 \
     through untouched, or set acme.challenge = \"http-01\""
        .into()
}

fn caa(host: &str, d: &str) -> String {
    format!(
        "a CAA record in the DNS of {host} (or a parent domain) forbids this CA: {d}. Add the \
         CA to the CAA record or remove the record"
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn problem(kind: &str, detail: &str) -> instant_acme::Problem {
        serde_json::from_value(serde_json::json!({
            "type": format!("urn:ietf:params:acme:error:{kind}"),
            "detail": detail,
            "status": 400,
        }))
        .unwrap()
    }

    fn validation(c: Challenge, kind: &str) -> Failure {
        Failure::Validation {
            challenge: c,
            problem: Some(problem(kind, "DETAIL")),
        }
    }

    #[test]
    fn each_failure_an_admin_can_fix_says_what_to_do() {
        use Challenge::{Http01, TlsAlpn01};
        let cases: Vec<(Failure, &[&str])> = vec![
            (
                validation(Http01, "connection"),
                &["port 80", "firewall", "DETAIL"],
            ),
            (
                validation(TlsAlpn01, "connection"),
                &["port 443", "firewall"],
            ),
            (
                validation(Http01, "dns"),
                &["look up a.example", "A record"],
            ),
            (
                validation(Http01, "unauthorized"),
                &["A/AAAA records of a.example", "port 80"],
            ),
            (
                validation(TlsAlpn01, "incorrectResponse"),
                &["port 443", "proxy that terminates TLS", "http-01"],
            ),
            (validation(TlsAlpn01, "tls"), &["terminates TLS"]),
            (validation(Http01, "caa"), &["CAA record"]),
            (
                Failure::Refused(problem("rateLimited", "DETAIL")),
                &["rate limit", "retries later"],
            ),
            (
                Failure::Refused(problem("invalidContact", "DETAIL")),
                &["acme.contact"],
            ),
            (
                Failure::Refused(problem("serverInternal", "DETAIL")),
                &["refused: DETAIL", "serverInternal"],
            ),
            (
                Failure::Unreachable("connection refused".into()),
                &[
                    "https://ca.test/dir",
                    "connection refused",
                    "outbound HTTPS",
                ],
            ),
            (
                Failure::Validation {
                    challenge: Http01,
                    problem: None,
                },
                &["http-01 validation of a.example failed: no detail given"],
            ),
            (
                Failure::NoChallenge {
                    offered: vec!["dns-01".into()],
                },
                &["only dns-01", "acme.challenge"],
            ),
        ];
        for (failure, want) in cases {
            let text = failure.advice("a.example", "https://ca.test/dir");
            for w in want {
                assert!(text.contains(w), "{failure:?}: {text:?} lacks {w:?}");
            }
        }
    }

    #[test]
    fn library_errors_sort_into_refused_and_unreachable() {
        let api: Failure = instant_acme::Error::Api(problem("badNonce", "x")).into();
        assert_eq!(api.kind(), Some("badNonce"));
        let other: Failure = instant_acme::Error::Str("no nonce").into();
        assert!(matches!(other, Failure::Unreachable(_)), "{other:?}");
        assert_eq!(other.kind(), None);
    }
}
