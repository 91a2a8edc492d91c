//! Signals from outside: recorded as WorkflowExecutionSignaled (buffered while a workflow
//! task runs, so never lost), deduplicated by request id.

use temper_proto::temporal::api::common::v1::{Header, Link, Payloads, WorkflowExecution};
use temper_proto::temporal::api::history::v1::WorkflowExecutionSignaledEventAttributes;

use crate::events::At;
use crate::state::info_mut;
use crate::{Txn, WorkflowError, pb, workflow_task};

/// Request ids remembered per run for deduplication.
pub(crate) const MAX_REMEMBERED_REQUEST_IDS: usize = 1000;
/// Temporal's default limit of signals per run.
pub const MAX_SIGNALS_PER_RUN: i64 = 10_000;

pub struct Signal<'a> {
    pub name: &'a str,
    pub input: Option<Payloads>,
    pub identity: &'a str,
    pub header: Option<Header>,
    pub request_id: &'a str,
    /// The workflow that sent it (SignalExternalWorkflowExecution), if any.
    pub external_execution: Option<WorkflowExecution>,
    /// Links to where it came from (a Nexus operation's caller), kept on the event.
    pub links: Vec<Link>,
}

/// SignalWorkflowExecution.
pub fn signal(txn: &mut Txn<'_>, s: Signal<'_>) -> Result<(), WorkflowError> {
    if !txn.is_running() {
        return Err(WorkflowError::AlreadyCompleted);
    }
    if s.name.is_empty() {
        return Err(WorkflowError::InvalidArgument(
            "SignalName is not set on request.".into(),
        ));
    }
    let size: usize = s
        .input
        .as_ref()
        .map(|p| p.payloads.iter().map(|p| p.data.len()).sum())
        .unwrap_or(0);
    if size > txn.limits.max_payload_bytes {
        return Err(WorkflowError::InvalidArgument(
            "Blob data size exceeds limit.".into(),
        ));
    }
    if !s.request_id.is_empty()
        && txn
            .info()
            .applied_request_ids
            .iter()
            .any(|r| r == s.request_id)
    {
        return Ok(());
    }
    if txn.info().signal_count >= MAX_SIGNALS_PER_RUN {
        return Err(WorkflowError::ResourceExhausted(
            "the number of signals to this workflow has reached the limit".into(),
        ));
    }
    txn.write_external_linked_applied(
        WorkflowExecutionSignaledEventAttributes {
            signal_name: s.name.to_string(),
            input: s.input,
            identity: s.identity.to_string(),
            header: s.header,
            request_id: s.request_id.to_string(),
            external_workflow_execution: s.external_execution,
            ..Default::default()
        },
        s.links,
        apply_signaled,
    );
    workflow_task::schedule_if_needed(txn);
    Ok(())
}

/// WorkflowExecutionSignaled: one more signal, and its request id remembered (once) so a
/// retried request is not delivered twice, with the event it became (describe resolves a
/// signal's request-id link with it).
pub(crate) fn apply_signaled(
    ms: &mut pb::MutableState,
    at: At,
    a: &WorkflowExecutionSignaledEventAttributes,
) {
    let info = info_mut(ms);
    info.signal_count += 1;
    if !a.request_id.is_empty() && !info.applied_request_ids.contains(&a.request_id) {
        info.applied_request_ids.push(a.request_id.clone());
        if info.applied_request_ids.len() > MAX_REMEMBERED_REQUEST_IDS {
            info.applied_request_ids.remove(0);
        }
        info.signal_requests.push(pb::SignalRequest {
            request_id: a.request_id.clone(),
            event_id: at.id,
        });
        if info.signal_requests.len() > MAX_REMEMBERED_REQUEST_IDS {
            info.signal_requests.remove(0);
        }
    }
}

/// A buffered signal was written as event `event_id`: its request id now names that event.
pub(crate) fn on_signal_flushed(info: &mut pb::ExecutionInfo, request_id: &str, event_id: i64) {
    if request_id.is_empty() {
        return;
    }
    if let Some(r) = info
        .signal_requests
        .iter_mut()
        .rev()
        .find(|r| r.request_id == request_id)
    {
        r.event_id = event_id;
    }
}
