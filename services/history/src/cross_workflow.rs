//! Transfer tasks that act on other workflows, through the history client (this engine in
//! one process, the owner of the target's shard in a cluster): starting a child, signaling
//! or cancelling an external workflow, and on close, telling the parent and applying the
//! parent close policy to the children still running.
//!
//! Each reads what it needs from the run's state and history, makes the call (idempotent
//! by request id, so a retried task is harmless), then records the outcome in the run.

// The Temporal API marks namespace and control deprecated, but SDKs and the server still
// fill them.
#![allow(deprecated)]

use temper_client::HistoryClient;
use temper_persistence::ExecutionKey;
use temper_proto::internal::v1 as internal;
use temper_proto::temporal::api::common::v1::WorkflowExecution;
use temper_proto::temporal::api::enums::v1::{
    ParentClosePolicy, StartChildWorkflowExecutionFailedCause,
};
use temper_proto::temporal::api::history::v1::{HistoryEvent, history_event::Attributes};
use temper_proto::temporal::api::workflowservice::v1 as ws;
use temper_workflow::{child, close, external, pb, schedule};
use tonic::{Code, Status};

use crate::error::HistoryError;
use crate::shard::ShardContext;

/// Who the server says does these things on a workflow's behalf.
const IDENTITY: &str = "history-service";

/// One event of a run, by id.
async fn event(
    shard: &ShardContext,
    key: &ExecutionKey,
    event_id: i64,
) -> Result<Option<HistoryEvent>, HistoryError> {
    let (events, _) = shard
        .events_between(key, event_id, Some(event_id + 1))
        .await?;
    Ok(events.into_iter().next())
}

/// The initiated event of a command (`what` names its type for the error), read from the
/// run's history.
async fn initiated<T>(
    shard: &ShardContext,
    key: &ExecutionKey,
    event_id: i64,
    what: &str,
    pick: impl FnOnce(Attributes) -> Option<T>,
) -> Result<T, HistoryError> {
    event(shard, key, event_id)
        .await?
        .and_then(|e| e.attributes)
        .and_then(pick)
        .ok_or_else(|| {
            HistoryError::Store(temper_persistence::StoreError::Invalid(format!(
                "event {event_id} is not {what}"
            )))
        })
}

/// The namespace id for a name, when the command named another namespace.
async fn namespace_id(
    shard: &ShardContext,
    name: &str,
    id: &str,
) -> Result<Option<String>, HistoryError> {
    if !id.is_empty() {
        return Ok(Some(id.to_string()));
    }
    Ok(shard
        .persistence
        .namespaces
        .get_namespace_by_name(name)
        .await?
        .map(|r| r.id.0))
}

/// A call failed in a way that retrying will not fix.
fn is_final(s: &Status) -> bool {
    matches!(
        s.code(),
        Code::NotFound | Code::InvalidArgument | Code::FailedPrecondition | Code::ResourceExhausted
    )
}

fn retry_later(what: &str, s: Status) -> HistoryError {
    HistoryError::Store(temper_persistence::StoreError::Unavailable(format!(
        "{what}: {s}"
    )))
}

fn self_execution(key: &ExecutionKey) -> WorkflowExecution {
    WorkflowExecution {
        workflow_id: key.workflow_id.clone(),
        run_id: key.run_id.clone(),
    }
}

