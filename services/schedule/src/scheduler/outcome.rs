//! The outcomes of the schedule's starts: Started, StartFailed, Closed.
//!
//! As Temporal: a started run is an action (`action_count`, `recent_actions` with status
//! RUNNING, and `running_workflows` unless it was an ALLOW_ALL start). When a tracked run
//! closes it leaves `running_workflows`, its recent action gets its final status, a
//! failure or time-out pauses a schedule with `pause_on_failure`, a result becomes the
//! next start's `last_completion_result` (clearing `continued_failure`) and a failure
//! becomes its `continued_failure`. Outcomes for unknown request ids or runs are ignored,
//! so a retried notification changes nothing.

use jiff::Timestamp;
use temper_proto::persistence::v1::SchedulerState;
use temporalio_protos::temporal::api::common::v1::{Payloads, WorkflowExecution};
use temporalio_protos::temporal::api::enums::v1::WorkflowExecutionStatus;
use temporalio_protos::temporal::api::failure::v1::Failure;
use temporalio_protos::temporal::api::schedule::v1::ScheduleActionResult;

use super::limits;
use crate::timestamp_to_proto;

pub(super) fn started(state: &mut SchedulerState, request_id: &str, run_id: &str, at: Timestamp) {
    let Some(idx) = state
        .pending_starts
        .iter()
        .position(|p| p.request_id == request_id)
    else {
        return;
    };
    let pending = state.pending_starts.remove(idx);
    let execution = WorkflowExecution {
        workflow_id: pending.workflow_id,
        run_id: run_id.to_owned(),
    };
    let info = state.info.get_or_insert_with(Default::default);
    info.action_count += 1;
    info.recent_actions.push(ScheduleActionResult {
        // Temporal records the action's due time (after jitter) here.
        schedule_time: pending.actual_time,
        actual_time: Some(timestamp_to_proto(at)),
        start_workflow_result: Some(execution.clone()),
        start_workflow_status: WorkflowExecutionStatus::Running as i32,
    });
    let excess = info
        .recent_actions
        .len()
        .saturating_sub(limits::RECENT_ACTION_COUNT);
    info.recent_actions.drain(..excess);
    if pending.tracked {
        info.running_workflows.push(execution);
    }
}

pub(super) fn start_failed(state: &mut SchedulerState, request_id: &str) {
    state.pending_starts.retain(|p| p.request_id != request_id);
}

pub(super) fn closed(
    state: &mut SchedulerState,
    workflow_id: &str,
    run_id: &str,
    status: WorkflowExecutionStatus,
    result: Option<Payloads>,
    failure: Option<Failure>,
) {
    let matches = |ex: &WorkflowExecution| {
        ex.workflow_id == workflow_id && (run_id.is_empty() || ex.run_id == run_id)
    };
    let info = state.info.get_or_insert_with(Default::default);
    for action in &mut info.recent_actions {
        if action.start_workflow_result.as_ref().is_some_and(matches) {
            action.start_workflow_status = status as i32;
        }
    }
    let Some(idx) = info.running_workflows.iter().position(matches) else {
        return;
    };
    info.running_workflows.remove(idx);

    let schedule = state.schedule.get_or_insert_with(Default::default);
    let pause_on_failure = schedule
        .policies
        .as_ref()
        .is_some_and(|p| p.pause_on_failure);
    let sched_state = schedule.state.get_or_insert_with(Default::default);
    let failed = matches!(
        status,
        WorkflowExecutionStatus::Failed | WorkflowExecutionStatus::TimedOut
    );
    if pause_on_failure && failed && !sched_state.paused {
        sched_state.paused = true;
        sched_state.notes = if status == WorkflowExecutionStatus::Failed {
            let message = failure.as_ref().map_or("", |f| f.message.as_str());
            format!("paused due to workflow failure: {workflow_id}: {message}")
        } else {
            format!("paused due to workflow timeout: {workflow_id}")
        };
        state.conflict_token += 1;
    }

    if result.is_some() {
        state.last_completion_result = result;
        state.continued_failure = None;
    } else if failure.is_some() {
        state.continued_failure = failure;
    }
}
