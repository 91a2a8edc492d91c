//! The workflow task lifecycle: scheduled -> started -> completed / failed / timed out, on
//! the workflow's normal queue or on a worker's sticky queue; and how each workflow task event
//! changes the state.

use temper_proto::temporal::api::enums::v1::{
    SuggestContinueAsNewReason, TaskQueueKind, TimeoutType, WorkflowTaskFailedCause,
};
use temper_proto::temporal::api::failure::v1::Failure;
use temper_proto::temporal::api::history::v1::{
    WorkflowTaskCompletedEventAttributes, WorkflowTaskFailedEventAttributes,
    WorkflowTaskScheduledEventAttributes, WorkflowTaskStartedEventAttributes,
    WorkflowTaskTimedOutEventAttributes,
};
use temper_proto::temporal::api::taskqueue::v1::TaskQueue;
use temper_proto::temporal::api::workflow::v1::ResetPointInfo;

use crate::events::At;
use crate::state::info_mut;
use crate::time::{dur, from_dur, ts};
use crate::{Txn, WorkflowError, pb};

/// The queue the next workflow task goes to: the sticky queue if a worker holds the
/// workflow in cache, else the normal one. Returns the queue and its schedule-to-start
/// timeout (zero for the normal queue).
pub(crate) fn next_queue(txn: &Txn<'_>) -> (TaskQueue, std::time::Duration) {
    let info = txn.info();
    let normal = info.task_queue.clone().unwrap_or_default();
    if info.sticky_task_queue.is_empty() {
        return (normal, std::time::Duration::ZERO);
    }
    let mut timeout = from_dur(&info.sticky_schedule_to_start_timeout);
    if timeout.is_zero() {
        timeout = txn.limits.sticky_schedule_to_start_timeout;
    }
    (
        TaskQueue {
            name: info.sticky_task_queue.clone(),
            kind: TaskQueueKind::Sticky as i32,
            normal_name: normal.name,
        },
        timeout,
    )
}

/// Schedule a workflow task unless one is pending. Returns its scheduled event id.
pub fn schedule(txn: &mut Txn<'_>, attempt: i32) -> i64 {
    if let Some(wt) = &txn.ms.workflow_task {
        return wt.scheduled_event_id;
    }
    let (queue, sticky_timeout) = next_queue(txn);
    let timeout = start_to_close_timeout(
        from_dur(&txn.info().default_workflow_task_timeout),
        attempt,
        crate::activity_ops::random_below(
            txn.now,
            txn.ms.next_event_id,
            retry_backoff(attempt) / 5,
        ),
    );
    let id = txn.write_applied(
        WorkflowTaskScheduledEventAttributes {
            task_queue: Some(queue.clone()),
            start_to_close_timeout: dur(timeout),
            attempt,
        },
        apply_scheduled,
    );
    let mut t = txn.transfer_task(pb::TransferTaskKind::WorkflowTask);
    t.scheduled_event_id = id;
    t.task_queue = Some(queue);
    t.schedule_to_start_timeout = dur(sticky_timeout);
    t.attempt = attempt;
    txn.add_transfer_task(t);
    if !sticky_timeout.is_zero() {
        let mut timer = txn.timer_task(pb::TimerTaskKind::WorkflowTaskTimeout, id, attempt);
        timer.timeout_type = TimeoutType::ScheduleToStart as i32;
        txn.add_timer_task(txn.now + sticky_timeout, timer);
    }
    id
}

/// Schedule a workflow task if the workflow runs and has none pending (after a new event).
/// A run still waiting out its first workflow task's backoff gets none before it ends.
pub fn schedule_if_needed(txn: &mut Txn<'_>) {
    let in_backoff = txn.info().first_workflow_task_backoff_until.is_some();
    // A standalone activity's or Nexus operation's run has no workflow to run (a signal to
    // it changes nothing).
    let standalone =
        crate::standalone::is_standalone(txn.ms) || crate::standalone_nexus::is_standalone(txn.ms);
    if txn.is_running() && !txn.has_pending_workflow_task() && !in_backoff && !standalone {
        schedule(txn, 1);
    }
}

