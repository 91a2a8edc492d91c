//! Nexus operations a workflow calls: the ScheduleNexusOperation and
//! RequestCancelNexusOperation commands, what the handler's answers do to the run (started,
//! completed, failed, canceled; a start request that got no answer is sent again after a
//! backoff), the schedule-to-close timeout, and how each event changes the state.
//!
//! The history service sends the requests (`services/history/src/nexus.rs`): a start
//! request per attempt (transfer task NEXUS_START), a cancel request (NEXUS_CANCEL); an
//! asynchronous operation's outcome comes back through the handler workflow's completion
//! callback.

use std::collections::HashMap;
use std::time::Duration;

use temper_proto::temporal::api::command::v1::{
    RequestCancelNexusOperationCommandAttributes, ScheduleNexusOperationCommandAttributes,
};
use temper_proto::temporal::api::common::v1::Payload;
use temper_proto::temporal::api::enums::v1::{TimeoutType, WorkflowTaskFailedCause};
use temper_proto::temporal::api::failure::v1::{
    CanceledFailureInfo, Failure, NexusOperationFailureInfo, TimeoutFailureInfo,
    failure::FailureInfo,
};
use temper_proto::temporal::api::history::v1::{
    NexusOperationCancelRequestCompletedEventAttributes,
    NexusOperationCancelRequestFailedEventAttributes, NexusOperationCancelRequestedEventAttributes,
    NexusOperationCanceledEventAttributes, NexusOperationCompletedEventAttributes,
    NexusOperationFailedEventAttributes, NexusOperationScheduledEventAttributes,
    NexusOperationStartedEventAttributes, NexusOperationTimedOutEventAttributes,
};

use crate::events::At;
use crate::time::{from_dur, from_ts, is_negative, ts};
use crate::{BadCommand, Txn, pb, system_nexus, workflow_task};

/// Longest endpoint, service or operation name a command may give.
const MAX_NAME_LENGTH: usize = 1000;
/// The first retry of a start request waits this long, doubling up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// What every unsuccessful outcome says, its cause saying why (Temporal's words).
const UNSUCCESSFUL: &str = "nexus operation completed unsuccessfully";

fn bad(message: String) -> BadCommand {
    BadCommand::new(
        WorkflowTaskFailedCause::BadScheduleNexusOperationAttributes,
        &format!("BadScheduleNexusOperationAttributes: {message}"),
    )
}

