//! QueryWorkflow, history's part (PrepareQueryTask): resolve the run, apply the query's reject
//! condition, wait until the run has completed a workflow task (an SDK cannot answer a query
//! before it has run the workflow once) and has none in flight (so the answer sees every
//! signal and update sent before the query), pick the queue and build the query task a worker
//! polls. Matching dispatches that task and waits for the answer; nothing here is written.
//!
//! The queue is the workflow's sticky queue when a worker caches it; that task carries no
//! history, as in Temporal. Otherwise (or when the caller says the sticky worker did not take
//! it) the normal queue, and the task carries the full history from event 1 so a worker
//! without the workflow in cache replays it first.

use std::time::Duration;

use temper_proto::internal::v1 as internal;
use temper_proto::temporal::api::common::v1::WorkflowExecution;
use temper_proto::temporal::api::enums::v1::{
    QueryRejectCondition, TaskQueueKind, WorkflowExecutionStatus,
};
use temper_proto::temporal::api::history::v1::History;
use temper_proto::temporal::api::query::v1::{QueryRejected, WorkflowQuery};
use temper_proto::temporal::api::taskqueue::v1::TaskQueue;
use temper_proto::temporal::api::workflowservice::v1::PollWorkflowTaskQueueResponse;
use temper_types::NamespaceId;
use temper_workflow::pb;
use temper_workflow::time::{dur, from_dur};
use tonic::Status;

use super::history::{FIRST_PAGE_EVENTS, PageToken};
use crate::HistoryEngine;

/// Temporal fails a query fast while the workflow task keeps failing (this many attempts).
const FAILING_WORKFLOW_TASK_ATTEMPTS: i32 = 3;

/// What the run's state says about a query right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Readiness {
    /// The reject condition applies: answer `query_rejected` with this status.
    Rejected(WorkflowExecutionStatus),
    /// No worker can answer (Temporal's WorkflowNotReady, with this message).
    NotReady(&'static str),
    /// Running, but no workflow task has completed yet: wait for one.
    Wait,
    /// Dispatch it.
    Ready,
}

/// Decide what to do with a query on a run in state `ms`, as Temporal's history does.
/// `arriving` is false for a query already waiting: Temporal fails a query fast on a
/// failing workflow task only when it arrives; one it has buffered waits across the failed
/// attempts for a workflow task that completes.
pub(crate) fn readiness(
    ms: &pb::MutableState,
    reject: QueryRejectCondition,
    arriving: bool,
) -> Readiness {
    let info = ms.execution_info.as_ref();
    let status = info
        .and_then(|i| WorkflowExecutionStatus::try_from(i.status).ok())
        .unwrap_or(WorkflowExecutionStatus::Unspecified);
    let running = status == WorkflowExecutionStatus::Running;
    let rejected = match reject {
        QueryRejectCondition::NotOpen => !running,
        QueryRejectCondition::NotCompletedCleanly => {
            !running && status != WorkflowExecutionStatus::Completed
        }
        QueryRejectCondition::None | QueryRejectCondition::Unspecified => false,
    };
    if rejected {
        return Readiness::Rejected(status);
    }
    let completed_a_task =
        info.is_some_and(|i| i.last_completed_workflow_task_started_event_id > 0);
    if !running && !completed_a_task {
        return Readiness::NotReady("Workflow execution closed before WorkflowTaskStarted event");
    }
    if arriving
        && running
        && ms
            .workflow_task
            .as_ref()
            .is_some_and(|wt| wt.attempt >= FAILING_WORKFLOW_TASK_ATTEMPTS)
    {
        return Readiness::NotReady(
            "Unable to query workflow due to Workflow Task in failed state.",
        );
    }
    // Read-after-write, as Temporal's consistent query: while a workflow task is scheduled or
    // running (a signal or an update the caller already sent is on its way to the worker),
    // the query waits for it to complete, so the answer reflects what was sent before it.
    if completed_a_task && !(running && ms.workflow_task.is_some()) {
        Readiness::Ready
    } else {
        Readiness::Wait
    }
}

