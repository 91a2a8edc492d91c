//! Standalone activities (StartActivityExecution): an activity no workflow scheduled. It
//! lives in a run of its own (workflow id `temporal-sys-activity:<activity id>`, so it never
//! meets a workflow of the same id) that no worker runs as a workflow: the run has no
//! workflow tasks, its one activity is scheduled, dispatched, retried, timed out, heartbeated
//! and canceled exactly as a workflow's activity is (`crate::activity`), and the run closes
//! when the activity does, with the activity's outcome. The run's namespace division
//! (`TemporalNamespaceDivision`) keeps it out of workflow lists; ListActivityExecutions
//! reads that division.

use std::time::Duration;

use temper_proto::temporal::api::command::v1::ScheduleActivityTaskCommandAttributes;
use temper_proto::temporal::api::common::v1::{Payload, Payloads, SearchAttributes, WorkflowType};
use temper_proto::temporal::api::enums::v1::{
    ActivityExecutionStatus, TaskQueueKind, WorkflowExecutionStatus,
};
use temper_proto::temporal::api::failure::v1::{
    CanceledFailureInfo, Failure, TerminatedFailureInfo, failure::FailureInfo,
};
use temper_proto::temporal::api::history::v1::{
    WorkflowExecutionCanceledEventAttributes, WorkflowExecutionCompletedEventAttributes,
    WorkflowExecutionFailedEventAttributes, WorkflowExecutionTimedOutEventAttributes,
    history_event::Attributes,
};
use temper_proto::temporal::api::taskqueue::v1::TaskQueue;
use temper_proto::temporal::api::workflowservice::v1::{
    StartActivityExecutionRequest, StartWorkflowExecutionRequest,
};

use crate::time::{dur, from_dur, is_negative, ts};
use crate::{Txn, WorkflowError, activity, close, pb};

/// The namespace division of standalone activities' runs: workflow lists leave them out.
pub const NAMESPACE_DIVISION: &str = "TemporalStandaloneActivity";
const DIVISION_ATTRIBUTE: &str = "TemporalNamespaceDivision";
/// Longest activity id (Temporal's limit for ids).
pub const MAX_ID_LENGTH: usize = 1000;
/// The reason a TerminateActivityExecution without one records.
pub const DEFAULT_TERMINATE_REASON: &str = "terminated by user via frontend";

fn invalid(message: &str) -> WorkflowError {
    WorkflowError::InvalidArgument(message.to_owned())
}

/// What the frontend and history check of a start request before anything is written, with
/// the Temporal server's messages.
pub fn validate(r: &StartActivityExecutionRequest) -> Result<(), WorkflowError> {
    let activity_type = r
        .activity_type
        .as_ref()
        .map(|t| t.name.as_str())
        .unwrap_or_default();
    if r.activity_id.is_empty() {
        return Err(invalid("activityId is not set"));
    }
    if r.activity_id.len() > MAX_ID_LENGTH {
        return Err(invalid(&format!(
            "activityId exceeds length limit. Length={} Limit={MAX_ID_LENGTH}",
            r.activity_id.len()
        )));
    }
    if activity_type.is_empty() {
        return Err(invalid("activityType is not set"));
    }
    if activity_type.len() > MAX_ID_LENGTH {
        return Err(invalid(&format!(
            "activityType exceeds length limit. Length={} Limit={MAX_ID_LENGTH}",
            activity_type.len()
        )));
    }
    let queue = r
        .task_queue
        .as_ref()
        .map(|q| q.name.as_str())
        .unwrap_or_default();
    if queue.is_empty() {
        return Err(invalid("missing task queue name"));
    }
    if queue.starts_with(crate::state::RESERVED_PREFIX) {
        return Err(invalid(crate::state::RESERVED_TASK_QUEUE));
    }
    for (name, d) in [
        ("ScheduleToCloseTimeout", &r.schedule_to_close_timeout),
        ("ScheduleToStartTimeout", &r.schedule_to_start_timeout),
        ("StartToCloseTimeout", &r.start_to_close_timeout),
        ("HeartbeatTimeout", &r.heartbeat_timeout),
        ("StartDelay", &r.start_delay),
    ] {
        if is_negative(d) {
            return Err(invalid(&format!("invalid {name}: negative duration")));
        }
    }
    if from_dur(&r.schedule_to_close_timeout).is_zero()
        && from_dur(&r.start_to_close_timeout).is_zero()
    {
        return Err(invalid(&format!(
            "a valid StartToCloseTimeout or ScheduleToCloseTimeout must be set on the activity. \
             ActivityId={} ActivityType={activity_type}",
            r.activity_id
        )));
    }
    if let Some(p) = &r.retry_policy {
        crate::retry::validate_policy(p).map_err(|m| invalid(&m))?;
    }
    if r.request_id.len() > MAX_ID_LENGTH {
        return Err(invalid("RequestId length exceeds limit."));
    }
    Ok(())
}