/// The ScheduleNexusOperation command. `endpoints` maps the endpoint names the completion's
/// commands use to their ids (the history service looked them up); a name it lacks is not
/// registered. The system endpoint needs no registration: its operations are checked here
/// ([`system_nexus::check_schedule`], against the namespace's `search_attribute_names` when
/// known) and the history service carries them out itself.
pub fn schedule(
    txn: &mut Txn<'_>,
    a: &ScheduleNexusOperationCommandAttributes,
    wft_completed_event_id: i64,
    endpoints: &HashMap<String, String>,
    search_attribute_names: Option<&[String]>,
) -> Result<(), BadCommand> {
    let system = a.endpoint == system_nexus::ENDPOINT;
    if system {
        let namespace = txn.info().namespace.clone();
        system_nexus::check_schedule(a, &namespace, txn.limits, search_attribute_names)
            .map_err(|e| bad(e.0))?;
    }
    for (what, v) in [
        ("endpoint", &a.endpoint),
        ("service", &a.service),
        ("operation", &a.operation),
    ] {
        if v.is_empty() {
            return Err(bad(format!("{what} is not set")));
        }
        if v.len() > MAX_NAME_LENGTH {
            return Err(bad(format!("{what} exceeds length limit")));
        }
    }
    for (what, d) in [
        ("ScheduleToCloseTimeout", &a.schedule_to_close_timeout),
        ("ScheduleToStartTimeout", &a.schedule_to_start_timeout),
        ("StartToCloseTimeout", &a.start_to_close_timeout),
    ] {
        if is_negative(d) {
            return Err(bad(format!(
                "ScheduleNexusOperationCommandAttributes.{what} is invalid: negative duration"
            )));
        }
    }
    let endpoint_id = match endpoints.get(&a.endpoint) {
        Some(id) => id.clone(),
        // Temporal records no endpoint id for it.
        None if system => String::new(),
        None => return Err(bad(format!("endpoint {:?} not found", a.endpoint))),
    };
    if let Some(input) = &a.input
        && !system
        && input.data.len() > txn.limits.max_payload_bytes
    {
        return Err(bad("input exceeds size limit".into()));
    }
    if txn.ms.nexus_operations.len() >= txn.limits.max_pending_activities {
        return Err(BadCommand::new(
            WorkflowTaskFailedCause::PendingNexusOperationsLimitExceeded,
            "the number of pending Nexus operations has reached the limit",
        ));
    }
    let request_id = match txn.new_run_id {
        Some(new_id) => new_id(),
        None => format!("{}-{}", txn.info().run_id, txn.ms.next_event_id),
    };
    // No longer than the run may last (Temporal trims it so).
    let run_timeout = txn.info().workflow_run_timeout;
    let schedule_to_close_timeout = if !from_dur(&run_timeout).is_zero()
        && (from_dur(&a.schedule_to_close_timeout).is_zero()
            || from_dur(&a.schedule_to_close_timeout) > from_dur(&run_timeout))
    {
        run_timeout
    } else {
        a.schedule_to_close_timeout
    };
    let (schedule_to_start_timeout, start_to_close_timeout) = capped(
        &schedule_to_close_timeout,
        a.schedule_to_start_timeout,
        a.start_to_close_timeout,
    );
    write_scheduled(
        txn,
        NexusOperationScheduledEventAttributes {
            endpoint: a.endpoint.clone(),
            service: a.service.clone(),
            operation: a.operation.clone(),
            input: a.input.clone(),
            schedule_to_close_timeout,
            nexus_header: a.nexus_header.clone(),
            workflow_task_completed_event_id: wft_completed_event_id,
            request_id,
            endpoint_id,
            schedule_to_start_timeout,
            start_to_close_timeout,
        },
    );
    Ok(())
}

/// The schedule-to-start and start-to-close timeouts, none longer than the
/// schedule-to-close timeout (when there is one), as Temporal caps them.
pub(crate) fn capped(
    schedule_to_close: &Option<temper_proto::wkt::Duration>,
    schedule_to_start: Option<temper_proto::wkt::Duration>,
    start_to_close: Option<temper_proto::wkt::Duration>,
) -> (
    Option<temper_proto::wkt::Duration>,
    Option<temper_proto::wkt::Duration>,
) {
    let limit = from_dur(schedule_to_close);
    let cap = |d: Option<temper_proto::wkt::Duration>| {
        if !limit.is_zero() && from_dur(&d) > limit {
            *schedule_to_close
        } else {
            d
        }
    };
    (cap(schedule_to_start), cap(start_to_close))
}

/// Write an operation's scheduled event, arm its schedule-to-close and schedule-to-start
/// timers and send its first start request. Its id.
pub(crate) fn write_scheduled(txn: &mut Txn<'_>, a: NexusOperationScheduledEventAttributes) -> i64 {
    let s2c = from_dur(&a.schedule_to_close_timeout);
    let s2s = from_dur(&a.schedule_to_start_timeout);
    let id = txn.write_applied(a, apply_scheduled);
    for (limit, kind) in [
        (s2c, TimeoutType::ScheduleToClose),
        (s2s, TimeoutType::ScheduleToStart),
    ] {
        if !limit.is_zero() {
            let mut t = txn.timer_task(pb::TimerTaskKind::NexusTimeout, id, 0);
            t.timeout_type = kind as i32;
            txn.add_timer_task(txn.now + limit, t);
        }
    }
    send_start(txn, id, 1);
    id
}

fn send_start(txn: &mut Txn<'_>, scheduled_event_id: i64, attempt: i32) {
    let mut t = txn.transfer_task(pb::TransferTaskKind::NexusStart);
    t.scheduled_event_id = scheduled_event_id;
    t.attempt = attempt;
    txn.add_transfer_task(t);
}

