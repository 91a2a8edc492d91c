//! ResetWorkflowExecution: a new run that repeats an earlier run's history up to one of its
//! workflow tasks, fails that task (cause ResetWorkflow, naming both runs) and goes on from
//! there with the signals the old run received after that point applied again, then a new
//! workflow task. The caller terminates the current run and creates this one in the same
//! commit (see [`crate::Mutation::new_run`]).

use std::time::SystemTime;

use temper_proto::temporal::api::enums::v1::{
    ResetReapplyExcludeType, ResetReapplyType, RetryState, WorkflowTaskFailedCause,
};
use temper_proto::temporal::api::failure::v1::{
    Failure, ResetWorkflowFailureInfo, failure::FailureInfo,
};
use temper_proto::temporal::api::history::v1::{
    ActivityTaskFailedEventAttributes, HistoryEvent, WorkflowExecutionSignaledEventAttributes,
    WorkflowTaskFailedEventAttributes, WorkflowTaskStartedEventAttributes,
    history_event::Attributes,
};

use crate::rebuild::{RebuildRun, rebuild, resume, write_event};
use crate::time::{from_dur, ts};
use crate::{Limits, NewRunState, Txn, WorkflowError, activity, pb, workflow_task};

/// Who the server says failed the workflow task at the reset point (Temporal's name).
pub const IDENTITY_HISTORY_SERVICE: &str = "history-service";
/// Who the server says terminated the run a reset replaced (Temporal's name).
pub const IDENTITY_RESETTER: &str = "history-resetter";
/// The request id of a workflow task the reset starts itself (Temporal's value).
const SYNTHETIC_REQUEST_ID: &str = "emptyUuid";

/// What a reset needs besides the histories.
#[derive(Debug, Clone, Copy)]
pub struct Reset<'a> {
    /// The new run.
    pub run: RebuildRun<'a>,
    pub base_run_id: &'a str,
    pub reason: &'a str,
    /// A WorkflowTaskCompleted, -Failed or -TimedOut event of the base run (Temporal also
    /// accepts the WorkflowTaskStarted after a scheduled task).
    pub workflow_task_finish_event_id: i64,
    /// Apply the signals received after the reset point again.
    pub reapply_signals: bool,
    /// Events the base run wrote after its history was read (those its termination by this
    /// reset wrote: signals that were buffered), applied again like the rest.
    pub base_tail: &'a [HistoryEvent],
    pub now: SystemTime,
}

/// Whether a reset request asks for signals to be applied again: the default, unless the
/// deprecated `reset_reapply_type` says NONE or the exclude list names signals.
pub fn reapplies_signals(reset_reapply_type: i32, exclude_types: &[i32]) -> bool {
    reset_reapply_type != ResetReapplyType::None as i32
        && !exclude_types.contains(&(ResetReapplyExcludeType::Signal as i32))
}

fn invalid(m: String) -> WorkflowError {
    WorkflowError::InvalidArgument(m)
}

/// Build the new run of a reset. `base` is the base run's whole history; `later` holds the
/// events of the runs that continued it (continue-as-new) up to the current one, whose
/// signals are applied again too. What the base run's children did after the reset point
/// (started, failed to start, closed) is applied again as well, so the new run, which takes
/// them over, knows it.
pub fn reset(
    base: &[HistoryEvent],
    later: &[HistoryEvent],
    r: Reset<'_>,
    limits: &Limits,
) -> Result<NewRunState, WorkflowError> {
    let finish = r.workflow_task_finish_event_id;
    let next_event_id = base.last().map(|e| e.event_id + 1).unwrap_or(1);
    if finish <= 1 || finish >= next_event_id {
        return Err(invalid(
            "Workflow task finish ID must be > 1 && <= workflow last event ID.".into(),
        ));
    }
    let cut = usize::try_from(finish - 1).map_err(|_| invalid("bad event id".into()))?;
    let (prefix, after) = base.split_at(cut.min(base.len()));
    let mut ms = rebuild(prefix, r.run)?;
    if ms.workflow_task.is_none() || crate::close::is_closed(&ms) {
        return Err(invalid(format!(
            "Can only reset workflow to event ID in range [WorkflowTaskScheduled +1, WorkflowTaskStarted + 1]: {finish}"
        )));
    }
    restart_clocks(&mut ms, r.now);
    let mut txn = Txn::new(&mut ms, r.now, limits);
    fail_workflow_task(&mut txn, &r);
    fail_in_flight_activities(&mut txn, prefix, r.reason);
    resume(&mut txn);
    for ev in after.iter().chain(r.base_tail) {
        reapply(&mut txn, ev, r.reapply_signals, true);
    }
    for ev in later {
        reapply(&mut txn, ev, r.reapply_signals, false);
    }
    workflow_task::schedule(&mut txn, 1);
    txn.visibility_task(pb::VisibilityTaskKind::Start);
    let out = txn.finish();
    let mut events = prefix.to_vec();
    events.extend(out.events);
    Ok(NewRunState {
        ms,
        mutation: crate::Mutation { events, ..out },
    })
}

