//! Closing a run: the Complete/Fail/CancelWorkflowExecution commands, termination, run
//! timeout; and the cancel request that asks a workflow to cancel itself.

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
    WorkflowTaskFailedEventAttributes,
};

use crate::state::STATE_COMPLETED;
use crate::{Txn, WorkflowError, continuation, pb, workflow_task};

/// Mark the run closed after its close event `event_id` was written.
pub(crate) fn mark_closed(txn: &mut Txn<'_>, status: WorkflowExecutionStatus, event_id: i64) {
    let now_ts = txn.now_ts;
    let info = txn.info_mut();
    info.status = status as i32;
    info.state = STATE_COMPLETED;
    info.close_time = Some(now_ts);
    info.completion_event_id = event_id;
    txn.ms.workflow_task = None;
    let t = txn.transfer_task(pb::TransferTaskKind::CloseExecution);
    txn.add_transfer_task(t);
    txn.visibility_task(pb::VisibilityTaskKind::Close);
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
    let id = txn.write(
        WorkflowExecutionCompletedEventAttributes {
            result: a.result.clone(),
            workflow_task_completed_event_id: wft_completed_event_id,
            new_execution_run_id,
        }
        .into(),
    );
    mark_closed(txn, WorkflowExecutionStatus::Completed, id);
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
    let id = txn.write(
        WorkflowExecutionFailedEventAttributes {
            failure: a.failure.clone(),
            retry_state: retry_state as i32,
            workflow_task_completed_event_id: wft_completed_event_id,
            new_execution_run_id,
        }
        .into(),
    );
    mark_closed(txn, WorkflowExecutionStatus::Failed, id);
}

pub fn cancel(
    txn: &mut Txn<'_>,
    a: &CancelWorkflowExecutionCommandAttributes,
    wft_completed_event_id: i64,
) {
    let id = txn.write(
        WorkflowExecutionCanceledEventAttributes {
            workflow_task_completed_event_id: wft_completed_event_id,
            details: a.details.clone(),
        }
        .into(),
    );
    mark_closed(txn, WorkflowExecutionStatus::Canceled, id);
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
        txn.ms.workflow_task = None;
        txn.write(
            WorkflowTaskFailedEventAttributes {
                scheduled_event_id: wt.scheduled_event_id,
                started_event_id: wt.started_event_id,
                cause: WorkflowTaskFailedCause::ForceCloseCommand as i32,
                identity: IDENTITY_HISTORY_SERVICE.to_string(),
                ..Default::default()
            }
            .into(),
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
    let id = txn.write(
        WorkflowExecutionTerminatedEventAttributes {
            reason: reason.to_string(),
            details,
            identity: identity.to_string(),
        }
        .into(),
    );
    mark_closed(txn, WorkflowExecutionStatus::Terminated, id);
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
    let id = txn.write(
        WorkflowExecutionTimedOutEventAttributes {
            retry_state: retry_state as i32,
            new_execution_run_id,
        }
        .into(),
    );
    mark_closed(txn, WorkflowExecutionStatus::TimedOut, id);
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
    {
        let info = txn.info_mut();
        info.cancel_requested = true;
        info.cancel_request_id = request_id.to_string();
    }
    let (external_workflow_execution, external_initiated_event_id) = match external {
        Some((e, id)) => (Some(e), id),
        None => (None, 0),
    };
    txn.write_external(
        WorkflowExecutionCancelRequestedEventAttributes {
            cause: reason.to_string(),
            external_initiated_event_id,
            external_workflow_execution,
            identity: identity.to_string(),
        }
        .into(),
    );
    workflow_task::schedule_if_needed(txn);
    Ok(())
}