/// What a worker's poll asked for when it got the workflow task.
pub struct StartRequest<'a> {
    pub scheduled_event_id: i64,
    pub request_id: &'a str,
    pub identity: &'a str,
    /// The poller's worker and the run's target version (worker versioning).
    pub poller: crate::versioning::Poller,
}

/// Outcome of recording a workflow task as started.
#[derive(Debug, PartialEq, Eq)]
pub enum Started {
    /// Newly started with this event id.
    New(i64),
    /// The same poll already started it (a retried call): answer the same way.
    AlreadyByThisPoll(i64),
}

/// Record that a worker picked up the workflow task.
pub fn record_started(txn: &mut Txn<'_>, req: StartRequest<'_>) -> Result<Started, WorkflowError> {
    if !txn.is_running() {
        return Err(WorkflowError::NotFound(
            "workflow execution already completed".into(),
        ));
    }
    let Some(wt) = txn.ms.workflow_task.clone() else {
        return Err(WorkflowError::NotFound("workflow task not found".into()));
    };
    if wt.scheduled_event_id != req.scheduled_event_id {
        return Err(WorkflowError::NotFound("workflow task not found".into()));
    }
    if wt.started_event_id > 0 {
        if wt.request_id == req.request_id {
            return Ok(Started::AlreadyByThisPoll(wt.started_event_id));
        }
        return Err(WorkflowError::NotFound(
            "workflow task already started".into(),
        ));
    }
    let history_size = txn.info().history_size_bytes;
    // Temporal's reasons, in its order: the size, then the count (the started event's own id).
    let mut reasons = Vec::new();
    if history_size >= txn.limits.suggest_continue_as_new_bytes {
        reasons.push(SuggestContinueAsNewReason::HistorySizeTooLarge as i32);
    }
    if txn.ms.next_event_id >= txn.limits.suggest_continue_as_new_events {
        reasons.push(SuggestContinueAsNewReason::TooManyHistoryEvents as i32);
    }
    let suggest_continue_as_new = !reasons.is_empty();
    let target_worker_deployment_version_changed =
        crate::versioning::target_changed(txn.info(), req.poller.target.as_ref());
    #[allow(deprecated)]
    let id = txn.write_applied(
        WorkflowTaskStartedEventAttributes {
            scheduled_event_id: wt.scheduled_event_id,
            identity: req.identity.to_string(),
            request_id: req.request_id.to_string(),
            history_size_bytes: history_size,
            suggest_continue_as_new,
            suggest_continue_as_new_reasons: reasons,
            target_worker_deployment_version_changed,
            worker_version: req.poller.unversioned_stamp(),
            ..Default::default()
        },
        apply_started,
    );
    let timeout = from_dur(&wt.start_to_close_timeout);
    let mut timer = txn.timer_task(
        pb::TimerTaskKind::WorkflowTaskTimeout,
        wt.scheduled_event_id,
        wt.attempt,
    );
    timer.timeout_type = TimeoutType::StartToClose as i32;
    txn.add_timer_task(txn.now + timeout, timer);
    Ok(Started::New(id))
}

/// Check that a worker's token names the workflow task in flight; returns it.
pub fn check_token(
    txn: &Txn<'_>,
    token: &pb::TaskToken,
) -> Result<pb::WorkflowTaskInfo, WorkflowError> {
    if !txn.is_running() {
        return Err(WorkflowError::NotFound("Workflow task not found.".into()));
    }
    match &txn.ms.workflow_task {
        Some(wt)
            if wt.scheduled_event_id == token.scheduled_event_id
                && wt.started_event_id > 0
                && wt.started_event_id == token.started_event_id
                && wt.attempt == token.attempt
                && token
                    .started_time
                    .is_none_or(|t| wt.started_time == Some(t)) =>
        {
            Ok(wt.clone())
        }
        _ => Err(WorkflowError::NotFound("Workflow task not found.".into())),
    }
}

