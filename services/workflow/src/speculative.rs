//! Speculative workflow tasks: a workflow task created only to deliver updates.
//!
//! Its WorkflowTaskScheduled and WorkflowTaskStarted events are not written: they exist only
//! in the cached state (and in the poll response the worker gets), and the stored state never
//! holds the task. If the worker only rejects the updates, the task is discarded and the
//! history is as if it never ran; the worker is told where to roll back to
//! (`reset_history_event_id`). As soon as anything else must be written while the task is
//! pending (the worker accepts an update, a signal arrives, the task fails or times out), its
//! events are written first, with the ids it already showed the worker, and it becomes a
//! normal workflow task. This is how the Temporal server keeps rejected updates free of
//! traces.

use std::time::Duration;

use temper_proto::temporal::api::enums::v1::{EventType, TaskQueueKind, TimeoutType};
use temper_proto::temporal::api::history::v1::{
    HistoryEvent, WorkflowTaskScheduledEventAttributes, WorkflowTaskStartedEventAttributes,
    WorkflowTaskTimedOutEventAttributes, history_event::Attributes,
};

use crate::BadCommand;
use crate::completion::{Completion, Outcome};
use crate::events::new_event;
use crate::time::{dur, from_dur, from_ts};
use crate::workflow_task::{StartRequest, Started};
use crate::{Mutation, Txn, WorkflowError, pb, update, workflow_task};

/// Temporal's schedule-to-start limit of a speculative task, on any queue: if no worker took
/// it by then, it becomes a normal task (one that is written and survives restarts).
pub const SCHEDULE_TO_START_TIMEOUT: Duration = Duration::from_secs(5);

/// A speculative task that shipped more events than this since the last completed task is
/// kept even if it only rejected updates, so the events are not sent again and again.
const DISCARD_MAX_EVENTS: i64 = 10;

/// The pending workflow task, if it is speculative.
pub fn pending(ms: &pb::MutableState) -> Option<&pb::WorkflowTaskInfo> {
    ms.workflow_task.as_ref().filter(|wt| wt.speculative)
}

/// The state as stored: without a speculative task.
pub fn persisted_view(ms: &pb::MutableState) -> std::borrow::Cow<'_, pb::MutableState> {
    if pending(ms).is_some() {
        let mut stored = ms.clone();
        stored.workflow_task = None;
        std::borrow::Cow::Owned(stored)
    } else {
        std::borrow::Cow::Borrowed(ms)
    }
}

/// Create a speculative workflow task (no events, no tasks: the caller hands it to matching
/// and arms its timeouts in memory).
pub(crate) fn schedule(txn: &mut Txn<'_>) {
    let (queue, _) = workflow_task::next_queue(txn);
    let timeout = from_dur(&txn.info().default_workflow_task_timeout);
    txn.ms.workflow_task = Some(pb::WorkflowTaskInfo {
        scheduled_event_id: txn.ms.next_event_id,
        started_event_id: 0,
        attempt: 1,
        task_queue: Some(queue),
        scheduled_time: Some(txn.now_ts),
        start_to_close_timeout: dur(timeout),
        speculative: true,
        ..Default::default()
    });
}

/// Schedule a speculative task for updates admitted while the last task ran.
pub(crate) fn schedule_if_updates(txn: &mut Txn<'_>) {
    if txn.is_running() && !txn.has_pending_workflow_task() && txn.updates.has_unsent() {
        schedule(txn);
    }
}

/// A worker picked up the speculative task: started in memory only.
pub(crate) fn record_started(
    txn: &mut Txn<'_>,
    req: &StartRequest<'_>,
) -> Result<Started, WorkflowError> {
    if !txn.is_running() {
        return Err(WorkflowError::NotFound(
            "workflow execution already completed".into(),
        ));
    }
    let now_ts = txn.now_ts;
    let Some(wt) = txn.ms.workflow_task.as_mut() else {
        return Err(WorkflowError::NotFound("workflow task not found".into()));
    };
    if wt.started_event_id > 0 {
        if wt.request_id == req.request_id {
            return Ok(Started::AlreadyByThisPoll(wt.started_event_id));
        }
        return Err(WorkflowError::NotFound(
            "workflow task already started".into(),
        ));
    }
    wt.started_event_id = wt.scheduled_event_id + 1;
    wt.started_time = Some(now_ts);
    wt.request_id = req.request_id.to_string();
    wt.identity = req.identity.to_string();
    Ok(Started::New(wt.started_event_id))
}

