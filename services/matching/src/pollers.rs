//! Who polled a queue recently: what `temporal task-queue describe` lists.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use temper_proto::temporal::api::common::v1::WorkerVersionCapabilities;
use temper_proto::temporal::api::deployment::v1::WorkerDeploymentOptions;
use temper_proto::temporal::api::taskqueue::v1::PollerInfo;
use tokio::time::Instant;

/// The dispatch rate Temporal reports for a poller that sets no limit of its own.
pub(crate) const DEFAULT_TASK_DISPATCH_RPS: f64 = 100_000.0;

/// What one poll says about its worker.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct PollerSeen {
    pub identity: String,
    /// `task_queue_metadata.max_tasks_per_second` of an activity poll, if set.
    pub max_tasks_per_second: Option<f64>,
    pub worker_version_capabilities: Option<WorkerVersionCapabilities>,
    pub deployment_options: Option<WorkerDeploymentOptions>,
}

#[derive(Debug)]
struct Entry {
    seen: PollerSeen,
    last_access: SystemTime,
    last_access_instant: Instant,
}

/// Pollers by identity, forgetting those not seen for `ttl`.
#[derive(Debug)]
pub(crate) struct PollerHistory {
    ttl: Duration,
    by_identity: HashMap<String, Entry>,
}

/// Bound on remembered identities per queue, so a flood of distinct identities cannot grow
/// memory without limit (Temporal keeps 1000 too).
const MAX_POLLERS: usize = 1000;

impl PollerHistory {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            by_identity: HashMap::new(),
        }
    }

    pub(crate) fn record(&mut self, seen: &PollerSeen, wall: SystemTime, now: Instant) {
        if !self.by_identity.contains_key(&seen.identity) && self.by_identity.len() >= MAX_POLLERS {
            self.prune(now);
            if self.by_identity.len() >= MAX_POLLERS {
                // Evict the least recently seen.
                if let Some(oldest) = self
                    .by_identity
                    .iter()
                    .min_by_key(|(_, e)| e.last_access_instant)
                    .map(|(k, _)| k.clone())
                {
                    self.by_identity.remove(&oldest);
                }
            }
        }
        self.by_identity.insert(
            seen.identity.clone(),
            Entry {
                seen: seen.clone(),
                last_access: wall,
                last_access_instant: now,
            },
        );
    }

    fn prune(&mut self, now: Instant) {
        let ttl = self.ttl;
        self.by_identity
            .retain(|_, e| now.saturating_duration_since(e.last_access_instant) < ttl);
    }

    /// Pollers seen within the ttl, most recent first.
    #[allow(deprecated)] // worker_version_capabilities: still what older CLIs show.
    pub(crate) fn list(&mut self, now: Instant) -> Vec<PollerInfo> {
        self.prune(now);
        let mut entries: Vec<&Entry> = self.by_identity.values().collect();
        entries.sort_by(|a, b| {
            b.last_access_instant
                .cmp(&a.last_access_instant)
                .then_with(|| a.seen.identity.cmp(&b.seen.identity))
        });
        entries
            .into_iter()
            .map(|e| PollerInfo {
                last_access_time: Some(e.last_access.into()),
                identity: e.seen.identity.clone(),
                rate_per_second: e
                    .seen
                    .max_tasks_per_second
                    .unwrap_or(DEFAULT_TASK_DISPATCH_RPS),
                worker_version_capabilities: e.seen.worker_version_capabilities.clone(),
                deployment_options: e.seen.deployment_options.clone(),
            })
            .collect()
    }

    /// The rate limit the most recent poller asked for, if any.
    pub(crate) fn latest_rate_limit(&self) -> Option<f64> {
        self.by_identity
            .values()
            .max_by_key(|e| e.last_access_instant)
            .and_then(|e| e.seen.max_tasks_per_second)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(identity: &str) -> PollerSeen {
        PollerSeen {
            identity: identity.to_owned(),
            ..Default::default()
        }
    }

    #[test]
    fn forgets_pollers_after_the_ttl() {
        let t0 = Instant::now();
        let mut h = PollerHistory::new(Duration::from_secs(300));
        h.record(&seen("a"), SystemTime::UNIX_EPOCH, t0);
        h.record(
            &seen("b"),
            SystemTime::UNIX_EPOCH,
            t0 + Duration::from_secs(200),
        );
        let ids: Vec<_> = h
            .list(t0 + Duration::from_secs(250))
            .into_iter()
            .map(|p| p.identity)
            .collect();
        assert_eq!(ids, ["b", "a"]);
        let ids: Vec<_> = h
            .list(t0 + Duration::from_secs(301))
            .into_iter()
            .map(|p| p.identity)
            .collect();
        assert_eq!(ids, ["b"]);
    }

    #[test]
    fn reports_the_default_rate_unless_the_poller_sets_one() {
        let t0 = Instant::now();
        let mut h = PollerHistory::new(Duration::from_secs(300));
        h.record(&seen("a"), SystemTime::UNIX_EPOCH, t0);
        let mut limited = seen("b");
        limited.max_tasks_per_second = Some(5.0);
        h.record(&limited, SystemTime::UNIX_EPOCH, t0);
        let list = h.list(t0);
        let rate = |id: &str| {
            list.iter()
                .find(|p| p.identity == id)
                .map(|p| p.rate_per_second)
        };
        assert_eq!(rate("a"), Some(DEFAULT_TASK_DISPATCH_RPS));
        assert_eq!(rate("b"), Some(5.0));
    }
}
