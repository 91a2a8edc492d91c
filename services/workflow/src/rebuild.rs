//! Rebuilding a run's mutable state from its history, and the tasks that resume it.
//!
//! [`rebuild`] replays history events into a [`pb::MutableState`], the state the live state
//! machine holds after writing them. It only dispatches: each event type is applied by the
//! `apply_*` function of its family (`start`, `workflow_task`, `activity`, `timer`, `signal`,
//! `close`, `properties`, `child`, `external`, `update`), the same function the live path
//! calls when it writes the event, so a transition is written once. Reset uses it to build a
//! new run from a prefix of an old one. What the history does not say (sticky queues, an
//! activity attempt in flight or waiting for a retry, state transition counts) starts empty.
//!
//! [`resume`] and [`resume_workflow_task`] add the transfer and timer tasks the rebuilt state
//! needs to make progress: pending activities go to matching again, user timers and
//! activity and run timeouts are armed again, unstarted children and pending external
//! signals and cancels are sent again (their request ids keep them idempotent).

use prost::Message;
use temper_proto::temporal::api::enums::v1::{TimeoutType, WorkflowExecutionStatus};
use temper_proto::temporal::api::history::v1::{HistoryEvent, history_event::Attributes};
use temper_proto::wkt::Timestamp;

use crate::events::At;
use crate::state::info_mut;
use crate::time::{from_dur, from_ts, opt_from_ts};
use crate::{
    Txn, WorkflowError, activity, child, close, external, pb, properties, signal, start, timer,
    update, workflow_task,
};

/// The run the rebuilt state belongs to: what its history does not record.
pub use crate::start::RunIds as RebuildRun;

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
    let mut ms = pb::MutableState {
        next_event_id: 1,
        ..Default::default()
    };
    start::apply_started(&mut ms, at(&events[0]), first, run);
    for ev in events {
        if ev.event_id != ms.next_event_id {
            return Err(corrupt(format!(
                "event {} where event {} was expected",
                ev.event_id, ms.next_event_id
            )));
        }
        if ev.event_id > 1
            && let Some(attrs) = &ev.attributes
        {
            apply(&mut ms, at(ev), attrs);
        }
        ms.next_event_id += 1;
        info_mut(&mut ms).history_size_bytes += event_size(ev);
    }
    Ok(ms)
}

fn at(ev: &HistoryEvent) -> At {
    At {
        id: ev.event_id,
        time: ev.event_time.unwrap_or_default(),
    }
}

/// Write `attrs` as an event with time `time` and apply it as replay does; returns its id.
/// For events the live path takes from elsewhere as they are (a speculative task's, a reset
/// run's copies of what its base run's children did).
pub(crate) fn write_event(txn: &mut Txn<'_>, attrs: Attributes, time: Timestamp) -> i64 {
    let at = At {
        id: txn.ms.next_event_id,
        time,
    };
    apply(txn.ms, at, &attrs);
    txn.write_at(attrs, time)
}

