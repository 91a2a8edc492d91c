//! Checks on CreateSchedule / UpdateSchedule / PatchSchedule input, and the defaults a
//! stored schedule gets, as Temporal's frontend and scheduler apply them.
//!
//! Messages are Temporal's own (each names what it is about, e.g. "WorkflowType is not set
//! on request."); a spec error is Temporal's "Invalid schedule spec: " followed by the spec
//! field and the reason (`Invalid schedule spec: cron_string[0]: Minute is not in range
//! [0-59]`), where Temporal gives only the reason.

use prost_types::Duration;
use temporalio_protos::temporal::api::enums::v1::{
    ScheduleOverlapPolicy, TaskQueueKind, WorkflowIdReusePolicy,
};
use temporalio_protos::temporal::api::schedule::v1::{
    Schedule, SchedulePatch, SchedulePolicies, ScheduleState, schedule_action,
};

use super::{SchedulerError, limits, process};
use crate::CompiledSpec;

/// Go's `AppendedTimestampForValidation`: a workflow id must leave room for it.
const APPENDED_TIMESTAMP: &str = "-2009-11-10T23:00:00Z";

/// An error of temper's own: the field, then what is wrong with it.
fn invalid(field: &str, message: impl std::fmt::Display) -> SchedulerError {
    SchedulerError::InvalidArgument(format!("{field}: {message}"))
}

/// An error Temporal words itself (its text names what it is about); `field` says which
/// field it is, for the reader.
fn temporal_text(field: &str, message: impl std::fmt::Display) -> SchedulerError {
    let _ = field;
    SchedulerError::InvalidArgument(message.to_string())
}

/// Validates a schedule and returns it as stored: canonical spec, overlap policy and
/// catch-up window filled in (Temporal shows these defaults in DescribeSchedule).
pub(super) fn schedule(mut schedule: Schedule) -> Result<Schedule, SchedulerError> {
    let spec = schedule.spec.take().unwrap_or_default();
    let compiled = CompiledSpec::compile(&spec)
        .map_err(|e| SchedulerError::InvalidArgument(format!("Invalid schedule spec: {e}")))?;
    schedule.spec = Some(compiled.canonical_spec().clone());

    let Some(schedule_action::Action::StartWorkflow(start)) =
        schedule.action.as_ref().and_then(|a| a.action.as_ref())
    else {
        return Err(temporal_text(
            "schedule.action",
            "Only StartWorkflow action is supported for schedules",
        ));
    };
    let field = "schedule.action.start_workflow";
    if start.workflow_id.is_empty() {
        return Err(temporal_text(
            &format!("{field}.workflow_id"),
            "WorkflowId is not set on request.",
        ));
    }
    let id_len = start.workflow_id.len() + APPENDED_TIMESTAMP.len();
    if id_len > limits::MAX_ID_LENGTH {
        return Err(temporal_text(
            &format!("{field}.workflow_id"),
            format!(
                "WorkflowId exceeds maximum allowed length ({id_len}/{})",
                limits::MAX_ID_LENGTH
            ),
        ));
    }
    let type_name = start.workflow_type.as_ref().map_or("", |t| t.name.as_str());
    if type_name.is_empty() {
        return Err(temporal_text(
            &format!("{field}.workflow_type"),
            "WorkflowType is not set on request.",
        ));
    }
    if type_name.len() > limits::MAX_ID_LENGTH {
        return Err(temporal_text(
            &format!("{field}.workflow_type"),
            "WorkflowType length exceeds limit.",
        ));
    }
    let queue = start.task_queue.as_ref().map_or("", |q| q.name.as_str());
    if queue.is_empty() {
        return Err(temporal_text(
            &format!("{field}.task_queue"),
            "taskQueue is not set",
        ));
    }
    if queue.len() > limits::MAX_ID_LENGTH {
        return Err(temporal_text(
            &format!("{field}.task_queue"),
            "taskQueue length exceeds limit",
        ));
    }
    if queue.starts_with("/_sys/") {
        return Err(temporal_text(
            &format!("{field}.task_queue"),
            "task queue name cannot start with reserved prefix /_sys/",
        ));
    }
    if queue.starts_with("temporal-sys-per-ns-")
        || queue == "temporal-sys-worker-controller-per-ns-tq"
    {
        return Err(temporal_text(
            &format!("{field}.task_queue"),
            format!("cannot use internal per-namespace task queue:{queue}"),
        ));
    }
    for (name, timeout, message) in [
        (
            "workflow_execution_timeout",
            &start.workflow_execution_timeout,
            "An invalid WorkflowExecutionTimeoutSeconds is set on request.",
        ),
        (
            "workflow_run_timeout",
            &start.workflow_run_timeout,
            "An invalid WorkflowRunTimeoutSeconds is set on request.",
        ),
        (
            "workflow_task_timeout",
            &start.workflow_task_timeout,
            "An invalid WorkflowTaskTimeoutSeconds is set on request.",
        ),
    ] {
        if timeout
            .as_ref()
            .is_some_and(|d| !duration_valid(d) || d.seconds < 0 || d.nanos < 0)
        {
            return Err(temporal_text(&format!("{field}.{name}"), message));
        }
    }
    if !start.cron_schedule.is_empty() {
        return Err(temporal_text(
            &format!("{field}.cron_schedule"),
            "Scheduled workflow must not contain CronSchedule",
        ));
    }
    let reuse = WorkflowIdReusePolicy::try_from(start.workflow_id_reuse_policy);
    if !matches!(
        reuse,
        Ok(WorkflowIdReusePolicy::Unspecified | WorkflowIdReusePolicy::AllowDuplicate)
    ) {
        return Err(temporal_text(
            &format!("{field}.workflow_id_reuse_policy"),
            "Scheduled workflow must not contain WorkflowIDReusePolicy",
        ));
    }

    let policies = schedule
        .policies
        .get_or_insert_with(SchedulePolicies::default);
    overlap_policy("schedule.policies.overlap_policy", policies.overlap_policy)?;
    if policies
        .catchup_window
        .as_ref()
        .is_some_and(|d| !duration_valid(d))
    {
        return Err(invalid(
            "schedule.policies.catchup_window",
            "not a valid duration",
        ));
    }
    if policies.overlap_policy == ScheduleOverlapPolicy::Unspecified as i32 {
        policies.overlap_policy = ScheduleOverlapPolicy::Skip as i32;
    }
    let window = process::catchup_window(&schedule);
    let policies = schedule
        .policies
        .get_or_insert_with(SchedulePolicies::default);
    policies.catchup_window = Some(Duration {
        seconds: window.as_secs(),
        nanos: window.subsec_nanos(),
    });

    let state = schedule.state.get_or_insert_with(ScheduleState::default);
    if state.limited_actions && state.remaining_actions < 0 {
        return Err(invalid(
            "schedule.state.remaining_actions",
            "must not be negative",
        ));
    }
    if state.notes.len() > limits::NOTES_SIZE_LIMIT {
        return Err(temporal_text(
            "schedule.state.notes",
            "Schedule notes exceeds limit.",
        ));
    }
    // The action's task queue is stored as a normal queue (Temporal shows the kind).
    if let Some(schedule_action::Action::StartWorkflow(start)) =
        schedule.action.as_mut().and_then(|a| a.action.as_mut())
        && let Some(queue) = start.task_queue.as_mut()
        && queue.kind == TaskQueueKind::Unspecified as i32
    {
        queue.kind = TaskQueueKind::Normal as i32;
    }
    Ok(schedule)
}

