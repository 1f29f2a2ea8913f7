//! Certificates from an ACME CA (RFC 8555; Let's Encrypt by default), in process: one task
//! that decides when the served certificate needs renewing ([`schedule`]), orders one
//! ([`order`]) with peerbox answering the challenge itself (TLS-ALPN-01 on the HTTPS port
//! through the `CertStore`, HTTP-01 on port 80 from [`Http01Tokens`]), installs it into the
//! ssl dir, and backs off on failure with a sentence an admin can act on ([`problem`]). The
//! account is saved beside the certificate ([`account`]) and reused. One order is in flight
//! at most (the task does one thing at a time), and the old certificate is served until the
//! new one is in. [`Stats`] counts what happened, for metrics to read.

mod account;
mod order;
mod problem;
mod schedule;

pub use problem::Failure;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use instant_acme::{Account, CertificateIdentifier};
use tokio_util::sync::CancellationToken;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::Config;
use crate::config::Challenge;
use crate::tls::{self, CertStore, Validity};

/// One attempt (registration, order, validation, issuance) may take this long in all.
const ATTEMPT: Duration = Duration::from_secs(300);
/// The plan is looked at again at least this often (the certificate may have been replaced
/// by hand, the CA's renewal window may have moved).
const RECHECK: i64 = 86_400;
/// When the CA's renewal info says to ask again, within these bounds.
const ARI_RECHECK: (i64, i64) = (3_600, RECHECK);

/// What ACME did, in atomics for whoever reports it (metrics, health). Unix seconds; 0: never.
#[derive(Debug, Default)]
pub struct Stats {
    /// Certificates obtained and installed, the first one included.
    pub renewals_ok: AtomicU64,
    /// Attempts that failed (each followed by a backoff).
    pub failures: AtomicU64,
    /// Orders the CA created.
    pub orders: AtomicU64,
    /// Accounts registered at the CA.
    pub accounts_registered: AtomicU64,
    pub last_success_unix: AtomicI64,
    /// When the next attempt is planned (renewal or retry); 0 while ACME is off.
    pub next_renewal_unix: AtomicI64,
}

/// HTTP-01 answers by token, served on port 80 while the CA validates.
#[derive(Debug, Default)]
pub struct Http01Tokens {
    by_token: RwLock<HashMap<String, String>>,
}

impl Http01Tokens {
    pub fn get(&self, token: &str) -> Option<String> {
        self.by_token.read().ok()?.get(token).cloned()
    }

    fn set(&self, token: &str, key_authorization: &str) {
        if let Ok(mut m) = self.by_token.write() {
            m.insert(token.to_owned(), key_authorization.to_owned());
        }
    }

    fn remove(&self, token: &str) {
        if let Ok(mut m) = self.by_token.write() {
            m.remove(token);
        }
    }
}

/// What the ACME task works with, built in `Server::run`.
pub struct Acme {
    pub config: Arc<Config>,
    pub certs: CertStore,
    pub tokens: Arc<Http01Tokens>,
    pub stats: Arc<Stats>,
}

/// The next thing to do: at `at`, renew or only look again.
#[derive(Debug)]
struct Plan {
    at: i64,
    renew: bool,
    /// Why renew (for the log), or the served certificate's end.
    reason: String,
    lifetime: Option<i64>,
    replaces: Option<CertificateIdentifier<'static>>,
}

/// Keeps the served certificate issued and fresh until `shutdown`.
pub async fn run(acme: Acme, shutdown: CancellationToken) {
    let cfg = &acme.config.acme;
    tracing::info!(
        directory = %cfg.directory,
        challenges = ?cfg.challenges.iter().map(|c| c.name()).collect::<Vec<_>>(),
        host = %acme.config.hostname,
        "acme: on"
    );
    let mut account: Option<Account> = None;
    let mut failures: u32 = 0;
    let mut retry: Option<(i64, Option<i64>)> = None;
    loop {
        let now = tls::now();
        let plan = match retry {
            Some((at, lifetime)) => Plan {
                at,
                renew: true,
                reason: "retry".into(),
                lifetime,
                replaces: None,
            },
            None => plan(&acme, &mut account, now).await,
        };
        let next = if plan.renew { plan.at } else { 0 };
        acme.stats.next_renewal_unix.store(next, Relaxed);
        if plan.renew && plan.at > now && retry.is_none() {
            tracing::info!(renew_at = %tls::date(plan.at), "acme: certificate is good; renewal planned");
        }
        let wake = plan.at.min(now + RECHECK);
        if wake > now {
            let wait = Duration::from_secs((wake - now) as u64);
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            if !plan.renew || wake < plan.at {
                continue;
            }
        }
        if retry.is_none() {
            tracing::info!(host = %acme.config.hostname, reason = %plan.reason, "acme: ordering a certificate");
        }
        let result = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = tokio::time::timeout(ATTEMPT, attempt(&acme, &mut account, failures, plan.replaces)) => r,
        };
        let result = result.unwrap_or(Err(Failure::Timeout("the whole attempt")));
        match result {
            Ok(()) => {
                failures = 0;
                retry = None;
                acme.stats.renewals_ok.fetch_add(1, Relaxed);
                acme.stats.last_success_unix.store(tls::now(), Relaxed);
                let v = acme.certs.validity();
                tracing::info!(
                    sha256 = %acme.certs.fingerprint(),
                    not_after = %tls::date(v.not_after),
                    "acme: certificate installed"
                );
            }
            Err(failure) => {
                failures = failures.saturating_add(1);
                acme.stats.failures.fetch_add(1, Relaxed);
                let wait = schedule::backoff(failures, plan.lifetime, unit_random());
                let at = tls::now() + wait;
                retry = Some((at, plan.lifetime));
                tracing::error!(
                    problem = %failure.advice(&acme.config.hostname, &cfg.directory),
                    kind = failure.kind().unwrap_or("-"),
                    failures,
                    retry_in_secs = wait,
                    still_serving = %acme.certs.fingerprint(),
                    "acme: no certificate this time; the one in use stays"
                );
            }
        }
    }
}