/// The RequestCancelNexusOperation command. An operation the handler has not started yet is
/// canceled at once; a started one gets a cancel request.
pub fn request_cancel(
    txn: &mut Txn<'_>,
    a: &RequestCancelNexusOperationCommandAttributes,
    wft_completed_event_id: i64,
) -> Result<(), BadCommand> {
    let Some(op) = txn.ms.nexus_operations.get(&a.scheduled_event_id).cloned() else {
        return Err(BadCommand::new(
            WorkflowTaskFailedCause::BadRequestCancelNexusOperationAttributes,
            &format!(
                "BadRequestCancelNexusOperationAttributes: requested cancelation for a non-existing or already completed operation with scheduled event ID of {}",
                a.scheduled_event_id
            ),
        ));
    };
    if op.cancel_requested_event_id != 0 {
        return Err(BadCommand::new(
            WorkflowTaskFailedCause::BadRequestCancelNexusOperationAttributes,
            &format!(
                "BadRequestCancelNexusOperationAttributes: cancelation was already requested for an operation with scheduled event ID {}",
                a.scheduled_event_id
            ),
        ));
    }
    txn.write_applied(
        NexusOperationCancelRequestedEventAttributes {
            scheduled_event_id: a.scheduled_event_id,
            workflow_task_completed_event_id: wft_completed_event_id,
        },
        apply_cancel_requested,
    );
    if op.started_event_id == 0 {
        // Not running anywhere yet: canceled now.
        let failure = wrapped(
            &op,
            Failure {
                message: "operation canceled before it was started".into(),
                failure_info: Some(FailureInfo::CanceledFailureInfo(
                    CanceledFailureInfo::default(),
                )),
                ..Default::default()
            },
        );
        txn.write_applied(
            NexusOperationCanceledEventAttributes {
                scheduled_event_id: op.scheduled_event_id,
                failure: Some(failure),
                request_id: op.request_id.clone(),
            },
            apply_closed_canceled,
        );
        txn.needs_workflow_task = true;
        return Ok(());
    }
    send_cancel(txn, a.scheduled_event_id);
    Ok(())
}

/// Send the cancel request of operation `scheduled_event_id` to its handler.
pub(crate) fn send_cancel(txn: &mut Txn<'_>, scheduled_event_id: i64) {
    let mut t = txn.transfer_task(pb::TransferTaskKind::NexusCancel);
    t.scheduled_event_id = scheduled_event_id;
    txn.add_transfer_task(t);
}

/// `cause` inside the failure every unsuccessful outcome carries (Temporal's shape).
pub fn wrapped(op: &pb::NexusOperationInfo, cause: Failure) -> Failure {
    #[allow(deprecated)]
    Failure {
        message: UNSUCCESSFUL.into(),
        failure_info: Some(FailureInfo::NexusOperationExecutionFailureInfo(
            NexusOperationFailureInfo {
                scheduled_event_id: op.scheduled_event_id,
                endpoint: op.endpoint.clone(),
                service: op.service.clone(),
                operation: op.operation.clone(),
                operation_id: op.operation_token.clone(),
                operation_token: op.operation_token.clone(),
            },
        )),
        cause: Some(Box::new(cause)),
        ..Default::default()
    }
}

/// What a start request's answer was.
#[derive(Debug, Clone)]
pub enum StartOutcome {
    /// A synchronous result, with the handler's links (to what it did, such as the event a
    /// signal it sent became).
    Completed {
        result: Option<Payload>,
        links: Vec<temper_proto::temporal::api::common::v1::Link>,
    },
    /// Started asynchronously, with the handler's token and links.
    Started {
        token: String,
        links: Vec<temper_proto::temporal::api::common::v1::Link>,
    },
    /// Failed for good (the cause; canceled when the handler said so).
    Failed { cause: Failure, canceled: bool },
    /// No answer that ends it (a retryable handler error, no worker in time): sent again
    /// after a backoff.
    Retry(Failure),
}

