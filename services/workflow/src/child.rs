//! Child workflows: the StartChildWorkflowExecution command, the child's start (or the
//! failure to start it) and its close, as recorded in the parent; and how each of those
//! events changes the parent's state.

// The Temporal API marks namespace and control deprecated, but SDKs and the server still fill them.
#![allow(deprecated)]

use temper_proto::temporal::api::command::v1::StartChildWorkflowExecutionCommandAttributes;
use temper_proto::temporal::api::common::v1::WorkflowExecution;
use temper_proto::temporal::api::enums::v1::{
    ParentClosePolicy, StartChildWorkflowExecutionFailedCause, TaskQueueKind,
    WorkflowTaskFailedCause,
};
use temper_proto::temporal::api::history::v1::{
    ChildWorkflowExecutionCanceledEventAttributes, ChildWorkflowExecutionCompletedEventAttributes,
    ChildWorkflowExecutionFailedEventAttributes, ChildWorkflowExecutionStartedEventAttributes,
    ChildWorkflowExecutionTerminatedEventAttributes, ChildWorkflowExecutionTimedOutEventAttributes,
    HistoryEvent, StartChildWorkflowExecutionFailedEventAttributes,
    StartChildWorkflowExecutionInitiatedEventAttributes, history_event::Attributes,
};
use temper_proto::temporal::api::taskqueue::v1::TaskQueue;

use crate::BadCommand;
use crate::events::At;
use crate::state::{MAX_ID_LENGTH, info_mut};
use crate::time::{dur_or_zero, is_negative};
use crate::{Txn, WorkflowError, pb, retry, workflow_task};

/// Marks a child whose started event is buffered (its id is not known yet).
pub const STARTED_BUFFERED: i64 = crate::events::BUFFERED_EVENT_ID;

