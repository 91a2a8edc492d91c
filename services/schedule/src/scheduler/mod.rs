//! The schedule's state machine: what Temporal's scheduler workflow does
//! (service/worker/scheduler/workflow.go, the default backend of Temporal 1.32), as sans-IO
//! transitions over a persisted [`SchedulerState`].
//!
//! The history service owns the I/O: it persists the state, calls [`handle`] when the timer
//! at [`Effects::next_wake`] fires or when an RPC or a run's outcome arrives, executes the
//! returned [`Effects`] durably (starts through its outbox, exactly once per request id)
//! and reports their outcomes back as [`Input::Started`], [`Input::StartFailed`] and
//! [`Input::Closed`].
//!
//! Every call runs one iteration of Temporal's loop: take the spec's times that came due
//! since `last_processed_time` ([`process`]), apply the input, read more of the ongoing
//! backfills, then release what the overlap policies allow from the buffer ([`buffer`]).
//! A start that was issued but not yet reported counts as running, so the overlap policy
//! sees it exactly as Temporal's synchronous start would.
//!
//! Files: [`validate`] (create/update/patch checks and defaults), [`process`] (time ranges,
//! catch-up window, backfills, wake-up), [`buffer`] (overlap policies), [`start`] (the
//! start request), [`outcome`] (Started / StartFailed / Closed), [`describe`]
//! (DescribeSchedule, ListSchedules).

mod buffer;
mod describe;
mod error;
mod outcome;
mod process;
mod start;
mod validate;

#[cfg(test)]
mod tests;

pub use describe::{conflict_token_bytes, describe, list_info};
pub use error::SchedulerError;
pub use start::{CANCEL_REASON, TERMINATE_REASON, identity};
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

use crate::{timestamp_from_proto, timestamp_to_proto};

/// Temporal's limits and defaults (its scheduler's "tweakable policies").
pub mod limits {
    use jiff::SignedDuration;

    /// The catch-up window when the schedule sets none.
    pub const DEFAULT_CATCHUP_WINDOW: SignedDuration = SignedDuration::from_hours(365 * 24);
    /// A shorter catch-up window is raised to this.
    pub const MIN_CATCHUP_WINDOW: SignedDuration = SignedDuration::from_secs(10);
    /// The most buffered starts (and the most ongoing backfill requests); more are dropped
    /// and counted in `buffer_dropped`. Backfills fill at most half of it.
    pub const MAX_BUFFER_SIZE: usize = 1000;
    /// How many backfilled times one iteration reads into the buffer.
    pub const BACKFILLS_PER_ITERATION: usize = 10;
    /// DescribeSchedule's future action times and recent actions.
    pub const FUTURE_ACTION_COUNT: usize = 10;
    pub const RECENT_ACTION_COUNT: usize = 10;
    /// ListSchedules' future action times and recent actions.
    pub const FUTURE_ACTION_COUNT_FOR_LIST: usize = 5;
    pub const RECENT_ACTION_COUNT_FOR_LIST: usize = 5;
    /// ListSchedules shows at most this many calendars, intervals and exclusions of a spec.
    pub const SPEC_FIELD_LENGTH_LIMIT: usize = 10;
    /// The longest pause / unpause note (bytes).
    pub const NOTES_SIZE_LIMIT: usize = 1000;
    /// The longest workflow id and workflow type name (bytes).
    pub const MAX_ID_LENGTH: usize = 1000;
    /// The conflict token of a new schedule.
    pub const INITIAL_CONFLICT_TOKEN: i64 = 1;
}

/// What happened to a schedule: the input of [`handle`].
// One input is handled at a time and never stored in bulk, so its size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// The timer at [`Effects::next_wake`] fired (possibly late: the catch-up window
    /// decides which of the times that came due still start).
    Wake,
    /// PatchSchedule: trigger immediately, backfill, pause or unpause.
    Patch(SchedulePatch),
    /// UpdateSchedule: replaces spec, action, policies and state (not the info). A token
    /// other than the current one is refused with [`SchedulerError::ConflictTokenMismatch`];
    /// None (or fewer than 8 bytes, or 0) updates unconditionally, as Temporal does.
    Update {
        schedule: Schedule,
        conflict_token: Option<Vec<u8>>,
    },
    /// A start from [`Effects::starts`] created its run (`start_time`: when it started).
    Started {
        request_id: String,
        run_id: String,
        start_time: Timestamp,
    },
    /// A start from [`Effects::starts`] did not create a run (after the history service's
    /// own retries); the action is dropped, as Temporal drops it.
    StartFailed {
        request_id: String,
        already_started: bool,
        message: String,
    },
    /// A run the schedule started has closed for good (not continued-as-new or retried).
    /// `run_id` is the run id the start returned (the chain's first run), or empty.
    /// `result` is the completion result of a COMPLETED run, `failure` the failure of a
    /// FAILED one (Temporal passes neither for the other statuses).
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
    /// The complete request; its `request_id` identifies the start in
    /// [`Input::Started`] / [`Input::StartFailed`].
    pub request: StartWorkflowExecutionRequest,
    /// The spec's time of the action (the trigger's time for a manual start).
    pub nominal_time: Timestamp,
    /// When the action was due (nominal time plus jitter).
    pub actual_time: Timestamp,
    /// Until when a start that fails for a transient reason is worth retrying, as
    /// Temporal's start activity is: the end of the catch-up window after `actual_time`,
    /// but at least 5 s and at most 1 h from the call; 60 s for manual starts. Then report
    /// [`Input::StartFailed`].
    pub retry_deadline: Timestamp,
}

