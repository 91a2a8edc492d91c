//! The scenario workflows: each is a deterministic function from the history a workflow task
//! carries to the commands that answer it. The worker holds no per-workflow state (beyond an
//! optional sticky cache of the history itself), so any worker can take any task.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use temporalio_protos::temporal::api::command::v1::Command;
use temporalio_protos::temporal::api::common::v1::{Payload, Payloads};
use temporalio_protos::temporal::api::history::v1::HistoryEvent;

use super::history::HistorySummary;
use super::{commands, nexus};

/// A workflow gives up (fails itself) after this many workflow tasks in a row failed, so a
/// server that rejects a command (temper and child workflows, today) ends the run with a
/// clear failure instead of retrying until the drain timeout.
pub const MAX_FAILED_WORKFLOW_TASKS: u32 = 3;

/// The signal name the starter sends and the `signals` workflow counts.
pub const SIGNAL_NAME: &str = "loadtest-signal";

/// One workflow type per scenario workflow, named `loadtest-<kind>` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkflowKind {
    Noop,
    Activity,
    SequentialActivities,
    ParallelActivities,
    Timers,
    Signals,
    ChildWorkflows,
    /// Calls the generator's Nexus service: a synchronous operation, then an asynchronous one.
    Nexus,
    /// Backs the asynchronous Nexus operation: completes in its first task (started by the
    /// generator's Nexus worker, not by a scenario).
    NexusHandler,
}

impl WorkflowKind {
    pub const ALL: [WorkflowKind; 9] = [
        WorkflowKind::Noop,
        WorkflowKind::Activity,
        WorkflowKind::SequentialActivities,
        WorkflowKind::ParallelActivities,
        WorkflowKind::Timers,
        WorkflowKind::Signals,
        WorkflowKind::ChildWorkflows,
        WorkflowKind::Nexus,
        WorkflowKind::NexusHandler,
    ];

    pub fn type_name(self) -> &'static str {
        match self {
            WorkflowKind::Noop => "loadtest-noop",
            WorkflowKind::Activity => "loadtest-activity",
            WorkflowKind::SequentialActivities => "loadtest-sequential-activities",
            WorkflowKind::ParallelActivities => "loadtest-parallel-activities",
            WorkflowKind::Timers => "loadtest-timers",
            WorkflowKind::Signals => "loadtest-signals",
            WorkflowKind::ChildWorkflows => "loadtest-child-workflows",
            WorkflowKind::Nexus => "loadtest-nexus",
            WorkflowKind::NexusHandler => "loadtest-nexus-handler",
        }
    }

    pub fn from_type_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.type_name() == name)
    }
}

/// The workflow's parameters, carried as its JSON input so that any worker (and a replay)
/// sees the same ones.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowParams {
    /// Activities, timers, signals or children, depending on the kind.
    #[serde(default)]
    pub count: u32,
    /// Length of each timer.
    #[serde(default)]
    pub duration_ms: u64,
    /// `timers` with one timer: instead of `duration_ms`, the timer is due at this unix time
    /// (milliseconds), counted from the WorkflowTaskStarted event's time. The `scale`
    /// benchmark uses it to make many workflows' timers come due at the same instant.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub until_ms: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl WorkflowParams {
    pub fn to_payloads(&self) -> Payloads {
        Payloads {
            payloads: vec![Payload {
                metadata: [("encoding".to_string(), b"json/plain".to_vec())].into(),
                data: serde_json::to_vec(self).expect("plain struct serializes"),
                ..Default::default()
            }],
        }
    }

    pub fn from_payloads(p: Option<&Payloads>) -> Result<Self, String> {
        match p.and_then(|p| p.payloads.first()) {
            None => Ok(Self::default()),
            Some(p) => serde_json::from_slice(&p.data)
                .map_err(|e| format!("workflow input is not loadtest parameters: {e}")),
        }
    }
}

/// How the workflow stands after this task's commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Still running: more events to wait for.
    Running,
    /// The commands complete the workflow.
    Completed,
    /// The commands fail the workflow, for this reason.
    Failed(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub commands: Vec<Command>,
    pub outcome: Outcome,
}

impl Decision {
    fn running(commands: Vec<Command>) -> Self {
        Self {
            commands,
            outcome: Outcome::Running,
        }
    }

    fn complete() -> Self {
        Self {
            commands: vec![commands::complete()],
            outcome: Outcome::Completed,
        }
    }

    fn fail(reason: String) -> Self {
        Self {
            commands: vec![commands::fail(&reason)],
            outcome: Outcome::Failed(reason),
        }
    }
}

/// What a workflow task shows the workflow.
#[derive(Debug, Clone, Copy)]
pub struct WorkflowTask<'a> {
    pub namespace: &'a str,
    pub workflow_id: &'a str,
    pub workflow_type: &'a str,
    /// The task's attempt (1 for a first try).
    pub attempt: i32,
    /// The complete history up to and including this task's WorkflowTaskStarted.
    pub history: &'a [HistoryEvent],
}

/// The id of child `i` of workflow `parent`.
pub fn child_workflow_id(parent: &str, i: u32) -> String {
    format!("{parent}-child-{i}")
}

