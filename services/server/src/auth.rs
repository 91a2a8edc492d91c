//! Authentication of the Temporal API on a running node (`[auth]`, or start-dev's
//! `--auth-*` flags): the keys are loaded at start (a bad key file stops the node, naming
//! it) and a JWKS URL is fetched again in the background.

use std::sync::Arc;

use anyhow::Context;
use temper_auth::{Auth, AuthSettings, KeySource};
use temper_types::SystemClock;

/// Start checking calls as `settings` says; `None` (auth off) passes every call.
pub async fn start(settings: Option<AuthSettings>) -> anyhow::Result<Option<Arc<Auth>>> {
    let Some(settings) = settings else {
        return Ok(None);
    };
    let source = match &settings.keys {
        Some(KeySource::Url(u)) => format!("JWKS {u}"),
        Some(KeySource::File(p)) => format!("key file {}", p.display()),
        None => "client certificates only".into(),
    };
    let mapped = settings.cert_permissions.len();
    let audit = settings.audit_log;
    let auth = Auth::start(settings, Arc::new(SystemClock))
        .await
        .context("starting authentication")?;
    tracing::info!(keys = %source, certificate_subjects = mapped, audit_log = audit, "authorization on: every Temporal API call needs credentials");
    Ok(Some(auth))
}
