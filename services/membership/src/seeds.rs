//! Where to gossip besides what gossip itself knows: the configured seeds (DNS names
//! re-resolved, e.g. a Kubernetes headless service) and the live rows of the store's
//! membership table, which this node also heartbeats.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use temper_persistence::{MemberRow, MembershipStore, StoreError};

use crate::Member;

/// The role written for a node that runs none (so it can still be found).
const NO_ROLE: &str = "member";

/// Insert or refresh this node's rows, one per role.
pub(crate) async fn heartbeat(
    store: &Arc<dyn MembershipStore>,
    me: &Member,
    ttl: Duration,
) -> Result<(), StoreError> {
    let now_ms = temper_types::wall_clock_millis();
    let mut roles: Vec<&str> = me.roles.iter().map(|r| r.as_str()).collect();
    if roles.is_empty() {
        roles.push(NO_ROLE);
    }
    for role in roles {
        let row = MemberRow {
            host_id: me.name.clone(),
            role: role.to_owned(),
            rpc_address: me.gossip_address.to_string(),
            session_start_ms: i64::try_from(me.generation).unwrap_or(i64::MAX),
            last_heartbeat_ms: now_ms,
        };
        store.heartbeat_member(&row, ttl).await?;
    }
    Ok(())
}

/// The gossip addresses of the other nodes' rows among `rows`.
pub(crate) fn addresses(rows: &[MemberRow], me: &Member) -> Vec<String> {
    let own_address = me.gossip_address.to_string();
    let addresses: BTreeSet<&str> = rows
        .iter()
        .filter(|row| row.rpc_address != own_address && !row.rpc_address.is_empty())
        .map(|row| row.rpc_address.as_str())
        .collect();
    addresses.into_iter().map(str::to_owned).collect()
}

/// Resolve `host:port` strings (IP literals or DNS names); unresolvable ones are logged
/// and skipped. Each lookup is bounded by `timeout`.
pub(crate) async fn resolve(targets: &[String], timeout: Duration) -> BTreeSet<SocketAddr> {
    let mut out = BTreeSet::new();
    for target in targets {
        if let Ok(addr) = target.parse::<SocketAddr>() {
            out.insert(addr);
            continue;
        }
        match tokio::time::timeout(timeout, tokio::net::lookup_host(target.as_str())).await {
            Ok(Ok(addrs)) => out.extend(addrs),
            Ok(Err(e)) => tracing::debug!(seed = %target, error = %e, "cannot resolve gossip seed"),
            Err(_) => tracing::debug!(seed = %target, "resolving gossip seed timed out"),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn resolves_literals_and_names_and_skips_nonsense() {
        let targets = vec![
            "127.0.0.1:7001".to_owned(),
            "localhost:7002".to_owned(),
            "no port".to_owned(),
        ];
        let addrs = resolve(&targets, Duration::from_secs(2)).await;
        assert!(addrs.contains(&"127.0.0.1:7001".parse().expect("addr")));
        assert!(
            addrs
                .iter()
                .any(|a| a.port() == 7002 && a.ip().is_loopback())
        );
        assert!(addrs.iter().all(|a| a.port() == 7001 || a.port() == 7002));
    }
}
