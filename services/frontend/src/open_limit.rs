//! A bound on the open (running) workflows of a namespace: a start over it is refused with
//! RESOURCE_EXHAUSTED (cause CONCURRENT_LIMIT, scope NAMESPACE), which the SDKs retry with
//! backoff, so a tenant that starts more than it finishes waits instead of filling the
//! store and every shard's caches.
//!
//! The count is visibility's (running runs without a namespace division, so the system's
//! schedulers and batches are not counted), read at most once a second per namespace on
//! each frontend node and counted up locally for the starts admitted in between. So the
//! bound holds within what one second of starts on each node can add; it is a guard for the
//! cluster's resources, not an exact quota.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use temper_persistence::{VisibilityFilter, VisibilityStore};
use temper_proto::temporal::api::enums::v1::{
    ResourceExhaustedCause, ResourceExhaustedScope, WorkflowExecutionStatus,
};
use temper_types::NamespaceId;
use tonic::Status;

/// How old a count may be before a start reads it again.
const REFRESH: Duration = Duration::from_secs(1);

/// Starts refused by the bound, by namespace.
pub const REFUSED: &str = "temper_frontend_open_workflow_limit_refused_total";

/// Limits by namespace; 0 means none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenWorkflowLimitConfig {
    /// Every namespace not in `per_namespace`.
    pub default: u64,
    /// Namespaces with their own bound, by name.
    pub per_namespace: BTreeMap<String, u64>,
}

impl OpenWorkflowLimitConfig {
    fn limit(&self, namespace: &str) -> u64 {
        self.per_namespace
            .get(namespace)
            .copied()
            .unwrap_or(self.default)
    }

    /// Whether any namespace is bounded.
    pub fn any(&self) -> bool {
        self.default > 0 || self.per_namespace.values().any(|l| *l > 0)
    }
}

struct Count {
    open: u64,
    read_at: Instant,
}

pub struct OpenWorkflowLimits {
    config: OpenWorkflowLimitConfig,
    visibility: Arc<dyn VisibilityStore>,
    counts: Mutex<HashMap<String, Count>>,
    /// One count read at a time per node; the others use the last one meanwhile.
    reading: tokio::sync::Mutex<()>,
}

impl OpenWorkflowLimits {
    pub fn new(config: OpenWorkflowLimitConfig, visibility: Arc<dyn VisibilityStore>) -> Self {
        Self {
            config,
            visibility,
            counts: Mutex::new(HashMap::new()),
            reading: tokio::sync::Mutex::new(()),
        }
    }

    /// Admit one workflow start in `namespace` (id `namespace_id`), or refuse it.
    pub async fn admit_start(
        &self,
        namespace: &str,
        namespace_id: &NamespaceId,
    ) -> Result<(), Status> {
        let limit = self.config.limit(namespace);
        if limit == 0 {
            return Ok(());
        }
        let fresh = |counts: &HashMap<String, Count>| {
            counts
                .get(namespace)
                .filter(|c| c.read_at.elapsed() < REFRESH)
                .map(|c| c.open)
        };
        let known = fresh(&self.counts.lock().expect("counts lock"));
        if known.is_none() {
            // Read it unless another start of this node is reading already.
            if let Ok(_reading) = self.reading.try_lock() {
                let open = self
                    .visibility
                    .count_visibility(
                        namespace_id,
                        &VisibilityFilter {
                            statuses: Some(vec![WorkflowExecutionStatus::Running as i32]),
                            no_namespace_division: true,
                            ..Default::default()
                        },
                    )
                    .await
                    .map_err(|e| Status::unavailable(format!("counting open workflows: {e}")))?;
                self.counts.lock().expect("counts lock").insert(
                    namespace.to_owned(),
                    Count {
                        open,
                        read_at: Instant::now(),
                    },
                );
            }
        }
        let mut counts = self.counts.lock().expect("counts lock");
        let Some(count) = counts.get_mut(namespace) else {
            // Never read yet and another start is reading: let this one through.
            return Ok(());
        };
        if count.open >= limit {
            metrics::counter!(REFUSED, "namespace" => namespace.to_owned()).increment(1);
            return Err(temper_client::status::resource_exhausted(
                format!(
                    "namespace open workflow limit exceeded: {} running, limit {limit}",
                    count.open
                ),
                ResourceExhaustedCause::ConcurrentLimit,
                ResourceExhaustedScope::Namespace,
            ));
        }
        count.open += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_namespace_bounds_override_the_default() {
        let c = OpenWorkflowLimitConfig {
            default: 10,
            per_namespace: [("big".to_string(), 0), ("small".to_string(), 2)]
                .into_iter()
                .collect(),
        };
        assert_eq!(c.limit("other"), 10);
        assert_eq!(c.limit("big"), 0);
        assert_eq!(c.limit("small"), 2);
        assert!(c.any());
        assert!(!OpenWorkflowLimitConfig::default().any());
    }
}