/// The StartChildWorkflowExecution command.
pub fn start(
    txn: &mut Txn<'_>,
    a: &StartChildWorkflowExecutionCommandAttributes,
    wft_completed_event_id: i64,
) -> Result<(), BadCommand> {
    let bad = |m: &str| {
        Err(BadCommand::new(
            WorkflowTaskFailedCause::BadStartChildExecutionAttributes,
            m,
        ))
    };
    if a.workflow_id.is_empty() {
        return bad("Required field WorkflowId is not set.");
    }
    if a.workflow_id.len() > MAX_ID_LENGTH {
        return bad("WorkflowId exceeds length limit.");
    }
    let Some(wt) = a.workflow_type.as_ref().filter(|t| !t.name.is_empty()) else {
        return bad("Required field WorkflowType is not set.");
    };
    if wt.name.len() > MAX_ID_LENGTH {
        return bad("WorkflowType exceeds length limit.");
    }
    if let Err(m) = crate::priority::validate(a.priority.as_ref()) {
        return bad(m);
    }
    if is_negative(&a.workflow_execution_timeout)
        || is_negative(&a.workflow_run_timeout)
        || is_negative(&a.workflow_task_timeout)
    {
        return bad("Invalid timeout on StartChildWorkflowExecutionCommandAttributes.");
    }
    if let Some(p) = &a.retry_policy
        && let Err(m) = retry::validate_policy(p)
    {
        return bad(&m);
    }
    if !a.cron_schedule.is_empty()
        && let Err(m) = crate::cron::parse(&a.cron_schedule)
    {
        return bad(&m);
    }
    if let Some(input) = &a.input {
        let size: usize = input.payloads.iter().map(|p| p.data.len()).sum();
        if size > txn.limits.max_payload_bytes {
            return bad("StartChildWorkflowExecutionCommandAttributes.Input exceeds size limit.");
        }
    }
    if txn.ms.children.len() >= txn.limits.max_pending_children {
        return Err(BadCommand::new(
            WorkflowTaskFailedCause::PendingChildWorkflowsLimitExceeded,
            "the number of pending child workflows has reached the limit",
        ));
    }
    let info = txn.info();
    let (namespace, namespace_id) = if a.namespace.is_empty() || a.namespace == info.namespace {
        (info.namespace.clone(), info.namespace_id.clone())
    } else {
        // Another namespace: its id is looked up when the child is started.
        (a.namespace.clone(), String::new())
    };
    let task_queue = match &a.task_queue {
        Some(q) if !q.name.is_empty() => TaskQueue {
            name: q.name.clone(),
            kind: TaskQueueKind::Normal as i32,
            ..Default::default()
        },
        _ => TaskQueue {
            name: info
                .task_queue
                .as_ref()
                .map(|q| q.name.clone())
                .unwrap_or_default(),
            kind: TaskQueueKind::Normal as i32,
            ..Default::default()
        },
    };
    // The run and task timeouts are recorded as the child will have them (present even
    // when zero), as the Temporal server does; the execution timeout as given.
    let (_, run_timeout, task_timeout) = crate::start::effective_timeouts(
        &a.workflow_execution_timeout,
        &a.workflow_run_timeout,
        &a.workflow_task_timeout,
        txn.limits,
    );
    let policy = match ParentClosePolicy::try_from(a.parent_close_policy) {
        Ok(ParentClosePolicy::Unspecified) | Err(_) => ParentClosePolicy::Terminate,
        Ok(p) => p,
    };
    let id = txn.write_applied(
        StartChildWorkflowExecutionInitiatedEventAttributes {
            namespace,
            namespace_id,
            workflow_id: a.workflow_id.clone(),
            workflow_type: a.workflow_type.clone(),
            task_queue: Some(task_queue),
            input: a.input.clone(),
            workflow_execution_timeout: a.workflow_execution_timeout,
            workflow_run_timeout: dur_or_zero(run_timeout),
            workflow_task_timeout: dur_or_zero(task_timeout),
            parent_close_policy: policy as i32,
            control: a.control.clone(),
            workflow_task_completed_event_id: wft_completed_event_id,
            workflow_id_reuse_policy: a.workflow_id_reuse_policy,
            retry_policy: a.retry_policy.clone(),
            cron_schedule: a.cron_schedule.clone(),
            header: a.header.clone(),
            memo: crate::properties::recorded_memo(&a.memo),
            search_attributes: crate::properties::recorded_search_attributes(&a.search_attributes),
            inherit_build_id: a.inherit_build_id,
            priority: a.priority.clone(),
            ..Default::default()
        },
        apply_initiated,
    );
    let mut t = txn.transfer_task(pb::TransferTaskKind::StartChild);
    t.scheduled_event_id = id;
    txn.add_transfer_task(t);
    Ok(())
}

/// The request id that makes a child's start idempotent: the parent run and the initiated
/// event.
pub(crate) fn create_request_id(parent_run_id: &str, initiated_event_id: i64) -> String {
    format!("{parent_run_id}-child-{initiated_event_id}")
}

fn pending_child(txn: &Txn<'_>, initiated_event_id: i64) -> Option<pb::ChildExecutionInfo> {
    if !txn.is_running() {
        return None;
    }
    txn.ms.children.get(&initiated_event_id).cloned()
}

/// The child was started: `ChildWorkflowExecutionStarted`. A repeat is a no-op.
pub fn on_started(
    txn: &mut Txn<'_>,
    initiated_event_id: i64,
    namespace_id: &str,
    run_id: &str,
    header: Option<temper_proto::temporal::api::common::v1::Header>,
) -> Result<(), WorkflowError> {
    let Some(child) = pending_child(txn, initiated_event_id) else {
        return Ok(());
    };
    if child.started_event_id != 0 {
        return Ok(());
    }
    txn.write_external_applied(
        ChildWorkflowExecutionStartedEventAttributes {
            namespace: child.namespace.clone(),
            namespace_id: namespace_id.to_string(),
            initiated_event_id,
            workflow_execution: Some(WorkflowExecution {
                workflow_id: child.workflow_id.clone(),
                run_id: run_id.to_string(),
            }),
            workflow_type: child.workflow_type.clone(),
            header,
        },
        apply_started,
    );
    workflow_task::schedule_if_needed(txn);
    Ok(())
}

