//! Activities: scheduling (with Temporal's timeout normalisation), start, heartbeat,
//! completion, failure with server-side retries, cancellation and the four timeouts; and how
//! each activity event changes the state.

use std::time::{Duration, SystemTime};

use temper_proto::temporal::api::command::v1::ScheduleActivityTaskCommandAttributes;
use temper_proto::temporal::api::common::v1::Payloads;
use temper_proto::temporal::api::enums::v1::{
    RetryState, TaskQueueKind, TimeoutType, WorkflowTaskFailedCause,
};
use temper_proto::temporal::api::failure::v1::{Failure, TimeoutFailureInfo, failure::FailureInfo};
use temper_proto::temporal::api::history::v1::{
    ActivityTaskCancelRequestedEventAttributes, ActivityTaskCanceledEventAttributes,
    ActivityTaskCompletedEventAttributes, ActivityTaskFailedEventAttributes,
    ActivityTaskScheduledEventAttributes, ActivityTaskStartedEventAttributes,
    ActivityTaskTimedOutEventAttributes, history_event::Attributes,
};

use crate::BadCommand;
use crate::events::At;
use crate::time::{dur_or_zero, from_dur, from_ts, is_negative, opt_from_ts, ts};
use crate::{Txn, WorkflowError, pb, retry, workflow_task};

fn bad(message: &str) -> BadCommand {
    BadCommand::new(
        WorkflowTaskFailedCause::BadScheduleActivityAttributes,
        message,
    )
}

/// Apply Temporal's rules for activity timeouts. Returns
/// (schedule_to_close, schedule_to_start, start_to_close), zero meaning unlimited.
pub(crate) fn normalise_timeouts(
    a: &ScheduleActivityTaskCommandAttributes,
    run_timeout: Duration,
) -> Result<(Duration, Duration, Duration), BadCommand> {
    if is_negative(&a.schedule_to_close_timeout)
        || is_negative(&a.schedule_to_start_timeout)
        || is_negative(&a.start_to_close_timeout)
        || is_negative(&a.heartbeat_timeout)
    {
        return Err(bad("A valid timeout may not be negative."));
    }
    let mut s2c = from_dur(&a.schedule_to_close_timeout);
    let mut s2s = from_dur(&a.schedule_to_start_timeout);
    let mut st2c = from_dur(&a.start_to_close_timeout);
    if !run_timeout.is_zero() {
        if s2c.is_zero() || s2c > run_timeout {
            s2c = run_timeout;
        }
        if s2s > run_timeout {
            s2s = run_timeout;
        }
        if st2c > run_timeout {
            st2c = run_timeout;
        }
    }
    let explicit_s2c = !from_dur(&a.schedule_to_close_timeout).is_zero();
    if !explicit_s2c && st2c.is_zero() {
        return Err(bad(
            "A valid StartToClose or ScheduleToCloseTimeout is not set on ScheduleActivityTaskCommand.",
        ));
    }
    if !s2c.is_zero() {
        if s2s.is_zero() || s2s > s2c {
            s2s = s2c;
        }
        if st2c.is_zero() || st2c > s2c {
            st2c = s2c;
        }
    }
    Ok((s2c, s2s, st2c))
}

/// The ScheduleActivityTask command.
pub fn schedule(
    txn: &mut Txn<'_>,
    a: &ScheduleActivityTaskCommandAttributes,
    wft_completed_event_id: i64,
) -> Result<(), BadCommand> {
    schedule_first(txn, a, wft_completed_event_id, Duration::ZERO).map(|_| ())
}