/// StartChild: start the child run, then record ChildWorkflowExecutionStarted (or
/// StartChildWorkflowExecutionFailed) in the parent.
pub(crate) async fn start_child(
    shard: &ShardContext,
    history: &HistoryClient,
    key: &ExecutionKey,
    initiated_event_id: i64,
) -> Result<(), HistoryError> {
    let ms = shard.snapshot(key).await?;
    let Some(ci) = ms.children.get(&initiated_event_id).cloned() else {
        return Ok(());
    };
    if close::is_closed(&ms) || ci.started_event_id != 0 {
        return Ok(());
    }
    let initiated_event = event(shard, key, initiated_event_id).await?;
    // The user metadata of the parent's command goes to the child's started event.
    let user_metadata = initiated_event
        .as_ref()
        .and_then(|e| e.user_metadata.clone());
    let a = match initiated_event.and_then(|e| e.attributes) {
        Some(Attributes::StartChildWorkflowExecutionInitiatedEventAttributes(a)) => a,
        _ => {
            return Err(HistoryError::Store(
                temper_persistence::StoreError::Invalid(format!(
                    "event {initiated_event_id} is not StartChildWorkflowExecutionInitiated"
                )),
            ));
        }
    };
    let info = ms.execution_info.clone().unwrap_or_default();
    let Some(child_ns_id) = namespace_id(shard, &ci.namespace, &ci.namespace_id).await? else {
        return shard
            .transact(key, |txn| {
                child::on_start_failed(
                    txn,
                    initiated_event_id,
                    &a,
                    StartChildWorkflowExecutionFailedCause::NamespaceNotFound,
                )
            })
            .await
            .map(|_| ());
    };
    let req = internal::StartWorkflowExecutionRequest {
        namespace_id: child_ns_id.clone(),
        namespace: ci.namespace.clone(),
        request: Some(ws::StartWorkflowExecutionRequest {
            namespace: ci.namespace.clone(),
            workflow_id: a.workflow_id.clone(),
            workflow_type: a.workflow_type.clone(),
            task_queue: a.task_queue.clone(),
            input: a.input.clone(),
            workflow_execution_timeout: a.workflow_execution_timeout,
            workflow_run_timeout: a.workflow_run_timeout,
            workflow_task_timeout: a.workflow_task_timeout,
            identity: IDENTITY.into(),
            request_id: ci.create_request_id.clone(),
            workflow_id_reuse_policy: a.workflow_id_reuse_policy,
            retry_policy: a.retry_policy.clone(),
            cron_schedule: a.cron_schedule.clone(),
            memo: a.memo.clone(),
            search_attributes: a.search_attributes.clone(),
            header: a.header.clone(),
            // A child inherits its parent's priority field by field (Temporal does the same).
            priority: temper_workflow::priority::merge(info.priority.as_ref(), a.priority.as_ref()),
            user_metadata,
            ..Default::default()
        }),
        scheduled_by: String::new(),
        parent: Some(internal::ParentExecution {
            namespace_id: info.namespace_id.clone(),
            namespace: info.namespace.clone(),
            execution: Some(self_execution(key)),
            initiated_event_id,
            root_execution: info.root_execution.clone(),
        }),
    };
    match history
        .start_workflow_execution(tonic::Request::new(req))
        .await
    {
        Ok(resp) => {
            let run_id = resp.into_inner().run_id;
            let header = a.header.clone();
            let updated = shard
                .transact(key, |txn| {
                    child::on_started(
                        txn,
                        initiated_event_id,
                        &child_ns_id,
                        &run_id,
                        header.clone(),
                    )
                })
                .await?;
            // The parent closed while its child was being started: its close task did not
            // see this child, so apply the parent close policy here.
            if close::is_closed(&updated.state) {
                let started = pb::ChildExecutionInfo {
                    run_id,
                    namespace_id: child_ns_id,
                    started_event_id: -1,
                    ..ci
                };
                apply_policy(history, &started, key).await?;
            }
            Ok(())
        }
        Err(s) if s.code() == Code::AlreadyExists || is_final(&s) => {
            let cause = if s.code() == Code::AlreadyExists {
                StartChildWorkflowExecutionFailedCause::WorkflowAlreadyExists
            } else {
                StartChildWorkflowExecutionFailedCause::NamespaceNotFound
            };
            if s.code() != Code::AlreadyExists {
                tracing::warn!(error = %s, workflow_id = %a.workflow_id, "starting a child workflow failed");
            }
            shard
                .transact(key, |txn| {
                    child::on_start_failed(txn, initiated_event_id, &a, cause)
                })
                .await?;
            Ok(())
        }
        Err(s) => Err(retry_later("starting child workflow", s)),
    }
}