/// The child could not be started: `StartChildWorkflowExecutionFailed`.
pub fn on_start_failed(
    txn: &mut Txn<'_>,
    initiated_event_id: i64,
    initiated: &StartChildWorkflowExecutionInitiatedEventAttributes,
    cause: StartChildWorkflowExecutionFailedCause,
) -> Result<(), WorkflowError> {
    let Some(child) = pending_child(txn, initiated_event_id) else {
        return Ok(());
    };
    if child.started_event_id != 0 {
        return Ok(());
    }
    txn.write_external_applied(
        StartChildWorkflowExecutionFailedEventAttributes {
            namespace: child.namespace,
            namespace_id: child.namespace_id,
            workflow_id: child.workflow_id,
            workflow_type: child.workflow_type,
            cause: cause as i32,
            control: initiated.control.clone(),
            initiated_event_id,
            workflow_task_completed_event_id: initiated.workflow_task_completed_event_id,
        },
        apply_start_failed,
    );
    workflow_task::schedule_if_needed(txn);
    Ok(())
}

/// The child's chain closed with `close_event`: the matching Child* event in the parent.
/// Until the child's start is recorded the caller must retry ([`WorkflowError::Unavailable`]).
pub fn on_closed(
    txn: &mut Txn<'_>,
    initiated_event_id: i64,
    child_execution: WorkflowExecution,
    close_event: &HistoryEvent,
) -> Result<(), WorkflowError> {
    let Some(child) = pending_child(txn, initiated_event_id) else {
        return Ok(());
    };
    if child.workflow_id != child_execution.workflow_id {
        return Ok(());
    }
    if child.started_event_id == 0 {
        return Err(WorkflowError::Unavailable(
            "the child's start is not recorded in its parent yet".into(),
        ));
    }
    let (namespace, namespace_id, workflow_type) = (
        child.namespace.clone(),
        child.namespace_id.clone(),
        child.workflow_type.clone(),
    );
    let started_event_id = child.started_event_id;
    let execution = Some(child_execution);
    match &close_event.attributes {
        Some(Attributes::WorkflowExecutionCompletedEventAttributes(a)) => {
            txn.write_external_applied(
                ChildWorkflowExecutionCompletedEventAttributes {
                    result: a.result.clone(),
                    namespace,
                    namespace_id,
                    workflow_execution: execution,
                    workflow_type,
                    initiated_event_id,
                    started_event_id,
                },
                apply_completed,
            );
        }
        Some(Attributes::WorkflowExecutionFailedEventAttributes(a)) => {
            txn.write_external_applied(
                ChildWorkflowExecutionFailedEventAttributes {
                    failure: a.failure.clone(),
                    namespace,
                    namespace_id,
                    workflow_execution: execution,
                    workflow_type,
                    initiated_event_id,
                    started_event_id,
                    retry_state: a.retry_state,
                },
                apply_failed,
            );
        }
        Some(Attributes::WorkflowExecutionCanceledEventAttributes(a)) => {
            txn.write_external_applied(
                ChildWorkflowExecutionCanceledEventAttributes {
                    details: a.details.clone(),
                    namespace,
                    namespace_id,
                    workflow_execution: execution,
                    workflow_type,
                    initiated_event_id,
                    started_event_id,
                },
                apply_canceled,
            );
        }
        Some(Attributes::WorkflowExecutionTimedOutEventAttributes(a)) => {
            txn.write_external_applied(
                ChildWorkflowExecutionTimedOutEventAttributes {
                    namespace,
                    namespace_id,
                    workflow_execution: execution,
                    workflow_type,
                    initiated_event_id,
                    started_event_id,
                    retry_state: a.retry_state,
                },
                apply_timed_out,
            );
        }
        Some(Attributes::WorkflowExecutionTerminatedEventAttributes(_)) => {
            txn.write_external_applied(
                ChildWorkflowExecutionTerminatedEventAttributes {
                    namespace,
                    namespace_id,
                    workflow_execution: execution,
                    workflow_type,
                    initiated_event_id,
                    started_event_id,
                },
                apply_terminated,
            );
        }
        _ => {
            return Err(WorkflowError::InvalidArgument(
                "the child's close event is not a close event".into(),
            ));
        }
    }
    workflow_task::schedule_if_needed(txn);
    Ok(())
}