/// Schedule an activity whose first attempt is dispatched after `delay` (a standalone
/// activity's start delay; zero for a workflow's). Returns its scheduled event id.
pub(crate) fn schedule_first(
    txn: &mut Txn<'_>,
    a: &ScheduleActivityTaskCommandAttributes,
    wft_completed_event_id: i64,
    delay: Duration,
) -> Result<i64, BadCommand> {
    if a.activity_id.is_empty() {
        return Err(bad("ActivityId is not set on ScheduleActivityTaskCommand."));
    }
    if a.activity_type.as_ref().is_none_or(|t| t.name.is_empty()) {
        return Err(bad(
            "ActivityType is not set on ScheduleActivityTaskCommand.",
        ));
    }
    if a.activity_id.len() > 1000 {
        return Err(bad("ActivityID exceeds length limit."));
    }
    if txn
        .ms
        .activities
        .values()
        .any(|ai| ai.activity_id == a.activity_id)
    {
        return Err(bad("Activity ID already exists for a pending activity."));
    }
    if txn.ms.activities.len() >= txn.limits.max_pending_activities {
        return Err(BadCommand::new(
            WorkflowTaskFailedCause::PendingActivitiesLimitExceeded,
            "the number of pending activities has reached the limit",
        ));
    }
    if let Some(input) = &a.input
        && input.payloads.iter().map(|p| p.data.len()).sum::<usize>() > txn.limits.max_payload_bytes
    {
        return Err(BadCommand::new(
            WorkflowTaskFailedCause::BadScheduleActivityAttributes,
            "ScheduleActivityTaskCommandAttributes.Input exceeds size limit.",
        ));
    }
    let run_timeout = from_dur(&txn.info().workflow_run_timeout);
    let (s2c, s2s, st2c) = normalise_timeouts(a, run_timeout)?;
    let mut hb = from_dur(&a.heartbeat_timeout);
    if !st2c.is_zero() && hb > st2c {
        hb = st2c;
    }
    crate::priority::validate(a.priority.as_ref()).map_err(bad)?;
    let policy = match &a.retry_policy {
        Some(p) => {
            retry::validate_policy(p).map_err(|m| bad(&m))?;
            retry::with_defaults(p.clone())
        }
        None => retry::default_activity_policy(),
    };
    let mut queue = a.task_queue.clone().unwrap_or_default();
    if queue.name.starts_with(crate::state::RESERVED_PREFIX) {
        return Err(bad(crate::state::RESERVED_TASK_QUEUE));
    }
    if queue.name.is_empty() {
        queue = txn.info().task_queue.clone().unwrap_or_default();
    }
    if queue.kind == TaskQueueKind::Unspecified as i32 {
        queue.kind = TaskQueueKind::Normal as i32;
    }
    let id = txn.write_applied(
        ActivityTaskScheduledEventAttributes {
            activity_id: a.activity_id.clone(),
            activity_type: a.activity_type.clone(),
            task_queue: Some(queue),
            header: a.header.clone(),
            input: a.input.clone(),
            // Present even when zero (unlimited), as from the Temporal server.
            schedule_to_close_timeout: dur_or_zero(s2c),
            schedule_to_start_timeout: dur_or_zero(s2s),
            start_to_close_timeout: dur_or_zero(st2c),
            heartbeat_timeout: dur_or_zero(hb),
            workflow_task_completed_event_id: wft_completed_event_id,
            retry_policy: Some(policy),
            priority: a.priority.clone(),
            #[allow(deprecated)]
            use_workflow_build_id: a.use_workflow_build_id,
        },
        apply_scheduled,
    );
    if !delay.is_zero() {
        // The schedule-to-close deadline counts from the first dispatch; until then the
        // attempt waits as for a retry.
        let at = txn.now + delay;
        if let Some(ai) = txn.ms.activities.get_mut(&id) {
            ai.retry_time = Some(ts(at));
            if !s2c.is_zero() {
                ai.expiration_time = Some(ts(at + s2c));
            }
        }
        let t = txn.timer_task(pb::TimerTaskKind::ActivityRetry, id, 1);
        txn.add_timer_task(at, t);
    }
    if !s2c.is_zero() {
        let mut t = txn.timer_task(pb::TimerTaskKind::ActivityTimeout, id, 0);
        t.timeout_type = TimeoutType::ScheduleToClose as i32;
        txn.add_timer_task(txn.now + delay + s2c, t);
    }
    if delay.is_zero()
        && let Some(ai) = txn.ms.activities.get(&id).cloned()
    {
        dispatch(txn, &ai);
    }
    Ok(id)
}

