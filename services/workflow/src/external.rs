//! Workflows acting on other workflows: the SignalExternalWorkflowExecution and
//! RequestCancelExternalWorkflowExecution commands, and their outcomes; and how each of
//! their events changes the state.

// The Temporal API marks namespace and control deprecated, but SDKs and the server still fill them.
#![allow(deprecated)]

use temper_proto::temporal::api::command::v1::{
    RequestCancelExternalWorkflowExecutionCommandAttributes,
    SignalExternalWorkflowExecutionCommandAttributes,
};
use temper_proto::temporal::api::common::v1::WorkflowExecution;
use temper_proto::temporal::api::enums::v1::{
    CancelExternalWorkflowExecutionFailedCause, SignalExternalWorkflowExecutionFailedCause,
    WorkflowTaskFailedCause,
};
use temper_proto::temporal::api::history::v1::{
    ExternalWorkflowExecutionCancelRequestedEventAttributes,
    ExternalWorkflowExecutionSignaledEventAttributes,
    RequestCancelExternalWorkflowExecutionFailedEventAttributes,
    RequestCancelExternalWorkflowExecutionInitiatedEventAttributes,
    SignalExternalWorkflowExecutionFailedEventAttributes,
    SignalExternalWorkflowExecutionInitiatedEventAttributes,
};

use crate::BadCommand;
use crate::events::At;
use crate::state::info_mut;
use crate::{Txn, WorkflowError, pb, workflow_task};

/// The namespace name and id a command names (empty: the workflow's own).
fn target_namespace(txn: &Txn<'_>, namespace: &str) -> (String, String) {
    let info = txn.info();
    if namespace.is_empty() || namespace == info.namespace {
        (info.namespace.clone(), info.namespace_id.clone())
    } else {
        (namespace.to_string(), String::new())
    }
}

/// The request id of a pending signal (`kind` "signal") or cancel request ("cancel") to
/// another workflow, so its delivery is idempotent.
pub(crate) fn external_request_id(run_id: &str, kind: &str, initiated_event_id: i64) -> String {
    format!("{run_id}-{kind}-{initiated_event_id}")
}

/// The SignalExternalWorkflowExecution command.
pub fn signal(
    txn: &mut Txn<'_>,
    a: &SignalExternalWorkflowExecutionCommandAttributes,
    wft_completed_event_id: i64,
) -> Result<(), BadCommand> {
    let bad = |m: &str| {
        Err(BadCommand::new(
            WorkflowTaskFailedCause::BadSignalWorkflowExecutionAttributes,
            m,
        ))
    };
    let Some(target) = a.execution.as_ref().filter(|e| !e.workflow_id.is_empty()) else {
        return bad("WorkflowId is not set on SignalExternalWorkflowExecutionCommand.");
    };
    if a.signal_name.is_empty() {
        return bad("SignalName is not set on SignalExternalWorkflowExecutionCommand.");
    }
    if let Some(input) = &a.input {
        let size: usize = input.payloads.iter().map(|p| p.data.len()).sum();
        if size > txn.limits.max_payload_bytes {
            return bad(
                "SignalExternalWorkflowExecutionCommandAttributes.Input exceeds size limit.",
            );
        }
    }
    if txn.ms.signals.len() >= txn.limits.max_pending_signals {
        return Err(BadCommand::new(
            WorkflowTaskFailedCause::PendingSignalsLimitExceeded,
            "the number of pending signals to external workflows has reached the limit",
        ));
    }
    let (namespace, namespace_id) = target_namespace(txn, &a.namespace);
    let id = txn.write_applied(
        SignalExternalWorkflowExecutionInitiatedEventAttributes {
            workflow_task_completed_event_id: wft_completed_event_id,
            namespace,
            namespace_id,
            workflow_execution: Some(target.clone()),
            signal_name: a.signal_name.clone(),
            input: a.input.clone(),
            control: a.control.clone(),
            child_workflow_only: a.child_workflow_only,
            header: a.header.clone(),
        },
        apply_signal_initiated,
    );
    let mut t = txn.transfer_task(pb::TransferTaskKind::SignalExternal);
    t.scheduled_event_id = id;
    txn.add_transfer_task(t);
    Ok(())
}

/// The RequestCancelExternalWorkflowExecution command.
pub fn request_cancel(
    txn: &mut Txn<'_>,
    a: &RequestCancelExternalWorkflowExecutionCommandAttributes,
    wft_completed_event_id: i64,
) -> Result<(), BadCommand> {
    if a.workflow_id.is_empty() {
        return Err(BadCommand::new(
            WorkflowTaskFailedCause::BadRequestCancelExternalWorkflowExecutionAttributes,
            "WorkflowId is not set on RequestCancelExternalWorkflowExecutionCommand.",
        ));
    }
    if txn.ms.request_cancels.len() >= txn.limits.max_pending_cancel_requests {
        return Err(BadCommand::new(
            WorkflowTaskFailedCause::PendingRequestCancelLimitExceeded,
            "the number of pending cancel requests to external workflows has reached the limit",
        ));
    }
    let (namespace, namespace_id) = target_namespace(txn, &a.namespace);
    let id = txn.write_applied(
        RequestCancelExternalWorkflowExecutionInitiatedEventAttributes {
            workflow_task_completed_event_id: wft_completed_event_id,
            namespace,
            namespace_id,
            workflow_execution: Some(WorkflowExecution {
                workflow_id: a.workflow_id.clone(),
                run_id: a.run_id.clone(),
            }),
            control: a.control.clone(),
            child_workflow_only: a.child_workflow_only,
            reason: a.reason.clone(),
        },
        apply_cancel_initiated,
    );
    let mut t = txn.transfer_task(pb::TransferTaskKind::CancelExternal);
    t.scheduled_event_id = id;
    txn.add_transfer_task(t);
    Ok(())
}

