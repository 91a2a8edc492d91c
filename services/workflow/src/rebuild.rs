//! Rebuilding a run's mutable state from its history, and the tasks that resume it.
//!
//! [`rebuild`] replays history events into a [`pb::MutableState`], the state the live state
//! machine would hold after writing them: execution info from WorkflowExecutionStarted, the
//! pending workflow task, activities, user timers, children, signals and cancel requests to
//! other workflows, search attributes, memo, the cancel request and the counters. Reset
//! uses it to build a new run from a prefix of an old one. What the history does not say
//! (sticky queues, an activity attempt in flight, state transition counts) starts empty.
//!
//! [`resume`] and [`resume_workflow_task`] add the transfer and timer tasks the rebuilt state
//! needs to make progress: pending activities go to matching again, user timers and
//! activity and run timeouts are armed again, unstarted children and pending external
//! signals and cancels are sent again (their request ids keep them idempotent).

use prost::Message;
use temper_proto::temporal::api::common::v1::WorkflowExecution;
use temper_proto::temporal::api::enums::v1::{TimeoutType, WorkflowExecutionStatus};
use temper_proto::temporal::api::history::v1::{HistoryEvent, history_event::Attributes};

use crate::state::{STATE_COMPLETED, STATE_RUNNING};
use crate::time::{from_dur, from_ts, opt_from_ts, ts};
use crate::{Txn, WorkflowError, activity, child, external, pb, properties, signal};

/// The run the rebuilt state belongs to: what its history does not record.
#[derive(Debug, Clone, Copy)]
pub struct RebuildRun<'a> {
    pub namespace_id: &'a str,
    /// The namespace's name, for events that carry it.
    pub namespace: &'a str,
    pub workflow_id: &'a str,
    pub run_id: &'a str,
    /// The request id that created the run (start idempotency).
    pub request_id: &'a str,
}

fn corrupt(m: String) -> WorkflowError {
    WorkflowError::Internal(format!("cannot rebuild the run from its history: {m}"))
}

/// The size an event takes in the history, as the live state machine counts it (before the
/// store gives the event a task id).
fn event_size(ev: &HistoryEvent) -> i64 {
    let task_id = if ev.task_id == 0 {
        0
    } else {
        1 + prost::encoding::encoded_len_varint(ev.task_id as u64)
    };
    (ev.encoded_len() - task_id) as i64
}

/// Replay `events` (a run's history from event 1, in order) into the mutable state of the
/// run `run`.
pub fn rebuild(
    events: &[HistoryEvent],
    run: RebuildRun<'_>,
) -> Result<pb::MutableState, WorkflowError> {
    let Some(Attributes::WorkflowExecutionStartedEventAttributes(first)) =
        events.first().and_then(|e| e.attributes.as_ref())
    else {
        return Err(corrupt(
            "the first event is not WorkflowExecutionStarted".into(),
        ));
    };
    let start_time = events[0]
        .event_time
        .as_ref()
        .map(from_ts)
        .unwrap_or(std::time::UNIX_EPOCH);
    let mut ms = pb::MutableState {
        execution_info: Some(started_info(first, start_time, run)),
        next_event_id: 1,
        ..Default::default()
    };
    for ev in events {
        if ev.event_id != ms.next_event_id {
            return Err(corrupt(format!(
                "event {} where event {} was expected",
                ev.event_id, ms.next_event_id
            )));
        }
        apply(&mut ms, ev, run.run_id);
        ms.next_event_id += 1;
        info(&mut ms).history_size_bytes += event_size(ev);
    }
    Ok(ms)
}

fn info(ms: &mut pb::MutableState) -> &mut pb::ExecutionInfo {
    ms.execution_info.get_or_insert_with(Default::default)
}