/// The pending operation `scheduled_event_id` if its start request `attempt` is the one in
/// flight; `None` for a stale answer.
pub fn awaiting_start(
    txn: &Txn<'_>,
    scheduled_event_id: i64,
    attempt: i32,
) -> Option<pb::NexusOperationInfo> {
    if !txn.is_running() {
        return None;
    }
    let op = txn.ms.nexus_operations.get(&scheduled_event_id)?;
    (op.started_event_id == 0
        && op.attempt + 1 == attempt
        && op.next_attempt_schedule_time.is_none())
    .then(|| op.clone())
}

/// Record the answer to start request `attempt` of operation `scheduled_event_id`.
pub fn on_start(txn: &mut Txn<'_>, scheduled_event_id: i64, attempt: i32, outcome: StartOutcome) {
    let Some(mut op) = awaiting_start(txn, scheduled_event_id, attempt) else {
        return;
    };
    // The attempt that ended it, as the operation closes (describe shows it).
    op.attempt = attempt;
    match outcome {
        StartOutcome::Completed { result, links } => complete(txn, &op, result, links),
        StartOutcome::Started { token, links } => {
            txn.write_external_linked_applied(
                #[allow(deprecated)]
                NexusOperationStartedEventAttributes {
                    scheduled_event_id,
                    operation_id: token.clone(),
                    request_id: op.request_id.clone(),
                    operation_token: token,
                },
                links.clone(),
                apply_started,
            );
            let now = txn.now_ts;
            if let Some(stored) = txn.ms.nexus_operations.get_mut(&scheduled_event_id) {
                stored.attempt = attempt;
                stored.last_attempt_complete_time = Some(now);
                stored.last_attempt_failure = None;
                stored.started_time = Some(now);
            }
            let s2c = from_dur(&op.start_to_close_timeout);
            if !s2c.is_zero() {
                let mut t = txn.timer_task(pb::TimerTaskKind::NexusTimeout, scheduled_event_id, 0);
                t.timeout_type = TimeoutType::StartToClose as i32;
                txn.add_timer_task(txn.now + s2c, t);
            }
            crate::standalone_nexus::operation_started(txn, scheduled_event_id, links);
            workflow_task::schedule_if_needed(txn);
        }
        StartOutcome::Failed { cause, canceled } => end_unsuccessfully(txn, &op, cause, canceled),
        StartOutcome::Retry(failure) => {
            let backoff = FIRST_BACKOFF
                .saturating_mul(1 << (attempt - 1).clamp(0, 16))
                .min(MAX_BACKOFF);
            let at = txn.now + backoff;
            let now = txn.now_ts;
            if let Some(stored) = txn.ms.nexus_operations.get_mut(&scheduled_event_id) {
                stored.attempt = attempt;
                stored.last_attempt_complete_time = Some(now);
                stored.last_attempt_failure = Some(failure);
                stored.next_attempt_schedule_time = Some(ts(at));
            }
            let t = txn.timer_task(
                pb::TimerTaskKind::NexusRetry,
                scheduled_event_id,
                attempt + 1,
            );
            txn.add_timer_task(at, t);
        }
    }
}

/// A backoff ended: send the start request again.
pub fn on_retry_timer(txn: &mut Txn<'_>, scheduled_event_id: i64, attempt: i32) {
    if !txn.is_running() {
        return;
    }
    let Some(op) = txn.ms.nexus_operations.get_mut(&scheduled_event_id) else {
        return;
    };
    if op.started_event_id != 0
        || op.attempt + 1 != attempt
        || op.next_attempt_schedule_time.is_none()
    {
        return;
    }
    op.next_attempt_schedule_time = None;
    send_start(txn, scheduled_event_id, attempt);
}

fn complete(
    txn: &mut Txn<'_>,
    op: &pb::NexusOperationInfo,
    result: Option<Payload>,
    links: Vec<temper_proto::temporal::api::common::v1::Link>,
) {
    txn.write_external_linked_applied(
        NexusOperationCompletedEventAttributes {
            scheduled_event_id: op.scheduled_event_id,
            result: result.clone(),
            request_id: op.request_id.clone(),
        },
        links,
        apply_closed_completed,
    );
    crate::standalone_nexus::operation_closed(
        txn,
        op,
        crate::standalone_nexus::Closed::Completed(result),
    );
    workflow_task::schedule_if_needed(txn);
}

