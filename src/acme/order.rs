//! One order, start to end: new order, the challenge answered by peerbox itself (a
//! TLS-ALPN-01 certificate in the `CertStore`, or an HTTP-01 token in memory), the CA's
//! validation, a new key and CSR, the certificate, installed through the `CertStore`. The
//! challenge answers are taken down however the order ends (the guard below), also when the
//! task is cancelled.

use std::sync::Arc;
use std::time::Duration;

use instant_acme::{
    Account, AuthorizationStatus, CertificateIdentifier, ChallengeType, Identifier, NewOrder,
    Order, OrderStatus, RetryPolicy,
};

use super::Http01Tokens;
use super::problem::Failure;
use crate::config::Challenge;
use crate::tls::CertStore;

/// How the CA is polled while it validates and while it issues.
const POLL: RetryPolicy = RetryPolicy::new()
    .initial_delay(Duration::from_millis(250))
    .backoff(1.5)
    .timeout(Duration::from_secs(120));

/// What one order needs.
pub struct Ask<'a> {
    pub account: &'a Account,
    pub host: &'a str,
    /// Tried first; the others the config allows when the CA does not offer it.
    pub challenges: &'a [Challenge],
    pub replaces: Option<CertificateIdentifier<'static>>,
    pub certs: &'a CertStore,
    pub tokens: &'a Arc<Http01Tokens>,
}

/// Orders a certificate and installs it; `on_order` is called once the CA has created the
/// order (for the counters).
pub async fn issue(ask: Ask<'_>, on_order: impl FnOnce()) -> Result<(), Failure> {
    let ids = [Identifier::Dns(ask.host.to_owned())];
    let mut new = NewOrder::new(&ids);
    if let Some(r) = ask.replaces.clone() {
        new = new.replaces(r);
    }
    let mut order = ask.account.new_order(&new).await?;
    on_order();
    tracing::info!(host = ask.host, order = order.url(), "acme: order created");
    let mut guard = Answers {
        certs: ask.certs.clone(),
        tokens: ask.tokens.clone(),
        names: Vec::new(),
        tokens_set: Vec::new(),
    };
    let used = answer(&mut order, &ask, &mut guard).await?;
    // The order's own error, when the CA reports one, is the validation's.
    let challenge = used
        .or(ask.challenges.first().copied())
        .unwrap_or(Challenge::TlsAlpn01);
    let status = order.poll_ready(&POLL).await.map_err(|e| match e {
        instant_acme::Error::Timeout(_) => Failure::Timeout("the CA's validation"),
        instant_acme::Error::Api(p) => Failure::Validation {
            challenge,
            problem: Some(p),
        },
        other => other.into(),
    })?;
    if status != OrderStatus::Ready {
        return Err(validation_failure(&mut order, used).await);
    }
    drop(guard);
    tracing::info!(
        host = ask.host,
        "acme: validated; sending the certificate request"
    );
    let key = rcgen::KeyPair::generate().map_err(|e| Failure::Local(e.to_string()))?;
    let mut params = rcgen::CertificateParams::new(vec![ask.host.to_owned()])
        .map_err(|e| Failure::Local(e.to_string()))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr = params
        .serialize_request(&key)
        .map_err(|e| Failure::Local(e.to_string()))?;
    order.finalize_csr(csr.der()).await?;
    let chain = order.poll_certificate(&POLL).await.map_err(|e| match e {
        instant_acme::Error::Timeout(_) => Failure::Timeout("the certificate"),
        other => other.into(),
    })?;
    ask.certs
        .install(&chain, &key.serialize_pem())
        .map_err(|e| Failure::Local(format!("the issued certificate cannot be used: {e}")))
}

/// Puts up the answer to each pending authorization and tells the CA to validate; returns
/// the challenge used (for the failure's sentence).
async fn answer(
    order: &mut Order,
    ask: &Ask<'_>,
    guard: &mut Answers,
) -> Result<Option<Challenge>, Failure> {
    let mut used = None;
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz?;
        match authz.status {
            AuthorizationStatus::Pending => {}
            // Validated before (CAs reuse an account's authorizations for a while).
            AuthorizationStatus::Valid => continue,
            other => {
                return Err(Failure::Local(format!(
                    "the CA's authorization for {} is {other:?}",
                    ask.host
                )));
            }
        }
        let offered: Vec<ChallengeType> =
            authz.challenges.iter().map(|c| c.r#type.clone()).collect();
        let Some(pick) = ask
            .challenges
            .iter()
            .copied()
            .find(|c| offered.contains(&kind(*c)))
        else {
            return Err(Failure::NoChallenge {
                offered: offered.iter().map(|t| format!("{t:?}")).collect(),
            });
        };
        let mut challenge = authz
            .challenge(kind(pick))
            .ok_or_else(|| Failure::Local("the offered challenge vanished".into()))?;
        let key_auth = challenge.key_authorization();
        match pick {
            Challenge::TlsAlpn01 => {
                let digest: [u8; 32] = key_auth.digest().as_ref().try_into().map_err(|_| {
                    Failure::Local("key authorization digest is not SHA-256".into())
                })?;
                let cert = crate::tls::challenge_key(ask.host, digest)
                    .map_err(|e| Failure::Local(e.to_string()))?;
                ask.certs.set_challenge(ask.host, cert);
                guard.names.push(ask.host.to_owned());
            }
            Challenge::Http01 => {
                ask.tokens.set(&challenge.token, key_auth.as_str());
                guard.tokens_set.push(challenge.token.clone());
            }
        }
        tracing::info!(
            host = ask.host,
            challenge = pick.name(),
            "acme: answering the challenge; asking the CA to validate"
        );
        challenge.set_ready().await.map_err(|e| match e {
            instant_acme::Error::Api(p) => Failure::Validation {
                challenge: pick,
                problem: Some(p),
            },
            other => other.into(),
        })?;
        used = Some(pick);
    }
    Ok(used)
}

/// The CA's reason for an invalid order: the first challenge error among its authorizations.
async fn validation_failure(order: &mut Order, used: Option<Challenge>) -> Failure {
    let challenge = used.unwrap_or(Challenge::Http01);
    let mut problem = order.state().error.clone();
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authz)) = authorizations.next().await {
        if let Ok(state) = authz.refresh().await {
            if let Some(p) = state.challenges.iter().find_map(|c| c.error.clone()) {
                problem = Some(p);
                break;
            }
        }
    }
    Failure::Validation { challenge, problem }
}

fn kind(c: Challenge) -> ChallengeType {
    match c {
        Challenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
        Challenge::Http01 => ChallengeType::Http01,
    }
}

/// Takes the challenge answers down when the order is done with them.
struct Answers {
    certs: CertStore,
    tokens: Arc<Http01Tokens>,
    names: Vec<String>,
    tokens_set: Vec<String>,
}

impl Drop for Answers {
    fn drop(&mut self) {
        for n in &self.names {
            self.certs.remove_challenge(n);
        }
        for t in &self.tokens_set {
            self.tokens.remove(t);
        }
    }
}