/// The events of the pending speculative task as the worker sees them (scheduled, and
/// started once started), with the ids and times they get if they are ever written.
pub fn events(ms: &pb::MutableState) -> Vec<HistoryEvent> {
    let Some(wt) = pending(ms) else {
        return Vec::new();
    };
    let scheduled = event(
        WorkflowTaskScheduledEventAttributes {
            task_queue: wt.task_queue.clone(),
            start_to_close_timeout: wt.start_to_close_timeout,
            attempt: wt.attempt,
        }
        .into(),
        wt.scheduled_event_id,
        wt.scheduled_time.unwrap_or_default(),
    );
    if wt.started_event_id == 0 {
        return vec![scheduled];
    }
    let history_size = ms
        .execution_info
        .as_ref()
        .map(|i| i.history_size_bytes)
        .unwrap_or(0)
        + prost::Message::encoded_len(&scheduled) as i64;
    let started = event(
        WorkflowTaskStartedEventAttributes {
            scheduled_event_id: wt.scheduled_event_id,
            identity: wt.identity.clone(),
            request_id: wt.request_id.clone(),
            history_size_bytes: history_size,
            ..Default::default()
        }
        .into(),
        wt.started_event_id,
        wt.started_time.unwrap_or_default(),
    );
    vec![scheduled, started]
}

fn event(attrs: Attributes, id: i64, time: temper_proto::wkt::Timestamp) -> HistoryEvent {
    let mut ev = new_event(attrs, &time);
    ev.event_id = id;
    ev
}

/// Write the pending speculative task's events and make it a normal task. `with_tasks`: also
/// add the tasks a normal task has (its dispatch or its start-to-close timer), unless the
/// task ends in this same transaction.
pub(crate) fn make_durable(txn: &mut Txn<'_>, with_tasks: bool) {
    let Some(wt) = pending(txn.ms).cloned() else {
        return;
    };
    // Written as replay applies them, they give the task back, no longer speculative.
    for ev in events(txn.ms) {
        let time = ev.event_time.unwrap_or_default();
        let Some(attrs) = ev.attributes else { continue };
        let id = crate::rebuild::write_event(txn, attrs, time);
        debug_assert_eq!(id, ev.event_id, "speculative events keep their ids");
    }
    if !with_tasks {
        return;
    }
    if wt.started_event_id > 0 {
        let mut timer = txn.timer_task(
            pb::TimerTaskKind::WorkflowTaskTimeout,
            wt.scheduled_event_id,
            wt.attempt,
        );
        timer.timeout_type = TimeoutType::StartToClose as i32;
        let started = wt.started_time.as_ref().map(from_ts).unwrap_or(txn.now);
        txn.add_timer_task(started + from_dur(&wt.start_to_close_timeout), timer);
        return;
    }
    // Matching may still hold the speculative dispatch; a second one is harmless (whichever
    // poll comes second finds the task started and drops it).
    let queue = wt.task_queue.clone().unwrap_or_default();
    let sticky = queue.kind == TaskQueueKind::Sticky as i32;
    let mut t = txn.transfer_task(pb::TransferTaskKind::WorkflowTask);
    t.scheduled_event_id = wt.scheduled_event_id;
    t.task_queue = Some(queue);
    t.attempt = wt.attempt;
    if sticky {
        let timeout = match from_dur(&txn.info().sticky_schedule_to_start_timeout) {
            d if d.is_zero() => txn.limits.sticky_schedule_to_start_timeout,
            d => d,
        };
        t.schedule_to_start_timeout = dur(timeout);
        let mut timer = txn.timer_task(
            pb::TimerTaskKind::WorkflowTaskTimeout,
            wt.scheduled_event_id,
            wt.attempt,
        );
        timer.timeout_type = TimeoutType::ScheduleToStart as i32;
        txn.add_timer_task(txn.now + timeout, timer);
    }
    txn.add_transfer_task(t);
}

