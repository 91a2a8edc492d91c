//! Closing a run: the Complete/Fail/CancelWorkflowExecution commands, termination, run
//! timeout; and the cancel request that asks a workflow to cancel itself. How the close
//! events and the cancel request change the state.

use temper_proto::temporal::api::command::v1::{
    CancelWorkflowExecutionCommandAttributes, CompleteWorkflowExecutionCommandAttributes,
    FailWorkflowExecutionCommandAttributes,
};
use temper_proto::temporal::api::common::v1::{Payloads, WorkflowExecution};
use temper_proto::temporal::api::enums::v1::{WorkflowExecutionStatus, WorkflowTaskFailedCause};
use temper_proto::temporal::api::history::v1::{
    WorkflowExecutionCancelRequestedEventAttributes, WorkflowExecutionCanceledEventAttributes,
    WorkflowExecutionCompletedEventAttributes, WorkflowExecutionFailedEventAttributes,
    WorkflowExecutionTerminatedEventAttributes, WorkflowExecutionTimedOutEventAttributes,
    WorkflowTaskFailedEventAttributes, history_event::Attributes,
};

use crate::events::At;
use crate::state::{STATE_COMPLETED, info_mut};
use crate::{Txn, WorkflowError, continuation, pb, workflow_task};

/// Write the run's close event `attrs`, which ends it with `status`, and the tasks that
/// follow a close.
pub(crate) fn write_close<A: Into<Attributes>>(
    txn: &mut Txn<'_>,
    attrs: A,
    status: WorkflowExecutionStatus,
) {
    txn.write_applied(attrs, |ms, at, _| apply_closed(ms, at, status));
    let t = txn.transfer_task(pb::TransferTaskKind::CloseExecution);
    txn.add_transfer_task(t);
    if !txn.ms.completion_callbacks.is_empty() {
        let t = txn.transfer_task(pb::TransferTaskKind::CompletionCallbacks);
        txn.add_transfer_task(t);
    }
    crate::update::call_callbacks_on_close(txn);
    txn.visibility_task(pb::VisibilityTaskKind::Close);
}

/// A close event (completed, failed, timed out, canceled, terminated, continued as new):
/// the run is closed with `status`, and no workflow task is pending any more.
pub(crate) fn apply_closed(ms: &mut pb::MutableState, at: At, status: WorkflowExecutionStatus) {
    let info = info_mut(ms);
    info.status = status as i32;
    info.state = STATE_COMPLETED;
    info.close_time = Some(at.time);
    info.completion_event_id = at.id;
    ms.workflow_task = None;
}

/// WorkflowExecutionCancelRequested: the workflow is asked to cancel itself.
pub(crate) fn apply_cancel_requested(
    ms: &mut pb::MutableState,
    _: At,
    _: &WorkflowExecutionCancelRequestedEventAttributes,
) {
    info_mut(ms).cancel_requested = true;
}

/// Whether the run is closed.
pub fn is_closed(ms: &pb::MutableState) -> bool {
    ms.execution_info
        .as_ref()
        .is_some_and(|i| i.status != WorkflowExecutionStatus::Running as i32)
}

pub fn complete(
    txn: &mut Txn<'_>,
    a: &CompleteWorkflowExecutionCommandAttributes,
    wft_completed_event_id: i64,
) {
    let next = continuation::after_completion(txn, a.result.clone());
    let new_execution_run_id = next
        .map(|n| continuation::start_next(txn, n))
        .unwrap_or_default();
    write_close(
        txn,
        WorkflowExecutionCompletedEventAttributes {
            result: a.result.clone(),
            workflow_task_completed_event_id: wft_completed_event_id,
            new_execution_run_id,
        },
        WorkflowExecutionStatus::Completed,
    );
}

pub fn fail(
    txn: &mut Txn<'_>,
    a: &FailWorkflowExecutionCommandAttributes,
    wft_completed_event_id: i64,
) {
    let (next, retry_state) = continuation::after_failure(txn, a.failure.as_ref());
    let new_execution_run_id = next
        .map(|n| continuation::start_next(txn, n))
        .unwrap_or_default();
    write_close(
        txn,
        WorkflowExecutionFailedEventAttributes {
            failure: a.failure.clone(),
            retry_state: retry_state as i32,
            workflow_task_completed_event_id: wft_completed_event_id,
            new_execution_run_id,
        },
        WorkflowExecutionStatus::Failed,
    );
}

