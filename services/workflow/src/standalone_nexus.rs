//! Standalone Nexus operations (StartNexusOperationExecution): an operation no workflow
//! scheduled. Like a standalone activity (`crate::standalone`), it lives in a run of its own
//! (workflow id `temporal-sys-nexus-operation:<operation id>`) that no worker runs as a
//! workflow. The run's one Nexus operation is scheduled, started, retried, timed out, canceled
//! and completed by the same code as a workflow's (`crate::nexus`): the start request goes to
//! the endpoint's handler, an asynchronous operation's outcome comes back through the handler
//! workflow's completion callback. The run closes when the operation does, with its outcome.
//!
//! Where a workflow's operation and a standalone one differ, Temporal's standalone rules hold:
//! a cancel request made before the handler started the operation waits for the start and is
//! then delivered (a workflow's is canceled at once); termination ends the operation without
//! telling the handler; the outcome is the handler's failure itself, not wrapped in a
//! NexusOperationFailure (the client wraps it).

use temper_proto::temporal::api::common::v1::{
    Link, Payload, Payloads, SearchAttributes, WorkflowType,
};
use temper_proto::temporal::api::enums::v1::{
    NexusOperationCancellationState, NexusOperationExecutionStatus, NexusOperationWaitStage,
    TaskQueueKind, WorkflowExecutionStatus,
};
use temper_proto::temporal::api::failure::v1::{
    Failure, TerminatedFailureInfo, failure::FailureInfo,
};
use temper_proto::temporal::api::history::v1::{
    NexusOperationCancelRequestedEventAttributes, NexusOperationScheduledEventAttributes,
    WorkflowExecutionCanceledEventAttributes, WorkflowExecutionCompletedEventAttributes,
    WorkflowExecutionFailedEventAttributes, WorkflowExecutionTimedOutEventAttributes,
};
use temper_proto::temporal::api::taskqueue::v1::TaskQueue;
use temper_proto::temporal::api::workflowservice::v1::{
    StartNexusOperationExecutionRequest, StartWorkflowExecutionRequest,
};

use crate::time::{from_dur, is_negative};
use crate::{Txn, WorkflowError, close, nexus, pb};

/// The namespace division of standalone Nexus operations' runs: workflow lists leave them out.
pub const NAMESPACE_DIVISION: &str = "TemporalStandaloneNexusOperation";
const DIVISION_ATTRIBUTE: &str = "TemporalNamespaceDivision";
/// The search attributes of an operation's run that hold its service and its handler request
/// id (lists query and show them); describe and lists leave them out of the user's.
pub const SERVICE_ATTRIBUTE: &str = "TemporalNexusService";
pub const REQUEST_ID_ATTRIBUTE: &str = "TemporalNexusRequestId";
/// Every search attribute of an operation's run that is not the user's.
pub const INTERNAL_ATTRIBUTES: [&str; 3] =
    [DIVISION_ATTRIBUTE, SERVICE_ATTRIBUTE, REQUEST_ID_ATTRIBUTE];
/// Longest operation id, request id and identity (Temporal's limit for ids).
pub const MAX_ID_LENGTH: usize = 1000;
/// Longest service and operation name.
pub const MAX_NAME_LENGTH: usize = 1000;
/// Longest cancel or terminate reason.
pub const MAX_REASON_LENGTH: usize = 1000;
/// Largest Nexus header (keys and values).
const MAX_HEADER_BYTES: usize = 8192;
/// Header keys a request may not set: the server sets them.
const DISALLOWED_HEADERS: [&str; 1] = ["request-timeout"];

fn invalid(message: String) -> WorkflowError {
    WorkflowError::InvalidArgument(message)
}

/// An id the request must give, and not too long (Temporal's messages).
pub fn check_id(field: &str, value: &str) -> Result<(), WorkflowError> {
    if value.is_empty() {
        return Err(invalid(format!("{field} is required")));
    }
    check_length(field, value, MAX_ID_LENGTH)
}

/// A field no longer than `limit` (Temporal's message).
pub fn check_length(field: &str, value: &str, limit: usize) -> Result<(), WorkflowError> {
    if value.len() > limit {
        return Err(invalid(format!(
            "{field} exceeds length limit. Length={} Limit={limit}",
            value.len()
        )));
    }
    Ok(())
}