/// Hand the current attempt to matching, with its schedule-to-start timer.
pub(crate) fn dispatch(txn: &mut Txn<'_>, ai: &pb::ActivityInfo) {
    let s2s = from_dur(&ai.schedule_to_start_timeout);
    let mut t = txn.transfer_task(pb::TransferTaskKind::ActivityTask);
    t.scheduled_event_id = ai.scheduled_event_id;
    t.task_queue = ai.task_queue.clone();
    t.schedule_to_start_timeout = ai.schedule_to_start_timeout;
    t.attempt = ai.attempt;
    txn.add_transfer_task(t);
    let s2c = from_dur(&ai.schedule_to_close_timeout);
    if !s2s.is_zero() && (s2c.is_zero() || s2s < s2c) {
        let mut timer = txn.timer_task(
            pb::TimerTaskKind::ActivityTimeout,
            ai.scheduled_event_id,
            ai.attempt,
        );
        timer.timeout_type = TimeoutType::ScheduleToStart as i32;
        txn.add_timer_task(txn.now + s2s, timer);
    }
}

/// The RequestCancelActivityTask command.
pub fn request_cancel(
    txn: &mut Txn<'_>,
    scheduled_event_id: i64,
    wft_completed_event_id: i64,
) -> Result<(), BadCommand> {
    let Some(ai) = txn.ms.activities.get(&scheduled_event_id).cloned() else {
        return Err(BadCommand::new(
            WorkflowTaskFailedCause::BadRequestCancelActivityAttributes,
            &format!(
                "RequestCancelActivityTaskCommand: activity with scheduled event id {scheduled_event_id} is not pending."
            ),
        ));
    };
    let requested_id = txn.write_applied(
        ActivityTaskCancelRequestedEventAttributes {
            scheduled_event_id,
            workflow_task_completed_event_id: wft_completed_event_id,
        },
        apply_cancel_requested,
    );
    if ai.started_time.is_none() {
        // Not running anywhere: canceled at once.
        txn.write_applied(
            ActivityTaskCanceledEventAttributes {
                latest_cancel_requested_event_id: requested_id,
                scheduled_event_id,
                started_event_id: 0,
                identity: String::new(),
                details: None,
                ..Default::default()
            },
            apply_canceled,
        );
        // The workflow must learn of it in a new task.
        txn.needs_workflow_task = true;
    }
    Ok(())
}

