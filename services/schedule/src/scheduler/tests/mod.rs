//! Scheduler transition tests: every input in each situation that matters, with the values
//! Temporal's scheduler gives (checked against the reference server where not obvious).

mod backfill;
mod describe;
mod outcomes;
mod overlap;
mod random;
mod timing;
mod update;

use jiff::Timestamp;
use temporalio_protos::temporal::api::common::v1::WorkflowType;
use temporalio_protos::temporal::api::enums::v1::ScheduleOverlapPolicy;
use temporalio_protos::temporal::api::schedule::v1::{
    IntervalSpec, ScheduleAction, SchedulePolicies, ScheduleSpec, ScheduleState, schedule_action,
};
use temporalio_protos::temporal::api::taskqueue::v1::TaskQueue;
use temporalio_protos::temporal::api::workflow::v1::NewWorkflowExecutionInfo;

use super::*;

pub(super) fn ts(s: &str) -> Timestamp {
    s.parse().expect("test timestamp")
}

pub(super) fn secs(n: i64) -> prost_types::Duration {
    prost_types::Duration {
        seconds: n,
        nanos: 0,
    }
}

/// A spec firing every `secs` seconds (anchored at the epoch).
pub(super) fn every(n: i64) -> ScheduleSpec {
    ScheduleSpec {
        interval: vec![IntervalSpec {
            interval: Some(secs(n)),
            phase: None,
        }],
        ..Default::default()
    }
}

pub(super) fn action() -> NewWorkflowExecutionInfo {
    NewWorkflowExecutionInfo {
        workflow_id: "wf".into(),
        workflow_type: Some(WorkflowType { name: "T".into() }),
        task_queue: Some(TaskQueue {
            name: "tq".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub(super) fn schedule(spec: ScheduleSpec, policy: ScheduleOverlapPolicy) -> Schedule {
    Schedule {
        spec: Some(spec),
        action: Some(ScheduleAction {
            action: Some(schedule_action::Action::StartWorkflow(action())),
        }),
        policies: Some(SchedulePolicies {
            overlap_policy: policy as i32,
            ..Default::default()
        }),
        state: Some(ScheduleState::default()),
    }
}

pub(super) const T0: &str = "2025-01-01T00:00:00Z";

/// A schedule created at T0 firing every minute with `policy`.
pub(super) fn minutely(policy: ScheduleOverlapPolicy) -> (SchedulerState, Effects) {
    create_at(schedule(every(60), policy), T0)
}

pub(super) fn create_at(s: Schedule, at: &str) -> (SchedulerState, Effects) {
    create("ns", "ns-id", "sched", s, None, ts(at)).expect("valid schedule")
}

pub(super) fn wake(state: &mut SchedulerState, at: &str) -> Effects {
    handle(state, Input::Wake, ts(at)).expect("wake")
}

pub(super) fn patch(state: &mut SchedulerState, p: SchedulePatch, at: &str) -> Effects {
    handle(state, Input::Patch(p), ts(at)).expect("patch")
}

/// Reports every start of `effects` as started, with run ids `run-<workflow id>`.
pub(super) fn start_all(state: &mut SchedulerState, effects: &Effects, at: &str) -> Effects {
    let mut last = Effects::default();
    for s in &effects.starts {
        last = handle(
            state,
            Input::Started {
                request_id: s.request.request_id.clone(),
                run_id: format!("run-{}", s.request.workflow_id),
                start_time: ts(at),
            },
            ts(at),
        )
        .expect("started");
    }
    last
}

pub(super) fn close(
    state: &mut SchedulerState,
    workflow_id: &str,
    status: WorkflowExecutionStatus,
    at: &str,
) -> Effects {
    handle(
        state,
        Input::Closed {
            workflow_id: workflow_id.into(),
            run_id: format!("run-{workflow_id}"),
            status,
            result: None,
            failure: None,
        },
        ts(at),
    )
    .expect("closed")
}

pub(super) fn ids(effects: &Effects) -> Vec<String> {
    effects
        .starts
        .iter()
        .map(|s| s.request.workflow_id.clone())
        .collect()
}

pub(super) fn info(state: &SchedulerState) -> &ScheduleInfo {
    state.info.as_ref().expect("info")
}

pub(super) fn running(state: &SchedulerState) -> Vec<String> {
    info(state)
        .running_workflows
        .iter()
        .map(|w| w.workflow_id.clone())
        .collect()
}