/// Check a start request and put it in the form it is kept in, as Temporal does: header keys
/// lower-cased, the schedule-to-start and start-to-close timeouts no longer than the
/// schedule-to-close timeout. `max_payload_bytes` bounds the input.
pub fn validate(
    r: &mut StartNexusOperationExecutionRequest,
    max_payload_bytes: usize,
) -> Result<(), WorkflowError> {
    check_length("request_id", &r.request_id, MAX_ID_LENGTH)?;
    check_id("operation_id", &r.operation_id)?;
    check_length("identity", &r.identity, MAX_ID_LENGTH)?;
    if r.endpoint.is_empty() {
        return Err(invalid("endpoint is required".into()));
    }
    if r.service.is_empty() {
        return Err(invalid("service is required".into()));
    }
    check_length("service", &r.service, MAX_NAME_LENGTH)?;
    if r.operation.is_empty() {
        return Err(invalid("operation is required".into()));
    }
    check_length("operation", &r.operation, MAX_NAME_LENGTH)?;
    for (field, d) in [
        ("schedule_to_close_timeout", &r.schedule_to_close_timeout),
        ("schedule_to_start_timeout", &r.schedule_to_start_timeout),
        ("start_to_close_timeout", &r.start_to_close_timeout),
    ] {
        if is_negative(d) {
            return Err(invalid(format!("{field} is invalid: negative duration")));
        }
    }
    let (s2s, s2c) = nexus::capped(
        &r.schedule_to_close_timeout,
        r.schedule_to_start_timeout,
        r.start_to_close_timeout,
    );
    r.schedule_to_start_timeout = s2s;
    r.start_to_close_timeout = s2c;
    let input = r.input.as_ref().map_or(0, |p| p.data.len());
    if input > max_payload_bytes {
        return Err(invalid(format!(
            "input exceeds size limit. Length={input} Limit={max_payload_bytes}"
        )));
    }
    let mut size = 0;
    let mut lowered = std::collections::HashMap::with_capacity(r.nexus_header.len());
    for (k, v) in std::mem::take(&mut r.nexus_header) {
        let key = k.to_lowercase();
        if DISALLOWED_HEADERS.contains(&key.as_str()) {
            return Err(invalid(format!(
                "nexus_header contains a disallowed key: {k:?}"
            )));
        }
        size += key.len() + v.len();
        lowered.insert(key, v);
    }
    if size > MAX_HEADER_BYTES {
        return Err(invalid("nexus_header exceeds size limit".into()));
    }
    r.nexus_header = lowered;
    Ok(())
}

/// The request that creates the run holding operation `r` (validated): its type is the
/// operation's name, its task queue the endpoint's name (the run has no workflow tasks, so
/// lists can read them as the operation's), and it carries the service and the handler
/// request id `operation_request_id` as search attributes.
pub fn run_request(
    r: &StartNexusOperationExecutionRequest,
    request_id: &str,
    operation_request_id: &str,
) -> StartWorkflowExecutionRequest {
    let mut search_attributes = r.search_attributes.clone().unwrap_or_default();
    for (name, value) in [
        (DIVISION_ATTRIBUTE, NAMESPACE_DIVISION),
        (SERVICE_ATTRIBUTE, r.service.as_str()),
        (REQUEST_ID_ATTRIBUTE, operation_request_id),
    ] {
        search_attributes
            .indexed_fields
            .insert(name.to_owned(), keyword(value));
    }
    StartWorkflowExecutionRequest {
        namespace: r.namespace.clone(),
        workflow_id: temper_types::standalone_nexus_operation_workflow_id(&r.operation_id),
        workflow_type: Some(WorkflowType {
            name: r.operation.clone(),
        }),
        task_queue: Some(TaskQueue {
            name: r.endpoint.clone(),
            kind: TaskQueueKind::Normal as i32,
            normal_name: String::new(),
        }),
        request_id: request_id.to_owned(),
        identity: r.identity.clone(),
        search_attributes: Some(SearchAttributes {
            indexed_fields: search_attributes.indexed_fields,
        }),
        // Whoever started the operation through another (a Nexus caller) is called back
        // when the operation's run closes.
        completion_callbacks: r.completion_callbacks.clone(),
        links: r.links.clone(),
        ..Default::default()
    }
}