/// Write WorkflowTaskCompleted and end the task. Returns the completed event id.
pub fn complete(
    txn: &mut Txn<'_>,
    wt: &pb::WorkflowTaskInfo,
    c: &crate::completion::Completion<'_>,
) -> i64 {
    txn.write_applied(
        WorkflowTaskCompletedEventAttributes {
            scheduled_event_id: wt.scheduled_event_id,
            started_event_id: wt.started_event_id,
            identity: c.identity.to_string(),
            #[allow(deprecated)]
            binary_checksum: c.binary_checksum.to_string(),
            sdk_metadata: c.sdk_metadata.clone(),
            metering_metadata: c.metering_metadata,
            ..crate::versioning::completed_fields(&c.worker)
        },
        apply_completed,
    )
}

/// Most reset points a run keeps (Temporal's default).
const MAX_RESET_POINTS: usize = 20;

/// The first workflow task a worker binary completes is a point the run can be reset to.
/// (The API marks `binary_checksum` deprecated; SDKs still send it and reset points key on it.)
#[allow(deprecated)]
fn record_reset_point(
    info: &mut pb::ExecutionInfo,
    binary_checksum: &str,
    completed_event_id: i64,
    at: temper_proto::wkt::Timestamp,
) {
    let run_id = info.run_id.clone();
    let points = info.auto_reset_points.get_or_insert_with(Default::default);
    if points
        .points
        .iter()
        .any(|p| p.binary_checksum == binary_checksum && p.run_id == run_id)
    {
        return;
    }
    if points.points.len() >= MAX_RESET_POINTS {
        points.points.remove(0);
    }
    points.points.push(ResetPointInfo {
        binary_checksum: binary_checksum.to_string(),
        run_id,
        first_workflow_task_completed_id: completed_event_id,
        create_time: Some(at),
        resettable: true,
        ..Default::default()
    });
}

/// The worker reported the task failed (or its completion was invalid): write
/// WorkflowTaskFailed, drop stickiness, write buffered events and schedule the next attempt.
pub fn fail(
    txn: &mut Txn<'_>,
    wt: &pb::WorkflowTaskInfo,
    cause: WorkflowTaskFailedCause,
    failure: Option<Failure>,
    identity: &str,
) {
    txn.write_applied(
        WorkflowTaskFailedEventAttributes {
            scheduled_event_id: wt.scheduled_event_id,
            started_event_id: wt.started_event_id,
            cause: cause as i32,
            failure,
            identity: identity.to_string(),
            ..Default::default()
        },
        apply_failed,
    );
    clear_sticky(txn);
    txn.flush_buffered();
    if txn.is_running() {
        // A workflow task failed by the worker or found invalid does not count towards a
        // retry of the same work when the reason was the server's (unhandled command).
        let attempt = if cause == WorkflowTaskFailedCause::UnhandledCommand {
            1
        } else {
            wt.attempt + 1
        };
        schedule_retry(txn, attempt);
    }
}

/// Attempts that keep the run's workflow task timeout (Temporal's
/// workflowTaskRetryBackoffMinAttempts); later ones get a longer one.
const BACKOFF_AFTER_ATTEMPT: i32 = 3;
/// Temporal's workflowTaskRetryInitialInterval.
const RETRY_INITIAL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);
/// Temporal's history.workflowTaskRetryMaxInterval default.
const RETRY_MAX_INTERVAL: std::time::Duration = std::time::Duration::from_secs(600);

/// How much longer than the run's workflow task timeout attempt `attempt` of a workflow task
/// may run, before its jitter: nothing for the first three attempts, then 5 s doubling up to
/// ten minutes. Temporal slows a workflow task that keeps failing this way, not by waiting
/// before it schedules the next attempt: an SDK reports only the first attempt's failure
/// and lets the later ones time out, so a longer timeout is what spaces them out (and gives
/// a worker that is merely slow the time it needs).
pub fn retry_backoff(attempt: i32) -> std::time::Duration {
    if attempt <= BACKOFF_AFTER_ATTEMPT {
        return std::time::Duration::ZERO;
    }
    let exp = (attempt - BACKOFF_AFTER_ATTEMPT - 1).min(16) as u32;
    (RETRY_INITIAL_INTERVAL * (1u32 << exp)).min(RETRY_MAX_INTERVAL)
}