/// Who is reporting on an activity: a task token or (workflow, run, activity id).
pub enum ActivityRef<'a> {
    Token(&'a pb::TaskToken),
    ById(&'a str),
}

/// Find the started activity a worker reports on.
pub fn find_started(txn: &Txn<'_>, r: ActivityRef<'_>) -> Result<pb::ActivityInfo, WorkflowError> {
    let not_found = || WorkflowError::NotFound("activity task not found".into());
    if !txn.is_running() {
        return Err(WorkflowError::NotFound(
            "workflow execution already completed".into(),
        ));
    }
    let ai = match r {
        ActivityRef::Token(t) => {
            let ai = txn
                .ms
                .activities
                .get(&t.scheduled_event_id)
                .ok_or_else(not_found)?;
            if ai.attempt != t.attempt
                || (!t.activity_id.is_empty() && ai.activity_id != t.activity_id)
            {
                return Err(not_found());
            }
            ai
        }
        ActivityRef::ById(id) => txn
            .ms
            .activities
            .values()
            .find(|ai| ai.activity_id == id)
            .ok_or_else(not_found)?,
    };
    if ai.started_time.is_none() {
        return Err(not_found());
    }
    Ok(ai.clone())
}

/// Record that a worker picked up the activity. `Ok(None)`: the same poll already did.
pub fn record_started(
    txn: &mut Txn<'_>,
    scheduled_event_id: i64,
    attempt: i32,
    request_id: &str,
    identity: &str,
) -> Result<pb::ActivityInfo, WorkflowError> {
    if scheduled_event_id >= txn.ms.next_event_id {
        return Err(WorkflowError::StaleState(format!(
            "activity scheduled as event {scheduled_event_id}, past this state's last event"
        )));
    }
    if !txn.is_running() {
        return Err(WorkflowError::NotFound(
            "workflow execution already completed".into(),
        ));
    }
    let now = txn.now;
    let now_ts = txn.now_ts;
    let Some(ai) = txn.ms.activities.get_mut(&scheduled_event_id) else {
        return Err(WorkflowError::NotFound("activity task not found".into()));
    };
    if attempt != 0 && ai.attempt != attempt {
        return Err(WorkflowError::NotFound("activity task not found".into()));
    }
    if ai.started_time.is_some() {
        if ai.start_request_id == request_id {
            return Ok(ai.clone());
        }
        return Err(WorkflowError::NotFound(
            "activity task already started".into(),
        ));
    }
    if ai.retry_time.as_ref().is_some_and(|t| from_ts(t) > now) {
        return Err(WorkflowError::NotFound(
            "activity task is waiting for its retry".into(),
        ));
    }
    // Paused by an operator: the attempt waits for UnpauseActivity, which dispatches anew.
    if ai.paused {
        return Err(WorkflowError::NotFound("activity task is paused".into()));
    }
    ai.started_time = Some(now_ts);
    ai.start_request_id = request_id.to_string();
    ai.started_identity = identity.to_string();
    ai.last_worker_identity = identity.to_string();
    ai.last_heartbeat_time = None;
    let ai = ai.clone();
    let st2c = from_dur(&ai.start_to_close_timeout);
    if !st2c.is_zero() {
        let mut t = txn.timer_task(
            pb::TimerTaskKind::ActivityTimeout,
            scheduled_event_id,
            ai.attempt,
        );
        t.timeout_type = TimeoutType::StartToClose as i32;
        txn.add_timer_task(running_timeout_at(now, now + st2c), t);
    }
    arm_heartbeat_timer(txn, scheduled_event_id, now);
    Ok(txn
        .ms
        .activities
        .get(&scheduled_event_id)
        .cloned()
        .unwrap_or(ai))
}

/// The build id of the worker that started an activity's attempt, which the attempt's
/// ActivityTaskStarted event records.
pub fn note_started_build_id(txn: &mut Txn<'_>, scheduled_event_id: i64, build_id: &str) {
    if let Some(ai) = txn.ms.activities.get_mut(&scheduled_event_id) {
        ai.started_build_id = build_id.to_owned();
    }
}

pub(crate) fn arm_heartbeat_timer(txn: &mut Txn<'_>, scheduled_event_id: i64, from: SystemTime) {
    let Some(ai) = txn.ms.activities.get_mut(&scheduled_event_id) else {
        return;
    };
    let hb = from_dur(&ai.heartbeat_timeout);
    if hb.is_zero() || ai.heartbeat_timer_pending {
        return;
    }
    ai.heartbeat_timer_pending = true;
    let attempt = ai.attempt;
    let mut t = txn.timer_task(
        pb::TimerTaskKind::HeartbeatTimeout,
        scheduled_event_id,
        attempt,
    );
    t.timeout_type = TimeoutType::Heartbeat as i32;
    txn.add_timer_task(running_timeout_at(txn.now, from + hb), t);
}

/// The Temporal server fires no timer sooner than about a second after the transaction that
/// set it (its timer tasks are scheduled at least `TimerProcessorMaxTimeShift`, 1 s, ahead).
/// Workers count on it for the timeouts of a running attempt: an SDK's own timer cancels the
/// attempt a few seconds after its start-to-close or heartbeat timeout, and expects the
/// server's timeout to have come first by about that second. So a running attempt's
/// sub-second timeout fires a second after it was set, as there.
const RUNNING_TIMEOUT_FLOOR: Duration = Duration::from_secs(1);

fn running_timeout_at(now: SystemTime, deadline: SystemTime) -> SystemTime {
    deadline.max(now + RUNNING_TIMEOUT_FLOOR)
}

/// Write ActivityTaskStarted (deferred until the attempt ends, as in Temporal) followed
/// by the attempt's end event built by `end` from the started event id.
fn write_end<A: Into<Attributes>>(
    txn: &mut Txn<'_>,
    ai: &pb::ActivityInfo,
    end: impl FnOnce(i64) -> A,
    apply_end: fn(&mut pb::MutableState, At, &A),
) {
    // Temporal stamps the started event with the time the attempt started, not the time it
    // is written.
    let started_id = if let Some(started_time) = ai.started_time {
        txn.write_external_applied_at(
            ActivityTaskStartedEventAttributes {
                scheduled_event_id: ai.scheduled_event_id,
                identity: ai.started_identity.clone(),
                request_id: ai.start_request_id.clone(),
                attempt: ai.attempt,
                last_failure: ai.last_failure.clone(),
                #[allow(deprecated)]
                worker_version: (!ai.started_build_id.is_empty()).then(|| {
                    temper_proto::temporal::api::common::v1::WorkerVersionStamp {
                        build_id: ai.started_build_id.clone(),
                        use_versioning: false,
                    }
                }),
                ..Default::default()
            },
            started_time,
            apply_started,
        )
        .unwrap_or(0)
    } else {
        0
    };
    let last = txn.ms.activities.get(&ai.scheduled_event_id).cloned();
    txn.write_external_applied(end(started_id), apply_end);
    if crate::standalone::is_standalone(txn.ms) {
        crate::standalone::activity_closed(txn, last.unwrap_or_else(|| ai.clone()));
    } else {
        workflow_task::schedule_if_needed(txn);
    }
}

/// RespondActivityTaskCompleted.
pub fn complete(
    txn: &mut Txn<'_>,
    ai: &pb::ActivityInfo,
    result: Option<Payloads>,
    identity: &str,
) {
    let scheduled = ai.scheduled_event_id;
    let identity = identity.to_string();
    write_end(
        txn,
        ai,
        |started| ActivityTaskCompletedEventAttributes {
            result,
            scheduled_event_id: scheduled,
            started_event_id: started,
            identity,
            ..Default::default()
        },
        apply_completed,
    );
}

/// RespondActivityTaskCanceled.
pub fn canceled(
    txn: &mut Txn<'_>,
    ai: &pb::ActivityInfo,
    details: Option<Payloads>,
    identity: &str,
) {
    let scheduled = ai.scheduled_event_id;
    let requested = ai.cancel_requested_event_id;
    let identity = identity.to_string();
    write_end(
        txn,
        ai,
        |started| ActivityTaskCanceledEventAttributes {
            details,
            latest_cancel_requested_event_id: requested,
            scheduled_event_id: scheduled,
            started_event_id: started,
            identity,
            ..Default::default()
        },
        apply_canceled,
    );
}

/// Try to retry the activity's current attempt; true if a retry was scheduled.
fn try_retry(
    txn: &mut Txn<'_>,
    ai: &pb::ActivityInfo,
    failure: &Failure,
) -> Result<(), RetryState> {
    // As in Temporal (RetryActivity): an activity the workflow asked to cancel is not tried
    // again; its failure or timeout is final.
    if ai.cancel_requested {
        return Err(RetryState::CancelRequested);
    }
    let policy = ai
        .retry_policy
        .clone()
        .unwrap_or_else(retry::default_activity_policy);
    if ai.paused {
        return retry_paused(txn, ai, &policy, failure);
    }
    let delay = retry::next_backoff(
        &policy,
        ai.attempt,
        Some(failure),
        txn.now,
        opt_from_ts(&ai.expiration_time),
    )?;
    let retry_at = txn.now + delay;
    let now_ts = txn.now_ts;
    let Some(stored) = txn.ms.activities.get_mut(&ai.scheduled_event_id) else {
        return Err(RetryState::InProgress);
    };
    stored.attempt += 1;
    stored.started_time = None;
    stored.start_request_id.clear();
    stored.started_identity.clear();
    stored.last_failure = Some(failure.clone());
    stored.heartbeat_timer_pending = false;
    stored.retry_time = Some(ts(retry_at));
    stored.scheduled_time = Some(now_ts);
    end_reset(stored);
    let attempt = stored.attempt;
    crate::standalone::attempt_ended(txn);
    let t = txn.timer_task(
        pb::TimerTaskKind::ActivityRetry,
        ai.scheduled_event_id,
        attempt,
    );
    txn.add_timer_task(retry_at, t);
    Ok(())
}

/// A paused activity's attempt failed: as in Temporal, the next attempt is counted but not
/// dispatched (UnpauseActivity does that), whatever the maximum attempts and expiration;
/// only a non-retryable failure ends the activity.
fn retry_paused(
    txn: &mut Txn<'_>,
    ai: &pb::ActivityInfo,
    policy: &temper_proto::temporal::api::common::v1::RetryPolicy,
    failure: &Failure,
) -> Result<(), RetryState> {
    if let Err(RetryState::NonRetryableFailure) =
        retry::next_backoff(policy, ai.attempt, Some(failure), txn.now, None)
    {
        return Err(RetryState::NonRetryableFailure);
    }
    let now_ts = txn.now_ts;
    let Some(stored) = txn.ms.activities.get_mut(&ai.scheduled_event_id) else {
        return Err(RetryState::InProgress);
    };
    stored.attempt += 1;
    stored.started_time = None;
    stored.start_request_id.clear();
    stored.started_identity.clear();
    stored.last_failure = Some(failure.clone());
    stored.heartbeat_timer_pending = false;
    stored.retry_time = None;
    stored.scheduled_time = Some(now_ts);
    end_reset(stored);
    Ok(())
}

/// The attempt a ResetActivity reached has ended: the reset is done, and the heartbeat
/// details go if it asked so.
fn end_reset(ai: &mut pb::ActivityInfo) {
    if ai.reset_heartbeats {
        ai.heartbeat_details = None;
        ai.last_heartbeat_time = None;
    }
    ai.activity_reset = false;
    ai.reset_heartbeats = false;
}

/// RespondActivityTaskFailed: retry per policy or record the failure.
pub fn fail(
    txn: &mut Txn<'_>,
    ai: &pb::ActivityInfo,
    failure: Failure,
    identity: &str,
    details: Option<Payloads>,
) {
    if let Some(d) = details
        && let Some(stored) = txn.ms.activities.get_mut(&ai.scheduled_event_id)
    {
        stored.heartbeat_details = Some(d);
    }
    let retry_state = match try_retry(txn, ai, &failure) {
        Ok(()) => return,
        Err(s) => s,
    };
    let scheduled = ai.scheduled_event_id;
    let identity = identity.to_string();
    write_end(
        txn,
        ai,
        |started| ActivityTaskFailedEventAttributes {
            failure: Some(failure),
            scheduled_event_id: scheduled,
            started_event_id: started,
            identity,
            retry_state: retry_state as i32,
            ..Default::default()
        },
        apply_failed,
    );
}

/// What a heartbeat response tells the worker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeartbeatAnswer {
    pub cancel_requested: bool,
    /// Paused by an operator: the SDK cancels the attempt with a "paused" reason.
    pub paused: bool,
    /// Reset by an operator while running: the SDK cancels it with a "reset" reason.
    pub reset: bool,
}

