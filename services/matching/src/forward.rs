//! Forwarding between the partitions of a task queue, after Temporal's matching forwarder,
//! in a two-level tree: every child partition (`n > 0`) forwards to the root (partition 0),
//! which never forwards.
//!
//! - A new task on a child that no local poller takes is offered to the root as a
//!   sync-match-only add: the root hands it to one of its waiting polls (its own workers' or
//!   polls forwarded from children) and answers once history started it, or refuses at once
//!   ([`refused`]), and the child stores the task in its own backlog.
//! - Backlog tasks of a child that no local poller takes are offered to the root the same way
//!   by a background loop per child (`forward_backlog`), backing off while the root refuses.
//! - A poll on a child with nothing local waits locally until it may forward, then polls the
//!   root in its stead (see [`Core::poll`]): the root starts the task with history and the
//!   child hands the answer on. A poll is never waiting in both places, so it cannot get two
//!   tasks; a task the root took for it stays the root's until history started it.
//! - QueryWorkflow on a child goes to the root, whose waiting polls include forwarded ones.
//!
//! At most `max_forwarded_polls` polls and `max_forwarded_tasks` offers per child partition
//! are under way at once (Temporal's defaults: 1 and 1); an add finding the offer permit
//! taken stores its task instead of waiting. Forwarded calls carry the
//! [`FORWARDED_FROM_HEADER`] metadata (the sender's partition), which routers must honour by
//! calling exactly the partition named, and receivers by never forwarding again.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use temper_client::{MatchingClient, status};
use temper_proto::internal::v1::{
    AddActivityTaskRequest, AddWorkflowTaskRequest, ForceLoadTaskQueuePartitionRequest,
    PollActivityTaskQueueRequest, PollWorkflowTaskQueueRequest, QueryWorkflowRequest,
    QueryWorkflowResponse, SyncMatchRefusedFailure,
};
use temper_proto::temporal::api::enums::v1::TaskQueueKind;
use temper_proto::temporal::api::taskqueue::v1::TaskQueue as TaskQueueRef;
use temper_types::FORWARDED_FROM_HEADER;
use tokio::time::Instant;
use tonic::metadata::MetadataValue;
use tonic::{Code, Request, Status};

use crate::engine::{Core, Poll, PollRequest, PollResponse};
use crate::key::{QueueKey, QueueKind, QueueType};
use crate::queue::TaskQueue;
use crate::task::{Outcome, TaskInfo};

/// The first pause after the root refused a backlog task; it doubles up to `forward_retry`.
const MIN_BACKLOG_BACKOFF: Duration = Duration::from_millis(10);

/// What a root answers a forwarded task no poller took (Temporal's "remote sync match
/// failed"): CANCELLED with a [`SyncMatchRefusedFailure`]; the child keeps the task.
pub(crate) fn refused() -> Status {
    status::status_with_details(
        Code::Cancelled,
        "remote sync match failed",
        &SyncMatchRefusedFailure {},
    )
}

/// Whether the root refused a forwarded task ([`refused`]): expected, not worth a log line.
fn is_refused(s: &Status) -> bool {
    s.code() == Code::Cancelled && status::detail::<SyncMatchRefusedFailure>(s).is_some()
}

/// Whether another partition forwarded this call.
pub(crate) fn is_forwarded<T>(request: &Request<T>) -> bool {
    request.metadata().contains_key(FORWARDED_FROM_HEADER)
}

/// A request marked as forwarded from partition `from`.
pub(crate) fn forwarded<T>(message: T, from: u32) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert(FORWARDED_FROM_HEADER, MetadataValue::from(from));
    request
}

/// How the root partition of `key`'s queue is named in requests.
fn root_ref(key: &QueueKey) -> TaskQueueRef {
    TaskQueueRef {
        name: key.with_partition(0).partition_name(),
        kind: TaskQueueKind::Normal as i32,
        normal_name: String::new(),
    }
}

/// The schedule-to-start time left, as a request carries it (`None`: no limit). A task at or
/// past its expiry keeps a tiny limit, because zero would mean none.
fn time_left(info: &TaskInfo, now: SystemTime) -> Option<temper_proto::wkt::Duration> {
    let expiry = info.expiry_time?;
    let left = expiry
        .duration_since(now)
        .unwrap_or_default()
        .max(Duration::from_millis(1));
    temper_proto::wkt::Duration::try_from(left).ok()
}

impl Core {
    /// Where forwarded calls go: the configured client, else this engine itself.
    pub(crate) fn forwarder(&self) -> Result<MatchingClient, Status> {
        if let Some(client) = self.forwarder.get() {
            return Ok(client.clone());
        }
        let me = self
            .me
            .upgrade()
            .ok_or_else(|| Status::unavailable("matching is shutting down"))?;
        Ok(me)
    }

