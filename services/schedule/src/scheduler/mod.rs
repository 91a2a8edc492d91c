//! The schedule's state machine: what Temporal's scheduler workflow does
//! (service/worker/scheduler/workflow.go), as sans-IO transitions over a persisted
//! [`SchedulerState`].
//!
//! The history service owns the I/O: it persists the state, calls [`handle`] when the timer
//! at [`Effects::next_wake`] fires or when an RPC or a run's outcome arrives, executes the
//! returned [`Effects`] durably (starts through its outbox, exactly once per request id)
//! and reports their outcomes back as [`Input::Started`], [`Input::StartFailed`] and
//! [`Input::Closed`].

mod error;

pub use error::SchedulerError;
pub use temper_proto::persistence::v1::{
    SchedulerBufferedStart, SchedulerPendingStart, SchedulerState,
};
pub use temporalio_protos::temporal::api::common::v1::{Payloads, WorkflowExecution};
pub use temporalio_protos::temporal::api::enums::v1::WorkflowExecutionStatus;
pub use temporalio_protos::temporal::api::failure::v1::Failure;
pub use temporalio_protos::temporal::api::schedule::v1::{
    Schedule, ScheduleInfo, ScheduleListInfo, SchedulePatch,
};
pub use temporalio_protos::temporal::api::workflowservice::v1::StartWorkflowExecutionRequest;

use jiff::Timestamp;

/// What happened to a schedule: the input of [`handle`].
// One input is handled at a time and never stored in bulk, so its size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// The timer at [`Effects::next_wake`] fired (possibly late).
    Wake,
    /// PatchSchedule: trigger immediately, backfill, pause or unpause.
    Patch(SchedulePatch),
    /// UpdateSchedule: replaces the schedule; a stale `conflict_token` is refused.
    Update {
        schedule: Schedule,
        conflict_token: Option<Vec<u8>>,
    },
    /// A start from [`Effects::starts`] created its run.
    Started {
        request_id: String,
        run_id: String,
        start_time: Timestamp,
    },
    /// A start from [`Effects::starts`] did not create a run.
    StartFailed {
        request_id: String,
        already_started: bool,
        message: String,
    },
    /// A run the schedule started has closed.
    Closed {
        workflow_id: String,
        run_id: String,
        status: WorkflowExecutionStatus,
        result: Option<Payloads>,
        failure: Option<Failure>,
    },
}

/// A workflow the schedule starts.
#[derive(Debug, Clone, PartialEq)]
pub struct StartWorkflow {
    /// The complete request; its `request_id` identifies the start.
    pub request: StartWorkflowExecutionRequest,
    /// The spec's time of the action (the trigger's time for a manual start).
    pub nominal_time: Timestamp,
    /// When the action was due (nominal time plus jitter).
    pub actual_time: Timestamp,
}

/// What the history service must do after a transition.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Effects {
    pub starts: Vec<StartWorkflow>,
    /// Runs to cancel (overlap policy CANCEL_OTHER).
    pub cancels: Vec<WorkflowExecution>,
    /// Runs to terminate (overlap policy TERMINATE_OTHER).
    pub terminates: Vec<WorkflowExecution>,
    /// When to deliver [`Input::Wake`] next; None when nothing is due.
    pub next_wake: Option<Timestamp>,
}

/// What DescribeSchedule returns.
#[derive(Debug, Clone, PartialEq)]
pub struct Described {
    pub schedule: Schedule,
    pub info: ScheduleInfo,
    pub conflict_token: Vec<u8>,
}

/// Validates `schedule` (and `initial_patch`), and returns the new schedule's state and what
/// to do first.
pub fn create(
    namespace: &str,
    namespace_id: &str,
    schedule_id: &str,
    schedule: Schedule,
    initial_patch: Option<SchedulePatch>,
    now: Timestamp,
) -> Result<(SchedulerState, Effects), SchedulerError> {
    let _ = (
        namespace,
        namespace_id,
        schedule_id,
        schedule,
        initial_patch,
        now,
    );
    Err(SchedulerError::Internal("not implemented yet".into()))
}

/// Applies one input to the state. On error the state is unchanged.
pub fn handle(
    state: &mut SchedulerState,
    input: Input,
    now: Timestamp,
) -> Result<Effects, SchedulerError> {
    let _ = (state, input, now);
    Err(SchedulerError::Internal("not implemented yet".into()))
}

/// What DescribeSchedule returns at `now`.
pub fn describe(state: &SchedulerState, now: Timestamp) -> Described {
    let _ = now;
    Described {
        schedule: state.schedule.clone().unwrap_or_default(),
        info: state.info.clone().unwrap_or_default(),
        conflict_token: state.conflict_token.to_le_bytes().to_vec(),
    }
}

/// What ListSchedules shows of the schedule at `now`.
pub fn list_info(state: &SchedulerState, now: Timestamp) -> ScheduleListInfo {
    let _ = (state, now);
    ScheduleListInfo::default()
}