/// The request that creates the run holding activity `r` (validated).
pub fn run_request(
    r: &StartActivityExecutionRequest,
    request_id: &str,
) -> StartWorkflowExecutionRequest {
    let mut search_attributes = r.search_attributes.clone().unwrap_or_default();
    search_attributes.indexed_fields.insert(
        DIVISION_ATTRIBUTE.to_owned(),
        Payload {
            metadata: [
                ("encoding".to_owned(), b"json/plain".to_vec()),
                ("type".to_owned(), b"Keyword".to_vec()),
            ]
            .into(),
            data: format!("\"{NAMESPACE_DIVISION}\"").into_bytes(),
            ..Default::default()
        },
    );
    StartWorkflowExecutionRequest {
        namespace: r.namespace.clone(),
        workflow_id: temper_types::standalone_activity_workflow_id(&r.activity_id),
        workflow_type: Some(WorkflowType {
            name: r
                .activity_type
                .as_ref()
                .map(|t| t.name.clone())
                .unwrap_or_default(),
        }),
        task_queue: Some(TaskQueue {
            name: r
                .task_queue
                .as_ref()
                .map(|q| q.name.clone())
                .unwrap_or_default(),
            kind: TaskQueueKind::Normal as i32,
            normal_name: String::new(),
        }),
        request_id: request_id.to_owned(),
        identity: r.identity.clone(),
        search_attributes: Some(SearchAttributes {
            indexed_fields: search_attributes.indexed_fields,
        }),
        priority: r.priority.clone(),
        // A Nexus operation backed by this activity: its caller is called back when the
        // activity's run closes, as a handler workflow's is.
        completion_callbacks: r.completion_callbacks.clone(),
        ..Default::default()
    }
}

/// Schedule the activity of a new standalone run (made from [`run_request`]). Bad options
/// are the caller's error, with the messages a workflow's command would fail with.
pub fn start(txn: &mut Txn<'_>, r: &StartActivityExecutionRequest) -> Result<(), WorkflowError> {
    let attrs = ScheduleActivityTaskCommandAttributes {
        activity_id: r.activity_id.clone(),
        activity_type: r.activity_type.clone(),
        task_queue: r.task_queue.clone().map(|mut q| {
            q.kind = TaskQueueKind::Normal as i32;
            q
        }),
        header: r.header.clone(),
        input: r.input.clone(),
        schedule_to_close_timeout: r.schedule_to_close_timeout,
        schedule_to_start_timeout: r.schedule_to_start_timeout,
        start_to_close_timeout: r.start_to_close_timeout,
        heartbeat_timeout: r.heartbeat_timeout,
        retry_policy: r.retry_policy.clone(),
        priority: r.priority.clone(),
        ..Default::default()
    };
    let delay = from_dur(&r.start_delay);
    let id = activity::schedule_first(txn, &attrs, 0, delay).map_err(|b| {
        // The command's wording, as a request's.
        invalid(
            &b.message
                .replace("on ScheduleActivityTaskCommand", "on request"),
        )
    })?;
    txn.ms.standalone_activity = Some(Box::new(pb::StandaloneActivity {
        activity_id: r.activity_id.clone(),
        scheduled_event_id: id,
        start_delay: (!delay.is_zero()).then(|| dur(delay)).flatten(),
        user_metadata: r.user_metadata.clone(),
        ..Default::default()
    }));
    Ok(())
}

/// Whether this run holds a standalone activity.
pub fn is_standalone(ms: &pb::MutableState) -> bool {
    ms.standalone_activity.is_some()
}

/// The activity of a standalone run as it is now: pending, or as it closed.
pub fn current_info(ms: &pb::MutableState) -> Option<pb::ActivityInfo> {
    let sa = ms.standalone_activity.as_ref()?;
    ms.activities
        .get(&sa.scheduled_event_id)
        .cloned()
        .or_else(|| sa.last.clone())
}