    /// Offer a new task of a child partition to the root, if no other offer of this
    /// partition is under way. `true`: a poller of the root started it (or found it
    /// obsolete).
    pub(crate) async fn offer_to_root(&self, queue: &Arc<TaskQueue>, info: &TaskInfo) -> bool {
        let Ok(_permit) = queue.forward_tasks.clone().try_acquire_owned() else {
            return false;
        };
        match self.forward_offer(queue.key(), info).await {
            Ok(()) => true,
            Err(s) => {
                if !is_refused(&s) {
                    tracing::debug!(queue = %queue.key(), status = %s,
                        "offering a task to the root partition failed");
                }
                false
            }
        }
    }

    /// A sync-match-only add of `info` on the root of `key`'s queue.
    async fn forward_offer(&self, key: &QueueKey, info: &TaskInfo) -> Result<(), Status> {
        let client = self.forwarder()?;
        let now = self.clock().now();
        let task_queue = Some(root_ref(key));
        let schedule_to_start_timeout = time_left(info, now);
        // The root puts the task in the version queue this partition routed it to.
        let directive = Some(temper_proto::internal::v1::VersionDirective {
            pinned: crate::versioning::tag_version(&key.version),
            ..info.directive.as_deref().cloned().unwrap_or_default()
        });
        match key.task_type {
            QueueType::Workflow => {
                let req = AddWorkflowTaskRequest {
                    directive: directive.clone(),
                    namespace_id: info.namespace_id.clone(),
                    execution: Some(info.execution.clone()),
                    task_queue,
                    scheduled_event_id: info.scheduled_event_id,
                    schedule_to_start_timeout,
                    attempt: info.attempt,
                    // The root orders the offer among its own tasks by it.
                    priority: info.priority.to_proto(),
                };
                client
                    .add_workflow_task(forwarded(req, key.partition))
                    .await?;
            }
            QueueType::Activity => {
                let req = AddActivityTaskRequest {
                    directive,
                    namespace_id: info.namespace_id.clone(),
                    execution: Some(info.execution.clone()),
                    task_queue,
                    scheduled_event_id: info.scheduled_event_id,
                    schedule_to_start_timeout,
                    attempt: info.attempt,
                    // The root orders the offer among its own tasks by it.
                    priority: info.priority.to_proto(),
                };
                client
                    .add_activity_task(forwarded(req, key.partition))
                    .await?;
            }
            // Nexus tasks are never stored, so no child holds one to offer.
            QueueType::Nexus => {
                return Err(Status::internal(
                    "a Nexus task is never offered to the root",
                ));
            }
        }
        Ok(())
    }

    /// Poll the root in the stead of a child's poll, until `deadline`. `Ok(None)`: the root
    /// answered empty.
    pub(crate) async fn forward_poll(
        &self,
        poll: &Poll,
        deadline: Instant,
    ) -> Result<Option<PollResponse>, Status> {
        let client = self.forwarder()?;
        let left = deadline.saturating_duration_since(Instant::now());
        let long_poll_timeout_ms = i64::try_from(left.as_millis()).unwrap_or(i64::MAX).max(1);
        let namespace_id = poll.key.namespace_id.0.clone();
        let task_queue = Some(root_ref(&poll.key));
        match &poll.request {
            PollRequest::Workflow(request) => {
                let req = PollWorkflowTaskQueueRequest {
                    namespace_id,
                    poller_id: poll.poller_id.clone(),
                    request: Some(
                        temper_proto::temporal::api::workflowservice::v1::PollWorkflowTaskQueueRequest {
                            task_queue,
                            ..request.clone()
                        },
                    ),
                    long_poll_timeout_ms,
                };
                let resp = client
                    .poll_workflow_task_queue(forwarded(req, poll.key.partition))
                    .await?
                    .into_inner();
                Ok((!resp.task_token.is_empty()).then_some(PollResponse::Workflow(resp)))
            }
            PollRequest::Activity(request, sdk) => {
                let req = PollActivityTaskQueueRequest {
                    sdk_name: sdk.name.clone(),
                    sdk_version: sdk.version.clone(),
                    namespace_id,
                    poller_id: poll.poller_id.clone(),
                    request: Some(
                        temper_proto::temporal::api::workflowservice::v1::PollActivityTaskQueueRequest {
                            task_queue,
                            ..request.clone()
                        },
                    ),
                    long_poll_timeout_ms,
                };
                let resp = client
                    .poll_activity_task_queue(forwarded(req, poll.key.partition))
                    .await?
                    .into_inner();
                Ok((!resp.task_token.is_empty()).then_some(PollResponse::Activity(resp)))
            }
            PollRequest::Nexus(request) => {
                let req = temper_proto::internal::v1::PollNexusTaskQueueRequest {
                    namespace_id,
                    poller_id: poll.poller_id.clone(),
                    request: Some(
                        temper_proto::temporal::api::workflowservice::v1::PollNexusTaskQueueRequest {
                            task_queue,
                            ..request.clone()
                        },
                    ),
                    long_poll_timeout_ms,
                };
                let resp = client
                    .poll_nexus_task_queue(forwarded(req, poll.key.partition))
                    .await?
                    .into_inner();
                Ok((!resp.task_token.is_empty()).then_some(PollResponse::Nexus(resp)))
            }
        }
    }

