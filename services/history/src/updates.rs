//! The in-memory side of workflow updates: each cached run's update registry and the callers
//! waiting on its updates, and speculative workflow tasks, which are never written, so this
//! module (not the transfer and timer queues) hands them to matching and times them out.
//!
//! Everything here belongs to the run's cache entry: dropping the entry (eviction, a reload
//! after a conflict, a store error) drops admitted updates and speculative tasks, as in
//! Temporal; waiters then see their channel close and the caller sends the update again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use temper_persistence::ExecutionKey;
use temper_proto::internal::v1 as internal;
use temper_proto::temporal::api::common::v1::WorkflowExecution;
use temper_proto::temporal::api::enums::v1::{TaskQueueKind, TimeoutType};
use temper_proto::temporal::api::taskqueue::v1::TaskQueue;
use temper_proto::temporal::api::update::v1::Outcome;
use temper_workflow::update::{Abort, Notice, Registry};
use temper_workflow::{pb, speculative, update};
use tokio::sync::watch;

use crate::shard::ShardContext;

/// How far an update got, as its waiters see it.
// Variants hold protobuf messages by value, built once and moved to one reader; boxing
// would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    Admitted,
    Accepted,
    Done(Outcome),
    Aborted(Abort),
}

/// A run's admitted updates and the channels of the callers waiting on updates.
#[derive(Default)]
pub struct RunUpdates {
    pub registry: Registry,
    waiters: HashMap<String, watch::Sender<Progress>>,
}

impl RunUpdates {
    /// Take the registry a transaction produced and tell the waiters what happened to their
    /// updates.
    pub fn install(&mut self, mut registry: Registry) {
        for notice in std::mem::take(&mut registry.notices) {
            self.publish(notice);
        }
        self.registry = registry;
        self.waiters.retain(|_, tx| tx.receiver_count() > 0);
    }

    fn publish(&mut self, notice: Notice) {
        match notice {
            Notice::Accepted { update_id } => {
                if let Some(tx) = self.waiters.get(&update_id) {
                    tx.send_replace(Progress::Accepted);
                }
            }
            Notice::Completed { update_id, outcome } => {
                if let Some(tx) = self.waiters.remove(&update_id) {
                    tx.send_replace(Progress::Done(outcome));
                }
            }
            Notice::Aborted { update_id, reason } => {
                if let Some(tx) = self.waiters.remove(&update_id) {
                    tx.send_replace(Progress::Aborted(reason));
                }
            }
        }
    }

    /// Wait on update `id`, which is at `now`.
    pub fn subscribe(&mut self, id: &str, now: Progress) -> watch::Receiver<Progress> {
        self.waiters
            .entry(id.to_string())
            .or_insert_with(|| watch::channel(now).0)
            .subscribe()
    }

    /// The run's cached state is gone: so are its admitted updates (their callers retry).
    pub fn clear(&mut self) {
        let mut registry = std::mem::take(&mut self.registry);
        update::abort_all(&mut registry);
        self.install(registry);
        // Waiters on accepted updates look the update up again when their channel closes.
        self.waiters.clear();
    }
}

/// Hand a newly scheduled speculative workflow task to matching (straight, not through the
/// transfer queue: nothing was written) and arm its schedule-to-start timeout.
pub(crate) fn dispatch_speculative(
    shard: &Arc<ShardContext>,
    key: &ExecutionKey,
    ms: &pb::MutableState,
) {
    let Some(wt) = speculative::pending(ms)
        .filter(|wt| wt.started_event_id == 0)
        .cloned()
    else {
        return;
    };
    arm_timeout(
        shard,
        key,
        &wt,
        TimeoutType::ScheduleToStart,
        speculative::SCHEDULE_TO_START_TIMEOUT,
    );
    let info = ms.execution_info.clone().unwrap_or_default();
    let normal = TaskQueue {
        kind: TaskQueueKind::Normal as i32,
        ..info.task_queue.clone().unwrap_or_default()
    };
    let queue = wt.task_queue.clone().unwrap_or_else(|| normal.clone());
    // Matching drops a sticky task no worker took in time, as for normal sticky tasks.
    let sticky_timeout = if queue.kind == TaskQueueKind::Sticky as i32 {
        info.sticky_schedule_to_start_timeout.or_else(|| {
            temper_proto::wkt::Duration::try_from(shard.limits.sticky_schedule_to_start_timeout)
                .ok()
        })
    } else {
        None
    };
    let request =
        move |task_queue: TaskQueue, schedule_to_start_timeout| internal::AddWorkflowTaskRequest {
            namespace_id: info.namespace_id.clone(),
            execution: Some(WorkflowExecution {
                workflow_id: info.workflow_id.clone(),
                run_id: info.run_id.clone(),
            }),
            task_queue: Some(task_queue),
            scheduled_event_id: wt.scheduled_event_id,
            schedule_to_start_timeout,
            attempt: wt.attempt,
            directive: Some(temper_workflow::versioning::directive(&info)),
            priority: info.priority.clone(),
        };
    let owner = shard;
    let shard = shard.clone();
    // The shard's work: a stopped shard hands no speculative task to matching.
    owner.tasks.spawn("speculative_task_dispatch", async move {
        let matching = &shard.matching;
        let mut result =
            temper_client::call!(matching => add_workflow_task(request(queue, sticky_timeout)));
        if let Err(s) = &result
            && temper_client::status::is_sticky_worker_unavailable(s)
        {
            result = temper_client::call!(matching => add_workflow_task(request(normal, None)));
        }
        if let Err(s) = result {
            // The schedule-to-start timeout makes the task a normal one, which the transfer
            // queue delivers.
            tracing::warn!(shard = %shard.shard_id, status = %s,
                "handing a speculative workflow task to matching failed");
        }
    });
}

/// A speculative task just started: arm its start-to-close timeout.
pub(crate) fn started_speculative(
    shard: &Arc<ShardContext>,
    key: &ExecutionKey,
    ms: &pb::MutableState,
) {
    if let Some(wt) = speculative::pending(ms).filter(|wt| wt.started_event_id > 0) {
        let timeout = wt
            .start_to_close_timeout
            .and_then(|d| Duration::try_from(d).ok())
            .unwrap_or(shard.limits.default_workflow_task_timeout);
        arm_timeout(shard, key, wt, TimeoutType::StartToClose, timeout);
    }
}

/// An in-memory timer for a speculative task; stale when it fires if the task moved on.
fn arm_timeout(
    shard: &Arc<ShardContext>,
    key: &ExecutionKey,
    wt: &pb::WorkflowTaskInfo,
    kind: TimeoutType,
    after: Duration,
) {
    let owner = shard;
    let (shard, key) = (shard.clone(), key.clone());
    let scheduled_event_id = wt.scheduled_event_id;
    let scheduled_time = wt.scheduled_time.unwrap_or_default();
    // The shard's work: stopping the shard ends the wait.
    owner.tasks.spawn("speculative_task_timeout", async move {
        tokio::time::sleep(after).await;
        let fired = shard
            .transact(&key, |txn| {
                speculative::on_timeout(txn, scheduled_event_id, &scheduled_time, kind);
                Ok(())
            })
            .await;
        if let Err(e) = fired {
            tracing::debug!(shard = %shard.shard_id, error = %e,
                "speculative workflow task timeout not applied");
        }
    });
}