/// Execution info as `start::new_execution` builds it, from the started event.
fn started_info(
    a: &temper_proto::temporal::api::history::v1::WorkflowExecutionStartedEventAttributes,
    now: std::time::SystemTime,
    run: RebuildRun<'_>,
) -> pb::ExecutionInfo {
    let backoff = from_dur(&a.first_workflow_task_backoff);
    let run_timeout = from_dur(&a.workflow_run_timeout);
    let execution_expiration = a.workflow_execution_expiration_time;
    let run_expiration = {
        let by_run = (!run_timeout.is_zero()).then(|| now + backoff + run_timeout);
        let by_execution = opt_from_ts(&execution_expiration);
        match (by_run, by_execution) {
            (Some(r), Some(e)) => Some(r.min(e)),
            (r, e) => r.or(e),
        }
    };
    let workflow_id = if a.workflow_id.is_empty() {
        run.workflow_id.to_string()
    } else {
        a.workflow_id.clone()
    };
    let first_run_id = if a.first_execution_run_id.is_empty() {
        run.run_id.to_string()
    } else {
        a.first_execution_run_id.clone()
    };
    let parent = a
        .parent_workflow_execution
        .as_ref()
        .map(|execution| pb::ParentInfo {
            namespace_id: a.parent_workflow_namespace_id.clone(),
            namespace: a.parent_workflow_namespace.clone(),
            execution: Some(execution.clone()),
            initiated_event_id: a.parent_initiated_event_id,
        });
    let root = a
        .root_workflow_execution
        .clone()
        .unwrap_or_else(|| WorkflowExecution {
            workflow_id: workflow_id.clone(),
            run_id: run.run_id.to_string(),
        });
    let keeps_input = a.retry_policy.is_some() || !a.cron_schedule.is_empty();
    pb::ExecutionInfo {
        namespace_id: run.namespace_id.to_string(),
        namespace: run.namespace.to_string(),
        workflow_id,
        run_id: run.run_id.to_string(),
        first_run_id,
        workflow_type: a.workflow_type.clone(),
        task_queue: a.task_queue.clone(),
        workflow_execution_timeout: a.workflow_execution_timeout,
        workflow_run_timeout: a.workflow_run_timeout,
        default_workflow_task_timeout: a.workflow_task_timeout,
        start_time: Some(ts(now)),
        execution_time: Some(ts(now + backoff)),
        execution_expiration_time: execution_expiration,
        run_expiration_time: run_expiration.map(ts),
        state: STATE_RUNNING,
        status: WorkflowExecutionStatus::Running as i32,
        create_request_id: run.request_id.to_string(),
        retry_policy: a.retry_policy.clone(),
        attempt: a.attempt,
        memo: a.memo.clone(),
        search_attributes: a.search_attributes.clone(),
        cron_schedule: a.cron_schedule.clone(),
        start_input: keeps_input.then(|| a.input.clone()).flatten(),
        start_header: keeps_input.then(|| a.header.clone()).flatten(),
        parent,
        root_execution: Some(root),
        last_completion_result: a.last_completion_result.clone(),
        continued_failure: a.continued_failure.clone(),
        first_workflow_task_backoff_until: (!backoff.is_zero()).then(|| ts(now + backoff)),
        auto_reset_points: a.prev_auto_reset_points.clone(),
        priority: a.priority.clone(),
        ..Default::default()
    }
}

fn close(ms: &mut pb::MutableState, status: WorkflowExecutionStatus, ev: &HistoryEvent) {
    let i = info(ms);
    i.status = status as i32;
    i.state = STATE_COMPLETED;
    i.close_time = ev.event_time;
    i.completion_event_id = ev.event_id;
    ms.workflow_task = None;
}

