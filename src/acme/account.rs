//! The ACME account: registered once, its key and URL kept in `acme-account.json` (0600) in
//! the ssl dir beside the certificate, and restored from there on every start, so a restart
//! never registers again (Let's Encrypt allows 10 registrations per address per 3 hours).

use std::path::{Path, PathBuf};

use instant_acme::{Account, AccountBuilder, AccountCredentials, ExternalAccountKey, NewAccount};
use serde::{Deserialize, Serialize};

use super::problem::Failure;
use crate::config::AcmeConfig;

pub const FILE: &str = "acme-account.json";

/// What the file holds: the directory the account lives at (an account is only good there),
/// and the library's credentials (key, account URL).
#[derive(Serialize, Deserialize)]
struct Saved {
    directory: String,
    credentials: AccountCredentials,
}

pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// The saved credentials when they are for `directory`. A file for another directory is
/// left alone here and replaced at the next registration; an unreadable one is an error
/// (overwriting it would throw the account away).
fn load(dir: &Path, directory: &str) -> Result<Option<AccountCredentials>, Failure> {
    let path = path(dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Failure::Local(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    let saved: Saved = serde_json::from_str(&text).map_err(|e| {
        Failure::Local(format!(
            "{} is not an account file peerbox wrote ({e}): move it away to register a new \
             account",
            path.display()
        ))
    })?;
    Ok((saved.directory == directory).then_some(saved.credentials))
}

/// Whether an account for `directory` is saved (without touching the network).
pub fn saved_for(dir: &Path, directory: &str) -> bool {
    matches!(load(dir, directory), Ok(Some(_)))
}

fn builder(config: &AcmeConfig) -> Result<AccountBuilder, Failure> {
    match &config.ca_file {
        Some(ca) => Account::builder_with_root(ca).map_err(|e| {
            Failure::Local(format!(
                "acme.ca_file {}: cannot use it as the CA's root: {e}",
                ca.display()
            ))
        }),
        None => Account::builder().map_err(|e| Failure::Local(format!("system roots: {e}"))),
    }
}

/// The saved account, restored (which fetches the directory, nothing more); `None` when no
/// account for this directory is saved.
pub async fn restore(config: &AcmeConfig, dir: &Path) -> Result<Option<Account>, Failure> {
    let Some(credentials) = load(dir, &config.directory)? else {
        return Ok(None);
    };
    let account = builder(config)?.from_credentials(credentials).await?;
    Ok(Some(account))
}

/// Registers a new account (agreeing to the CA's terms, as certbot's `--agree-tos` does) and
/// saves it before anything else is asked of the CA.
pub async fn register(config: &AcmeConfig, dir: &Path) -> Result<Account, Failure> {
    let contact = config.contact.as_ref().map(|c| format!("mailto:{c}"));
    let contact: Vec<&str> = contact.iter().map(String::as_str).collect();
    tracing::info!(directory = %config.directory, "acme: registering an account");
    let eab = match &config.eab {
        Some((kid, key)) => {
            use base64::Engine;
            let key = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(key.expose())
                .map_err(|_| Failure::Local("acme.eab_hmac_key is not base64url".into()))?;
            Some(ExternalAccountKey::new(kid.clone(), &key))
        }
        None => None,
    };
    let (account, credentials) = builder(config)?
        .create(
            &NewAccount {
                contact: &contact,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            config.directory.clone(),
            eab.as_ref(),
        )
        .await?;
    let saved = Saved {
        directory: config.directory.clone(),
        credentials,
    };
    let json = serde_json::to_vec_pretty(&saved)
        .map_err(|e| Failure::Local(format!("account credentials: {e}")))?;
    crate::tls::write_atomic(&path(dir), &json, 0o600)
        .map_err(|e| Failure::Local(e.to_string()))?;
    tracing::info!(account = %account.id(), file = %path(dir).display(), "acme: account registered and saved");
    Ok(account)
}