    /// Send a query addressed to a child partition to the root.
    pub(crate) async fn forward_query(
        &self,
        key: &QueueKey,
        mut req: QueryWorkflowRequest,
    ) -> Result<QueryWorkflowResponse, Status> {
        let client = self.forwarder()?;
        req.task_queue = Some(root_ref(key));
        Ok(client
            .query_workflow(forwarded(req, key.partition))
            .await?
            .into_inner())
    }

    /// Have every child partition of `root` loaded on its owner, in the background
    /// (Temporal's ForceLoadAllChildPartitions): a child with a stored backlog then reads it
    /// and offers it to the root's pollers, even if no poll or add ever lands on that child
    /// (workers poll partitions at random, and a few pollers can miss one for minutes). Done
    /// when a root is loaded, and again after the matching ring moved partitions.
    pub(crate) fn load_children(&self, root: &QueueKey) {
        let partitions = self.ctx.config.partitions.partitions(&root.name);
        if root.kind != QueueKind::Normal
            || root.is_child()
            || root.task_type == QueueType::Nexus
            || partitions < 2
        {
            return;
        }
        let Ok(client) = self.forwarder() else {
            return;
        };
        for partition in 1..partitions {
            let child = root.with_partition(partition);
            let client = client.clone();
            let shutdown = self.ctx.shutdown.clone();
            self.ctx.spawn(async move {
                let req = ForceLoadTaskQueuePartitionRequest {
                    namespace_id: child.namespace_id.0.clone(),
                    task_queue: Some(TaskQueueRef {
                        name: child.partition_name(),
                        kind: TaskQueueKind::Normal as i32,
                        normal_name: String::new(),
                    }),
                    task_queue_type: child.task_type.as_i32(),
                    version: child.version.clone(),
                };
                let result = tokio::select! {
                    r = client.force_load_task_queue_partition(Request::new(req)) => r,
                    () = shutdown.cancelled() => return,
                };
                match result {
                    Ok(r) if r.get_ref().was_unloaded => {
                        tracing::debug!(queue = %child, "loaded a child partition for its root");
                    }
                    Ok(_) => {}
                    Err(status) => {
                        tracing::warn!(queue = %child, %status,
                            "could not have a child partition loaded; it is served once a poll or an add reaches it");
                    }
                }
            });
        }
    }

    /// [`Core::load_children`] of every loaded root partition.
    pub(crate) fn load_children_of_roots(&self) {
        let roots = self.loaded_where(|k| k.kind == QueueKind::Normal && !k.is_child());
        for root in roots {
            if !root.is_lost() {
                self.load_children(root.key());
            }
        }
    }

    /// Start offering a child partition's backlog to the root, for as long as the queue
    /// lives.
    pub(crate) fn start_backlog_forwarder(&self, queue: &Arc<TaskQueue>) {
        let Some(me) = self.me.upgrade() else {
            return;
        };
        let queue = queue.clone();
        self.ctx
            .spawn(async move { me.forward_backlog(queue).await });
    }

    async fn forward_backlog(self: Arc<Self>, queue: Arc<TaskQueue>) {
        let shutdown = self.ctx.shutdown.clone();
        let max_backoff = self.ctx.config.forward_retry.max(MIN_BACKLOG_BACKOFF);
        let mut backoff = MIN_BACKLOG_BACKOFF;
        loop {
            let ready = tokio::select! {
                ready = queue.wait_ready() => ready,
                () = shutdown.cancelled() => false,
            };
            if !ready {
                return;
            }
            let permit = tokio::select! {
                permit = queue.forward_tasks.clone().acquire_owned() => permit,
                () = shutdown.cancelled() => return,
            };
            let Ok(permit) = permit else {
                return;
            };
            // Taken only now, so that a poller arriving while we waited for the permit
            // still finds it.
            let Some(task) = queue.pop_for_forwarding() else {
                continue;
            };
            let Some(info) = task.info().cloned() else {
                continue;
            };
            // Dropping the task on shutdown puts it back (it stays in the store).
            let result = tokio::select! {
                r = self.forward_offer(queue.key(), &info) => r,
                () = shutdown.cancelled() => return,
            };
            drop(permit);
            match result {
                Ok(()) => {
                    task.finish(Outcome::Started);
                    backoff = MIN_BACKLOG_BACKOFF;
                }
                Err(s) => {
                    if !is_refused(&s) {
                        tracing::debug!(queue = %queue.key(), status = %s,
                            "offering a backlog task to the root partition failed");
                    }
                    drop(task);
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = shutdown.cancelled() => return,
                    }
                    backoff = (backoff * 2).min(max_backoff);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_told_by_its_detail() {
        let refusal = refused();
        assert_eq!(refusal.code(), Code::Cancelled);
        assert!(is_refused(&refusal));
        assert!(!is_refused(&Status::cancelled("remote sync match failed")));
        assert!(!is_refused(&Status::unavailable("root is moving")));
    }
}