/// RecordActivityTaskHeartbeat.
pub fn heartbeat(
    txn: &mut Txn<'_>,
    ai: &pb::ActivityInfo,
    details: Option<Payloads>,
) -> HeartbeatAnswer {
    let now_ts = txn.now_ts;
    let mut answer = HeartbeatAnswer {
        cancel_requested: ai.cancel_requested,
        paused: ai.paused,
        reset: ai.activity_reset,
    };
    if let Some(stored) = txn.ms.activities.get_mut(&ai.scheduled_event_id) {
        if details.is_some() {
            stored.heartbeat_details = details;
        }
        stored.last_heartbeat_time = Some(now_ts);
        answer = HeartbeatAnswer {
            cancel_requested: stored.cancel_requested,
            paused: stored.paused,
            reset: stored.activity_reset,
        };
    }
    let now = txn.now;
    arm_heartbeat_timer(txn, ai.scheduled_event_id, now);
    crate::standalone::heartbeat_recorded(txn);
    answer
}

fn timeout_failure(ai: &pb::ActivityInfo, timeout_type: TimeoutType) -> Failure {
    let name = match timeout_type {
        TimeoutType::StartToClose => "StartToClose",
        TimeoutType::ScheduleToStart => "ScheduleToStart",
        TimeoutType::ScheduleToClose => "ScheduleToClose",
        TimeoutType::Heartbeat => "Heartbeat",
        TimeoutType::Unspecified => "Unspecified",
    };
    Failure {
        message: format!("activity {name} timeout"),
        source: "Server".into(),
        failure_info: Some(FailureInfo::TimeoutFailureInfo(TimeoutFailureInfo {
            timeout_type: timeout_type as i32,
            last_heartbeat_details: ai.heartbeat_details.clone(),
        })),
        ..Default::default()
    }
}