fn keyword(value: &str) -> Payload {
    Payload {
        metadata: [
            ("encoding".to_owned(), b"json/plain".to_vec()),
            ("type".to_owned(), b"Keyword".to_vec()),
        ]
        .into(),
        data: serde_json::to_vec(value).unwrap_or_default(),
        ..Default::default()
    }
}

/// Take the search attributes of an operation's run that are not the user's out of `sa`;
/// the service kept there.
pub fn take_internal(sa: &mut SearchAttributes) -> String {
    let service = sa
        .indexed_fields
        .get(SERVICE_ATTRIBUTE)
        .and_then(|p| serde_json::from_slice::<String>(&p.data).ok())
        .unwrap_or_default();
    for name in INTERNAL_ATTRIBUTES {
        sa.indexed_fields.remove(name);
    }
    service
}

/// Schedule the operation of a new standalone run (made from [`run_request`]).
/// `endpoint_id` is the endpoint's id, `request_id` the id the start requests to the handler
/// carry (new for each operation, not the caller's request id).
pub fn start(
    txn: &mut Txn<'_>,
    r: &StartNexusOperationExecutionRequest,
    endpoint_id: &str,
    request_id: &str,
) {
    let id = nexus::write_scheduled(
        txn,
        NexusOperationScheduledEventAttributes {
            endpoint: r.endpoint.clone(),
            service: r.service.clone(),
            operation: r.operation.clone(),
            input: r.input.clone(),
            schedule_to_close_timeout: r.schedule_to_close_timeout,
            nexus_header: r.nexus_header.clone(),
            workflow_task_completed_event_id: 0,
            request_id: request_id.to_owned(),
            endpoint_id: endpoint_id.to_owned(),
            schedule_to_start_timeout: r.schedule_to_start_timeout,
            start_to_close_timeout: r.start_to_close_timeout,
        },
    );
    txn.ms.standalone_nexus_operation = Some(Box::new(pb::StandaloneNexusOperation {
        operation_id: r.operation_id.clone(),
        scheduled_event_id: id,
        status: NexusOperationExecutionStatus::Running as i32,
        user_metadata: r.user_metadata.clone(),
        identity: r.identity.clone(),
        ..Default::default()
    }));
}

/// Whether this run holds a standalone Nexus operation.
pub fn is_standalone(ms: &pb::MutableState) -> bool {
    ms.standalone_nexus_operation.is_some()
}

/// The operation of a standalone run as it is now: pending, or as it closed.
pub fn current(ms: &pb::MutableState) -> Option<pb::NexusOperationInfo> {
    let so = ms.standalone_nexus_operation.as_ref()?;
    ms.nexus_operations
        .get(&so.scheduled_event_id)
        .cloned()
        .or_else(|| so.last.clone())
}

/// The operation's status.
pub fn status(ms: &pb::MutableState) -> NexusOperationExecutionStatus {
    ms.standalone_nexus_operation
        .as_ref()
        .and_then(|so| NexusOperationExecutionStatus::try_from(so.status).ok())
        .unwrap_or(NexusOperationExecutionStatus::Unspecified)
}

/// The operation status a standalone operation's run status (a `WorkflowExecutionStatus`
/// value) stands for.
pub fn status_of_run(run: i32) -> NexusOperationExecutionStatus {
    match WorkflowExecutionStatus::try_from(run).unwrap_or(WorkflowExecutionStatus::Unspecified) {
        WorkflowExecutionStatus::Running => NexusOperationExecutionStatus::Running,
        WorkflowExecutionStatus::Completed => NexusOperationExecutionStatus::Completed,
        WorkflowExecutionStatus::Failed => NexusOperationExecutionStatus::Failed,
        WorkflowExecutionStatus::Canceled => NexusOperationExecutionStatus::Canceled,
        WorkflowExecutionStatus::Terminated => NexusOperationExecutionStatus::Terminated,
        WorkflowExecutionStatus::TimedOut => NexusOperationExecutionStatus::TimedOut,
        _ => NexusOperationExecutionStatus::Unspecified,
    }
}

/// Whether the operation reached `stage` (a closed one reached every stage).
pub fn reached(ms: &pb::MutableState, stage: NexusOperationWaitStage) -> bool {
    if close::is_closed(ms) {
        return true;
    }
    stage == NexusOperationWaitStage::Started
        && current(ms).is_some_and(|op| op.started_event_id != 0)
}