/// The new run starts now: its start time, its run and execution deadlines, and the
/// schedule-to-close deadline of each activity waiting for a worker count from now, as in
/// Temporal.
fn restart_clocks(ms: &mut pb::MutableState, now: SystemTime) {
    let now_ts = ts(now);
    let info = ms.execution_info.get_or_insert_with(Default::default);
    info.start_time = Some(now_ts);
    info.execution_time = Some(now_ts);
    let execution_timeout = from_dur(&info.workflow_execution_timeout);
    if !execution_timeout.is_zero() {
        info.execution_expiration_time = Some(ts(now + execution_timeout));
    }
    let run_timeout = from_dur(&info.workflow_run_timeout);
    if !run_timeout.is_zero() {
        let mut at = now + run_timeout;
        if let Some(e) = info
            .execution_expiration_time
            .as_ref()
            .map(crate::time::from_ts)
        {
            at = at.min(e);
        }
        info.run_expiration_time = Some(ts(at));
    }
    for ai in ms.activities.values_mut() {
        if ai.started_time.is_none() {
            ai.scheduled_time = Some(now_ts);
            ai.first_scheduled_time = Some(now_ts);
            let s2c = from_dur(&ai.schedule_to_close_timeout);
            ai.expiration_time = (!s2c.is_zero()).then(|| ts(now + s2c));
        }
    }
}

/// End the workflow task at the reset point with WorkflowTaskFailed (cause ResetWorkflow),
/// starting it first if it was only scheduled.
fn fail_workflow_task(txn: &mut Txn<'_>, r: &Reset<'_>) {
    let Some(mut wt) = txn.ms.workflow_task.clone() else {
        return;
    };
    if wt.started_event_id == 0 {
        let history_size_bytes = txn.info().history_size_bytes;
        wt.started_event_id = txn.write_applied(
            WorkflowTaskStartedEventAttributes {
                scheduled_event_id: wt.scheduled_event_id,
                identity: IDENTITY_HISTORY_SERVICE.into(),
                request_id: SYNTHETIC_REQUEST_ID.into(),
                history_size_bytes,
                ..Default::default()
            },
            workflow_task::apply_started,
        );
    }
    txn.write_applied(
        WorkflowTaskFailedEventAttributes {
            scheduled_event_id: wt.scheduled_event_id,
            started_event_id: wt.started_event_id,
            cause: WorkflowTaskFailedCause::ResetWorkflow as i32,
            failure: Some(Failure {
                message: r.reason.to_string(),
                failure_info: Some(FailureInfo::ResetWorkflowFailureInfo(
                    ResetWorkflowFailureInfo::default(),
                )),
                ..Default::default()
            }),
            identity: IDENTITY_HISTORY_SERVICE.into(),
            base_run_id: r.base_run_id.to_string(),
            new_run_id: r.run.run_id.to_string(),
            ..Default::default()
        },
        workflow_task::apply_failed,
    );
}