/// An activity timeout timer (or the heartbeat timer) fired.
pub fn on_timeout(txn: &mut Txn<'_>, scheduled_event_id: i64, attempt: i32, timeout_type: i32) {
    if !txn.is_running() {
        return;
    }
    let Some(ai) = txn.ms.activities.get(&scheduled_event_id).cloned() else {
        return;
    };
    let tt = TimeoutType::try_from(timeout_type).unwrap_or(TimeoutType::Unspecified);
    if ai.paused {
        // No timeout fires while paused (Temporal drops the activity's timers); unpausing
        // arms them again.
        if tt == TimeoutType::Heartbeat
            && ai.attempt == attempt
            && let Some(stored) = txn.ms.activities.get_mut(&scheduled_event_id)
        {
            stored.heartbeat_timer_pending = false;
        }
        return;
    }
    match tt {
        TimeoutType::ScheduleToClose => {}
        TimeoutType::ScheduleToStart => {
            if ai.attempt != attempt || ai.started_time.is_some() {
                return;
            }
        }
        TimeoutType::StartToClose => {
            if ai.attempt != attempt || ai.started_time.is_none() {
                return;
            }
        }
        TimeoutType::Heartbeat => {
            if ai.attempt != attempt || ai.started_time.is_none() {
                return;
            }
            if let Some(stored) = txn.ms.activities.get_mut(&scheduled_event_id) {
                stored.heartbeat_timer_pending = false;
            }
            let last = ai
                .last_heartbeat_time
                .as_ref()
                .or(ai.started_time.as_ref())
                .map(from_ts)
                .unwrap_or(txn.now);
            let deadline = last + from_dur(&ai.heartbeat_timeout);
            if deadline > txn.now {
                // A heartbeat came in since: wait for the new deadline.
                if let Some(stored) = txn.ms.activities.get_mut(&scheduled_event_id) {
                    stored.heartbeat_timer_pending = true;
                }
                let mut t = txn.timer_task(
                    pb::TimerTaskKind::HeartbeatTimeout,
                    scheduled_event_id,
                    attempt,
                );
                t.timeout_type = TimeoutType::Heartbeat as i32;
                txn.add_timer_task(deadline, t);
                return;
            }
        }
        TimeoutType::Unspecified => return,
    }
    // A standalone activity's schedule-to-start timer, as long as its schedule-to-close
    // one, fires first in Temporal; and its timeout is not a non-retryable failure there.
    let tt = if tt == TimeoutType::ScheduleToClose
        && crate::standalone::reads_as_schedule_to_start(txn.ms, &ai)
    {
        TimeoutType::ScheduleToStart
    } else {
        tt
    };
    let failure = timeout_failure(&ai, tt);
    let retryable = matches!(tt, TimeoutType::StartToClose | TimeoutType::Heartbeat);
    let retry_state = if retryable {
        match try_retry(txn, &ai, &failure) {
            Ok(()) => return,
            Err(s) => s,
        }
    } else if tt == TimeoutType::ScheduleToClose || crate::standalone::is_standalone(txn.ms) {
        RetryState::Timeout
    } else {
        RetryState::NonRetryableFailure
    };
    let mut failure = failure;
    if let Some(last) = &ai.last_failure {
        failure.cause = Some(Box::new(last.clone()));
    }
    write_end(
        txn,
        &ai,
        |started| ActivityTaskTimedOutEventAttributes {
            failure: Some(failure),
            scheduled_event_id,
            started_event_id: started,
            retry_state: retry_state as i32,
        },
        apply_timed_out,
    );
}

