//! UpdateTaskQueueConfig (Temporal 1.28+): a task queue's rate limit, the default rate limit
//! of its fairness keys, and fairness weight overrides, per task queue type. The frontend
//! checks the request as Temporal's does (same codes and messages) and stores the result in
//! the namespace's detail through the deployment registry, the way build id version sets
//! are kept; matching reads it through the same registry (docs/priority.md).

use std::collections::HashMap;

use temper_client::deployments::DeploymentError;
use temper_proto::temporal::api::enums::v1::TaskQueueType;
use temper_proto::temporal::api::taskqueue::v1::{
    ConfigMetadata, RateLimit, RateLimitConfig, TaskQueueConfig,
};
use temper_proto::temporal::api::workflowservice::v1 as ws;
use temper_proto::temporal::api::workflowservice::v1::update_task_queue_config_request::RateLimitUpdate;
use temper_proto::wkt::Timestamp;
use temper_types::NamespaceId;
use tonic::Status;

use crate::Frontend;

/// Temporal's limit on a rate limit update's `reason`.
const MAX_REASON_LEN: usize = 1000;
/// Temporal's `limit.maxIDLength`, which bounds `identity`.
const MAX_IDENTITY_LEN: usize = 1000;
/// Temporal's `matching.maxFairnessKeyWeightOverrides`: overrides per request, and per queue.
pub(crate) const MAX_WEIGHT_OVERRIDES: usize = 1000;
/// Temporal's longest fairness key.
const MAX_FAIRNESS_KEY_LEN: usize = 64;

fn invalid(message: impl Into<String>) -> Status {
    Status::invalid_argument(message)
}

fn check_rate_limit(update: Option<&RateLimitUpdate>, label: &str) -> Result<(), Status> {
    let Some(update) = update else {
        return Ok(());
    };
    let Some(limit) = &update.rate_limit else {
        return Ok(());
    };
    if limit.requests_per_second < 0.0 {
        return Err(invalid(format!(
            "RequestsPerSecond for {label} rate limit must be non-negative."
        )));
    }
    if update.reason.len() > MAX_REASON_LEN {
        return Err(invalid(format!(
            "{label}.Reason field too long (max {MAX_REASON_LEN} characters)."
        )));
    }
    Ok(())
}

fn check_fairness_key(key: &str) -> Result<(), Status> {
    if key.is_empty() {
        return Err(invalid("fairness weight override key must not be empty"));
    }
    if key.len() > MAX_FAIRNESS_KEY_LEN {
        return Err(invalid("fairness key length exceeds limit"));
    }
    Ok(())
}

/// Go's `%q` of a string, as Temporal's messages quote keys.
fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

/// Temporal's checks of an UpdateTaskQueueConfig request, in its order.
pub(crate) fn check_request(r: &ws::UpdateTaskQueueConfigRequest) -> Result<(), Status> {
    let workflow = r.task_queue_type == TaskQueueType::Workflow as i32;
    let queue = r.update_queue_rate_limit.as_ref();
    if workflow && queue.is_some_and(|u| u.rate_limit.is_some()) {
        return Err(invalid(
            "Setting rate limit on workflow task queues is not allowed.",
        ));
    }
    check_rate_limit(queue, "UpdateQueueRateLimit")?;
    let per_key = r.update_fairness_key_rate_limit_default.as_ref();
    if workflow && per_key.is_some_and(|u| u.rate_limit.is_some()) {
        return Err(invalid(
            "Setting fairness key rate limit on workflow task queues is not allowed.",
        ));
    }
    check_rate_limit(per_key, "UpdateFairnessKeyRateLimitDefault")?;
    if r.identity.len() > MAX_IDENTITY_LEN {
        return Err(invalid(format!(
            "Identity field too long (max {MAX_IDENTITY_LEN} characters)."
        )));
    }
    let set = &r.set_fairness_weight_overrides;
    let unset = &r.unset_fairness_weight_overrides;
    let total = set.len() + unset.len();
    if total > MAX_WEIGHT_OVERRIDES {
        return Err(invalid(format!(
            "too many fairness weight overrides in request: got {total}, maximum {MAX_WEIGHT_OVERRIDES}"
        )));
    }
    // Sorted, so that of several bad keys the message names the same one every time.
    let mut keys: Vec<(&String, &f32)> = set.iter().collect();
    keys.sort_by(|a, b| a.0.cmp(b.0));
    for (key, weight) in keys {
        check_fairness_key(key)?;
        if *weight <= 0.0 {
            return Err(invalid(format!(
                "invalid fairness weight weight for key {}: must be greater than zero",
                quoted(key)
            )));
        }
    }
    for key in unset {
        check_fairness_key(key)?;
    }
    if let Some(key) = unset.iter().find(|k| set.contains_key(*k)) {
        return Err(invalid(format!(
            "fairness weight override key {} present in both set and unset lists",
            quoted(key)
        )));
    }
    Ok(())
}