/// Validates a PatchSchedule patch (or CreateSchedule's initial patch).
pub(super) fn patch(patch: &SchedulePatch) -> Result<(), SchedulerError> {
    if let Some(trigger) = &patch.trigger_immediately {
        overlap_policy(
            "patch.trigger_immediately.overlap_policy",
            trigger.overlap_policy,
        )?;
    }
    for (i, backfill) in patch.backfill_request.iter().enumerate() {
        let field = format!("patch.backfill_request[{i}]");
        overlap_policy(&format!("{field}.overlap_policy"), backfill.overlap_policy)?;
        if backfill.start_time.is_none() {
            return Err(invalid(&format!("{field}.start_time"), "is not set"));
        }
        if backfill.end_time.is_none() {
            return Err(invalid(&format!("{field}.end_time"), "is not set"));
        }
    }
    for (name, notes) in [
        ("patch.pause", &patch.pause),
        ("patch.unpause", &patch.unpause),
    ] {
        if notes.len() > limits::NOTES_SIZE_LIMIT {
            return Err(temporal_text(name, "Schedule notes exceeds limit."));
        }
    }
    Ok(())
}

fn overlap_policy(field: &str, value: i32) -> Result<(), SchedulerError> {
    ScheduleOverlapPolicy::try_from(value)
        .map(|_| ())
        .map_err(|_| invalid(field, format!("unknown overlap policy {value}")))
}

/// UpdateSchedule's token check, as Temporal's: no token (or fewer than 8 bytes, or 0)
/// updates unconditionally; otherwise its first 8 bytes (big endian) must be the current
/// token.
pub(super) fn conflict_token_matches(token: Option<&[u8]>, current: i64) -> bool {
    let Some(bytes) = token.and_then(|t| t.get(..8)) else {
        return true;
    };
    let mut be = [0u8; 8];
    be.copy_from_slice(bytes);
    let token = i64::from_be_bytes(be);
    token == 0 || token == current
}

/// protobuf's Duration validity rule (Go's `durationpb.CheckValid`).
fn duration_valid(d: &Duration) -> bool {
    const MAX_SECONDS: i64 = 315_576_000_000;
    let secs_ok = (-MAX_SECONDS..=MAX_SECONDS).contains(&d.seconds);
    let nanos_ok = d.nanos > -1_000_000_000 && d.nanos < 1_000_000_000;
    let signs_ok = !(d.seconds > 0 && d.nanos < 0 || d.seconds < 0 && d.nanos > 0);
    secs_ok && nanos_ok && signs_ok
}