/// A retry backoff elapsed: dispatch the new attempt.
pub fn on_retry_timer(txn: &mut Txn<'_>, scheduled_event_id: i64, attempt: i32) {
    if !txn.is_running() {
        return;
    }
    let Some(ai) = txn.ms.activities.get_mut(&scheduled_event_id) else {
        return;
    };
    if ai.attempt != attempt || ai.started_time.is_some() || ai.paused {
        return;
    }
    ai.retry_time = None;
    let ai = ai.clone();
    dispatch(txn, &ai);
}

/// ActivityTaskScheduled: the activity's first attempt waits for a worker; its
/// schedule-to-close deadline counts from the event's time.
pub(crate) fn apply_scheduled(
    ms: &mut pb::MutableState,
    at: At,
    a: &ActivityTaskScheduledEventAttributes,
) {
    let s2c = from_dur(&a.schedule_to_close_timeout);
    ms.activities.insert(
        at.id,
        pb::ActivityInfo {
            scheduled_event_id: at.id,
            activity_id: a.activity_id.clone(),
            activity_type: a.activity_type.clone(),
            task_queue: a.task_queue.clone(),
            scheduled_time: Some(at.time),
            first_scheduled_time: Some(at.time),
            attempt: 1,
            schedule_to_start_timeout: a.schedule_to_start_timeout,
            schedule_to_close_timeout: a.schedule_to_close_timeout,
            start_to_close_timeout: a.start_to_close_timeout,
            heartbeat_timeout: a.heartbeat_timeout,
            retry_policy: a.retry_policy.clone(),
            expiration_time: (!s2c.is_zero()).then(|| ts(at.system_time() + s2c)),
            header: a.header.clone(),
            input: a.input.clone(),
            workflow_task_completed_event_id: a.workflow_task_completed_event_id,
            priority: a.priority.clone(),
            ..Default::default()
        },
    );
}

