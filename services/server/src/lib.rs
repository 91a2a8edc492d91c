//! The pieces of the `temper` binary that tests also use: building a node from a store,
//! the cluster node, its config and admin API.

pub mod admin;
pub mod admission;
pub mod auth;
pub mod cluster;
pub mod config;
pub mod config_example;
pub mod health;
pub mod metrics;
pub mod node;
pub mod store;
pub mod telemetry;
pub mod tls;

/// Resolves on SIGINT or SIGTERM.
pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