fn end_unsuccessfully(
    txn: &mut Txn<'_>,
    op: &pb::NexusOperationInfo,
    cause: Failure,
    canceled: bool,
) {
    let failure = Some(wrapped(op, cause.clone()));
    let request_id = op.request_id.clone();
    let scheduled_event_id = op.scheduled_event_id;
    if canceled {
        txn.write_external_applied(
            NexusOperationCanceledEventAttributes {
                scheduled_event_id,
                failure,
                request_id,
            },
            apply_closed_canceled,
        );
    } else {
        txn.write_external_applied(
            NexusOperationFailedEventAttributes {
                scheduled_event_id,
                failure,
                request_id,
            },
            apply_closed_failed,
        );
    }
    let closed = if canceled {
        crate::standalone_nexus::Closed::Canceled(cause)
    } else {
        crate::standalone_nexus::Closed::Failed(cause)
    };
    crate::standalone_nexus::operation_closed(txn, op, closed);
    workflow_task::schedule_if_needed(txn);
}

/// The handler workflow of an asynchronous operation closed (its completion callback).
/// `Ok(false)`: the operation is not pending any more (already ended, or another run).
pub fn on_completion(
    txn: &mut Txn<'_>,
    scheduled_event_id: i64,
    request_id: &str,
    result: Option<Payload>,
    failure: Option<Failure>,
    canceled: bool,
) -> bool {
    if !txn.is_running() {
        return false;
    }
    let Some(op) = txn.ms.nexus_operations.get(&scheduled_event_id).cloned() else {
        return false;
    };
    if !request_id.is_empty() && op.request_id != request_id {
        return false;
    }
    match failure {
        None => complete(txn, &op, result, Vec::new()),
        Some(cause) => end_unsuccessfully(txn, &op, cause, canceled),
    }
    true
}

/// A timeout of the operation fired (`timeout_type`: schedule-to-close, also for timers
/// written before the others existed; schedule-to-start; start-to-close).
pub fn on_timeout(txn: &mut Txn<'_>, scheduled_event_id: i64, timeout_type: i32) {
    if !txn.is_running() {
        return;
    }
    let Some(op) = txn.ms.nexus_operations.get(&scheduled_event_id).cloned() else {
        return;
    };
    let kind = match TimeoutType::try_from(timeout_type) {
        Ok(TimeoutType::ScheduleToStart) => TimeoutType::ScheduleToStart,
        Ok(TimeoutType::StartToClose) => TimeoutType::StartToClose,
        _ => TimeoutType::ScheduleToClose,
    };
    let started = op.started_event_id != 0;
    let (from, limit) = match kind {
        TimeoutType::ScheduleToStart if started => return,
        TimeoutType::ScheduleToStart => (&op.scheduled_time, &op.schedule_to_start_timeout),
        TimeoutType::StartToClose if !started => return,
        TimeoutType::StartToClose => (&op.started_time, &op.start_to_close_timeout),
        _ => (&op.scheduled_time, &op.schedule_to_close_timeout),
    };
    let deadline = from.as_ref().map(|t| from_ts(t) + from_dur(limit));
    if let Some(deadline) = deadline.filter(|d| *d > txn.now) {
        // Early (a clock that stepped back): wait for the deadline, never drop the timeout.
        let mut t = txn.timer_task(pb::TimerTaskKind::NexusTimeout, scheduled_event_id, 0);
        t.timeout_type = kind as i32;
        txn.add_timer_task(deadline, t);
        return;
    }
    let cause = Failure {
        message: "operation timed out".into(),
        failure_info: Some(FailureInfo::TimeoutFailureInfo(TimeoutFailureInfo {
            timeout_type: kind as i32,
            ..Default::default()
        })),
        ..Default::default()
    };
    txn.write_external_applied(
        NexusOperationTimedOutEventAttributes {
            scheduled_event_id,
            failure: Some(wrapped(&op, cause.clone())),
            request_id: op.request_id.clone(),
        },
        apply_closed_timed_out,
    );
    crate::standalone_nexus::operation_closed(
        txn,
        &op,
        crate::standalone_nexus::Closed::TimedOut(cause),
    );
    workflow_task::schedule_if_needed(txn);
}