/// SignalExternal: signal the target, then record the outcome in the sender.
pub(crate) async fn signal_external(
    shard: &ShardContext,
    history: &HistoryClient,
    key: &ExecutionKey,
    initiated_event_id: i64,
) -> Result<(), HistoryError> {
    let ms = shard.snapshot(key).await?;
    let Some(si) = ms.signals.get(&initiated_event_id).cloned() else {
        return Ok(());
    };
    if close::is_closed(&ms) {
        return Ok(());
    }
    let a = initiated(
        shard,
        key,
        initiated_event_id,
        "SignalExternalWorkflowExecutionInitiated",
        |a| match a {
            Attributes::SignalExternalWorkflowExecutionInitiatedEventAttributes(a) => Some(a),
            _ => None,
        },
    )
    .await?;
    let ns_id = namespace_id(shard, &a.namespace, &a.namespace_id).await?;
    let ok = match &ns_id {
        None => false,
        Some(ns_id) => {
            let req = internal::SignalWorkflowExecutionRequest {
                namespace_id: ns_id.clone(),
                request: Some(ws::SignalWorkflowExecutionRequest {
                    namespace: a.namespace.clone(),
                    workflow_execution: a.workflow_execution.clone(),
                    signal_name: a.signal_name.clone(),
                    input: a.input.clone(),
                    identity: IDENTITY.into(),
                    request_id: si.request_id.clone(),
                    control: a.control.clone(),
                    header: a.header.clone(),
                    ..Default::default()
                }),
                external_execution: Some(self_execution(key)),
                child_workflow_only: a.child_workflow_only,
            };
            match history
                .signal_workflow_execution(tonic::Request::new(req))
                .await
            {
                Ok(_) => true,
                Err(s) if is_final(&s) => false,
                Err(s) => return Err(retry_later("signaling external workflow", s)),
            }
        }
    };
    let ns_id = ns_id.unwrap_or_default();
    shard
        .transact(key, |txn| {
            external::on_signal_result(txn, initiated_event_id, &a, &ns_id, ok)
        })
        .await?;
    Ok(())
}

/// CancelExternal: ask the target to cancel, then record the outcome in the requester.
pub(crate) async fn cancel_external(
    shard: &ShardContext,
    history: &HistoryClient,
    key: &ExecutionKey,
    initiated_event_id: i64,
) -> Result<(), HistoryError> {
    let ms = shard.snapshot(key).await?;
    let Some(ri) = ms.request_cancels.get(&initiated_event_id).cloned() else {
        return Ok(());
    };
    if close::is_closed(&ms) {
        return Ok(());
    }
    let a = initiated(
        shard,
        key,
        initiated_event_id,
        "RequestCancelExternalWorkflowExecutionInitiated",
        |a| match a {
            Attributes::RequestCancelExternalWorkflowExecutionInitiatedEventAttributes(a) => {
                Some(a)
            }
            _ => None,
        },
    )
    .await?;
    let ns_id = namespace_id(shard, &a.namespace, &a.namespace_id).await?;
    let ok = match &ns_id {
        None => false,
        Some(ns_id) => {
            let req = internal::RequestCancelWorkflowExecutionRequest {
                namespace_id: ns_id.clone(),
                request: Some(ws::RequestCancelWorkflowExecutionRequest {
                    namespace: a.namespace.clone(),
                    workflow_execution: a.workflow_execution.clone(),
                    identity: IDENTITY.into(),
                    request_id: ri.request_id.clone(),
                    reason: a.reason.clone(),
                    ..Default::default()
                }),
                external_execution: Some(self_execution(key)),
                external_initiated_event_id: initiated_event_id,
                child_workflow_only: a.child_workflow_only,
            };
            match history
                .request_cancel_workflow_execution(tonic::Request::new(req))
                .await
            {
                Ok(_) => true,
                Err(s) if is_final(&s) => false,
                Err(s) => return Err(retry_later("cancelling external workflow", s)),
            }
        }
    };
    let ns_id = ns_id.unwrap_or_default();
    shard
        .transact(key, |txn| {
            external::on_cancel_result(txn, initiated_event_id, &a, &ns_id, ok)
        })
        .await?;
    Ok(())
}