fn rate_limit_config(update: &RateLimitUpdate, now: Timestamp, identity: &str) -> RateLimitConfig {
    RateLimitConfig {
        rate_limit: update.rate_limit.map(|r| RateLimit {
            requests_per_second: r.requests_per_second,
        }),
        metadata: Some(ConfigMetadata {
            reason: update.reason.clone(),
            update_identity: identity.to_owned(),
            update_time: Some(now),
        }),
    }
}

/// Apply a checked request to the stored config, as Temporal's matching does: each rate limit
/// update replaces that limit (no `rate_limit`: removes it, keeping who and why); overrides
/// are set and unset key by key, at most [`MAX_WEIGHT_OVERRIDES`] in all.
pub(crate) fn apply(
    config: &mut TaskQueueConfig,
    r: &ws::UpdateTaskQueueConfigRequest,
    now: Timestamp,
) -> Result<(), DeploymentError> {
    if let Some(u) = &r.update_queue_rate_limit {
        config.queue_rate_limit = Some(rate_limit_config(u, now, &r.identity));
    }
    if let Some(u) = &r.update_fairness_key_rate_limit_default {
        config.fairness_keys_rate_limit_default = Some(rate_limit_config(u, now, &r.identity));
    }
    let (set, unset) = (
        &r.set_fairness_weight_overrides,
        &r.unset_fairness_weight_overrides,
    );
    if !set.is_empty() || !unset.is_empty() {
        let mut merged: HashMap<String, f32> = config.fairness_weight_overrides.clone();
        for key in unset {
            merged.remove(key);
        }
        merged.extend(set.iter().map(|(k, w)| (k.clone(), *w)));
        if !config.fairness_weight_overrides.is_empty() && merged.len() > MAX_WEIGHT_OVERRIDES {
            return Err(DeploymentError::InvalidArgument(
                "fairness weight overrides update rejected: exceeding maximum key size".into(),
            ));
        }
        config.fairness_weight_overrides = merged;
    }
    Ok(())
}

impl Frontend {
    pub(crate) async fn update_task_queue_config_call(
        &self,
        r: ws::UpdateTaskQueueConfigRequest,
    ) -> Result<ws::UpdateTaskQueueConfigResponse, Status> {
        let namespace_id = NamespaceId(self.ns_id(&r.namespace).await?);
        check_request(&r)?;
        if r.task_queue.starts_with("/_sys/") {
            return Err(invalid(format!(
                "task queue family name cannot have prefix /_sys/ {}",
                r.task_queue
            )));
        }
        let registry = self.registry()?;
        let now: Timestamp = registry.now().into();
        let config = registry
            .modify_task_queue_config(&namespace_id, &r.task_queue, r.task_queue_type, |c| {
                apply(c, &r, now).map(|()| true)
            })
            .await?;
        Ok(ws::UpdateTaskQueueConfigResponse {
            config: Some(config),
        })
    }

    /// The stored config of a task queue and type, for DescribeTaskQueue's `report_config`.
    pub(crate) async fn task_queue_config(
        &self,
        namespace_id: &str,
        task_queue: &str,
        task_queue_type: i32,
    ) -> Result<Option<TaskQueueConfig>, Status> {
        self.registry()?
            .task_queue_config(
                &NamespaceId(namespace_id.to_owned()),
                task_queue,
                task_queue_type,
            )
            .await
    }
}

#[cfg(test)]
mod tests;
