//! Internode admission: with internode TLS on, gossip alone does not put a node in this
//! node's rings. Gossip is unauthenticated UDP (docs/security.md), so a member enters the
//! rings only once its gRPC port has shown a certificate of the internode CA for the
//! internode server name (a TLS handshake, re-tried every few seconds while it fails).
//! A node without one never gets shards or partitions routed to it, and the cluster keeps
//! serving without it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use temper_membership::{ClusterView, Member};
use temper_tls::InternodeClient;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How long one probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// How soon a member that failed is probed again.
const RETRY: Duration = Duration::from_secs(2);

/// A member as probed: the same name, process and address keep their verdict.
type Key = (String, u64, String);

fn key(m: &Member) -> Key {
    (m.name.clone(), m.generation, m.grpc_address.clone())
}

struct Verdict {
    admitted: bool,
    at: Instant,
}

/// Views of `input` with only this node and the members that passed the probe; the task
/// stops with `stop`.
pub fn admit_verified(
    me: String,
    mut input: watch::Receiver<Arc<ClusterView>>,
    tls: InternodeClient,
    virtual_nodes: u32,
    stop: CancellationToken,
) -> (
    watch::Receiver<Arc<ClusterView>>,
    tokio::task::JoinHandle<()>,
) {
    let first = input.borrow_and_update().clone();
    let (tx, rx) = watch::channel(Arc::new(first.retain(|m| m.name == me, virtual_nodes)));
    let task = tokio::spawn(async move {
        let mut verdicts: HashMap<Key, Verdict> = HashMap::new();
        let mut view = first;
        loop {
            let due: Vec<Member> = view
                .members()
                .iter()
                .filter(|m| m.name != me)
                .filter(|m| match verdicts.get(&key(m)) {
                    None => true,
                    Some(v) => !v.admitted && v.at.elapsed() >= RETRY,
                })
                .cloned()
                .collect();
            let tls = &tls;
            let probes = due.iter().map(|m| async move {
                let r = tokio::time::timeout(PROBE_TIMEOUT, tls.probe(&m.grpc_address)).await;
                (
                    m,
                    r.unwrap_or_else(|_| Err("no TLS handshake within 3 s".into())),
                )
            });
            for (m, result) in futures::future::join_all(probes).await {
                let before = verdicts.get(&key(m)).map(|v| v.admitted);
                match &result {
                    Ok(()) => {
                        tracing::info!(member = %m.name, address = %m.grpc_address, "member admitted: it shows an internode certificate")
                    }
                    Err(e) if before.is_none() => {
                        tracing::warn!(member = %m.name, address = %m.grpc_address, "member left out of the rings: no valid internode certificate: {e}")
                    }
                    Err(_) => {}
                }
                verdicts.insert(
                    key(m),
                    Verdict {
                        admitted: result.is_ok(),
                        at: Instant::now(),
                    },
                );
            }
            // Forget members gone from the view (older generations of restarted nodes).
            let current: Vec<Key> = view.members().iter().map(key).collect();
            verdicts.retain(|k, _| current.contains(k));
            let admitted =
                |m: &Member| m.name == me || verdicts.get(&key(m)).is_some_and(|v| v.admitted);
            let next = view.retain(admitted, virtual_nodes);
            let changed = {
                let current = tx.borrow();
                current.version() != next.version()
                    || names(current.members()) != names(next.members())
            };
            if changed {
                let _ = tx.send(Arc::new(next));
            }
            let waiting = view.members().iter().any(|m| m.name != me && !admitted(m));
            tokio::select! {
                _ = stop.cancelled() => return,
                r = input.changed() => {
                    if r.is_err() { return }
                    view = input.borrow_and_update().clone();
                }
                _ = tokio::time::sleep(RETRY), if waiting => {}
            }
        }
    });
    (rx, task)
}

fn names(members: &[Member]) -> Vec<(&str, u64, bool)> {
    members
        .iter()
        .map(|m| (m.name.as_str(), m.generation, m.leaving))
        .collect()
}