pub(crate) async fn prepare(
    engine: &HistoryEngine,
    ns: &NamespaceId,
    r: internal::PrepareQueryTaskRequest,
) -> Result<internal::PrepareQueryTaskResponse, Status> {
    let req = r
        .request
        .ok_or_else(|| Status::invalid_argument("Request is nil."))?;
    let exec = req.execution.clone().unwrap_or_default();
    if exec.workflow_id.is_empty() {
        return Err(Status::invalid_argument(
            "WorkflowId is not set on request.",
        ));
    }
    let query: WorkflowQuery = req
        .query
        .clone()
        .ok_or_else(|| Status::invalid_argument("WorkflowQuery is not set on request."))?;
    if query.query_type.is_empty() {
        return Err(Status::invalid_argument("QueryType is not set on request."));
    }
    let shard = engine.shard(ns, &exec.workflow_id)?;
    let args_size: usize = query
        .query_args
        .iter()
        .flat_map(|p| &p.payloads)
        .map(|p| p.data.len())
        .sum();
    if args_size > shard.limits.max_payload_bytes {
        return Err(Status::invalid_argument("Blob data size exceeds limit."));
    }
    let reject = QueryRejectCondition::try_from(req.query_reject_condition)
        .unwrap_or(QueryRejectCondition::None);
    let key = shard.resolve(ns, &exec.workflow_id, &exec.run_id).await?;

    let wait = Duration::from_millis(r.wait_timeout_ms.max(0).unsigned_abs());
    let deadline = tokio::time::Instant::now() + wait;
    // Holding the entry keeps it in the cache (and its change feed alive) while we wait.
    let entry = shard.entry(&key);
    let mut changes = entry.changes.subscribe();
    let mut arriving = true;
    let mut ms = loop {
        let ms = shard.snapshot(&key).await?;
        match readiness(&ms, reject, arriving) {
            Readiness::Rejected(status) => {
                return Ok(internal::PrepareQueryTaskResponse {
                    query_rejected: Some(QueryRejected {
                        status: status as i32,
                    }),
                    status: status as i32,
                    ..Default::default()
                });
            }
            Readiness::NotReady(message) => {
                return Err(temper_client::status::workflow_not_ready(message));
            }
            Readiness::Ready => break ms,
            Readiness::Wait => arriving = false,
        }
        let gave_up = tokio::select! {
            r = changes.changed() => r.is_err(),
            () = tokio::time::sleep_until(deadline) => true,
            () = shard.cancel.cancelled() => true,
        };
        if gave_up {
            // Temporal buffers such a query until the first workflow task completes; one
            // that did not complete in time is a query timeout.
            return Err(Status::deadline_exceeded(
                "query timed out before a worker could process it",
            ));
        }
    };

    let info = ms.execution_info.clone().unwrap_or_default();
    let normal = info.task_queue.clone().unwrap_or_default();
    let sticky = !r.skip_sticky && !info.sticky_task_queue.is_empty();
    let (task_queue, history, next_page_token) = if sticky {
        let queue = TaskQueue {
            name: info.sticky_task_queue.clone(),
            kind: TaskQueueKind::Sticky as i32,
            normal_name: normal.name.clone(),
        };
        (queue, History::default(), Vec::new())
    } else {
        let (mut events, latest) = shard.events_between(&key, 1, None).await?;
        ms = latest;
        let mut next_page_token = Vec::new();
        if events.len() > FIRST_PAGE_EVENTS {
            events.truncate(FIRST_PAGE_EVENTS);
            next_page_token = PageToken {
                run_id: key.run_id.clone(),
                next_event_id: events.last().map_or(1, |e| e.event_id + 1),
                end_event_id: ms.next_event_id,
            }
            .encode();
        }
        (normal.clone(), History { events }, next_page_token)
    };
    let info = ms.execution_info.clone().unwrap_or_default();
    let mut sticky_timeout = from_dur(&info.sticky_schedule_to_start_timeout);
    if sticky_timeout.is_zero() {
        sticky_timeout = shard.limits.sticky_schedule_to_start_timeout;
    }
    Ok(internal::PrepareQueryTaskResponse {
        query_rejected: None,
        directive: Some(temper_workflow::versioning::directive(&info)),
        task_queue: Some(task_queue),
        sticky_schedule_to_start_timeout: if sticky { dur(sticky_timeout) } else { None },
        task: Some(PollWorkflowTaskQueueResponse {
            workflow_execution: Some(WorkflowExecution {
                workflow_id: key.workflow_id.clone(),
                run_id: key.run_id.clone(),
            }),
            workflow_type: info.workflow_type.clone(),
            previous_started_event_id: info.last_completed_workflow_task_started_event_id,
            // A query task starts no workflow task.
            started_event_id: 0,
            attempt: 1,
            history: Some(history),
            next_page_token,
            query: Some(query),
            workflow_execution_task_queue: info.task_queue.clone(),
            ..Default::default()
        }),
        status: info.status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(
        status: WorkflowExecutionStatus,
        completed_task: bool,
        attempt: i32,
    ) -> pb::MutableState {
        pb::MutableState {
            execution_info: Some(pb::ExecutionInfo {
                status: status as i32,
                last_completed_workflow_task_started_event_id: if completed_task { 3 } else { 0 },
                ..Default::default()
            }),
            workflow_task: (attempt > 0).then(|| pb::WorkflowTaskInfo {
                attempt,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    use QueryRejectCondition as C;
    use WorkflowExecutionStatus as S;

    #[test]
    fn reject_conditions_apply_to_closed_runs_only() {
        let running = state(S::Running, true, 0);
        for c in [C::None, C::NotOpen, C::NotCompletedCleanly] {
            assert_eq!(readiness(&running, c, true), Readiness::Ready, "{c:?}");
        }
        let completed = state(S::Completed, true, 0);
        assert_eq!(readiness(&completed, C::None, true), Readiness::Ready);
        assert_eq!(
            readiness(&completed, C::NotOpen, true),
            Readiness::Rejected(S::Completed)
        );
        assert_eq!(
            readiness(&completed, C::NotCompletedCleanly, true),
            Readiness::Ready
        );
        for s in [S::Failed, S::Terminated, S::Canceled, S::TimedOut] {
            let closed = state(s, true, 0);
            assert_eq!(readiness(&closed, C::NotOpen, true), Readiness::Rejected(s));
            assert_eq!(
                readiness(&closed, C::NotCompletedCleanly, true),
                Readiness::Rejected(s)
            );
            assert_eq!(readiness(&closed, C::None, true), Readiness::Ready);
        }
    }

    #[test]
    fn a_run_must_have_completed_a_workflow_task() {
        assert_eq!(
            readiness(&state(S::Running, false, 1), C::None, true),
            Readiness::Wait
        );
        assert!(matches!(
            readiness(&state(S::Terminated, false, 0), C::None, true),
            Readiness::NotReady(m) if m.contains("closed before WorkflowTaskStarted")
        ));
        // The reject condition is checked first.
        assert_eq!(
            readiness(&state(S::Terminated, false, 0), C::NotOpen, true),
            Readiness::Rejected(S::Terminated)
        );
    }

    #[test]
    fn a_pending_workflow_task_holds_the_query_back() {
        assert_eq!(
            readiness(&state(S::Running, true, 1), C::None, true),
            Readiness::Wait
        );
        assert_eq!(
            readiness(&state(S::Running, true, 0), C::None, true),
            Readiness::Ready
        );
    }

    #[test]
    fn a_failing_workflow_task_fails_the_query_fast() {
        assert_eq!(
            readiness(&state(S::Running, true, 2), C::None, true),
            Readiness::Wait
        );
        assert!(matches!(
            readiness(&state(S::Running, true, 3), C::None, true),
            Readiness::NotReady(m) if m.contains("failed state")
        ));
        // A query that was already waiting keeps waiting for a task that completes.
        assert_eq!(
            readiness(&state(S::Running, true, 3), C::None, false),
            Readiness::Wait
        );
    }
}