/// Start-to-close timeout of attempt `attempt`: the run's workflow task timeout, plus from
/// the fourth attempt [`retry_backoff`] with Temporal's jitter (80 % of it plus `jitter`, a
/// random part of the remaining fifth).
pub fn start_to_close_timeout(
    default: std::time::Duration,
    attempt: i32,
    jitter: std::time::Duration,
) -> std::time::Duration {
    let backoff = retry_backoff(attempt);
    if backoff.is_zero() {
        return default;
    }
    default + backoff.mul_f64(0.8) + jitter.min(backoff / 5)
}

/// Schedule the next attempt of a failed or timed-out workflow task: at once, as Temporal
/// does (the attempt's longer start-to-close timeout is the backoff).
fn schedule_retry(txn: &mut Txn<'_>, attempt: i32) {
    schedule(txn, attempt);
}

/// A workflow task retry backoff elapsed: a timer only an older temper wrote (retries no
/// longer wait), kept so such a timer still schedules its attempt.
pub fn on_retry_timer(txn: &mut Txn<'_>, attempt: i32) {
    if txn.is_running() && !txn.has_pending_workflow_task() {
        schedule(txn, attempt);
    }
}

/// A workflow task timeout timer fired.
pub fn on_timeout(txn: &mut Txn<'_>, scheduled_event_id: i64, attempt: i32, timeout_type: i32) {
    if !txn.is_running() {
        return;
    }
    let Some(wt) = txn.ms.workflow_task.clone() else {
        return;
    };
    if wt.scheduled_event_id != scheduled_event_id || wt.attempt != attempt {
        return;
    }
    if timeout_type == TimeoutType::ScheduleToStart as i32 {
        // Only the sticky queue has a schedule-to-start limit; if the task already moved
        // to the normal queue or started, this timer is stale.
        let sticky = wt
            .task_queue
            .as_ref()
            .is_some_and(|q| q.kind == TaskQueueKind::Sticky as i32);
        if wt.started_event_id > 0 || !sticky {
            return;
        }
    } else if wt.started_event_id == 0 {
        return;
    }
    txn.write_applied(
        WorkflowTaskTimedOutEventAttributes {
            scheduled_event_id: wt.scheduled_event_id,
            started_event_id: wt.started_event_id,
            timeout_type,
        },
        apply_timed_out,
    );
    clear_sticky(txn);
    txn.flush_buffered();
    if timeout_type == TimeoutType::ScheduleToStart as i32 {
        schedule(txn, wt.attempt);
    } else {
        schedule_retry(txn, wt.attempt + 1);
    }
}

/// Matching has no live worker on the sticky queue: move the scheduled task to the normal
/// queue (no new event, as in Temporal). Returns the transfer task to push, if any.
pub fn move_to_normal_queue(
    txn: &mut Txn<'_>,
    scheduled_event_id: i64,
) -> Option<pb::TransferTask> {
    clear_sticky(txn);
    let normal = txn.info().task_queue.clone().unwrap_or_default();
    let wt = txn.ms.workflow_task.as_mut()?;
    if wt.scheduled_event_id != scheduled_event_id || wt.started_event_id > 0 {
        return None;
    }
    wt.task_queue = Some(normal.clone());
    let attempt = wt.attempt;
    let mut t = txn.transfer_task(pb::TransferTaskKind::WorkflowTask);
    t.scheduled_event_id = scheduled_event_id;
    t.task_queue = Some(normal);
    t.attempt = attempt;
    Some(t)
}

/// ResetStickyTaskQueue: forget the worker that cached this workflow. A closed run is
/// refused as Temporal refuses it (NotFound "workflow execution already completed"); its
/// stored state does not change after the close.
pub fn reset_sticky(txn: &mut Txn<'_>) -> Result<(), WorkflowError> {
    if !txn.is_running() {
        return Err(WorkflowError::AlreadyCompleted);
    }
    clear_sticky(txn);
    Ok(())
}