/// Apply one event to the state.
fn apply(ms: &mut pb::MutableState, ev: &HistoryEvent, run_id: &str) {
    use Attributes as A;
    let id = ev.event_id;
    let at = ev
        .event_time
        .as_ref()
        .map(from_ts)
        .unwrap_or(std::time::UNIX_EPOCH);
    let Some(attrs) = ev.attributes.as_ref() else {
        return;
    };
    match attrs {
        A::WorkflowTaskScheduledEventAttributes(a) => {
            ms.workflow_task = Some(pb::WorkflowTaskInfo {
                scheduled_event_id: id,
                started_event_id: 0,
                attempt: a.attempt,
                task_queue: a.task_queue.clone(),
                scheduled_time: ev.event_time,
                start_to_close_timeout: a.start_to_close_timeout,
                ..Default::default()
            });
            info(ms).first_workflow_task_backoff_until = None;
        }
        A::WorkflowTaskStartedEventAttributes(a) => {
            if let Some(wt) = ms.workflow_task.as_mut() {
                wt.started_event_id = id;
                wt.started_time = ev.event_time;
                wt.request_id = a.request_id.clone();
                wt.identity = a.identity.clone();
            }
        }
        A::WorkflowTaskCompletedEventAttributes(a) => {
            ms.workflow_task = None;
            info(ms).last_completed_workflow_task_started_event_id = a.started_event_id;
            #[allow(deprecated)]
            let checksum = a.binary_checksum.as_str();
            let at = ev.event_time.unwrap_or_default();
            crate::workflow_task::record_reset_point(info(ms), checksum, id, at);
        }
        A::WorkflowTaskFailedEventAttributes(_) | A::WorkflowTaskTimedOutEventAttributes(_) => {
            ms.workflow_task = None;
        }
        A::ActivityTaskScheduledEventAttributes(a) => {
            let s2c = from_dur(&a.schedule_to_close_timeout);
            ms.activities.insert(
                id,
                pb::ActivityInfo {
                    scheduled_event_id: id,
                    activity_id: a.activity_id.clone(),
                    activity_type: a.activity_type.clone(),
                    task_queue: a.task_queue.clone(),
                    scheduled_time: ev.event_time,
                    first_scheduled_time: ev.event_time,
                    attempt: 1,
                    schedule_to_start_timeout: a.schedule_to_start_timeout,
                    schedule_to_close_timeout: a.schedule_to_close_timeout,
                    start_to_close_timeout: a.start_to_close_timeout,
                    heartbeat_timeout: a.heartbeat_timeout,
                    retry_policy: a.retry_policy.clone(),
                    expiration_time: (!s2c.is_zero()).then(|| ts(at + s2c)),
                    header: a.header.clone(),
                    input: a.input.clone(),
                    workflow_task_completed_event_id: a.workflow_task_completed_event_id,
                    priority: a.priority.clone(),
                    ..Default::default()
                },
            );
        }
        A::ActivityTaskStartedEventAttributes(a) => {
            // Written with the attempt's end, which follows; kept for a history cut between.
            if let Some(ai) = ms.activities.get_mut(&a.scheduled_event_id) {
                ai.attempt = a.attempt.max(1);
                ai.started_time = ev.event_time;
                ai.started_identity = a.identity.clone();
                ai.start_request_id = a.request_id.clone();
                ai.last_failure = a.last_failure.clone();
            }
        }
        A::ActivityTaskCompletedEventAttributes(a) => {
            ms.activities.remove(&a.scheduled_event_id);
        }
        A::ActivityTaskFailedEventAttributes(a) => {
            ms.activities.remove(&a.scheduled_event_id);
        }
        A::ActivityTaskTimedOutEventAttributes(a) => {
            ms.activities.remove(&a.scheduled_event_id);
        }
        A::ActivityTaskCanceledEventAttributes(a) => {
            ms.activities.remove(&a.scheduled_event_id);
        }
        A::ActivityTaskCancelRequestedEventAttributes(a) => {
            if let Some(ai) = ms.activities.get_mut(&a.scheduled_event_id) {
                ai.cancel_requested = true;
                ai.cancel_requested_event_id = id;
            }
        }
        A::TimerStartedEventAttributes(a) => {
            let fire_at = at + from_dur(&a.start_to_fire_timeout);
            ms.timers.insert(
                a.timer_id.clone(),
                pb::TimerInfo {
                    timer_id: a.timer_id.clone(),
                    started_event_id: id,
                    expiry_time: Some(ts(fire_at)),
                },
            );
        }
        A::TimerFiredEventAttributes(a) => {
            ms.timers.remove(&a.timer_id);
        }
        A::TimerCanceledEventAttributes(a) => {
            ms.timers.remove(&a.timer_id);
        }
        A::WorkflowExecutionSignaledEventAttributes(a) => {
            let i = info(ms);
            i.signal_count += 1;
            if !a.request_id.is_empty() {
                i.applied_request_ids.push(a.request_id.clone());
                if i.applied_request_ids.len() > signal::MAX_REMEMBERED_REQUEST_IDS {
                    i.applied_request_ids.remove(0);
                }
            }
        }
        A::WorkflowExecutionCancelRequestedEventAttributes(_) => {
            info(ms).cancel_requested = true;
        }
        A::UpsertWorkflowSearchAttributesEventAttributes(a) => {
            if let Some(upsert) = &a.search_attributes {
                let merged = info(ms)
                    .search_attributes
                    .get_or_insert_with(Default::default);
                properties::merge_search_attributes(
                    &mut merged.indexed_fields,
                    &upsert.indexed_fields,
                );
            }
        }
        A::WorkflowPropertiesModifiedEventAttributes(a) => {
            if let Some(upsert) = &a.upserted_memo {
                let merged = info(ms).memo.get_or_insert_with(Default::default);
                properties::merge_memo(&mut merged.fields, &upsert.fields);
            }
        }
        A::StartChildWorkflowExecutionInitiatedEventAttributes(a) => {
            ms.children.insert(
                id,
                pb::ChildExecutionInfo {
                    initiated_event_id: id,
                    started_event_id: 0,
                    namespace: a.namespace.clone(),
                    namespace_id: a.namespace_id.clone(),
                    workflow_id: a.workflow_id.clone(),
                    run_id: String::new(),
                    workflow_type: a.workflow_type.clone(),
                    parent_close_policy: a.parent_close_policy,
                    create_request_id: child::create_request_id(run_id, id),
                },
            );
            info(ms).child_count += 1;
        }
        A::ChildWorkflowExecutionStartedEventAttributes(a) => {
            if let Some(c) = ms.children.get_mut(&a.initiated_event_id) {
                c.started_event_id = id;
                c.run_id = a
                    .workflow_execution
                    .as_ref()
                    .map(|e| e.run_id.clone())
                    .unwrap_or_default();
                c.namespace_id = a.namespace_id.clone();
            }
        }
        A::StartChildWorkflowExecutionFailedEventAttributes(a) => {
            ms.children.remove(&a.initiated_event_id);
        }
        A::ChildWorkflowExecutionCompletedEventAttributes(a) => {
            ms.children.remove(&a.initiated_event_id);
        }
        A::ChildWorkflowExecutionFailedEventAttributes(a) => {
            ms.children.remove(&a.initiated_event_id);
        }
        A::ChildWorkflowExecutionCanceledEventAttributes(a) => {
            ms.children.remove(&a.initiated_event_id);
        }
        A::ChildWorkflowExecutionTimedOutEventAttributes(a) => {
            ms.children.remove(&a.initiated_event_id);
        }
        A::ChildWorkflowExecutionTerminatedEventAttributes(a) => {
            ms.children.remove(&a.initiated_event_id);
        }
        A::SignalExternalWorkflowExecutionInitiatedEventAttributes(_) => {
            ms.signals.insert(
                id,
                pb::ExternalInfo {
                    initiated_event_id: id,
                    request_id: external::external_request_id(run_id, "signal", id),
                },
            );
        }
        A::ExternalWorkflowExecutionSignaledEventAttributes(a) => {
            ms.signals.remove(&a.initiated_event_id);
        }
        A::SignalExternalWorkflowExecutionFailedEventAttributes(a) => {
            ms.signals.remove(&a.initiated_event_id);
        }
        A::RequestCancelExternalWorkflowExecutionInitiatedEventAttributes(_) => {
            ms.request_cancels.insert(
                id,
                pb::ExternalInfo {
                    initiated_event_id: id,
                    request_id: external::external_request_id(run_id, "cancel", id),
                },
            );
        }
        A::ExternalWorkflowExecutionCancelRequestedEventAttributes(a) => {
            ms.request_cancels.remove(&a.initiated_event_id);
        }
        A::RequestCancelExternalWorkflowExecutionFailedEventAttributes(a) => {
            ms.request_cancels.remove(&a.initiated_event_id);
        }
        A::WorkflowExecutionCompletedEventAttributes(_) => {
            close(ms, WorkflowExecutionStatus::Completed, ev)
        }
        A::WorkflowExecutionFailedEventAttributes(_) => {
            close(ms, WorkflowExecutionStatus::Failed, ev)
        }
        A::WorkflowExecutionTimedOutEventAttributes(_) => {
            close(ms, WorkflowExecutionStatus::TimedOut, ev)
        }
        A::WorkflowExecutionCanceledEventAttributes(_) => {
            close(ms, WorkflowExecutionStatus::Canceled, ev)
        }
        A::WorkflowExecutionTerminatedEventAttributes(_) => {
            close(ms, WorkflowExecutionStatus::Terminated, ev)
        }
        A::WorkflowExecutionContinuedAsNewEventAttributes(_) => {
            close(ms, WorkflowExecutionStatus::ContinuedAsNew, ev)
        }
        // The started event was read above; markers change nothing; the rest is not written
        // by this server.
        _ => {}
    }
}