/// What the history service must do after a transition.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Effects {
    pub starts: Vec<StartWorkflow>,
    /// Runs to cancel (overlap policy CANCEL_OTHER), reason [`CANCEL_REASON`]. The run id
    /// is the chain's first run id: cancel the current run of that chain. Repeated on each
    /// call while the overlap still needs it.
    pub cancels: Vec<WorkflowExecution>,
    /// Runs to terminate (overlap policy TERMINATE_OTHER), reason [`TERMINATE_REASON`].
    pub terminates: Vec<WorkflowExecution>,
    /// When to deliver [`Input::Wake`] next; None when nothing is due (paused or out of
    /// actions, no more times, waiting only for runs to close).
    pub next_wake: Option<Timestamp>,
}

/// What DescribeSchedule returns.
#[derive(Debug, Clone, PartialEq)]
pub struct Described {
    /// The schedule with its defaults filled in and its spec as Temporal returns it
    /// (canonical, ranges cleaned).
    pub schedule: Schedule,
    /// Counters, running workflows, recent actions, future action times, buffer size.
    pub info: ScheduleInfo,
    /// The conflict token as Temporal encodes it (8 bytes, big endian).
    pub conflict_token: Vec<u8>,
}

/// Validates `schedule` (and `initial_patch`), and returns the new schedule's state and
/// what to do first (the initial patch's trigger or backfill, the first wake-up).
pub fn create(
    namespace: &str,
    namespace_id: &str,
    schedule_id: &str,
    schedule: Schedule,
    initial_patch: Option<SchedulePatch>,
    now: Timestamp,
) -> Result<(SchedulerState, Effects), SchedulerError> {
    let schedule = validate::schedule(schedule)?;
    if let Some(patch) = &initial_patch {
        validate::patch(patch)?;
    }
    let mut state = SchedulerState {
        namespace: namespace.to_owned(),
        namespace_id: namespace_id.to_owned(),
        schedule_id: schedule_id.to_owned(),
        schedule: Some(schedule),
        info: Some(ScheduleInfo {
            create_time: Some(timestamp_to_proto(now)),
            ..Default::default()
        }),
        conflict_token: limits::INITIAL_CONFLICT_TOKEN,
        last_processed_time: Some(timestamp_to_proto(now)),
        ..Default::default()
    };
    let effects = process::iterate(&mut state, now, |it| {
        if let Some(patch) = initial_patch {
            it.apply_patch(patch);
        }
        Ok(false)
    })?;
    Ok((state, effects))
}

/// Applies one input to the state at `now`. On error the state is unchanged.
pub fn handle(
    state: &mut SchedulerState,
    input: Input,
    now: Timestamp,
) -> Result<Effects, SchedulerError> {
    let mut next = state.clone();
    let effects = match input {
        Input::Wake => process::iterate(&mut next, now, |_| Ok(false))?,
        Input::Patch(patch) => {
            validate::patch(&patch)?;
            process::iterate(&mut next, now, |it| {
                it.apply_patch(patch);
                Ok(false)
            })?
        }
        Input::Update {
            schedule,
            conflict_token,
        } => {
            let schedule = validate::schedule(schedule)?;
            if !validate::conflict_token_matches(conflict_token.as_deref(), state.conflict_token) {
                return Err(SchedulerError::ConflictTokenMismatch);
            }
            process::iterate(&mut next, now, |it| {
                it.apply_update(schedule, now);
                Ok(true)
            })?
        }
        Input::Started {
            request_id,
            run_id,
            start_time,
        } => {
            outcome::started(&mut next, &request_id, &run_id, start_time);
            process::iterate(&mut next, now, |_| Ok(false))?
        }
        Input::StartFailed { request_id, .. } => {
            outcome::start_failed(&mut next, &request_id);
            process::iterate(&mut next, now, |_| Ok(false))?
        }
        Input::Closed {
            workflow_id,
            run_id,
            status,
            result,
            failure,
        } => {
            outcome::closed(&mut next, &workflow_id, &run_id, status, result, failure);
            process::iterate(&mut next, now, |_| Ok(false))?
        }
    };
    *state = next;
    Ok(effects)
}

/// The state's `last_processed_time` (the creation time if unset).
fn last_processed(state: &SchedulerState) -> Timestamp {
    state
        .last_processed_time
        .as_ref()
        .map(timestamp_from_proto)
        .unwrap_or(Timestamp::UNIX_EPOCH)
}