/// Forget the worker that cached this workflow.
pub fn clear_sticky(txn: &mut Txn<'_>) {
    let info = txn.info_mut();
    info.sticky_task_queue.clear();
    info.sticky_schedule_to_start_timeout = None;
    info.sticky_worker_identity.clear();
}

/// Remember the sticky queue a worker asked for.
pub fn set_sticky(
    txn: &mut Txn<'_>,
    queue: &str,
    timeout: Option<temper_proto::wkt::Duration>,
    identity: &str,
) {
    let now = ts(txn.now);
    let info = txn.info_mut();
    info.sticky_task_queue = queue.to_string();
    info.sticky_schedule_to_start_timeout = timeout;
    info.sticky_worker_identity = identity.to_string();
    info.sticky_last_updated = Some(now);
}

/// WorkflowTaskScheduled: the task is pending; a first task's backoff is over.
pub(crate) fn apply_scheduled(
    ms: &mut pb::MutableState,
    at: At,
    a: &WorkflowTaskScheduledEventAttributes,
) {
    ms.workflow_task = Some(pb::WorkflowTaskInfo {
        scheduled_event_id: at.id,
        started_event_id: 0,
        attempt: a.attempt,
        task_queue: a.task_queue.clone(),
        scheduled_time: Some(at.time),
        start_to_close_timeout: a.start_to_close_timeout,
        ..Default::default()
    });
    info_mut(ms).first_workflow_task_backoff_until = None;
}

/// WorkflowTaskStarted.
pub(crate) fn apply_started(
    ms: &mut pb::MutableState,
    at: At,
    a: &WorkflowTaskStartedEventAttributes,
) {
    if let Some(wt) = ms.workflow_task.as_mut() {
        wt.started_event_id = at.id;
        wt.started_time = Some(at.time);
        wt.request_id = a.request_id.clone();
        wt.identity = a.identity.clone();
    }
}

/// WorkflowTaskCompleted: the task ends; the first task a worker binary completes is a reset
/// point.
pub(crate) fn apply_completed(
    ms: &mut pb::MutableState,
    at: At,
    a: &WorkflowTaskCompletedEventAttributes,
) {
    ms.workflow_task = None;
    let info = info_mut(ms);
    info.last_completed_workflow_task_started_event_id = a.started_event_id;
    #[allow(deprecated)]
    record_reset_point(info, &a.binary_checksum, at.id, at.time);
    crate::versioning::apply_completed(info, a);
}

/// WorkflowTaskFailed.
pub(crate) fn apply_failed(
    ms: &mut pb::MutableState,
    _: At,
    _: &WorkflowTaskFailedEventAttributes,
) {
    ms.workflow_task = None;
}

/// WorkflowTaskTimedOut.
pub(crate) fn apply_timed_out(
    ms: &mut pb::MutableState,
    _: At,
    _: &WorkflowTaskTimedOutEventAttributes,
) {
    ms.workflow_task = None;
}

#[cfg(test)]
mod tests {
    use super::{retry_backoff, start_to_close_timeout};
    use std::time::Duration;

    #[test]
    fn backoff_lengthens_the_timeout_from_the_fourth_attempt_and_is_capped() {
        assert_eq!(retry_backoff(1), Duration::ZERO);
        assert_eq!(retry_backoff(3), Duration::ZERO);
        assert_eq!(retry_backoff(4), Duration::from_secs(5));
        assert_eq!(retry_backoff(5), Duration::from_secs(10));
        assert_eq!(retry_backoff(40), Duration::from_secs(600));
        let task = Duration::from_secs(1);
        assert_eq!(start_to_close_timeout(task, 3, Duration::ZERO), task);
        // 1 s + 80 % of 5 s + the jitter, below a fifth of 5 s.
        assert_eq!(
            start_to_close_timeout(task, 4, Duration::ZERO),
            Duration::from_secs(5)
        );
        assert_eq!(
            start_to_close_timeout(task, 4, Duration::from_millis(300)),
            Duration::from_millis(5300)
        );
        assert_eq!(
            start_to_close_timeout(task, 4, Duration::from_secs(9)),
            Duration::from_secs(6)
        );
    }
}