/// StartChildWorkflowExecutionInitiated: the child is pending until it starts (or fails to).
pub(crate) fn apply_initiated(
    ms: &mut pb::MutableState,
    at: At,
    a: &StartChildWorkflowExecutionInitiatedEventAttributes,
) {
    let info = info_mut(ms);
    info.child_count += 1;
    let create_request_id = create_request_id(&info.run_id, at.id);
    ms.children.insert(
        at.id,
        pb::ChildExecutionInfo {
            initiated_event_id: at.id,
            started_event_id: 0,
            namespace: a.namespace.clone(),
            namespace_id: a.namespace_id.clone(),
            workflow_id: a.workflow_id.clone(),
            run_id: String::new(),
            workflow_type: a.workflow_type.clone(),
            parent_close_policy: a.parent_close_policy,
            create_request_id,
        },
    );
}

/// ChildWorkflowExecutionStarted: the child runs as the event's run ([`STARTED_BUFFERED`]
/// while the event is buffered).
pub(crate) fn apply_started(
    ms: &mut pb::MutableState,
    at: At,
    a: &ChildWorkflowExecutionStartedEventAttributes,
) {
    if let Some(c) = ms.children.get_mut(&a.initiated_event_id) {
        c.started_event_id = at.id;
        c.run_id = a
            .workflow_execution
            .as_ref()
            .map(|e| e.run_id.clone())
            .unwrap_or_default();
        c.namespace_id = a.namespace_id.clone();
    }
}

/// StartChildWorkflowExecutionFailed.
pub(crate) fn apply_start_failed(
    ms: &mut pb::MutableState,
    _: At,
    a: &StartChildWorkflowExecutionFailedEventAttributes,
) {
    ms.children.remove(&a.initiated_event_id);
}

/// ChildWorkflowExecutionCompleted.
pub(crate) fn apply_completed(
    ms: &mut pb::MutableState,
    _: At,
    a: &ChildWorkflowExecutionCompletedEventAttributes,
) {
    ms.children.remove(&a.initiated_event_id);
}

/// ChildWorkflowExecutionFailed.
pub(crate) fn apply_failed(
    ms: &mut pb::MutableState,
    _: At,
    a: &ChildWorkflowExecutionFailedEventAttributes,
) {
    ms.children.remove(&a.initiated_event_id);
}

/// ChildWorkflowExecutionCanceled.
pub(crate) fn apply_canceled(
    ms: &mut pb::MutableState,
    _: At,
    a: &ChildWorkflowExecutionCanceledEventAttributes,
) {
    ms.children.remove(&a.initiated_event_id);
}

/// ChildWorkflowExecutionTimedOut.
pub(crate) fn apply_timed_out(
    ms: &mut pb::MutableState,
    _: At,
    a: &ChildWorkflowExecutionTimedOutEventAttributes,
) {
    ms.children.remove(&a.initiated_event_id);
}

/// ChildWorkflowExecutionTerminated.
pub(crate) fn apply_terminated(
    ms: &mut pb::MutableState,
    _: At,
    a: &ChildWorkflowExecutionTerminatedEventAttributes,
) {
    ms.children.remove(&a.initiated_event_id);
}