/// The handler answered the cancel request (`failure` if it refused it).
pub fn on_cancel_answer(txn: &mut Txn<'_>, scheduled_event_id: i64, failure: Option<Failure>) {
    if !txn.is_running() {
        return;
    }
    let Some(op) = txn.ms.nexus_operations.get_mut(&scheduled_event_id) else {
        return;
    };
    if op.cancel_requested_event_id == 0 || op.cancel_delivered {
        return;
    }
    op.cancel_delivered = true;
    let requested_event_id = op.cancel_requested_event_id;
    crate::standalone_nexus::cancel_answered(txn, failure.clone());
    let idx = txn.out.events.len();
    match failure {
        None => {
            txn.write_external(
                NexusOperationCancelRequestCompletedEventAttributes {
                    requested_event_id,
                    workflow_task_completed_event_id: 0,
                    scheduled_event_id,
                }
                .into(),
            );
            // The workflow need not react to it (Temporal marks it so).
            if let Some(ev) = txn.out.events.get_mut(idx) {
                ev.worker_may_ignore = true;
            }
        }
        Some(failure) => {
            txn.write_external(
                NexusOperationCancelRequestFailedEventAttributes {
                    requested_event_id,
                    workflow_task_completed_event_id: 0,
                    failure: Some(failure),
                    scheduled_event_id,
                }
                .into(),
            );
        }
    }
    workflow_task::schedule_if_needed(txn);
}

/// NexusOperationScheduled: a pending operation; its schedule-to-close deadline counts
/// from the event's time.
pub(crate) fn apply_scheduled(
    ms: &mut pb::MutableState,
    at: At,
    a: &NexusOperationScheduledEventAttributes,
) {
    ms.nexus_operations.insert(
        at.id,
        pb::NexusOperationInfo {
            scheduled_event_id: at.id,
            endpoint: a.endpoint.clone(),
            endpoint_id: a.endpoint_id.clone(),
            service: a.service.clone(),
            operation: a.operation.clone(),
            schedule_to_close_timeout: a.schedule_to_close_timeout,
            scheduled_time: Some(at.time),
            request_id: a.request_id.clone(),
            input: a.input.clone(),
            nexus_header: a.nexus_header.clone(),
            schedule_to_start_timeout: a.schedule_to_start_timeout,
            start_to_close_timeout: a.start_to_close_timeout,
            ..Default::default()
        },
    );
}

pub(crate) fn apply_started(
    ms: &mut pb::MutableState,
    at: At,
    a: &NexusOperationStartedEventAttributes,
) {
    if let Some(op) = ms.nexus_operations.get_mut(&a.scheduled_event_id) {
        op.started_event_id = at.id;
        op.operation_token = a.operation_token.clone();
        op.next_attempt_schedule_time = None;
    }
}

pub(crate) fn apply_cancel_requested(
    ms: &mut pb::MutableState,
    at: At,
    a: &NexusOperationCancelRequestedEventAttributes,
) {
    if let Some(op) = ms.nexus_operations.get_mut(&a.scheduled_event_id) {
        op.cancel_requested_event_id = at.id;
    }
}

pub(crate) fn apply_closed_completed(
    ms: &mut pb::MutableState,
    _: At,
    a: &NexusOperationCompletedEventAttributes,
) {
    ms.nexus_operations.remove(&a.scheduled_event_id);
}

pub(crate) fn apply_closed_failed(
    ms: &mut pb::MutableState,
    _: At,
    a: &NexusOperationFailedEventAttributes,
) {
    ms.nexus_operations.remove(&a.scheduled_event_id);
}

pub(crate) fn apply_closed_canceled(
    ms: &mut pb::MutableState,
    _: At,
    a: &NexusOperationCanceledEventAttributes,
) {
    ms.nexus_operations.remove(&a.scheduled_event_id);
}

pub(crate) fn apply_closed_timed_out(
    ms: &mut pb::MutableState,
    _: At,
    a: &NexusOperationTimedOutEventAttributes,
) {
    ms.nexus_operations.remove(&a.scheduled_event_id);
}

#[cfg(test)]
#[path = "nexus_tests.rs"]
mod tests;