/// The activity's status (Temporal's ActivityExecutionStatus) from its run's.
pub fn status(ms: &pb::MutableState) -> ActivityExecutionStatus {
    status_of_run(ms.execution_info.as_ref().map(|i| i.status).unwrap_or(0))
}

/// The activity status a standalone activity's run status (a `WorkflowExecutionStatus`
/// value) stands for.
pub fn status_of_run(run: i32) -> ActivityExecutionStatus {
    match WorkflowExecutionStatus::try_from(run).unwrap_or(WorkflowExecutionStatus::Unspecified) {
        WorkflowExecutionStatus::Running => ActivityExecutionStatus::Running,
        WorkflowExecutionStatus::Completed => ActivityExecutionStatus::Completed,
        WorkflowExecutionStatus::Failed => ActivityExecutionStatus::Failed,
        WorkflowExecutionStatus::Canceled => ActivityExecutionStatus::Canceled,
        WorkflowExecutionStatus::Terminated => ActivityExecutionStatus::Terminated,
        WorkflowExecutionStatus::TimedOut => ActivityExecutionStatus::TimedOut,
        _ => ActivityExecutionStatus::Unspecified,
    }
}

/// An attempt of the activity ended (it failed and will be retried, or the activity
/// closed): note when.
pub(crate) fn attempt_ended(txn: &mut Txn<'_>) {
    let now = txn.now_ts;
    if let Some(sa) = txn.ms.standalone_activity.as_mut() {
        sa.last_attempt_complete_time = Some(now);
    }
}

/// The activity of a standalone run has just closed with the event last written (completed,
/// failed, timed out or canceled); `last` is how it was just before. The run closes with the
/// same outcome.
pub(crate) fn activity_closed(txn: &mut Txn<'_>, mut last: pb::ActivityInfo) {
    if !txn.is_running() {
        return;
    }
    let Some(end) = txn.out.events.last().and_then(|e| e.attributes.clone()) else {
        return;
    };
    if !matches!(
        end,
        Attributes::ActivityTaskCompletedEventAttributes(_)
            | Attributes::ActivityTaskFailedEventAttributes(_)
            | Attributes::ActivityTaskTimedOutEventAttributes(_)
            | Attributes::ActivityTaskCanceledEventAttributes(_)
    ) {
        return;
    }
    let now = txn.now_ts;
    let started = last.started_time.is_some();
    let Some(sa) = txn.ms.standalone_activity.as_mut() else {
        return;
    };
    if started {
        sa.last_attempt_complete_time = Some(now);
    }
    match end {
        Attributes::ActivityTaskCompletedEventAttributes(a) => {
            sa.last = Some(last);
            sa.result = a.result.clone();
            close::write_close(
                txn,
                WorkflowExecutionCompletedEventAttributes {
                    result: a.result,
                    ..Default::default()
                },
                WorkflowExecutionStatus::Completed,
            );
        }
        Attributes::ActivityTaskFailedEventAttributes(a) => {
            // The last failure describe shows is the one that ended it.
            last.last_failure = a.failure.clone();
            sa.last = Some(last);
            sa.failure = a.failure.clone();
            sa.retry_state = a.retry_state;
            close::write_close(
                txn,
                WorkflowExecutionFailedEventAttributes {
                    failure: a.failure,
                    retry_state: a.retry_state,
                    ..Default::default()
                },
                WorkflowExecutionStatus::Failed,
            );
        }
        Attributes::ActivityTaskTimedOutEventAttributes(a) => {
            if last.last_failure.is_none() {
                last.last_failure = a.failure.clone();
            }
            sa.last = Some(last);
            sa.failure = a.failure;
            sa.retry_state = a.retry_state;
            close::write_close(
                txn,
                WorkflowExecutionTimedOutEventAttributes {
                    retry_state: a.retry_state,
                    ..Default::default()
                },
                WorkflowExecutionStatus::TimedOut,
            );
        }
        Attributes::ActivityTaskCanceledEventAttributes(a) => {
            sa.last = Some(last);
            sa.failure = Some(canceled_failure(a.details.clone(), &a.identity));
            sa.retry_state = 0;
            close::write_close(
                txn,
                WorkflowExecutionCanceledEventAttributes {
                    details: a.details,
                    ..Default::default()
                },
                WorkflowExecutionStatus::Canceled,
            );
        }
        _ => {}
    }
}

