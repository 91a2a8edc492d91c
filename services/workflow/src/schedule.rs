//! A schedule's run: the run (workflow id `temporal-sys-scheduler:<schedule id>`, as in
//! Temporal) that holds a schedule. No worker runs it: it has no workflow tasks, and the
//! history service drives the scheduler state machine (`temper_schedule::scheduler`) in its
//! transactions. This module records what the scheduler decided in the run:
//!
//! - its state in `MutableState.schedule`;
//! - each start it asks for as a pending start plus a SCHEDULE_START transfer task (the
//!   outbox: the start happens once the commit is durable, and again only with the same
//!   request id, which the target's shard recognizes);
//! - each cancel / terminate of its overlap policy as a transfer task;
//! - its next wake-up as the one live SCHEDULE_WAKE timer (a timer for another time is stale);
//! - what ListSchedules shows (memo `ScheduleInfo`, search attribute `TemporalSchedulePaused`)
//!   and a visibility update.

use std::time::{Duration, SystemTime};

use prost::Message;
use temper_proto::temporal::api::common::v1::{Memo, Payload, SearchAttributes, WorkflowType};
use temper_proto::temporal::api::enums::v1::TaskQueueKind;
use temper_proto::temporal::api::taskqueue::v1::TaskQueue;
use temper_proto::temporal::api::workflowservice::v1::StartWorkflowExecutionRequest;
use temper_schedule::scheduler::{self, Effects, Input, SchedulerError};
use temper_schedule::{Timestamp, timestamp_from_proto, timestamp_to_proto};

use crate::{Txn, WorkflowError, close, pb};

/// The workflow type of a schedule's run (Temporal's).
pub const WORKFLOW_TYPE: &str = "temporal-sys-scheduler-workflow";
/// Its task queue (Temporal's per-namespace system queue; nothing polls it in temper).
pub const TASK_QUEUE: &str = "temporal-sys-per-ns-tq";
/// The namespace division of schedule runs: ordinary lists leave them out.
pub const NAMESPACE_DIVISION: &str = "TemporalScheduler";
/// The memo field holding the schedule's list info (Temporal's name).
pub const MEMO_INFO: &str = "ScheduleInfo";
/// The search attribute saying whether the schedule is paused.
pub const PAUSED_ATTRIBUTE: &str = "TemporalSchedulePaused";
const DIVISION_ATTRIBUTE: &str = "TemporalNamespaceDivision";
/// Who deletes a schedule's run.
pub const DELETE_REASON: &str = "terminated by DeleteSchedule";

pub fn to_jiff(t: SystemTime) -> Timestamp {
    timestamp_from_proto(&crate::time::ts(t))
}

pub fn to_system(t: Timestamp) -> SystemTime {
    let p = timestamp_to_proto(t);
    if p.seconds < 0 {
        return SystemTime::UNIX_EPOCH;
    }
    SystemTime::UNIX_EPOCH + Duration::new(p.seconds as u64, p.nanos.max(0) as u32)
}

/// A wake-up time as the timer queue keeps it: whole milliseconds, rounded up so the
/// scheduler never wakes before it asked to.
fn timer_time(t: Timestamp) -> temper_proto::wkt::Timestamp {
    let mut p = timestamp_to_proto(t);
    let sub_ms = p.nanos % 1_000_000;
    if sub_ms != 0 {
        p.nanos += 1_000_000 - sub_ms;
        if p.nanos >= 1_000_000_000 {
            p.seconds += 1;
            p.nanos -= 1_000_000_000;
        }
    }
    p
}

/// The scheduler's errors as the API answers them.
pub fn error(e: SchedulerError) -> WorkflowError {
    match e {
        SchedulerError::InvalidArgument(m) => WorkflowError::InvalidArgument(m),
        SchedulerError::ConflictTokenMismatch => {
            WorkflowError::FailedPrecondition("mismatched conflict token".into())
        }
        SchedulerError::Internal(m) => WorkflowError::Internal(m),
    }
}

/// The request that creates a schedule's run: Temporal's scheduler workflow, but run by the
/// server.
pub fn run_request(
    namespace: &str,
    schedule_id: &str,
    request_id: &str,
    identity: &str,
) -> StartWorkflowExecutionRequest {
    StartWorkflowExecutionRequest {
        namespace: namespace.to_owned(),
        workflow_id: temper_types::scheduler_workflow_id(schedule_id),
        workflow_type: Some(WorkflowType {
            name: WORKFLOW_TYPE.into(),
        }),
        task_queue: Some(TaskQueue {
            name: TASK_QUEUE.into(),
            kind: TaskQueueKind::Normal as i32,
            normal_name: String::new(),
        }),
        request_id: request_id.to_owned(),
        identity: identity.to_owned(),
        ..Default::default()
    }
}