pub fn cancel(
    txn: &mut Txn<'_>,
    a: &CancelWorkflowExecutionCommandAttributes,
    wft_completed_event_id: i64,
) {
    write_close(
        txn,
        WorkflowExecutionCanceledEventAttributes {
            workflow_task_completed_event_id: wft_completed_event_id,
            details: a.details.clone(),
        },
        WorkflowExecutionStatus::Canceled,
    );
}

/// The identity the Temporal server writes on events it makes itself (a workflow task
/// force-closed, a run terminated by a delete or a size limit).
pub const IDENTITY_HISTORY_SERVICE: &str = "history-service";

/// The reason a TerminateWorkflowExecution without one records, as from the Temporal server.
pub const DEFAULT_TERMINATE_REASON: &str = "terminated by user via frontend";

/// End a workflow task in flight because the run is being closed from outside, then write
/// the events buffered during it.
fn force_end_workflow_task(txn: &mut Txn<'_>) {
    if let Some(wt) = txn.ms.workflow_task.clone()
        && wt.started_event_id > 0
    {
        txn.write_applied(
            WorkflowTaskFailedEventAttributes {
                scheduled_event_id: wt.scheduled_event_id,
                started_event_id: wt.started_event_id,
                cause: WorkflowTaskFailedCause::ForceCloseCommand as i32,
                identity: IDENTITY_HISTORY_SERVICE.to_string(),
                ..Default::default()
            },
            workflow_task::apply_failed,
        );
    }
    txn.flush_buffered();
}

/// TerminateWorkflowExecution.
pub fn terminate(
    txn: &mut Txn<'_>,
    reason: &str,
    details: Option<Payloads>,
    identity: &str,
) -> Result<(), WorkflowError> {
    if !txn.is_running() {
        return Err(WorkflowError::AlreadyCompleted);
    }
    force_end_workflow_task(txn);
    write_close(
        txn,
        WorkflowExecutionTerminatedEventAttributes {
            reason: reason.to_string(),
            details,
            identity: identity.to_string(),
        },
        WorkflowExecutionStatus::Terminated,
    );
    Ok(())
}

/// The run (or execution) timeout fired.
pub fn on_run_timeout(txn: &mut Txn<'_>) {
    if !txn.is_running() {
        return;
    }
    force_end_workflow_task(txn);
    let (next, retry_state) = continuation::after_failure(txn, None);
    let new_execution_run_id = next
        .map(|n| continuation::start_next(txn, n))
        .unwrap_or_default();
    write_close(
        txn,
        WorkflowExecutionTimedOutEventAttributes {
            retry_state: retry_state as i32,
            new_execution_run_id,
        },
        WorkflowExecutionStatus::TimedOut,
    );
}

/// RequestCancelWorkflowExecution: record the request and let the workflow react.
/// A repeated request (same request id, or any request once one was recorded) is a no-op.
pub fn request_cancel(
    txn: &mut Txn<'_>,
    reason: &str,
    identity: &str,
    request_id: &str,
) -> Result<(), WorkflowError> {
    request_cancel_from(txn, reason, identity, request_id, None)
}

/// [`request_cancel`], naming the workflow that asked and its initiated event
/// (RequestCancelExternalWorkflowExecution), if a workflow asked.
pub fn request_cancel_from(
    txn: &mut Txn<'_>,
    reason: &str,
    identity: &str,
    request_id: &str,
    external: Option<(WorkflowExecution, i64)>,
) -> Result<(), WorkflowError> {
    if !txn.is_running() {
        return Err(WorkflowError::AlreadyCompleted);
    }
    if txn.info().cancel_requested {
        return Ok(());
    }
    // The request id is not in the event: only the live state knows it.
    txn.info_mut().cancel_request_id = request_id.to_string();
    let (external_workflow_execution, external_initiated_event_id) = match external {
        Some((e, id)) => (Some(e), id),
        None => (None, 0),
    };
    txn.write_external_applied(
        WorkflowExecutionCancelRequestedEventAttributes {
            cause: reason.to_string(),
            external_initiated_event_id,
            external_workflow_execution,
            identity: identity.to_string(),
        },
        apply_cancel_requested,
    );
    workflow_task::schedule_if_needed(txn);
    Ok(())
}