/// Apply one event (other than WorkflowExecutionStarted, which makes the state) to the
/// state: each type with the function of its family that the live path calls too.
pub(crate) fn apply(ms: &mut pb::MutableState, at: At, attrs: &Attributes) {
    use Attributes as A;
    use WorkflowExecutionStatus as S;
    match attrs {
        A::WorkflowTaskScheduledEventAttributes(a) => workflow_task::apply_scheduled(ms, at, a),
        A::WorkflowTaskStartedEventAttributes(a) => workflow_task::apply_started(ms, at, a),
        A::WorkflowTaskCompletedEventAttributes(a) => workflow_task::apply_completed(ms, at, a),
        A::WorkflowTaskFailedEventAttributes(a) => workflow_task::apply_failed(ms, at, a),
        A::WorkflowTaskTimedOutEventAttributes(a) => workflow_task::apply_timed_out(ms, at, a),
        A::ActivityTaskScheduledEventAttributes(a) => activity::apply_scheduled(ms, at, a),
        A::NexusOperationScheduledEventAttributes(a) => crate::nexus::apply_scheduled(ms, at, a),
        A::NexusOperationStartedEventAttributes(a) => crate::nexus::apply_started(ms, at, a),
        A::NexusOperationCancelRequestedEventAttributes(a) => {
            crate::nexus::apply_cancel_requested(ms, at, a)
        }
        A::NexusOperationCompletedEventAttributes(a) => {
            crate::nexus::apply_closed_completed(ms, at, a)
        }
        A::NexusOperationFailedEventAttributes(a) => crate::nexus::apply_closed_failed(ms, at, a),
        A::NexusOperationCanceledEventAttributes(a) => {
            crate::nexus::apply_closed_canceled(ms, at, a)
        }
        A::NexusOperationTimedOutEventAttributes(a) => {
            crate::nexus::apply_closed_timed_out(ms, at, a)
        }
        A::ActivityTaskStartedEventAttributes(a) => activity::apply_started(ms, at, a),
        A::ActivityTaskCompletedEventAttributes(a) => activity::apply_completed(ms, at, a),
        A::ActivityTaskFailedEventAttributes(a) => activity::apply_failed(ms, at, a),
        A::ActivityTaskTimedOutEventAttributes(a) => activity::apply_timed_out(ms, at, a),
        A::ActivityTaskCanceledEventAttributes(a) => activity::apply_canceled(ms, at, a),
        A::ActivityTaskCancelRequestedEventAttributes(a) => {
            activity::apply_cancel_requested(ms, at, a)
        }
        A::TimerStartedEventAttributes(a) => timer::apply_started(ms, at, a),
        A::TimerFiredEventAttributes(a) => timer::apply_fired(ms, at, a),
        A::TimerCanceledEventAttributes(a) => timer::apply_canceled(ms, at, a),
        A::WorkflowExecutionSignaledEventAttributes(a) => signal::apply_signaled(ms, at, a),
        A::WorkflowExecutionCancelRequestedEventAttributes(a) => {
            close::apply_cancel_requested(ms, at, a)
        }
        A::UpsertWorkflowSearchAttributesEventAttributes(a) => {
            properties::apply_search_attributes_upserted(ms, at, a)
        }
        A::WorkflowPropertiesModifiedEventAttributes(a) => {
            properties::apply_properties_modified(ms, at, a)
        }
        A::StartChildWorkflowExecutionInitiatedEventAttributes(a) => {
            child::apply_initiated(ms, at, a)
        }
        A::ChildWorkflowExecutionStartedEventAttributes(a) => child::apply_started(ms, at, a),
        A::StartChildWorkflowExecutionFailedEventAttributes(a) => {
            child::apply_start_failed(ms, at, a)
        }
        A::ChildWorkflowExecutionCompletedEventAttributes(a) => child::apply_completed(ms, at, a),
        A::ChildWorkflowExecutionFailedEventAttributes(a) => child::apply_failed(ms, at, a),
        A::ChildWorkflowExecutionCanceledEventAttributes(a) => child::apply_canceled(ms, at, a),
        A::ChildWorkflowExecutionTimedOutEventAttributes(a) => child::apply_timed_out(ms, at, a),
        A::ChildWorkflowExecutionTerminatedEventAttributes(a) => child::apply_terminated(ms, at, a),
        A::SignalExternalWorkflowExecutionInitiatedEventAttributes(a) => {
            external::apply_signal_initiated(ms, at, a)
        }
        A::ExternalWorkflowExecutionSignaledEventAttributes(a) => {
            external::apply_external_signaled(ms, at, a)
        }
        A::SignalExternalWorkflowExecutionFailedEventAttributes(a) => {
            external::apply_signal_failed(ms, at, a)
        }
        A::RequestCancelExternalWorkflowExecutionInitiatedEventAttributes(a) => {
            external::apply_cancel_initiated(ms, at, a)
        }
        A::ExternalWorkflowExecutionCancelRequestedEventAttributes(a) => {
            external::apply_external_cancel_requested(ms, at, a)
        }
        A::RequestCancelExternalWorkflowExecutionFailedEventAttributes(a) => {
            external::apply_cancel_failed(ms, at, a)
        }
        A::WorkflowExecutionUpdateAcceptedEventAttributes(a) => update::apply_accepted(ms, at, a),
        A::WorkflowExecutionOptionsUpdatedEventAttributes(a) => {
            crate::versioning::apply_options_updated(ms, at, a)
        }
        A::WorkflowExecutionUpdateCompletedEventAttributes(a) => update::apply_completed(ms, at, a),
        A::WorkflowExecutionCompletedEventAttributes(_) => {
            close::apply_closed(ms, at, S::Completed)
        }
        A::WorkflowExecutionFailedEventAttributes(_) => close::apply_closed(ms, at, S::Failed),
        A::WorkflowExecutionTimedOutEventAttributes(_) => close::apply_closed(ms, at, S::TimedOut),
        A::WorkflowExecutionCanceledEventAttributes(_) => close::apply_closed(ms, at, S::Canceled),
        A::WorkflowExecutionTerminatedEventAttributes(_) => {
            close::apply_closed(ms, at, S::Terminated)
        }
        A::WorkflowExecutionContinuedAsNewEventAttributes(_) => {
            close::apply_closed(ms, at, S::ContinuedAsNew)
        }
        // The started event makes the state (see [`rebuild`]); markers change nothing; the
        // rest is not written by this server.
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