/// One try: the account (restored, or registered once), then the order. A CA that no longer
/// knows the saved account (deactivated, or a test CA restarted) gets a new one, once.
async fn attempt(
    acme: &Acme,
    account: &mut Option<Account>,
    failures: u32,
    replaces: Option<CertificateIdentifier<'static>>,
) -> Result<(), Failure> {
    let cfg = &acme.config.acme;
    let dir = &acme.config.tls.dir;
    if account.is_none() {
        *account = account::restore(cfg, dir).await?;
    }
    let mut acct = match account.take() {
        Some(a) => a,
        None => new_account(acme).await?,
    };
    // After a failure, start with the next challenge the config allows.
    let mut challenges = cfg.challenges.clone();
    let n = challenges.len();
    challenges.rotate_left(failures as usize % n.max(1));
    let ask = |acct, replaces| order::Ask {
        account: acct,
        host: &acme.config.hostname,
        challenges: &challenges,
        replaces,
        certs: &acme.certs,
        tokens: &acme.tokens,
    };
    let counted = || {
        acme.stats.orders.fetch_add(1, Relaxed);
    };
    let result = match order::issue(ask(&acct, replaces), counted).await {
        Err(f) if f.kind() == Some("accountDoesNotExist") => {
            tracing::warn!("acme: the CA does not know the saved account; registering a new one");
            let fresh = new_account(acme).await?;
            let r = order::issue(ask(&fresh, None), counted).await;
            acct = fresh;
            r
        }
        other => other,
    };
    *account = Some(acct);
    result
}

async fn new_account(acme: &Acme) -> Result<Account, Failure> {
    let a = account::register(&acme.config.acme, &acme.config.tls.dir).await?;
    acme.stats.accounts_registered.fetch_add(1, Relaxed);
    Ok(a)
}

/// When the served certificate needs renewing: now when it is not one a CA issued for the
/// hostname (the self-signed fallback, another name) or came from another CA's account;
/// else in the CA's renewal window (ARI, RFC 9773) when it offers one, else at a third of
/// the lifetime left.
async fn plan(acme: &Acme, account: &mut Option<Account>, now: i64) -> Plan {
    let renew_now = |reason: &str| Plan {
        at: now,
        renew: true,
        reason: reason.into(),
        lifetime: None,
        replaces: None,
    };
    let Some(leaf) = acme.certs.leaf() else {
        return renew_now("no certificate");
    };
    let host = &acme.config.hostname;
    let validity = match issued_for(&leaf, host) {
        Ok(v) => v,
        Err(why) => return renew_now(&why),
    };
    let cfg = &acme.config.acme;
    let dir = &acme.config.tls.dir;
    if account::path(dir).exists() && !account::saved_for(dir, &cfg.directory) {
        return renew_now("the saved account is for another acme.directory");
    }
    let lifetime = Some(validity.not_after - validity.not_before);
    let mut plan = Plan {
        at: schedule::renew_at(validity, unit_random()),
        renew: true,
        reason: format!("valid until {}", tls::date(validity.not_after)),
        lifetime,
        replaces: None,
    };
    if account.is_none() && account::saved_for(dir, &cfg.directory) {
        match account::restore(cfg, dir).await {
            Ok(a) => *account = a,
            Err(e) => tracing::debug!(error = %e, "acme: account not restored yet"),
        }
    }
    let (Some(acct), Ok(id)) = (account.as_ref(), CertificateIdentifier::try_from(&leaf)) else {
        return plan;
    };
    match acct.renewal_info(&id).await {
        Ok((info, again)) => {
            let w = info.suggested_window;
            let at = schedule::in_window(
                w.start.unix_timestamp(),
                w.end.unix_timestamp(),
                now,
                unit_random(),
            );
            let again = (again.as_secs() as i64).clamp(ARI_RECHECK.0, ARI_RECHECK.1);
            plan.replaces = Some(id.into_owned());
            if at > now + again {
                // Not in the window yet: look again when the CA says to.
                plan.at = now + again;
                plan.renew = false;
            } else {
                plan.at = at;
            }
        }
        Err(instant_acme::Error::Unsupported(_)) => {}
        Err(e) => tracing::debug!(error = %e, "acme: no renewal info; renewing at 1/3 left"),
    }
    plan
}