/// ActivityTaskStarted: written with the attempt's end, which follows at once; it matters
/// only to a history cut between the two.
pub(crate) fn apply_started(
    ms: &mut pb::MutableState,
    at: At,
    a: &ActivityTaskStartedEventAttributes,
) {
    if let Some(ai) = ms.activities.get_mut(&a.scheduled_event_id) {
        ai.attempt = a.attempt.max(1);
        ai.started_time = Some(at.time);
        ai.started_identity = a.identity.clone();
        ai.start_request_id = a.request_id.clone();
        ai.last_failure = a.last_failure.clone();
    }
}

/// ActivityTaskCancelRequested.
pub(crate) fn apply_cancel_requested(
    ms: &mut pb::MutableState,
    at: At,
    a: &ActivityTaskCancelRequestedEventAttributes,
) {
    if let Some(ai) = ms.activities.get_mut(&a.scheduled_event_id) {
        ai.cancel_requested = true;
        ai.cancel_requested_event_id = at.id;
    }
}

/// ActivityTaskCompleted.
pub(crate) fn apply_completed(
    ms: &mut pb::MutableState,
    _: At,
    a: &ActivityTaskCompletedEventAttributes,
) {
    ms.activities.remove(&a.scheduled_event_id);
}

/// ActivityTaskFailed.
pub(crate) fn apply_failed(
    ms: &mut pb::MutableState,
    _: At,
    a: &ActivityTaskFailedEventAttributes,
) {
    ms.activities.remove(&a.scheduled_event_id);
}

/// ActivityTaskTimedOut.
pub(crate) fn apply_timed_out(
    ms: &mut pb::MutableState,
    _: At,
    a: &ActivityTaskTimedOutEventAttributes,
) {
    ms.activities.remove(&a.scheduled_event_id);
}

/// ActivityTaskCanceled.
pub(crate) fn apply_canceled(
    ms: &mut pb::MutableState,
    _: At,
    a: &ActivityTaskCanceledEventAttributes,
) {
    ms.activities.remove(&a.scheduled_event_id);
}