fn json_payload(json: String) -> Payload {
    Payload {
        metadata: [("encoding".to_owned(), b"json/plain".to_vec())].into(),
        data: json.into_bytes(),
        ..Default::default()
    }
}

/// The memo and search attributes of a schedule's run: the schedule's own, plus its list
/// info and the paused flag (what ListSchedules reads).
fn visible(state: &pb::SchedulerState, now: Timestamp) -> (Memo, SearchAttributes) {
    let mut memo = state.memo.clone().unwrap_or_default();
    let info = scheduler::list_info(state, now);
    memo.fields.insert(
        MEMO_INFO.to_owned(),
        Payload {
            metadata: [
                ("encoding".to_owned(), b"binary/protobuf".to_vec()),
                (
                    "messageType".to_owned(),
                    b"temporal.api.schedule.v1.ScheduleListInfo".to_vec(),
                ),
            ]
            .into(),
            data: info.encode_to_vec(),
            ..Default::default()
        },
    );
    let mut sa = state.search_attributes.clone().unwrap_or_default();
    sa.indexed_fields.insert(
        DIVISION_ATTRIBUTE.to_owned(),
        json_payload(format!("\"{NAMESPACE_DIVISION}\"")),
    );
    let paused = state
        .schedule
        .as_ref()
        .and_then(|s| s.state.as_ref())
        .is_some_and(|s| s.paused);
    sa.indexed_fields.insert(
        PAUSED_ATTRIBUTE.to_owned(),
        json_payload(paused.to_string()),
    );
    (memo, sa)
}

/// Record the scheduler's new `state` and `effects` in the run.
pub fn record(txn: &mut Txn<'_>, state: pb::SchedulerState, effects: Effects) {
    let now = to_jiff(txn.now);
    let (memo, sa) = visible(&state, now);
    let mut tasks = Vec::new();
    let run = txn.ms.schedule.get_or_insert_with(Default::default);
    for start in effects.starts {
        let request_id = start.request.request_id.clone();
        run.pending_starts.insert(request_id.clone(), start.request);
        run.start_deadlines
            .insert(request_id.clone(), timestamp_to_proto(start.retry_deadline));
        tasks.push((pb::TransferTaskKind::ScheduleStart, request_id, None));
    }
    for target in effects.cancels {
        tasks.push((
            pb::TransferTaskKind::ScheduleCancel,
            String::new(),
            Some(target),
        ));
    }
    for target in effects.terminates {
        tasks.push((
            pb::TransferTaskKind::ScheduleTerminate,
            String::new(),
            Some(target),
        ));
    }
    let wake = effects.next_wake.map(timer_time);
    let rearm = wake.is_some() && wake != run.wake_time;
    run.wake_time = wake;
    run.state = Some(state);
    for (kind, request_id, target) in tasks {
        let mut t = txn.transfer_task(kind);
        t.request_id = request_id;
        t.target = target;
        txn.add_transfer_task(t);
    }
    if rearm && let Some(at) = &wake {
        let t = txn.timer_task(pb::TimerTaskKind::ScheduleWake, 0, 0);
        txn.add_timer_task(to_system(timestamp_from_proto(at)), t);
    }
    let info = txn.info_mut();
    info.memo = Some(memo);
    info.search_attributes = Some(sa);
    txn.visibility_task(pb::VisibilityTaskKind::Upsert);
}

/// The schedule of a run, if it is a live schedule's run.
pub fn live(ms: &pb::MutableState) -> Option<&pb::SchedulerState> {
    if close::is_closed(ms) {
        return None;
    }
    ms.schedule.as_ref().and_then(|r| r.state.as_ref())
}

/// Feed `input` to the run's scheduler and record what it decided.
pub fn handle(txn: &mut Txn<'_>, input: Input) -> Result<(), WorkflowError> {
    let Some(mut state) = live(txn.ms).cloned() else {
        return Err(WorkflowError::NotFound("schedule not found".into()));
    };
    let effects = scheduler::handle(&mut state, input, to_jiff(txn.now)).map_err(error)?;
    record(txn, state, effects);
    Ok(())
}