/// The operation's outcome once it closed: its result, or its failure.
pub fn outcome(ms: &pb::MutableState) -> Option<Result<Payload, Failure>> {
    let so = ms.standalone_nexus_operation.as_ref()?;
    if !close::is_closed(ms) {
        return None;
    }
    Some(match &so.failure {
        Some(f) => Err(f.clone()),
        None => Ok(so.result.clone().unwrap_or_default()),
    })
}

/// How an operation ended, with its outcome.
#[derive(Debug, Clone)]
pub(crate) enum Closed {
    Completed(Option<Payload>),
    Failed(Failure),
    Canceled(Failure),
    TimedOut(Failure),
}

/// The operation of a standalone run just closed (its closing event is written; `op` is how
/// it was before). The run closes with the same outcome.
pub(crate) fn operation_closed(txn: &mut Txn<'_>, op: &pb::NexusOperationInfo, how: Closed) {
    if !txn.is_running() || !is_standalone(txn.ms) {
        return;
    }
    let now = txn.now_ts;
    let Some(so) = txn.ms.standalone_nexus_operation.as_mut() else {
        return;
    };
    so.last = Some(op.clone());
    so.close_time = Some(now);
    match how {
        Closed::Completed(result) => {
            so.status = NexusOperationExecutionStatus::Completed as i32;
            so.result = Some(result.clone().unwrap_or_default());
            close::write_close(
                txn,
                WorkflowExecutionCompletedEventAttributes {
                    result: Some(Payloads {
                        payloads: vec![result.unwrap_or_default()],
                    }),
                    ..Default::default()
                },
                WorkflowExecutionStatus::Completed,
            );
        }
        Closed::Failed(failure) => {
            so.status = NexusOperationExecutionStatus::Failed as i32;
            so.failure = Some(failure.clone());
            close::write_close(
                txn,
                WorkflowExecutionFailedEventAttributes {
                    failure: Some(failure),
                    ..Default::default()
                },
                WorkflowExecutionStatus::Failed,
            );
        }
        Closed::Canceled(failure) => {
            so.status = NexusOperationExecutionStatus::Canceled as i32;
            so.failure = Some(failure);
            close::write_close(
                txn,
                WorkflowExecutionCanceledEventAttributes::default(),
                WorkflowExecutionStatus::Canceled,
            );
        }
        Closed::TimedOut(failure) => {
            so.status = NexusOperationExecutionStatus::TimedOut as i32;
            so.failure = Some(failure);
            close::write_close(
                txn,
                WorkflowExecutionTimedOutEventAttributes::default(),
                WorkflowExecutionStatus::TimedOut,
            );
        }
    }
}

/// The handler started the operation of a standalone run asynchronously: keep its links, and
/// deliver a cancel request that was waiting for the start.
pub(crate) fn operation_started(txn: &mut Txn<'_>, scheduled_event_id: i64, links: Vec<Link>) {
    let Some(so) = txn.ms.standalone_nexus_operation.as_mut() else {
        return;
    };
    so.links.extend(links);
    let cancel_waiting = so.cancellation.as_ref().is_some_and(|c| !c.delivered);
    if cancel_waiting {
        nexus::send_cancel(txn, scheduled_event_id);
    }
}

/// The handler answered the cancel request of a standalone run's operation.
pub(crate) fn cancel_answered(txn: &mut Txn<'_>, failure: Option<Failure>) {
    let now = txn.now_ts;
    if let Some(c) = txn
        .ms
        .standalone_nexus_operation
        .as_mut()
        .and_then(|so| so.cancellation.as_mut())
    {
        c.delivered = true;
        c.failure = failure;
        c.attempt += 1;
        c.last_attempt_complete_time = Some(now);
    }
}

/// The state of the operation's cancellation, as describe shows it.
pub fn cancellation_state(c: &pb::NexusCancellation) -> NexusOperationCancellationState {
    match (c.delivered, &c.failure) {
        (false, _) => NexusOperationCancellationState::Scheduled,
        (true, None) => NexusOperationCancellationState::Succeeded,
        (true, Some(_)) => NexusOperationCancellationState::Failed,
    }
}

fn not_found() -> WorkflowError {
    WorkflowError::NotFound("operation not found".into())
}