/// The outcome of a canceled activity, as the Temporal server words it.
fn canceled_failure(details: Option<Payloads>, identity: &str) -> Failure {
    Failure {
        message: "Activity canceled".into(),
        failure_info: Some(FailureInfo::CanceledFailureInfo(CanceledFailureInfo {
            details,
            identity: identity.to_owned(),
        })),
        ..Default::default()
    }
}

/// A closed activity's status as the Temporal server names it in its errors.
fn state_name(ms: &pb::MutableState) -> &'static str {
    match status(ms) {
        ActivityExecutionStatus::Completed => "Completed",
        ActivityExecutionStatus::Failed => "Failed",
        ActivityExecutionStatus::Canceled => "Canceled",
        ActivityExecutionStatus::Terminated => "Terminated",
        ActivityExecutionStatus::TimedOut => "TimedOut",
        ActivityExecutionStatus::Running => "Started",
        _ => "Unspecified",
    }
}

/// The error for a change a closed activity cannot take.
pub fn invalid_transition(ms: &pb::MutableState) -> WorkflowError {
    WorkflowError::FailedPrecondition(format!("invalid transition from {}", state_name(ms)))
}

/// RequestCancelActivityExecution: ask the activity to cancel. A worker running it learns
/// of it from its next heartbeat; one not started yet is canceled at once, with the reason
/// as its details. A repeated request changes nothing; one for a closed activity is refused,
/// unless it is the request that canceled it.
pub fn request_cancel(
    txn: &mut Txn<'_>,
    reason: &str,
    identity: &str,
    request_id: &str,
) -> Result<(), WorkflowError> {
    let Some(sa) = txn.ms.standalone_activity.clone() else {
        return Err(WorkflowError::NotFound(
            "activity execution not found".into(),
        ));
    };
    if !txn.is_running() {
        if status(txn.ms) == ActivityExecutionStatus::Canceled
            && !request_id.is_empty()
            && sa.cancel_request_id == request_id
        {
            return Ok(());
        }
        return Err(WorkflowError::FailedPrecondition(format!(
            "activity is in terminal state {}",
            state_name(txn.ms)
        )));
    }
    let Some(ai) = txn.ms.activities.get(&sa.scheduled_event_id).cloned() else {
        return Err(WorkflowError::Internal(
            "a running standalone activity's run has no pending activity".into(),
        ));
    };
    if ai.cancel_requested {
        return Ok(());
    }
    if let Some(sa) = txn.ms.standalone_activity.as_mut() {
        sa.canceled_reason = reason.to_owned();
        sa.cancel_request_id = request_id.to_owned();
    }
    if ai.started_time.is_some() {
        activity::request_cancel(txn, sa.scheduled_event_id, 0).map_err(|b| invalid(&b.message))?;
        txn.needs_workflow_task = false;
        return Ok(());
    }
    // Never started: canceled now, with the reason as the details.
    let details = Payloads {
        payloads: vec![Payload {
            metadata: [("encoding".to_owned(), b"json/plain".to_vec())].into(),
            data: serde_json::to_vec(reason).unwrap_or_default(),
            ..Default::default()
        }],
    };
    activity::request_cancel(txn, sa.scheduled_event_id, 0).map_err(|b| invalid(&b.message))?;
    txn.needs_workflow_task = false;
    activity_closed(txn, ai);
    if let Some(sa) = txn.ms.standalone_activity.as_mut() {
        sa.failure = Some(canceled_failure(Some(details), identity));
    }
    Ok(())
}

/// RespondActivityTaskCanceled on a standalone activity: only one asked to cancel may end
/// canceled.
pub fn check_cancelable(ai: &pb::ActivityInfo) -> Result<(), WorkflowError> {
    if !ai.cancel_requested {
        return Err(invalid(
            "unable to mark activity as canceled without activity being request canceled first",
        ));
    }
    Ok(())
}