/// How many PatchSchedule request ids a schedule remembers.
const PATCH_IDS_KEPT: usize = 100;

/// PatchSchedule: apply `patch` once per request id (an empty id is always applied).
pub fn patch(
    txn: &mut Txn<'_>,
    request_id: &str,
    patch: temper_proto::temporal::api::schedule::v1::SchedulePatch,
) -> Result<(), WorkflowError> {
    let seen = !request_id.is_empty()
        && txn
            .ms
            .schedule
            .as_ref()
            .is_some_and(|r| r.applied_patch_ids.iter().any(|id| id == request_id));
    if seen && live(txn.ms).is_some() {
        return Ok(());
    }
    handle(txn, Input::Patch(patch))?;
    if !request_id.is_empty()
        && let Some(run) = txn.ms.schedule.as_mut()
    {
        run.applied_patch_ids.push(request_id.to_owned());
        let excess = run.applied_patch_ids.len().saturating_sub(PATCH_IDS_KEPT);
        run.applied_patch_ids.drain(..excess);
    }
    Ok(())
}

/// The SCHEDULE_WAKE timer fired at `fired_at`: wake the scheduler, unless a later change
/// moved its wake-up elsewhere (the timer is stale).
pub fn on_wake(txn: &mut Txn<'_>, fired_at: SystemTime) -> Result<(), WorkflowError> {
    let Some(run) = txn.ms.schedule.as_ref() else {
        return Ok(());
    };
    if live(txn.ms).is_none() || run.wake_time != Some(timer_time(to_jiff(fired_at))) {
        return Ok(());
    }
    // This timer is spent: the next one is armed even when it is for the same time.
    if let Some(run) = txn.ms.schedule.as_mut() {
        run.wake_time = None;
    }
    handle(txn, Input::Wake)
}

/// A SCHEDULE_START transfer task's outcome.
#[derive(Debug, Clone)]
pub enum StartOutcome {
    Started {
        run_id: String,
        start_time: SystemTime,
    },
    Failed {
        already_started: bool,
        message: String,
    },
}

/// The first start the scheduler asked for (in the order it asked) whose outcome it has not
/// heard, with its request.
pub fn next_pending_start(
    ms: &pb::MutableState,
) -> Option<(String, StartWorkflowExecutionRequest)> {
    let run = ms.schedule.as_ref()?;
    let state = run.state.as_ref()?;
    state.pending_starts.iter().find_map(|p| {
        run.pending_starts
            .get(&p.request_id)
            .map(|r| (p.request_id.clone(), r.clone()))
    })
}

/// Whether a start that keeps failing for a transient reason should be given up at `now`.
pub fn start_expired(ms: &pb::MutableState, request_id: &str, now: SystemTime) -> bool {
    ms.schedule
        .as_ref()
        .and_then(|r| r.start_deadlines.get(request_id))
        .is_some_and(|d| to_jiff(now) > timestamp_from_proto(d))
}

/// Record the outcome of the start `request_id`.
pub fn on_start_outcome(
    txn: &mut Txn<'_>,
    request_id: &str,
    outcome: StartOutcome,
) -> Result<(), WorkflowError> {
    let known = txn.ms.schedule.as_mut().is_some_and(|r| {
        r.start_deadlines.remove(request_id);
        r.pending_starts.remove(request_id).is_some()
    });
    if !known || live(txn.ms).is_none() {
        return Ok(());
    }
    let input = match outcome {
        StartOutcome::Started { run_id, start_time } => Input::Started {
            request_id: request_id.to_owned(),
            run_id,
            start_time: to_jiff(start_time),
        },
        StartOutcome::Failed {
            already_started,
            message,
        } => Input::StartFailed {
            request_id: request_id.to_owned(),
            already_started,
            message,
        },
    };
    handle(txn, input)
}

/// DeleteSchedule: close the run (terminated, as Temporal does); its schedule is gone.
pub fn delete(txn: &mut Txn<'_>, identity: &str) -> Result<(), WorkflowError> {
    if close::is_closed(txn.ms) {
        return Err(WorkflowError::AlreadyCompleted);
    }
    if live(txn.ms).is_none() {
        return Err(WorkflowError::NotFound("schedule not found".into()));
    }
    if let Some(run) = txn.ms.schedule.as_mut() {
        run.deleted = true;
        run.wake_time = None;
        run.pending_starts.clear();
        run.start_deadlines.clear();
    }
    close::terminate(txn, DELETE_REASON, None, identity)
}
