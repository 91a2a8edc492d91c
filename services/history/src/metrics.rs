//! History's metrics: shard ownership, queue depth and task lateness, state transitions and
//! closed workflows. Namespace labels carry the namespace's name, from the retention cache
//! (refreshed every minute), never a workflow or run id.

use std::time::Duration;

use temper_proto::temporal::api::enums::v1::WorkflowExecutionStatus;

/// Shards this node runs now (a gauge).
pub const SHARDS_OWNED: &str = "temper_shards_owned";
/// Shards acquired (a range id CAS won).
pub const SHARD_ACQUISITIONS: &str = "temper_shard_acquisitions_total";
/// Shards whose writer stopped: fenced by another owner, or a store failure.
pub const SHARD_LOSSES: &str = "temper_shard_losses_total";
/// Transfer tasks handed to the processors and not yet done, summed over the node's shards.
pub const TRANSFER_PENDING: &str = "temper_transfer_queue_pending";
/// Timer tasks loaded and not yet done (due or not), summed over the node's shards.
pub const TIMER_PENDING: &str = "temper_timer_queue_pending";
/// Bytes the node's run cache takes (about), against its budget (`[history]
/// cache_budget_mib`).
pub const CACHE_BYTES: &str = "temper_history_cache_bytes";
/// How late a task started: a timer after its fire time, a transfer task after it reached
/// the processor. Label `queue`.
pub const TASK_LATENCY: &str = "temper_task_latency_seconds";
/// Committed mutable-state changes. Label `namespace`.
pub const STATE_TRANSITIONS: &str = "temper_state_transitions_total";
/// Runs closed, by `namespace` and `status`.
pub const WORKFLOW_COMPLETED: &str = "temper_workflow_completed_total";
/// Background tasks that panicked (a bug; see the ERROR line). Label `task`.
pub const TASK_PANICS: &str = "temper_history_task_panics_total";

/// A background task panicked.
pub(crate) fn task_panicked(task: &'static str) {
    metrics::counter!(TASK_PANICS, "task" => task).increment(1);
}

/// How late a task of `queue` started.
pub(crate) fn task_latency(queue: &'static str, late: Duration) {
    metrics::histogram!(TASK_LATENCY, "queue" => queue).record(late.as_secs_f64());
}

/// One committed transaction of a run of `namespace`; `closed`: the status it closed with.
pub(crate) fn transition(namespace: &str, closed: Option<i32>) {
    metrics::counter!(STATE_TRANSITIONS, "namespace" => namespace.to_string()).increment(1);
    if let Some(status) = closed {
        metrics::counter!(
            WORKFLOW_COMPLETED,
            "namespace" => namespace.to_string(),
            "status" => status_name(status),
        )
        .increment(1);
    }
}

/// A closed run's status as the `status` label shows it.
fn status_name(status: i32) -> &'static str {
    match WorkflowExecutionStatus::try_from(status) {
        Ok(WorkflowExecutionStatus::Completed) => "completed",
        Ok(WorkflowExecutionStatus::Failed) => "failed",
        Ok(WorkflowExecutionStatus::Canceled) => "canceled",
        Ok(WorkflowExecutionStatus::Terminated) => "terminated",
        Ok(WorkflowExecutionStatus::ContinuedAsNew) => "continued_as_new",
        Ok(WorkflowExecutionStatus::TimedOut) => "timed_out",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names() {
        assert_eq!(
            status_name(WorkflowExecutionStatus::ContinuedAsNew as i32),
            "continued_as_new"
        );
        assert_eq!(status_name(1234), "unknown");
    }
}