/// Add the tasks that resume a rebuilt run, except its workflow task (see
/// [`resume_workflow_task`]): activities, user timers, children, external signals and
/// cancels, and the run timeout. Nothing for a closed run.
pub fn resume(txn: &mut Txn<'_>) {
    if !txn.is_running() {
        return;
    }
    let mut activities: Vec<pb::ActivityInfo> = txn.ms.activities.values().cloned().collect();
    activities.sort_by_key(|a| a.scheduled_event_id);
    for ai in activities {
        resume_activity(txn, &ai);
    }
    let mut timers: Vec<pb::TimerInfo> = txn.ms.timers.values().cloned().collect();
    timers.sort_by_key(|t| t.started_event_id);
    for ti in timers {
        let at = opt_from_ts(&ti.expiry_time).unwrap_or(txn.now);
        let mut t = txn.timer_task(pb::TimerTaskKind::UserTimer, ti.started_event_id, 0);
        t.timer_id = ti.timer_id.clone();
        txn.add_timer_task(at, t);
    }
    let mut children: Vec<i64> = txn
        .ms
        .children
        .values()
        .filter(|c| c.started_event_id == 0)
        .map(|c| c.initiated_event_id)
        .collect();
    children.sort_unstable();
    for id in children {
        let mut t = txn.transfer_task(pb::TransferTaskKind::StartChild);
        t.scheduled_event_id = id;
        txn.add_transfer_task(t);
    }
    let mut signals: Vec<i64> = txn.ms.signals.keys().copied().collect();
    signals.sort_unstable();
    for id in signals {
        let mut t = txn.transfer_task(pb::TransferTaskKind::SignalExternal);
        t.scheduled_event_id = id;
        txn.add_transfer_task(t);
    }
    let mut cancels: Vec<i64> = txn.ms.request_cancels.keys().copied().collect();
    cancels.sort_unstable();
    for id in cancels {
        let mut t = txn.transfer_task(pb::TransferTaskKind::CancelExternal);
        t.scheduled_event_id = id;
        txn.add_transfer_task(t);
    }
    if let Some(at) = opt_from_ts(&txn.info().run_expiration_time) {
        let t = txn.timer_task(pb::TimerTaskKind::WorkflowRunTimeout, 0, 0);
        txn.add_timer_task(at, t);
    }
}