/// The leaf's dates when a CA issued it for `host`; else why it must be replaced.
fn issued_for(leaf: &rustls_pki_types::CertificateDer<'_>, host: &str) -> Result<Validity, String> {
    let (_, cert) = X509Certificate::from_der(leaf.as_ref())
        .map_err(|e| format!("the served certificate does not parse: {e}"))?;
    if cert.subject().as_raw() == cert.issuer().as_raw() {
        return Err("the served certificate is self-signed".into());
    }
    let names: Vec<String> = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let host = host.to_ascii_lowercase();
    let covered = names.iter().any(|n| {
        *n == host
            || n.strip_prefix("*.")
                .is_some_and(|base| host.split_once('.').is_some_and(|(_, rest)| rest == base))
    });
    if !covered {
        return Err(format!("the served certificate does not name {host}"));
    }
    Validity::of(leaf)
}

/// A uniform number in [0, 1), for jitter.
fn unit_random() -> f64 {
    let mut b = [0u8; 8];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

/// What start and `check-config` refuse: an `acme.ca_file` that is not a PEM certificate
/// (the task would only fail at every attempt).
pub fn check(config: &Config) -> Result<(), String> {
    let Some(ca) = config.acme.ca_file.as_ref().filter(|_| config.acme.enabled) else {
        return Ok(());
    };
    use rustls_pki_types::pem::PemObject;
    match rustls_pki_types::CertificateDer::pem_file_iter(ca).map(|mut c| c.next()) {
        Ok(Some(Ok(_))) => Ok(()),
        Ok(_) => Err(format!(
            "acme.ca_file {}: holds no PEM certificate",
            ca.display()
        )),
        Err(e) => Err(format!("acme.ca_file {}: {e}", ca.display())),
    }
}

/// One line for `check-config`: what ACME will do at start.
pub fn summary(config: &Config) -> Option<String> {
    let cfg = &config.acme;
    if !cfg.enabled {
        return None;
    }
    let names: Vec<_> = cfg.challenges.iter().map(|c| c.name()).collect();
    let account = if account::saved_for(&config.tls.dir, &cfg.directory) {
        format!(
            "the account in {} is reused",
            account::path(&config.tls.dir).display()
        )
    } else {
        "an account is registered at start".into()
    };
    Some(format!(
        "acme: certificates for {} from {} by {}; {account}",
        config.hostname,
        cfg.directory,
        names.join(" or ")
    ))
}

/// Whether the HTTPS acceptor must offer `acme-tls/1`.
pub fn wants_tls_alpn(config: &Config) -> bool {
    config.acme.enabled && config.acme.challenges.contains(&Challenge::TlsAlpn01)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn signed(names: &[&str], self_signed: bool) -> rustls_pki_types::CertificateDer<'static> {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "test CA");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let cert = if self_signed {
            params.self_signed(&key).unwrap()
        } else {
            let issuer = rcgen::Issuer::new(ca, ca_key);
            let _ = ca_cert;
            params.signed_by(&key, &issuer).unwrap()
        };
        cert.der().clone()
    }

    #[test]
    fn only_a_ca_issued_certificate_for_the_hostname_is_kept() {
        let cases = [
            (signed(&["a.example"], false), "a.example", None),
            (signed(&["A.Example"], false), "a.example", None),
            (signed(&["*.example"], false), "a.example", None),
            (
                signed(&["*.example"], false),
                "b.a.example",
                Some("does not name"),
            ),
            (
                signed(&["b.example"], false),
                "a.example",
                Some("does not name"),
            ),
            (
                signed(&["a.example"], true),
                "a.example",
                Some("self-signed"),
            ),
        ];
        for (leaf, host, want) in cases {
            match (issued_for(&leaf, host), want) {
                (Ok(_), None) => {}
                (Err(e), Some(w)) => assert!(e.contains(w), "{host}: {e}"),
                (got, want) => panic!("{host}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn random_numbers_are_in_the_unit_interval() {
        for _ in 0..1000 {
            let r = unit_random();
            assert!((0.0..1.0).contains(&r), "{r}");
        }
    }
}