/// The signal was delivered (`ok`) or its target does not exist.
pub fn on_signal_result(
    txn: &mut Txn<'_>,
    initiated_event_id: i64,
    initiated: &SignalExternalWorkflowExecutionInitiatedEventAttributes,
    namespace_id: &str,
    ok: bool,
) -> Result<(), WorkflowError> {
    if !txn.is_running() || !txn.ms.signals.contains_key(&initiated_event_id) {
        return Ok(());
    }
    if ok {
        txn.write_external_applied(
            ExternalWorkflowExecutionSignaledEventAttributes {
                initiated_event_id,
                namespace: initiated.namespace.clone(),
                namespace_id: namespace_id.to_string(),
                workflow_execution: initiated.workflow_execution.clone(),
                control: initiated.control.clone(),
            },
            apply_external_signaled,
        );
    } else {
        txn.write_external_applied(
            SignalExternalWorkflowExecutionFailedEventAttributes {
                cause: SignalExternalWorkflowExecutionFailedCause::ExternalWorkflowExecutionNotFound
                    as i32,
                workflow_task_completed_event_id: initiated.workflow_task_completed_event_id,
                namespace: initiated.namespace.clone(),
                namespace_id: namespace_id.to_string(),
                workflow_execution: initiated.workflow_execution.clone(),
                initiated_event_id,
                control: initiated.control.clone(),
            },
            apply_signal_failed,
        );
    }
    workflow_task::schedule_if_needed(txn);
    Ok(())
}

/// The cancel request was delivered (`ok`) or its target does not exist.
pub fn on_cancel_result(
    txn: &mut Txn<'_>,
    initiated_event_id: i64,
    initiated: &RequestCancelExternalWorkflowExecutionInitiatedEventAttributes,
    namespace_id: &str,
    ok: bool,
) -> Result<(), WorkflowError> {
    if !txn.is_running() || !txn.ms.request_cancels.contains_key(&initiated_event_id) {
        return Ok(());
    }
    if ok {
        txn.write_external_applied(
            ExternalWorkflowExecutionCancelRequestedEventAttributes {
                initiated_event_id,
                namespace: initiated.namespace.clone(),
                namespace_id: namespace_id.to_string(),
                workflow_execution: initiated.workflow_execution.clone(),
            },
            apply_external_cancel_requested,
        );
    } else {
        txn.write_external_applied(
            RequestCancelExternalWorkflowExecutionFailedEventAttributes {
                cause: CancelExternalWorkflowExecutionFailedCause::ExternalWorkflowExecutionNotFound
                    as i32,
                workflow_task_completed_event_id: initiated.workflow_task_completed_event_id,
                namespace: initiated.namespace.clone(),
                namespace_id: namespace_id.to_string(),
                workflow_execution: initiated.workflow_execution.clone(),
                initiated_event_id,
                control: initiated.control.clone(),
            },
            apply_cancel_failed,
        );
    }
    workflow_task::schedule_if_needed(txn);
    Ok(())
}

/// SignalExternalWorkflowExecutionInitiated: the signal is pending until delivered, with a
/// request id that makes its delivery idempotent.
pub(crate) fn apply_signal_initiated(
    ms: &mut pb::MutableState,
    at: At,
    _: &SignalExternalWorkflowExecutionInitiatedEventAttributes,
) {
    let request_id = external_request_id(&info_mut(ms).run_id, "signal", at.id);
    ms.signals.insert(
        at.id,
        pb::ExternalInfo {
            initiated_event_id: at.id,
            request_id,
        },
    );
}

/// ExternalWorkflowExecutionSignaled.
pub(crate) fn apply_external_signaled(
    ms: &mut pb::MutableState,
    _: At,
    a: &ExternalWorkflowExecutionSignaledEventAttributes,
) {
    ms.signals.remove(&a.initiated_event_id);
}

/// SignalExternalWorkflowExecutionFailed.
pub(crate) fn apply_signal_failed(
    ms: &mut pb::MutableState,
    _: At,
    a: &SignalExternalWorkflowExecutionFailedEventAttributes,
) {
    ms.signals.remove(&a.initiated_event_id);
}

/// RequestCancelExternalWorkflowExecutionInitiated: as [`apply_signal_initiated`], for a
/// cancel request.
pub(crate) fn apply_cancel_initiated(
    ms: &mut pb::MutableState,
    at: At,
    _: &RequestCancelExternalWorkflowExecutionInitiatedEventAttributes,
) {
    let request_id = external_request_id(&info_mut(ms).run_id, "cancel", at.id);
    ms.request_cancels.insert(
        at.id,
        pb::ExternalInfo {
            initiated_event_id: at.id,
            request_id,
        },
    );
}

/// ExternalWorkflowExecutionCancelRequested.
pub(crate) fn apply_external_cancel_requested(
    ms: &mut pb::MutableState,
    _: At,
    a: &ExternalWorkflowExecutionCancelRequestedEventAttributes,
) {
    ms.request_cancels.remove(&a.initiated_event_id);
}

/// RequestCancelExternalWorkflowExecutionFailed.
pub(crate) fn apply_cancel_failed(
    ms: &mut pb::MutableState,
    _: At,
    a: &RequestCancelExternalWorkflowExecutionFailedEventAttributes,
) {
    ms.request_cancels.remove(&a.initiated_event_id);
}