/// TerminateActivityExecution: the activity ends now, terminated; a worker still running it
/// is told to cancel on its next heartbeat. A repeated request (same request id) changes
/// nothing.
pub fn terminate(
    txn: &mut Txn<'_>,
    reason: &str,
    identity: &str,
    request_id: &str,
) -> Result<(), WorkflowError> {
    let Some(sa) = txn.ms.standalone_activity.clone() else {
        return Err(WorkflowError::NotFound(
            "activity execution not found".into(),
        ));
    };
    if !txn.is_running() {
        if status(txn.ms) != ActivityExecutionStatus::Terminated {
            return Err(invalid_transition(txn.ms));
        }
        if !request_id.is_empty() && sa.terminate_request_id == request_id {
            return Ok(());
        }
        return Err(WorkflowError::FailedPrecondition(format!(
            "already terminated with request ID {}",
            sa.terminate_request_id
        )));
    }
    let reason = if reason.is_empty() {
        DEFAULT_TERMINATE_REASON
    } else {
        reason
    };
    let last = txn.ms.activities.remove(&sa.scheduled_event_id);
    if let Some(sa) = txn.ms.standalone_activity.as_mut() {
        sa.last = last;
        sa.terminate_request_id = request_id.to_owned();
        sa.canceled_reason.clear();
        sa.failure = Some(Failure {
            message: reason.to_owned(),
            failure_info: Some(FailureInfo::TerminatedFailureInfo(TerminatedFailureInfo {
                identity: identity.to_owned(),
            })),
            ..Default::default()
        });
        sa.retry_state = 0;
    }
    close::terminate(txn, reason, None, identity)
}

/// A heartbeat for the attempt of a standalone activity that was terminated while it ran:
/// the worker is told to cancel it (as the Temporal server answers). `None` when the report
/// is not for such an attempt.
pub fn heartbeat_after_termination(
    ms: &pb::MutableState,
    scheduled_event_id: Option<i64>,
    attempt: Option<i32>,
) -> Option<activity::HeartbeatAnswer> {
    let sa = ms.standalone_activity.as_ref()?;
    if status(ms) != ActivityExecutionStatus::Terminated {
        return None;
    }
    let last = sa.last.as_ref()?;
    let same = last.started_time.is_some()
        && scheduled_event_id.is_none_or(|id| id == last.scheduled_event_id)
        && attempt.is_none_or(|a| a == last.attempt);
    same.then_some(activity::HeartbeatAnswer {
        cancel_requested: true,
        ..Default::default()
    })
}

/// A worker picked up an attempt: note its SDK (describe shows the latest one's).
pub fn note_worker_sdk(txn: &mut Txn<'_>, name: &str, version: &str) {
    if let Some(sa) = txn.ms.standalone_activity.as_mut() {
        sa.sdk_name = name.to_owned();
        sa.sdk_version = version.to_owned();
    }
}

/// A heartbeat reached the activity: count it (describe shows the total).
pub(crate) fn heartbeat_recorded(txn: &mut Txn<'_>) {
    if let Some(sa) = txn.ms.standalone_activity.as_mut() {
        sa.total_heartbeat_count += 1;
    }
}

/// The schedule-to-close timeout fired: Temporal reports it as the schedule-to-start
/// timeout when that one is as long (it copies the schedule-to-close timeout into it) and
/// the first attempt never started, its timer having fired first.
pub(crate) fn reads_as_schedule_to_start(ms: &pb::MutableState, ai: &pb::ActivityInfo) -> bool {
    ms.standalone_activity
        .as_ref()
        .is_some_and(|sa| from_dur(&sa.start_delay).is_zero())
        && ai.attempt == 1
        && ai.started_time.is_none()
        && !from_dur(&ai.schedule_to_start_timeout).is_zero()
        && ai.schedule_to_start_timeout == ai.schedule_to_close_timeout
}

/// The time the activity's first attempt may be dispatched: its schedule time plus the
/// start delay.
pub fn execution_time(ms: &pb::MutableState) -> Option<temper_proto::wkt::Timestamp> {
    let sa = ms.standalone_activity.as_ref()?;
    let first = current_info(ms)?.first_scheduled_time?;
    let delay = from_dur(&sa.start_delay);
    if delay.is_zero() {
        return Some(first);
    }
    Some(ts(crate::time::from_ts(&first) + delay))
}

/// The start delay of a run's activity (zero if none).
pub fn start_delay(ms: &pb::MutableState) -> Duration {
    ms.standalone_activity
        .as_ref()
        .map(|sa| from_dur(&sa.start_delay))
        .unwrap_or_default()
}

#[cfg(test)]
#[path = "standalone_tests.rs"]
mod tests;