/// A close event that hands over to a new run (continue-as-new, retry, cron): the chain
/// goes on, so the parent hears nothing yet.
fn continues(ev: &HistoryEvent) -> bool {
    match &ev.attributes {
        Some(Attributes::WorkflowExecutionContinuedAsNewEventAttributes(_)) => true,
        Some(Attributes::WorkflowExecutionCompletedEventAttributes(a)) => {
            !a.new_execution_run_id.is_empty()
        }
        Some(Attributes::WorkflowExecutionFailedEventAttributes(a)) => {
            !a.new_execution_run_id.is_empty()
        }
        Some(Attributes::WorkflowExecutionTimedOutEventAttributes(a)) => {
            !a.new_execution_run_id.is_empty()
        }
        _ => false,
    }
}

/// CloseExecution: tell the parent (unless the chain continues), then apply the parent
/// close policy to every child still running; neither for a run a reset replaced.
pub(crate) async fn on_close(
    shard: &ShardContext,
    history: &HistoryClient,
    key: &ExecutionKey,
) -> Result<(), HistoryError> {
    let ms = shard.snapshot(key).await?;
    let info = ms.execution_info.clone().unwrap_or_default();
    if !info.reset_run_id.is_empty() {
        // Terminated by a reset: the run that replaced it goes on for the parent, and takes
        // the children over, so they keep running (as in Temporal).
        return Ok(());
    }
    if let Some(parent) = &info.parent
        && info.completion_event_id > 0
        && let Some(close_event) = event(shard, key, info.completion_event_id).await?
        && !continues(&close_event)
    {
        let req = internal::RecordChildExecutionCompletedRequest {
            namespace_id: parent.namespace_id.clone(),
            parent_execution: parent.execution.clone(),
            parent_initiated_event_id: parent.initiated_event_id,
            child_execution: Some(self_execution(key)),
            close_event: Some(close_event),
        };
        match history
            .record_child_execution_completed(tonic::Request::new(req))
            .await
        {
            Ok(_) => {}
            // The parent is gone.
            Err(s) if s.code() == Code::NotFound => {}
            Err(s) => return Err(retry_later("recording child completion in parent", s)),
        }
    }
    if !info.scheduled_by.is_empty()
        && info.completion_event_id > 0
        && let Some(close_event) = event(shard, key, info.completion_event_id).await?
        && !continues(&close_event)
    {
        report_to_schedule(history, &info, close_event).await?;
    }
    apply_parent_close_policy(history, &ms, key).await
}

/// A chain a schedule started closed: tell the schedule (its overlap policy, buffered starts,
/// recent actions and the next run's last completion result depend on it).
async fn report_to_schedule(
    history: &HistoryClient,
    info: &pb::ExecutionInfo,
    close_event: HistoryEvent,
) -> Result<(), HistoryError> {
    use temper_proto::temporal::api::enums::v1::WorkflowExecutionStatus as S;
    let (status, result, failure) = match close_event.attributes {
        Some(Attributes::WorkflowExecutionCompletedEventAttributes(a)) => {
            (S::Completed, a.result, None)
        }
        Some(Attributes::WorkflowExecutionFailedEventAttributes(a)) => (S::Failed, None, a.failure),
        Some(Attributes::WorkflowExecutionTimedOutEventAttributes(_)) => (S::TimedOut, None, None),
        Some(Attributes::WorkflowExecutionCanceledEventAttributes(_)) => (S::Canceled, None, None),
        Some(Attributes::WorkflowExecutionTerminatedEventAttributes(_)) => {
            (S::Terminated, None, None)
        }
        Some(Attributes::WorkflowExecutionContinuedAsNewEventAttributes(_)) => {
            (S::ContinuedAsNew, None, None)
        }
        _ => (S::Unspecified, None, None),
    };
    let req = internal::ScheduleCallRequest {
        namespace_id: info.namespace_id.clone(),
        namespace: info.namespace.clone(),
        schedule_id: info.scheduled_by.clone(),
        call: Some(internal::schedule_call_request::Call::WorkflowClosed(
            internal::ScheduledWorkflowClosed {
                workflow_id: info.workflow_id.clone(),
                first_run_id: info.first_run_id.clone(),
                status: status as i32,
                result,
                failure,
            },
        )),
    };
    match history.schedule_call(tonic::Request::new(req)).await {
        Ok(_) => Ok(()),
        // The schedule is gone.
        Err(s) if s.code() == Code::NotFound => Ok(()),
        Err(s) => Err(retry_later("reporting a scheduled workflow's close", s)),
    }
}