fn resume_activity(txn: &mut Txn<'_>, ai: &pb::ActivityInfo) {
    if let Some(at) = opt_from_ts(&ai.expiration_time) {
        let mut t = txn.timer_task(pb::TimerTaskKind::ActivityTimeout, ai.scheduled_event_id, 0);
        t.timeout_type = TimeoutType::ScheduleToClose as i32;
        txn.add_timer_task(at, t);
    }
    match (&ai.started_time, opt_from_ts(&ai.retry_time)) {
        (Some(started), _) => {
            let st2c = from_dur(&ai.start_to_close_timeout);
            if !st2c.is_zero() {
                let mut t = txn.timer_task(
                    pb::TimerTaskKind::ActivityTimeout,
                    ai.scheduled_event_id,
                    ai.attempt,
                );
                t.timeout_type = TimeoutType::StartToClose as i32;
                txn.add_timer_task(from_ts(started) + st2c, t);
            }
            if let Some(stored) = txn.ms.activities.get_mut(&ai.scheduled_event_id) {
                stored.heartbeat_timer_pending = false;
            }
            let from = opt_from_ts(&ai.last_heartbeat_time).unwrap_or(from_ts(started));
            activity::arm_heartbeat_timer(txn, ai.scheduled_event_id, from);
        }
        (None, Some(retry_at)) if retry_at > txn.now => {
            let t = txn.timer_task(
                pb::TimerTaskKind::ActivityRetry,
                ai.scheduled_event_id,
                ai.attempt,
            );
            txn.add_timer_task(retry_at, t);
        }
        (None, _) => activity::dispatch(txn, ai),
    }
}

/// Add the task that resumes a rebuilt run's workflow task: hand a scheduled one to matching,
/// arm the timeout of a started one, or wait out the first workflow task's backoff.
pub fn resume_workflow_task(txn: &mut Txn<'_>) {
    if !txn.is_running() {
        return;
    }
    match txn.ms.workflow_task.clone() {
        Some(wt) if wt.started_event_id > 0 => {
            let started = opt_from_ts(&wt.started_time).unwrap_or(txn.now);
            let mut t = txn.timer_task(
                pb::TimerTaskKind::WorkflowTaskTimeout,
                wt.scheduled_event_id,
                wt.attempt,
            );
            t.timeout_type = TimeoutType::StartToClose as i32;
            txn.add_timer_task(started + from_dur(&wt.start_to_close_timeout), t);
        }
        Some(wt) => {
            // No worker holds the rebuilt run in its cache: the normal queue.
            let normal = txn.info().task_queue.clone();
            if let Some(w) = txn.ms.workflow_task.as_mut() {
                w.task_queue = normal.clone();
            }
            let mut t = txn.transfer_task(pb::TransferTaskKind::WorkflowTask);
            t.scheduled_event_id = wt.scheduled_event_id;
            t.task_queue = normal;
            t.attempt = wt.attempt;
            txn.add_transfer_task(t);
        }
        None => {
            if let Some(at) = opt_from_ts(&txn.info().first_workflow_task_backoff_until) {
                let t = txn.timer_task(pb::TimerTaskKind::WorkflowBackoff, 0, 0);
                txn.add_timer_task(at, t);
            }
        }
    }
}