/// Whether a transaction that started from `before` wrote (or buffered) events while a
/// speculative task was pending without making the task durable first: then it must run
/// again with the task made durable, so the events follow the task's events.
pub(crate) fn needs_durable(
    before: &pb::MutableState,
    after: &pb::MutableState,
    out: &Mutation,
) -> bool {
    let Some(spec) = pending(before) else {
        return false;
    };
    if let Some(first) = out.events.first() {
        let made_durable = first.event_type == EventType::WorkflowTaskScheduled as i32
            && first.event_id == spec.scheduled_event_id;
        return !made_durable;
    }
    pending(after).is_some() && after.buffered_events.len() > before.buffered_events.len()
}

/// Whether the completion of speculative task `wt` can be discarded: it changed nothing but
/// rejecting updates (Temporal's rule, including its limit on re-shipped events).
pub(crate) fn can_discard(txn: &Txn<'_>, c: &Completion<'_>) -> bool {
    if !c.commands.is_empty() || c.force_create_new_workflow_task || txn.has_buffered_events() {
        return false;
    }
    if !c.messages.iter().all(update::is_rejection) {
        return false;
    }
    let last_started = txn.info().last_completed_workflow_task_started_event_id;
    let events_since = txn.ms.next_event_id - (last_started + 2);
    let allowed = if c.discard_speculative_with_events {
        DISCARD_MAX_EVENTS
    } else {
        0
    };
    events_since <= allowed
}

/// Complete speculative task `wt` without a trace: apply the rejections, drop the task, and
/// schedule another speculative task if updates arrived meanwhile.
pub(crate) fn discard(txn: &mut Txn<'_>, c: &Completion<'_>) -> Result<Outcome, BadCommand> {
    txn.ms.workflow_task = None;
    let mut inbox = update::Inbox::new(c.messages);
    update::after_commands(txn, &mut inbox, false)?;
    schedule_if_updates(txn);
    Ok(Outcome::Discarded {
        reset_history_event_id: txn.info().last_completed_workflow_task_started_event_id,
    })
}

/// An in-memory timeout of a speculative task fired (schedule-to-start or start-to-close).
/// `scheduled_time` tells this task from a later one with the same event ids. The task is
/// written (scheduled, started) and timed out like a normal one.
pub fn on_timeout(
    txn: &mut Txn<'_>,
    scheduled_event_id: i64,
    scheduled_time: &temper_proto::wkt::Timestamp,
    timeout_type: TimeoutType,
) {
    let Some(wt) = pending(txn.ms).cloned() else {
        return;
    };
    let started = wt.started_event_id > 0;
    let this_phase = match timeout_type {
        TimeoutType::ScheduleToStart => !started,
        _ => started,
    };
    if wt.scheduled_event_id != scheduled_event_id
        || wt.scheduled_time.as_ref() != Some(scheduled_time)
        || !this_phase
        || !txn.is_running()
    {
        return;
    }
    make_durable(txn, false);
    if started {
        workflow_task::on_timeout(
            txn,
            wt.scheduled_event_id,
            wt.attempt,
            TimeoutType::StartToClose as i32,
        );
        return;
    }
    txn.write_applied(
        WorkflowTaskTimedOutEventAttributes {
            scheduled_event_id: wt.scheduled_event_id,
            started_event_id: 0,
            timeout_type: TimeoutType::ScheduleToStart as i32,
        },
        workflow_task::apply_timed_out,
    );
    workflow_task::clear_sticky(txn);
    txn.flush_buffered();
    workflow_task::schedule(txn, wt.attempt);
}