async fn apply_parent_close_policy(
    history: &HistoryClient,
    ms: &pb::MutableState,
    key: &ExecutionKey,
) -> Result<(), HistoryError> {
    for ci in ms.children.values() {
        if ci.started_event_id == 0 || ci.namespace_id.is_empty() {
            continue;
        }
        apply_policy(history, ci, key).await?;
    }
    Ok(())
}

/// Terminate or cancel one started child of the closed run `key`, as its policy says.
async fn apply_policy(
    history: &HistoryClient,
    ci: &pb::ChildExecutionInfo,
    key: &ExecutionKey,
) -> Result<(), HistoryError> {
    let execution = Some(WorkflowExecution {
        workflow_id: ci.workflow_id.clone(),
        run_id: String::new(),
    });
    let result = match ParentClosePolicy::try_from(ci.parent_close_policy) {
        Ok(ParentClosePolicy::Terminate) => history
            .terminate_workflow_execution(tonic::Request::new(
                internal::TerminateWorkflowExecutionRequest {
                    namespace_id: ci.namespace_id.clone(),
                    request: Some(ws::TerminateWorkflowExecutionRequest {
                        namespace: ci.namespace.clone(),
                        workflow_execution: execution,
                        reason: "by parent close policy".into(),
                        identity: IDENTITY.into(),
                        first_execution_run_id: ci.run_id.clone(),
                        ..Default::default()
                    }),
                },
            ))
            .await
            .map(|_| ()),
        Ok(ParentClosePolicy::RequestCancel) => history
            .request_cancel_workflow_execution(tonic::Request::new(
                internal::RequestCancelWorkflowExecutionRequest {
                    namespace_id: ci.namespace_id.clone(),
                    request: Some(ws::RequestCancelWorkflowExecutionRequest {
                        namespace: ci.namespace.clone(),
                        workflow_execution: execution,
                        identity: IDENTITY.into(),
                        request_id: format!("{}-close-{}", key.run_id, ci.initiated_event_id),
                        first_execution_run_id: ci.run_id.clone(),
                        reason: "by parent close policy".into(),
                        ..Default::default()
                    }),
                    // The child's cancel request names its parent, as in Temporal.
                    external_execution: Some(self_execution(key)),
                    ..Default::default()
                },
            ))
            .await
            .map(|_| ()),
        _ => Ok(()),
    };
    match result {
        Ok(()) => Ok(()),
        Err(s) if is_final(&s) => Ok(()),
        Err(s) => Err(retry_later("applying parent close policy", s)),
    }
}

/// ScheduleStart: carry out the starts a schedule's run asked for, one at a time in the
/// order it asked (so its recent actions keep that order), each idempotent by its request
/// id, telling the scheduler how each went. Any task of the run does all of them; a start
/// another task already reported is skipped.
pub(crate) async fn schedule_starts(
    shard: &ShardContext,
    history: &HistoryClient,
    key: &ExecutionKey,
) -> Result<(), HistoryError> {
    // Bounded: each round reports one start, and a schedule asks for at most a few at once.
    for _ in 0..10_000 {
        let ms = shard.snapshot(key).await?;
        if close::is_closed(&ms) {
            return Ok(());
        }
        let Some((request_id, request)) = schedule::next_pending_start(&ms) else {
            return Ok(());
        };
        schedule_start(shard, history, key, &ms, &request_id, request).await?;
    }
    Ok(())
}