/// RequestCancelNexusOperationExecution: ask the handler to cancel the operation. A started
/// operation gets the request now; one not started yet gets it once it starts. The request
/// that asked already is answered as before (even once the operation closed); another is
/// refused, as is any for a closed operation.
pub fn request_cancel(
    txn: &mut Txn<'_>,
    reason: &str,
    identity: &str,
    request_id: &str,
) -> Result<(), WorkflowError> {
    let Some(so) = txn.ms.standalone_nexus_operation.clone() else {
        return Err(not_found());
    };
    if let Some(c) = &so.cancellation
        && c.request_id == request_id
    {
        return Ok(());
    }
    if !txn.is_running() {
        return Err(WorkflowError::FailedPrecondition(
            "operation already completed".into(),
        ));
    }
    if let Some(c) = &so.cancellation {
        return Err(WorkflowError::FailedPrecondition(format!(
            "cancellation already requested with request ID {}",
            c.request_id
        )));
    }
    let Some(op) = txn.ms.nexus_operations.get(&so.scheduled_event_id).cloned() else {
        return Err(WorkflowError::Internal(
            "a running standalone Nexus operation's run has no pending operation".into(),
        ));
    };
    let now = txn.now_ts;
    if let Some(so) = txn.ms.standalone_nexus_operation.as_mut() {
        so.cancellation = Some(pb::NexusCancellation {
            request_id: request_id.to_owned(),
            reason: reason.to_owned(),
            requested_time: Some(now),
            identity: identity.to_owned(),
            ..Default::default()
        });
    }
    txn.write_applied(
        NexusOperationCancelRequestedEventAttributes {
            scheduled_event_id: op.scheduled_event_id,
            workflow_task_completed_event_id: 0,
        },
        nexus::apply_cancel_requested,
    );
    if op.started_event_id != 0 {
        nexus::send_cancel(txn, op.scheduled_event_id);
    }
    Ok(())
}

/// TerminateNexusOperationExecution: the operation ends now, terminated, its handler not
/// told. A repeated request (same request id) changes nothing; another is refused.
pub fn terminate(
    txn: &mut Txn<'_>,
    reason: &str,
    identity: &str,
    request_id: &str,
) -> Result<(), WorkflowError> {
    let Some(so) = txn.ms.standalone_nexus_operation.clone() else {
        return Err(not_found());
    };
    if status(txn.ms) == NexusOperationExecutionStatus::Terminated {
        if so.terminate_request_id == request_id {
            return Ok(());
        }
        return Err(WorkflowError::FailedPrecondition(format!(
            "already terminated with request ID {}",
            so.terminate_request_id
        )));
    }
    if !txn.is_running() {
        // Temporal names the state the operation closed in.
        let state = match status(txn.ms) {
            NexusOperationExecutionStatus::Completed => "Succeeded",
            NexusOperationExecutionStatus::Failed => "Failed",
            NexusOperationExecutionStatus::Canceled => "Canceled",
            NexusOperationExecutionStatus::TimedOut => "TimedOut",
            _ => "Unspecified",
        };
        return Err(WorkflowError::FailedPrecondition(format!(
            "invalid transition from {state}"
        )));
    }
    let last = txn.ms.nexus_operations.remove(&so.scheduled_event_id);
    let now = txn.now_ts;
    if let Some(so) = txn.ms.standalone_nexus_operation.as_mut() {
        so.last = last;
        so.terminate_request_id = request_id.to_owned();
        so.status = NexusOperationExecutionStatus::Terminated as i32;
        so.close_time = Some(now);
        so.failure = Some(Failure {
            message: reason.to_owned(),
            failure_info: Some(FailureInfo::TerminatedFailureInfo(TerminatedFailureInfo {
                identity: identity.to_owned(),
            })),
            ..Default::default()
        });
    }
    close::terminate(txn, reason, None, identity)
}

/// The time the operation's schedule-to-close timeout ends, if it has one.
pub fn expiration_time(op: &pb::NexusOperationInfo) -> Option<temper_proto::wkt::Timestamp> {
    let limit = from_dur(&op.schedule_to_close_timeout);
    if limit.is_zero() {
        return None;
    }
    let scheduled = op.scheduled_time.as_ref()?;
    Some(crate::time::ts(crate::time::from_ts(scheduled) + limit))
}

#[cfg(test)]
#[path = "standalone_nexus_tests.rs"]
mod tests;