/// Fail the activities in flight at the reset point (their ActivityTaskStarted is in the
/// prefix, their end is not), as Temporal does: their worker reports to the old run, so the
/// new run would wait for a result that never comes, and its history would say they started
/// while its state, rebuilt from that history, could not tell the attempt is gone.
fn fail_in_flight_activities(txn: &mut Txn<'_>, prefix: &[HistoryEvent], reason: &str) {
    let in_flight: Vec<(i64, i64)> = prefix
        .iter()
        .filter_map(|e| match &e.attributes {
            Some(Attributes::ActivityTaskStartedEventAttributes(a))
                if txn.ms.activities.contains_key(&a.scheduled_event_id) =>
            {
                Some((a.scheduled_event_id, e.event_id))
            }
            _ => None,
        })
        .collect();
    for (scheduled_event_id, started_event_id) in in_flight {
        let Some(ai) = txn.ms.activities.get(&scheduled_event_id).cloned() else {
            continue;
        };
        txn.write_applied(
            ActivityTaskFailedEventAttributes {
                failure: Some(Failure {
                    message: reason.to_string(),
                    failure_info: Some(FailureInfo::ResetWorkflowFailureInfo(
                        ResetWorkflowFailureInfo {
                            last_heartbeat_details: ai.heartbeat_details.clone(),
                        },
                    )),
                    ..Default::default()
                }),
                scheduled_event_id,
                started_event_id,
                identity: ai.started_identity.clone(),
                retry_state: RetryState::NonRetryableFailure as i32,
                ..Default::default()
            },
            activity::apply_failed,
        );
    }
}

/// Apply an event of an old run again: a signal (if asked), and, for the base run's own
/// events, what its children did.
fn reapply(txn: &mut Txn<'_>, ev: &HistoryEvent, signals: bool, base: bool) {
    match &ev.attributes {
        Some(Attributes::WorkflowExecutionSignaledEventAttributes(a)) if signals => {
            reapply_signal(txn, a)
        }
        Some(attrs) if base => reapply_child_event(txn, attrs),
        _ => {}
    }
}

/// A child of the base run started, failed to start or closed after the reset point: if the
/// new run still waits for that, write it there too (without scheduling a workflow task;
/// one follows everything applied again).
fn reapply_child_event(txn: &mut Txn<'_>, attrs: &Attributes) {
    use Attributes as A;
    let pending = |txn: &Txn<'_>, id: i64| txn.ms.children.get(&id).cloned();
    let now = txn.now_ts;
    match attrs {
        A::ChildWorkflowExecutionStartedEventAttributes(a) => {
            if pending(txn, a.initiated_event_id).is_some_and(|c| c.started_event_id == 0) {
                write_event(txn, attrs.clone(), now);
            }
        }
        A::StartChildWorkflowExecutionFailedEventAttributes(a) => {
            if pending(txn, a.initiated_event_id).is_some_and(|c| c.started_event_id == 0) {
                write_event(txn, attrs.clone(), now);
            }
        }
        _ => {
            let mut attrs = attrs.clone();
            let (initiated, started) = match &mut attrs {
                A::ChildWorkflowExecutionCompletedEventAttributes(a) => {
                    (a.initiated_event_id, &mut a.started_event_id)
                }
                A::ChildWorkflowExecutionFailedEventAttributes(a) => {
                    (a.initiated_event_id, &mut a.started_event_id)
                }
                A::ChildWorkflowExecutionCanceledEventAttributes(a) => {
                    (a.initiated_event_id, &mut a.started_event_id)
                }
                A::ChildWorkflowExecutionTimedOutEventAttributes(a) => {
                    (a.initiated_event_id, &mut a.started_event_id)
                }
                A::ChildWorkflowExecutionTerminatedEventAttributes(a) => {
                    (a.initiated_event_id, &mut a.started_event_id)
                }
                _ => return,
            };
            match pending(txn, initiated) {
                Some(c) if c.started_event_id > 0 => {
                    *started = c.started_event_id;
                    write_event(txn, attrs, now);
                }
                _ => {}
            }
        }
    }
}

/// Write a signal of the old run again in the new one (without scheduling a workflow task
/// after each: one follows all of them).
fn reapply_signal(txn: &mut Txn<'_>, a: &WorkflowExecutionSignaledEventAttributes) {
    txn.write_applied(
        WorkflowExecutionSignaledEventAttributes {
            signal_name: a.signal_name.clone(),
            input: a.input.clone(),
            identity: a.identity.clone(),
            header: a.header.clone(),
            request_id: a.request_id.clone(),
            ..Default::default()
        },
        crate::signal::apply_signaled,
    );
}
