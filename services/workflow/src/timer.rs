//! User timers: StartTimer and CancelTimer commands, and firing; and how each timer event
//! changes the state.

use temper_proto::temporal::api::command::v1::{
    CancelTimerCommandAttributes, StartTimerCommandAttributes,
};
use temper_proto::temporal::api::enums::v1::WorkflowTaskFailedCause;
use temper_proto::temporal::api::history::v1::{
    TimerCanceledEventAttributes, TimerFiredEventAttributes, TimerStartedEventAttributes,
};

use crate::BadCommand;
use crate::events::At;
use crate::time::{from_dur, ts, validate_and_cap};
use crate::{Txn, pb, workflow_task};

/// The longest timer id the Temporal server accepts (its default `limit.maxIDLength`).
const MAX_TIMER_ID_LEN: usize = 1000;

/// The StartTimer command.
pub fn start(
    txn: &mut Txn<'_>,
    a: &StartTimerCommandAttributes,
    wft_completed_event_id: i64,
) -> Result<(), BadCommand> {
    let bad = |m: &str| BadCommand::new(WorkflowTaskFailedCause::BadStartTimerAttributes, m);
    if a.timer_id.is_empty() {
        return Err(bad("TimerId is not set on StartTimerCommand."));
    }
    if a.timer_id.len() > MAX_TIMER_ID_LEN {
        return Err(bad(&format!(
            "TimerId on StartTimerCommand exceeds length limit. TimerId={} Length={} Limit={}",
            a.timer_id,
            a.timer_id.len(),
            MAX_TIMER_ID_LEN
        )));
    }
    // As in Temporal, an absent or zero start-to-fire timeout is valid: the timer fires
    // right away (the Python SDK's `workflow.sleep(0)` sends one).
    let start_to_fire_timeout = validate_and_cap(&a.start_to_fire_timeout).map_err(|e| {
        bad(&format!(
            "An invalid StartToFireTimeout is set on StartTimerCommand: {e}. TimerId={}",
            a.timer_id
        ))
    })?;
    let d = from_dur(&start_to_fire_timeout);
    // A timer whose TimerFired is buffered (it fired while this workflow task ran) is still
    // running as far as the workflow knows, as CancelTimer treats it: starting its id again
    // is a duplicate. Else the buffered TimerFired, written after the new TimerStarted,
    // would end the new timer on replay while the live state keeps it.
    if txn.ms.timers.contains_key(&a.timer_id) || txn.has_buffered_timer_fired(&a.timer_id) {
        return Err(BadCommand::new(
            WorkflowTaskFailedCause::StartTimerDuplicateId,
            &format!("Timer with id {} is already started.", a.timer_id),
        ));
    }
    if txn.ms.timers.len() >= txn.limits.max_pending_timers {
        return Err(bad("the number of pending timers has reached the limit"));
    }
    let id = txn.write_applied(
        TimerStartedEventAttributes {
            timer_id: a.timer_id.clone(),
            start_to_fire_timeout,
            workflow_task_completed_event_id: wft_completed_event_id,
        },
        apply_started,
    );
    let fire_at = txn.now + d;
    let mut t = txn.timer_task(pb::TimerTaskKind::UserTimer, id, 0);
    t.timer_id = a.timer_id.clone();
    txn.add_timer_task(fire_at, t);
    Ok(())
}

/// The CancelTimer command. A timer that fired while the workflow task ran (its TimerFired
/// still buffered) can be canceled too: the buffered event is dropped, as in Temporal.
pub fn cancel(
    txn: &mut Txn<'_>,
    a: &CancelTimerCommandAttributes,
    wft_completed_event_id: i64,
    identity: &str,
) -> Result<(), BadCommand> {
    let started_event_id = match txn.ms.timers.get(&a.timer_id) {
        Some(t) => t.started_event_id,
        None => match txn.take_buffered_timer_fired(&a.timer_id) {
            Some(started) => started,
            None => {
                return Err(BadCommand::new(
                    WorkflowTaskFailedCause::BadCancelTimerAttributes,
                    &format!("CancelTimer: timer with id {} is not pending.", a.timer_id),
                ));
            }
        },
    };
    txn.write_applied(
        TimerCanceledEventAttributes {
            timer_id: a.timer_id.clone(),
            started_event_id,
            workflow_task_completed_event_id: wft_completed_event_id,
            identity: identity.to_string(),
        },
        apply_canceled,
    );
    Ok(())
}

/// A user timer's task fired.
pub fn on_fire(txn: &mut Txn<'_>, timer_id: &str, started_event_id: i64) {
    if !txn.is_running() {
        return;
    }
    match txn.ms.timers.get(timer_id) {
        Some(t) if t.started_event_id == started_event_id => {}
        _ => return,
    }
    txn.write_external_applied(
        TimerFiredEventAttributes {
            timer_id: timer_id.to_string(),
            started_event_id,
        },
        apply_fired,
    );
    workflow_task::schedule_if_needed(txn);
}

/// TimerStarted: the timer is pending until its start-to-fire timeout from the event's time.
pub(crate) fn apply_started(ms: &mut pb::MutableState, at: At, a: &TimerStartedEventAttributes) {
    let fire_at = at.system_time() + from_dur(&a.start_to_fire_timeout);
    ms.timers.insert(
        a.timer_id.clone(),
        pb::TimerInfo {
            timer_id: a.timer_id.clone(),
            started_event_id: at.id,
            expiry_time: Some(ts(fire_at)),
        },
    );
}

/// TimerFired.
pub(crate) fn apply_fired(ms: &mut pb::MutableState, _: At, a: &TimerFiredEventAttributes) {
    ms.timers.remove(&a.timer_id);
}

/// TimerCanceled.
pub(crate) fn apply_canceled(ms: &mut pb::MutableState, _: At, a: &TimerCanceledEventAttributes) {
    ms.timers.remove(&a.timer_id);
}
