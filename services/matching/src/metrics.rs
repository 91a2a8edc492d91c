//! Matching's metrics. Labels are the queue's `namespace_id` (matching never sees namespace
//! names) and `task_type` (`workflow` or `activity`); never the task queue's name, which users
//! choose freely (one series per queue would be unbounded).

use std::collections::HashMap;
use std::time::Duration;

use crate::key::{QueueKey, QueueType};

/// Tasks handed straight to a waiting poller.
pub const SYNC_MATCH: &str = "temper_matching_sync_match_total";
/// Tasks that found no poller and went to the backlog (the store, or memory for sticky
/// queues). Sync-match rate = sync / (sync + backlog).
pub const BACKLOG_TASKS: &str = "temper_matching_backlog_tasks_total";
/// Tasks waiting in the backlogs of the partitions this node has loaded (a gauge).
pub const BACKLOG_SIZE: &str = "temper_matching_backlog_size";
/// How long a poll waited, by `outcome` (`task` or `empty`).
pub const POLL_WAIT: &str = "temper_matching_poll_wait_seconds";
/// From a task's creation to its start by a poller.
pub const SCHEDULE_TO_START: &str = "temper_matching_schedule_to_start_seconds";

/// How often the backlog gauge is refreshed (on the next queue use after that).
pub(crate) const BACKLOG_GAUGE_EVERY: Duration = Duration::from_secs(5);

pub(crate) fn task_type(t: QueueType) -> &'static str {
    match t {
        QueueType::Workflow => "workflow",
        QueueType::Activity => "activity",
        QueueType::Nexus => "nexus",
    }
}

fn labels(key: &QueueKey) -> [(&'static str, String); 2] {
    [
        ("namespace_id", key.namespace_id.0.clone()),
        ("task_type", task_type(key.task_type).to_string()),
    ]
}

pub(crate) fn sync_match(key: &QueueKey) {
    metrics::counter!(SYNC_MATCH, &labels(key)).increment(1);
}

pub(crate) fn backlogged(key: &QueueKey) {
    metrics::counter!(BACKLOG_TASKS, &labels(key)).increment(1);
}

pub(crate) fn poll_wait(key: &QueueKey, outcome: &'static str, waited: Duration) {
    let [n, t] = labels(key);
    metrics::histogram!(POLL_WAIT, &[n, t, ("outcome", outcome.to_string())])
        .record(waited.as_secs_f64());
}

pub(crate) fn schedule_to_start(key: &QueueKey, waited: Duration) {
    metrics::histogram!(SCHEDULE_TO_START, &labels(key)).record(waited.as_secs_f64());
}

/// Set the backlog gauge from the loaded partitions' counts. `previous` holds the label sets
/// set last time, so one whose queues are all gone drops to zero.
pub(crate) fn publish_backlog(
    counts: impl Iterator<Item = (QueueKey, i64)>,
    previous: &mut HashMap<(String, QueueType), i64>,
) {
    let mut now: HashMap<(String, QueueType), i64> = HashMap::new();
    for (key, n) in counts {
        *now.entry((key.namespace_id.0, key.task_type)).or_default() += n;
    }
    for gone in previous.keys().filter(|k| !now.contains_key(*k)) {
        now_zero(gone);
    }
    for ((ns, t), n) in &now {
        metrics::gauge!(BACKLOG_SIZE, "namespace_id" => ns.clone(), "task_type" => task_type(*t))
            .set(*n as f64);
    }
    *previous = now;
}

fn now_zero((ns, t): &(String, QueueType)) {
    metrics::gauge!(BACKLOG_SIZE, "namespace_id" => ns.clone(), "task_type" => task_type(*t))
        .set(0.0);
}
