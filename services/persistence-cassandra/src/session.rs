//! Opening a driver session: contact points, the local datacenter, token-aware routing,
//! consistency levels, timeouts, the retry policy, credentials and TLS.

use std::sync::Arc;

use scylla::client::Compression;
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::errors::NewSessionError;
use scylla::policies::load_balancing::DefaultPolicy;
use scylla::policies::retry::DefaultRetryPolicy;

use crate::config::CassandraConfig;
use crate::tls;

/// Why the store could not be opened. [`ConnectError::is_transient`] tells a server whether
/// to wait and try again (the cluster is down or unreachable) or to stop (fix the config).
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("TLS setup failed: {0}")]
    Tls(String),
    #[error(
        "cannot reach the Cassandra cluster at {contact_points}: {reason}. Check that the \
         nodes are up and that the contact points (host:port of the CQL native port, usually \
         9042) are right"
    )]
    Unreachable {
        contact_points: String,
        reason: String,
    },
    #[error("the Cassandra cluster refused the credentials: {0}. Check the username and password")]
    Authentication(String),
    #[error(
        "keyspace {keyspace:?} does not exist. Create it with `temper schema setup --store \
         cassandra --contact-points ... --keyspace {keyspace} --replication-factor N`"
    )]
    KeyspaceMissing { keyspace: String },
    #[error(
        "keyspace {keyspace:?} has no temper schema. Run `temper schema setup --store cassandra \
         --contact-points ... --keyspace {keyspace}`"
    )]
    SchemaMissing { keyspace: String },
    #[error(
        "keyspace {keyspace:?} has schema version {found}, but this temper needs version \
         {expected}. Run `temper schema migrate --store cassandra --contact-points ... \
         --keyspace {keyspace}` first"
    )]
    SchemaTooOld {
        keyspace: String,
        found: i32,
        expected: i32,
    },
    #[error("preparing statement {statement:?} failed: {reason}")]
    Prepare { statement: String, reason: String },
    #[error("{what}: {reason}")]
    Request { what: String, reason: String },
}

impl ConnectError {
    /// Worth waiting for: the cluster may come back (or finish starting).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable { .. } | Self::Request { .. } => true,
            Self::Prepare { reason, .. } => !reason.contains("Invalid"),
            Self::Config(_)
            | Self::Tls(_)
            | Self::Authentication(_)
            | Self::KeyspaceMissing { .. }
            | Self::SchemaMissing { .. }
            | Self::SchemaTooOld { .. } => false,
        }
    }
}

/// Open a session (no keyspace selected yet).
pub(crate) async fn open(config: &CassandraConfig) -> Result<Session, ConnectError> {
    let builder = builder(config)?;
    let session = builder
        .build()
        .await
        .map_err(|e| new_session_error(config, e))?;
    if let Some(dc) = &config.datacenter {
        let known: Vec<Option<String>> = session
            .get_cluster_state()
            .get_nodes_info()
            .iter()
            .map(|node| node.datacenter.clone())
            .collect();
        check_datacenter(dc, &known)?;
    }
    Ok(session)
}

/// Requests never leave the configured datacenter, so a name the cluster does not have
/// would make every request fail: say so up front.
pub(crate) fn check_datacenter(dc: &str, nodes: &[Option<String>]) -> Result<(), ConnectError> {
    if nodes.is_empty() || nodes.iter().any(|n| n.as_deref() == Some(dc)) {
        return Ok(());
    }
    let mut names: Vec<&str> = nodes.iter().filter_map(|n| n.as_deref()).collect();
    names.sort_unstable();
    names.dedup();
    Err(ConnectError::Config(crate::config::ConfigError(format!(
        "datacenter {dc:?} has no node in this cluster; its datacenters are: {}",
        if names.is_empty() {
            "(none reported)".to_owned()
        } else {
            names.join(", ")
        }
    ))))
}

/// How often an idle connection is checked, and how long a check may go unanswered before
/// the connection is dropped and opened again.
const KEEPALIVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);
const KEEPALIVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The session as configured, without connecting.
pub(crate) fn builder(config: &CassandraConfig) -> Result<SessionBuilder, ConnectError> {
    let mut policy = DefaultPolicy::builder().token_aware(true);
    policy = match &config.datacenter {
        // LOCAL_* consistency only means something if requests stay in the local DC.
        Some(dc) => policy
            .prefer_datacenter(dc.clone())
            .permit_dc_failover(false),
        None => policy,
    };
    let profile = ExecutionProfile::builder()
        .consistency(config.consistency.into())
        .serial_consistency(Some(config.serial_consistency.into()))
        .request_timeout(Some(config.request_timeout()))
        .load_balancing_policy(policy.build())
        // Retries only what cannot do harm twice: idempotent statements on timeouts and
        // broken connections. Conditional statements and batches carry their own policy
        // (retry.rs) and are marked non-idempotent: never retried when the outcome is unknown.
        .retry_policy(Arc::new(DefaultRetryPolicy::new()))
        .build();
    let mut builder = SessionBuilder::new()
        .known_nodes(&config.contact_points)
        .connection_timeout(config.connect_timeout())
        // A connection silenced by a network partition is found dead within seconds, not the
        // driver's default 30 + 30 s: until then a healed node's store calls still fail.
        .keepalive_interval(KEEPALIVE_INTERVAL)
        .keepalive_timeout(KEEPALIVE_TIMEOUT)
        .compression(Some(Compression::Lz4))
        .default_execution_profile_handle(profile.into_handle());
    if let Some(dc) = &config.datacenter {
        builder = builder.prefer_datacenter(dc.clone());
    }
    if let (Some(user), Some(password)) = (&config.username, &config.password) {
        builder = builder.user(user.clone(), password.clone());
    }
    if config.tls.enabled {
        let tls = tls::client_config(&config.tls).map_err(ConnectError::Tls)?;
        builder = builder.tls_context(Some(tls));
    }
    Ok(builder)
}

fn new_session_error(config: &CassandraConfig, e: NewSessionError) -> ConnectError {
    let reason = e.to_string();
    if reason.contains("Authentication") || reason.contains("authentication") {
        return ConnectError::Authentication(reason);
    }
    ConnectError::Unreachable {
        contact_points: config.contact_points.join(","),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_datacenter_is_a_configuration_error() {
        let nodes = [Some("dc1".to_owned()), Some("dc2".to_owned()), None];
        check_datacenter("dc2", &nodes).expect("known");
        let err = check_datacenter("dc3", &nodes).expect_err("unknown");
        assert!(!err.is_transient());
        assert!(err.to_string().contains("dc1, dc2"), "{err}");
        check_datacenter("dc3", &[]).expect("no metadata yet: nothing to check");
    }

    #[test]
    fn connect_errors_say_whether_to_wait() {
        let unreachable = ConnectError::Unreachable {
            contact_points: "a:9042".into(),
            reason: "refused".into(),
        };
        assert!(unreachable.is_transient());
        assert!(unreachable.to_string().contains("a:9042"));
        for permanent in [
            ConnectError::Authentication("bad".into()),
            ConnectError::KeyspaceMissing {
                keyspace: "ks".into(),
            },
            ConnectError::SchemaMissing {
                keyspace: "ks".into(),
            },
        ] {
            assert!(!permanent.is_transient(), "{permanent}");
            assert!(
                permanent.to_string().contains("temper schema")
                    || permanent.to_string().contains("password"),
                "{permanent}"
            );
        }
    }
}