/// The commands that answer a workflow task.
pub fn decide(task: &WorkflowTask<'_>) -> Decision {
    let h = HistorySummary::from_events(task.history);
    if !h.has_started_event {
        return Decision::fail("history has no WorkflowExecutionStarted event".to_string());
    }
    if h.consecutive_failed_workflow_tasks >= MAX_FAILED_WORKFLOW_TASKS
        || (task.attempt > MAX_FAILED_WORKFLOW_TASKS as i32
            && h.last_workflow_task_failure.is_some())
    {
        let why = h
            .last_workflow_task_failure
            .clone()
            .unwrap_or_else(|| "no failure message".to_string());
        return Decision::fail(format!("workflow task failed repeatedly: {why}"));
    }
    let Some(kind) = WorkflowKind::from_type_name(task.workflow_type) else {
        return Decision::fail(format!(
            "unknown workflow type {:?} (not a loadtest workflow)",
            task.workflow_type
        ));
    };
    let params = match WorkflowParams::from_payloads(h.input.as_ref()) {
        Ok(p) => p,
        Err(e) => return Decision::fail(e),
    };
    if let Some(why) = h
        .activity_failure
        .clone()
        .or_else(|| h.child_failure.clone())
        .or_else(|| h.nexus_failure.clone())
    {
        return Decision::fail(why);
    }
    match kind {
        WorkflowKind::Noop | WorkflowKind::NexusHandler => Decision::complete(),
        WorkflowKind::Activity => sequential_activities(&h, 1),
        WorkflowKind::SequentialActivities => sequential_activities(&h, params.count),
        WorkflowKind::ParallelActivities => parallel_activities(&h, params.count),
        WorkflowKind::Timers if params.until_ms > 0 => {
            let now_ms = task
                .history
                .last()
                .and_then(|e| e.event_time.as_ref())
                .map_or(0, |t| {
                    t.seconds.saturating_mul(1000) + i64::from(t.nanos / 1_000_000)
                });
            let left = params
                .until_ms
                .saturating_sub(u64::try_from(now_ms).unwrap_or(0));
            timers(&h, params.count, left.max(1))
        }
        WorkflowKind::Timers => timers(&h, params.count, params.duration_ms),
        WorkflowKind::Signals => {
            if h.signals >= params.count {
                Decision::complete()
            } else {
                Decision::running(Vec::new())
            }
        }
        WorkflowKind::ChildWorkflows => children(task, &h, params.count),
        WorkflowKind::Nexus => nexus_caller(task, &h),
    }
}

fn sequential_activities(h: &HistorySummary, count: u32) -> Decision {
    if h.activities_completed >= count {
        return Decision::complete();
    }
    if h.activities_scheduled > h.activities_completed {
        return Decision::running(Vec::new());
    }
    let next = h.activities_completed;
    Decision::running(vec![commands::schedule_activity(
        next.to_string(),
        &h.task_queue,
    )])
}

fn parallel_activities(h: &HistorySummary, count: u32) -> Decision {
    if h.activities_completed >= count {
        return Decision::complete();
    }
    if h.activities_scheduled > 0 {
        return Decision::running(Vec::new());
    }
    Decision::running(
        (0..count)
            .map(|i| commands::schedule_activity(i.to_string(), &h.task_queue))
            .collect(),
    )
}

fn timers(h: &HistorySummary, count: u32, duration_ms: u64) -> Decision {
    if h.timers_fired >= count {
        return Decision::complete();
    }
    if h.timers_started > h.timers_fired {
        return Decision::running(Vec::new());
    }
    Decision::running(vec![commands::start_timer(
        h.timers_fired.to_string(),
        Duration::from_millis(duration_ms),
    )])
}

fn children(task: &WorkflowTask<'_>, h: &HistorySummary, count: u32) -> Decision {
    if h.children_completed >= count {
        return Decision::complete();
    }
    if h.children_initiated > 0 {
        return Decision::running(Vec::new());
    }
    Decision::running(
        (0..count)
            .map(|i| {
                commands::start_child(
                    child_workflow_id(task.workflow_id, i),
                    WorkflowKind::Noop.type_name(),
                    &h.task_queue,
                )
            })
            .collect(),
    )
}

/// The sync operation, then the async one, one after the other; the echo must return the
/// caller's input.
fn nexus_caller(task: &WorkflowTask<'_>, h: &HistorySummary) -> Decision {
    let operations = [nexus::SYNC_OPERATION, nexus::ASYNC_OPERATION];
    let input = nexus::operation_input(task.workflow_id);
    if let Some(echoed) = &h.nexus_first_result
        && echoed.data != input.data
    {
        return Decision::fail(format!(
            "the {} operation returned {:?}, not its input",
            nexus::SYNC_OPERATION,
            String::from_utf8_lossy(&echoed.data)
        ));
    }
    let done = h.nexus_completed as usize;
    if done >= operations.len() {
        return Decision::complete();
    }
    if h.nexus_scheduled > h.nexus_completed {
        return Decision::running(Vec::new());
    }
    Decision::running(vec![commands::schedule_nexus_operation(
        nexus::endpoint_name(&h.task_queue, task.namespace),
        operations[done],
        input,
    )])
}
