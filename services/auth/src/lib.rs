//! Authentication and authorization of the public Temporal API, in Temporal's model so the
//! SDKs and the `temporal` CLI work unchanged:
//!
//! - who: a JWT in the `authorization` metadata (`Bearer <token>`, what the SDKs' `api_key`
//!   and the CLI's `--api-key` send), checked against keys from a JWKS URL or a key file
//!   ([`keys`], [`token`]); or a client certificate whose common name the config maps to
//!   permissions ([`cert`]);
//! - what they may do: the token's `permissions` claim (`namespace:role`,
//!   `temporal-system:<role>` for every namespace) read as Temporal's default claim mapper
//!   does ([`claims`]);
//! - what a call needs: each method's scope and access class after Temporal's method metadata
//!   ([`methods`]), checked against the roles in the namespace the request names
//!   ([`service::Authorize`]).
//!
//! A task token names its namespace; the frontend refuses a token whose namespace is not the
//! request's (`InvalidArgument`, as Temporal does), so the check here on the request's
//! namespace also covers the task a token names.

pub mod cert;
pub mod claims;
mod error;
mod fetch;
pub mod keys;
pub mod methods;
pub mod request;
pub mod service;
pub mod token;

#[cfg(test)]
mod testkeys;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

pub use error::{CredentialError, KeyError};
pub use keys::{KeySet, KeySource};
pub use service::{Authorize, REQUESTS, permission_denied};
pub use token::{TokenRules, TokenVerifier};

/// How often a JWKS URL is fetched again by default.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(3600);

/// What the node's `[auth]` section asks for.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// Where the token signing keys come from; `None` when only certificates are mapped.
    pub keys: Option<KeySource>,
    /// A PEM CA bundle an `https` JWKS URL's certificate may chain to, besides the system's
    /// root CAs.
    pub jwks_ca_file: Option<std::path::PathBuf>,
    pub refresh_interval: Duration,
    pub rules: TokenRules,
    /// Client certificate common name -> permissions (`namespace:role`).
    pub cert_permissions: HashMap<String, Vec<String>>,
    /// Log every decision on the `temper::audit` tracing target.
    pub audit_log: bool,
    /// Largest request read to find its namespace.
    pub max_message_bytes: usize,
}

/// The running authentication: keys (refreshed in the background) and the rules.
pub struct Auth {
    tokens: Option<TokenVerifier>,
    cert_permissions: HashMap<String, Vec<String>>,
    audit_log: bool,
    max_message_bytes: usize,
    stop: tokio_util::sync::CancellationToken,
    refresher: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Auth {
    /// Load the keys (a key file must load; a JWKS URL that does not answer yet is fetched
    /// again on demand) and start refreshing a JWKS URL.
    pub async fn start(
        settings: AuthSettings,
        clock: Arc<dyn temper_types::Clock>,
    ) -> Result<Arc<Self>, KeyError> {
        let stop = tokio_util::sync::CancellationToken::new();
        let mut refresher = None;
        let tokens = match settings.keys {
            Some(source) => {
                let keys = KeySet::load_trusting(
                    source,
                    settings.jwks_ca_file.as_deref(),
                    keys::MIN_REFETCH,
                )
                .await?;
                refresher = keys.refresh_every(settings.refresh_interval, stop.clone());
                Some(TokenVerifier::new(keys, settings.rules, clock))
            }
            None => None,
        };
        Ok(Arc::new(Self {
            tokens,
            cert_permissions: settings.cert_permissions,
            audit_log: settings.audit_log,
            max_message_bytes: settings.max_message_bytes,
            stop,
            refresher: std::sync::Mutex::new(refresher),
        }))
    }

    /// Stop refreshing the keys.
    pub async fn stop(&self) {
        self.stop.cancel();
        let task = self
            .refresher
            .lock()
            .expect("refresher lock poisoned")
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}