async fn schedule_start(
    shard: &ShardContext,
    history: &HistoryClient,
    key: &ExecutionKey,
    ms: &pb::MutableState,
    request_id: &str,
    request: ws::StartWorkflowExecutionRequest,
) -> Result<(), HistoryError> {
    let info = ms.execution_info.clone().unwrap_or_default();
    let schedule_id = key
        .workflow_id
        .strip_prefix(temper_types::SCHEDULER_WORKFLOW_ID_PREFIX)
        .unwrap_or(&key.workflow_id)
        .to_owned();
    let req = internal::StartWorkflowExecutionRequest {
        namespace_id: info.namespace_id.clone(),
        namespace: info.namespace.clone(),
        request: Some(request),
        parent: None,
        scheduled_by: schedule_id,
    };
    let outcome = match history
        .start_workflow_execution(tonic::Request::new(req))
        .await
    {
        Ok(resp) => schedule::StartOutcome::Started {
            run_id: resp.into_inner().run_id,
            start_time: shard.now(),
        },
        Err(s) if s.code() == Code::AlreadyExists || is_final(&s) => {
            schedule::StartOutcome::Failed {
                already_started: s.code() == Code::AlreadyExists,
                message: s.message().to_owned(),
            }
        }
        Err(s) if schedule::start_expired(ms, request_id, shard.now()) => {
            tracing::warn!(error = %s, workflow_id = %key.workflow_id, "a schedule gave up starting its workflow");
            schedule::StartOutcome::Failed {
                already_started: false,
                message: s.message().to_owned(),
            }
        }
        Err(s) => return Err(retry_later("starting a scheduled workflow", s)),
    };
    shard
        .transact(key, |txn| {
            schedule::on_start_outcome(txn, request_id, outcome.clone())
        })
        .await?;
    Ok(())
}

/// ScheduleCancel / ScheduleTerminate: the overlap policy of the schedule whose run is `key`
/// stops the workflow it started before.
pub(crate) async fn schedule_stop_other(
    history: &HistoryClient,
    key: &ExecutionKey,
    target: WorkflowExecution,
    terminate: bool,
) -> Result<(), HistoryError> {
    let namespace_id = key.namespace_id.0.clone();
    let result = if terminate {
        history
            .terminate_workflow_execution(tonic::Request::new(
                internal::TerminateWorkflowExecutionRequest {
                    namespace_id,
                    request: Some(ws::TerminateWorkflowExecutionRequest {
                        workflow_execution: Some(WorkflowExecution {
                            workflow_id: target.workflow_id.clone(),
                            run_id: String::new(),
                        }),
                        first_execution_run_id: target.run_id.clone(),
                        reason: "terminated by schedule overlap policy".into(),
                        identity: IDENTITY.into(),
                        ..Default::default()
                    }),
                },
            ))
            .await
            .map(|_| ())
    } else {
        history
            .request_cancel_workflow_execution(tonic::Request::new(
                internal::RequestCancelWorkflowExecutionRequest {
                    namespace_id,
                    request: Some(ws::RequestCancelWorkflowExecutionRequest {
                        workflow_execution: Some(WorkflowExecution {
                            workflow_id: target.workflow_id.clone(),
                            run_id: String::new(),
                        }),
                        first_execution_run_id: target.run_id.clone(),
                        identity: IDENTITY.into(),
                        request_id: format!("{}-cancel-{}", key.run_id, target.run_id),
                        reason: "cancelled by schedule overlap policy".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ))
            .await
            .map(|_| ())
    };
    match result {
        Ok(()) => Ok(()),
        Err(s) if is_final(&s) => Ok(()),
        Err(s) => Err(retry_later("stopping a scheduled workflow", s)),
    }
}
