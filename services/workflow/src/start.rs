//! Starting a run: validation of StartWorkflowExecution and the first events and tasks; and
//! the execution info a WorkflowExecutionStarted event gives the run.

use std::time::{Duration, SystemTime};

use prost::Message;
use temper_proto::temporal::api::common::v1::{Payloads, WorkflowExecution};
use temper_proto::temporal::api::enums::v1::{
    ContinueAsNewInitiator, TaskQueueKind, WorkflowExecutionStatus,
};
use temper_proto::temporal::api::failure::v1::Failure;
use temper_proto::temporal::api::history::v1::{
    WorkflowExecutionStartedEventAttributes, history_event::Attributes,
};
use temper_proto::temporal::api::taskqueue::v1::TaskQueue;
use temper_proto::temporal::api::workflowservice::v1::StartWorkflowExecutionRequest;
use temper_proto::wkt;

use crate::events::At;
use crate::properties::{recorded_memo, recorded_search_attributes};
use crate::state::{MAX_ID_LENGTH, RESERVED_PREFIX, RESERVED_TASK_QUEUE, STATE_RUNNING};
use crate::time::{dur, from_dur, is_negative, opt_from_ts, ts};
use crate::{Limits, Mutation, Txn, WorkflowError, pb, retry, workflow_task};

/// Check a start request the way the Temporal frontend does.
pub fn validate(req: &StartWorkflowExecutionRequest, limits: &Limits) -> Result<(), WorkflowError> {
    let bad = |m: &str| Err(WorkflowError::InvalidArgument(m.to_string()));
    if req.workflow_id.is_empty() {
        return bad("WorkflowId is not set on request.");
    }
    if req.workflow_id.len() > MAX_ID_LENGTH {
        return bad(&format!(
            "WorkflowId exceeds maximum allowed length ({}/{MAX_ID_LENGTH})",
            req.workflow_id.len()
        ));
    }
    match &req.workflow_type {
        Some(t) if !t.name.is_empty() => {
            if t.name.len() > MAX_ID_LENGTH {
                return bad("WorkflowType length exceeds limit.");
            }
        }
        _ => return bad("WorkflowType is not set on request."),
    }
    match &req.task_queue {
        Some(q) if !q.name.is_empty() => {
            if q.name.len() > MAX_ID_LENGTH {
                return bad("TaskQueue length exceeds limit.");
            }
            if q.name.starts_with(RESERVED_PREFIX) {
                return bad(RESERVED_TASK_QUEUE);
            }
        }
        _ => return bad("TaskQueue is not set on request."),
    }
    if let Err(m) = crate::priority::validate(req.priority.as_ref()) {
        return bad(m);
    }
    if req.request_id.len() > MAX_ID_LENGTH {
        return bad("RequestId length exceeds limit.");
    }
    if is_negative(&req.workflow_execution_timeout) {
        return bad("Invalid WorkflowExecutionTimeout.");
    }
    if is_negative(&req.workflow_run_timeout) {
        return bad("Invalid WorkflowRunTimeout.");
    }
    if is_negative(&req.workflow_task_timeout) {
        return bad("Invalid WorkflowTaskTimeout.");
    }
    if is_negative(&req.workflow_start_delay) {
        return bad("Invalid WorkflowStartDelay.");
    }
    if !req.cron_schedule.is_empty() {
        if !from_dur(&req.workflow_start_delay).is_zero() {
            return bad("CronSchedule and WorkflowStartDelay may not be used together.");
        }
        crate::cron::parse(&req.cron_schedule).map_err(WorkflowError::InvalidArgument)?;
    }
    if let Some(p) = &req.retry_policy {
        retry::validate_policy(p).map_err(WorkflowError::InvalidArgument)?;
    }
    if let Some(memo) = &req.memo {
        let size: usize = memo
            .fields
            .iter()
            .map(|(k, v)| k.len() + prost::Message::encoded_len(v))
            .sum();
        if size > limits.max_payload_bytes {
            return bad("Memo size exceeds limit.");
        }
    }
    check_id_policies(
        req.workflow_id_reuse_policy,
        req.workflow_id_conflict_policy,
    )?;
    if let Some(input) = &req.input {
        let size: usize = input.payloads.iter().map(|p| p.data.len()).sum();
        if size > limits.max_payload_bytes {
            return bad("Blob data size exceeds limit.");
        }
    }
    Ok(())
}

/// Combinations of id reuse and conflict policies the Temporal server refuses.
pub fn check_id_policies(reuse: i32, conflict: i32) -> Result<(), WorkflowError> {
    use temper_proto::temporal::api::enums::v1::{
        WorkflowIdConflictPolicy as C, WorkflowIdReusePolicy as R,
    };
    let reuse = R::try_from(reuse).unwrap_or(R::Unspecified);
    let conflict = C::try_from(conflict).unwrap_or(C::Unspecified);
    #[allow(deprecated)]
    let terminate_if_running = reuse == R::TerminateIfRunning;
    if terminate_if_running && conflict != C::Unspecified {
        return Err(WorkflowError::InvalidArgument(format!(
            "Invalid WorkflowIDReusePolicy: {} cannot be used together with a WorkflowIDConflictPolicy",
            reuse.as_str_name()
        )));
    }
    if reuse == R::RejectDuplicate && conflict == C::TerminateExisting {
        return Err(WorkflowError::InvalidArgument(format!(
            "Invalid WorkflowIDReusePolicy: {} cannot be used together with WorkflowIdConflictPolicy {}",
            reuse.as_str_name(),
            conflict.as_str_name()
        )));
    }
    Ok(())
}

/// Everything a new run needs besides the request.
pub struct NewRun<'a> {
    pub namespace_id: &'a str,
    pub run_id: &'a str,
    pub request_id: &'a str,
    pub now: SystemTime,
    pub origin: Origin,
}

/// Where a run comes from, when not only from a client's start request.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// The parent, for a child workflow.
    pub parent: Option<pb::ParentInfo>,
    /// The root of the workflow tree (the run itself when unset).
    pub root: Option<WorkflowExecution>,
    /// The run this one continues.
    pub continued: Option<Continued>,
    /// The schedule that started the chain (its close is reported to the schedule).
    pub scheduled_by: Option<String>,
    /// A run the server drives itself (a schedule's): no workflow task, no run timeout.
    pub system: bool,
}

/// How a run continues the one before it.
#[derive(Debug, Clone)]
pub struct Continued {
    pub previous_run_id: String,
    pub first_run_id: String,
    pub initiator: ContinueAsNewInitiator,
    pub failure: Option<Failure>,
    pub last_completion_result: Option<Payloads>,
    pub attempt: i32,
    pub execution_expiration_time: Option<wkt::Timestamp>,
    /// The first workflow task waits this long (retry backoff, cron, continue-as-new
    /// backoff_start_interval).
    pub backoff: Duration,
    /// Reset points a continue-as-new carries into the new run (Temporal's
    /// `prev_auto_reset_points`); none for a retry or cron run.
    pub auto_reset_points: Option<temper_proto::temporal::api::workflow::v1::ResetPoints>,
    /// The pinned version a continue-as-new passes on (worker versioning).
    pub inherited_pinned_version:
        Option<temper_proto::temporal::api::deployment::v1::WorkerDeploymentVersion>,
    /// The continue-as-new command's `initial_versioning_behavior`.
    pub initial_versioning_behavior: i32,
}

/// A run the server drives itself (a standalone activity's or Nexus operation's: system
/// origin, no workflow task), made from `req`, with `first` applied in the same state
/// transition as its creation. What `first` returned comes back with the state and the
/// mutation to commit.
pub fn new_system_run<R>(
    run: NewRun<'_>,
    req: &StartWorkflowExecutionRequest,
    limits: &Limits,
    first: impl FnOnce(&mut Txn<'_>) -> R,
) -> (pb::MutableState, Mutation, R) {
    let now = run.now;
    let run = NewRun {
        origin: Origin {
            system: true,
            ..Default::default()
        },
        ..run
    };
    let (mut ms, mut mutation) = new_execution(run, req, limits);
    let mut txn = Txn::new(&mut ms, now, limits);
    let r = first(&mut txn);
    let more = std::mem::take(&mut txn.out);
    mutation.absorb(more);
    (ms, mutation, r)
}

/// Build the mutable state of a new run and its first events (started, workflow task
/// scheduled) and tasks.
pub fn new_execution(
    run: NewRun<'_>,
    req: &StartWorkflowExecutionRequest,
    limits: &Limits,
) -> (pb::MutableState, Mutation) {
    new_execution_with_signal(run, req, None, limits)
}

/// A run's (execution, run, workflow task) timeouts as Temporal derives them from a request:
/// the run timeout at most the execution timeout (and equal to it when unset), the task
/// timeout defaulted and capped, and never longer than the run. Zero means unlimited.
pub(crate) fn effective_timeouts(
    execution: &Option<wkt::Duration>,
    run: &Option<wkt::Duration>,
    task: &Option<wkt::Duration>,
    limits: &Limits,
) -> (Duration, Duration, Duration) {
    let exec_timeout = from_dur(execution);
    let mut run_timeout = from_dur(run);
    if !exec_timeout.is_zero() && (run_timeout.is_zero() || run_timeout > exec_timeout) {
        run_timeout = exec_timeout;
    }
    let mut task_timeout = from_dur(task);
    if task_timeout.is_zero() {
        task_timeout = limits.default_workflow_task_timeout;
    }
    task_timeout = task_timeout.min(limits.max_workflow_task_timeout);
    if !run_timeout.is_zero() {
        task_timeout = task_timeout.min(run_timeout);
    }
    (exec_timeout, run_timeout, task_timeout)
}

/// [`new_execution`] for SignalWithStart: the signal is recorded right after the started
/// event, before the first workflow task is scheduled, as in Temporal.
/// Eager workflow start: the caller's worker starts the new run's first workflow task, in the
/// commit that creates the run, so the task is not handed to matching and the started event
/// says the eager start was accepted. False (and nothing changed) when the run has no
/// workflow task to start yet (a start delay or a cron backoff), where Temporal declines too.
pub fn start_first_task_eagerly(
    ms: &mut pb::MutableState,
    out: &mut Mutation,
    now: SystemTime,
    limits: &Limits,
    request_id: &str,
    identity: &str,
) -> bool {
    let Some(scheduled_event_id) = ms.workflow_task.as_ref().map(|w| w.scheduled_event_id) else {
        return false;
    };
    let before = ms.clone();
    let mut txn = Txn::new(ms, now, limits);
    let started = workflow_task::record_started(
        &mut txn,
        workflow_task::StartRequest {
            poller: Default::default(),
            scheduled_event_id,
            request_id,
            identity,
        },
    );
    let more = txn.finish();
    if started.is_err() {
        *ms = before;
        return false;
    }
    out.transfer
        .retain(|t| t.kind != pb::TransferTaskKind::WorkflowTask as i32);
    out.absorb(more);
    if let Some(started) = out.events.first_mut() {
        let before = started.encoded_len() as i64;
        if let Some(Attributes::WorkflowExecutionStartedEventAttributes(a)) =
            started.attributes.as_mut()
        {
            a.eager_execution_accepted = true;
        }
        // The history size counted the event before the flag was set.
        let grown = started.encoded_len() as i64 - before;
        crate::state::info_mut(ms).history_size_bytes += grown;
    }
    true
}

pub fn new_execution_with_signal(
    run: NewRun<'_>,
    req: &StartWorkflowExecutionRequest,
    signal: Option<crate::signal::Signal<'_>>,
    limits: &Limits,
) -> (pb::MutableState, Mutation) {
    let (exec_timeout, run_timeout, task_timeout) = effective_timeouts(
        &req.workflow_execution_timeout,
        &req.workflow_run_timeout,
        &req.workflow_task_timeout,
        limits,
    );
    let task_queue = TaskQueue {
        name: req
            .task_queue
            .as_ref()
            .map(|q| q.name.clone())
            .unwrap_or_default(),
        kind: TaskQueueKind::Normal as i32,
        normal_name: String::new(),
    };
    let retry_policy = req.retry_policy.clone().map(retry::with_defaults);
    let continued = run.origin.continued.as_ref();
    // The first workflow task waits: a continuation's backoff, the start delay, or the
    // first cron time.
    let backoff = match continued {
        Some(c) => c.backoff,
        None if !req.cron_schedule.is_empty() => {
            crate::cron::backoff(&req.cron_schedule, run.now, run.now).unwrap_or_default()
        }
        None => from_dur(&req.workflow_start_delay),
    };
    let first_run_id = continued
        .map(|c| c.first_run_id.clone())
        .unwrap_or_else(|| run.run_id.to_string());
    let attempt = continued.map(|c| c.attempt).unwrap_or(1);
    let execution_expiration = match continued {
        Some(c) => c.execution_expiration_time,
        None => (!exec_timeout.is_zero()).then(|| ts(run.now + backoff + exec_timeout)),
    };
    let self_execution = WorkflowExecution {
        workflow_id: req.workflow_id.clone(),
        run_id: run.run_id.to_string(),
    };
    let root = run.origin.root.clone().unwrap_or(self_execution);
    let is_child = run.origin.parent.is_some();
    let system = run.origin.system;
    let scheduled_by = run.origin.scheduled_by.clone().unwrap_or_default();
    let (parent_ns, parent_ns_id, parent_exec, parent_initiated) = match run.origin.parent {
        Some(p) => (
            p.namespace,
            p.namespace_id,
            p.execution,
            p.initiated_event_id,
        ),
        None => Default::default(),
    };
    let started = WorkflowExecutionStartedEventAttributes {
        workflow_type: req.workflow_type.clone(),
        parent_workflow_namespace: parent_ns,
        parent_workflow_namespace_id: parent_ns_id,
        parent_workflow_execution: parent_exec,
        parent_initiated_event_id: parent_initiated,
        task_queue: Some(task_queue),
        input: req.input.clone(),
        workflow_execution_timeout: dur(exec_timeout),
        workflow_run_timeout: dur(run_timeout),
        workflow_task_timeout: dur(task_timeout),
        continued_execution_run_id: continued
            .map(|c| c.previous_run_id.clone())
            .unwrap_or_default(),
        initiator: continued
            .map(|c| c.initiator)
            .unwrap_or(ContinueAsNewInitiator::Unspecified) as i32,
        // A continuation carries them from the run before; a start request may carry them
        // too (a schedule passes its last run's result and failure this way).
        continued_failure: continued
            .and_then(|c| c.failure.clone())
            .or_else(|| req.continued_failure.clone()),
        last_completion_result: continued
            .and_then(|c| c.last_completion_result.clone())
            .or_else(|| req.last_completion_result.clone()),
        original_execution_run_id: run.run_id.to_string(),
        identity: req.identity.clone(),
        first_execution_run_id: first_run_id,
        retry_policy,
        attempt,
        workflow_execution_expiration_time: execution_expiration,
        cron_schedule: req.cron_schedule.clone(),
        first_workflow_task_backoff: crate::time::dur_or_zero(backoff),
        memo: recorded_memo(&req.memo),
        search_attributes: recorded_search_attributes(&req.search_attributes),
        header: req.header.clone(),
        workflow_id: req.workflow_id.clone(),
        root_workflow_execution: is_child.then(|| root.clone()),
        // A Nexus operation's handler workflow: who to tell when it closes.
        completion_callbacks: req.completion_callbacks.clone(),
        prev_auto_reset_points: continued.and_then(|c| c.auto_reset_points.clone()),
        priority: req.priority.clone(),
        versioning_override: req.versioning_override.clone(),
        inherited_pinned_version: continued.and_then(|c| c.inherited_pinned_version.clone()),
        // Where a continue-as-new asked for the ramping version: the command's initial
        // behavior, which Temporal carries in this field.
        inherited_auto_upgrade_info: continued
            .filter(|c| {
                c.initial_versioning_behavior
                    == temper_proto::temporal::api::enums::v1::ContinueAsNewVersioningBehavior::UseRampingVersion
                        as i32
            })
            .map(|c| temper_proto::temporal::api::deployment::v1::InheritedAutoUpgradeInfo {
                continue_as_new_initial_versioning_behavior: c.initial_versioning_behavior,
                ..Default::default()
            }),
        ..Default::default()
    };
    let mut ms = pb::MutableState {
        next_event_id: 1,
        ..Default::default()
    };
    let mut txn = Txn::new(&mut ms, run.now, limits);
    let ids = RunIds {
        namespace_id: run.namespace_id,
        namespace: &req.namespace,
        workflow_id: &req.workflow_id,
        run_id: run.run_id,
        request_id: run.request_id,
    };
    txn.write_applied(started, |ms, at, a| apply_started(ms, at, a, ids));
    let links = started_links(req);
    if !links.is_empty() {
        txn.set_links(0, links);
    }
    if let Some(metadata) = &req.user_metadata {
        // On the started event, where describe reads it, as in Temporal.
        txn.set_user_metadata(0, metadata);
    }
    // A run that continues another keeps the root of its chain, which its started event
    // names only for a child (as from the Temporal server); replay takes the run itself.
    txn.info_mut().root_execution = Some(root);
    txn.info_mut().scheduled_by = scheduled_by;
    if let Some(sig) = signal {
        // Cannot fail: the run is new and running, and the caller validated the name.
        let _ = crate::signal::signal(&mut txn, sig);
    }
    if system {
        // The server drives the run itself: nothing for a worker.
    } else if backoff.is_zero() {
        workflow_task::schedule(&mut txn, 1);
    } else {
        let t = txn.timer_task(pb::TimerTaskKind::WorkflowBackoff, 0, 0);
        txn.add_timer_task(run.now + backoff, t);
    }
    if let Some(at) = opt_from_ts(&txn.info().run_expiration_time) {
        let t = txn.timer_task(pb::TimerTaskKind::WorkflowRunTimeout, 0, 0);
        txn.add_timer_task(at, t);
    }
    txn.visibility_task(pb::VisibilityTaskKind::Start);
    let out = txn.finish();
    (ms, out)
}

/// The links a run's started event carries: where the start came from (a Nexus operation's
/// caller), less those its Nexus completion callbacks already carry, as Temporal records them.
fn started_links(
    req: &StartWorkflowExecutionRequest,
) -> Vec<temper_proto::temporal::api::common::v1::Link> {
    use temper_proto::temporal::api::common::v1::callback;
    let in_callbacks: Vec<_> = req
        .completion_callbacks
        .iter()
        .filter(|c| matches!(c.variant, Some(callback::Variant::Nexus(_))))
        .flat_map(|c| c.links.iter())
        .collect();
    req.links
        .iter()
        .filter(|l| !in_callbacks.contains(l))
        .cloned()
        .collect()
}

/// A StartWorkflowExecution with the USE_EXISTING conflict policy found this run running:
/// attach what its on-conflict options ask for (its request id, its completion callbacks), as
/// Temporal records them, in a WorkflowExecutionOptionsUpdated event. A request attached
/// before changes nothing.
pub fn attach_on_conflict(
    txn: &mut Txn<'_>,
    req: &StartWorkflowExecutionRequest,
) -> Result<(), crate::WorkflowError> {
    let Some(o) = req.on_conflict_options.as_ref() else {
        return Ok(());
    };
    if !txn.is_running() {
        return Err(crate::WorkflowError::AlreadyCompleted);
    }
    if !req.request_id.is_empty() && txn.info().applied_request_ids.contains(&req.request_id) {
        return Ok(());
    }
    let attrs =
        temper_proto::temporal::api::history::v1::WorkflowExecutionOptionsUpdatedEventAttributes {
            attached_request_id: if o.attach_request_id {
                req.request_id.clone()
            } else {
                String::new()
            },
            attached_completion_callbacks: if o.attach_completion_callbacks {
                req.completion_callbacks.clone()
            } else {
                Vec::new()
            },
            identity: req.identity.clone(),
            ..Default::default()
        };
    if attrs.attached_request_id.is_empty() && attrs.attached_completion_callbacks.is_empty() {
        return Ok(());
    }
    let links = if o.attach_links {
        req.links.clone()
    } else {
        Vec::new()
    };
    txn.write_external_linked_applied(attrs, links, crate::versioning::apply_options_updated);
    Ok(())
}

/// The run a started event belongs to: what its history does not record.
#[derive(Debug, Clone, Copy)]
pub struct RunIds<'a> {
    pub namespace_id: &'a str,
    /// The namespace's name, for events that carry it.
    pub namespace: &'a str,
    /// The workflow id, for a started event that does not carry it.
    pub workflow_id: &'a str,
    pub run_id: &'a str,
    /// The request id that created the run (start idempotency).
    pub request_id: &'a str,
}

/// WorkflowExecutionStarted: the run's execution info, running. Its deadlines count from
/// the event's time (plus the first workflow task's backoff).
pub(crate) fn apply_started(
    ms: &mut pb::MutableState,
    at: At,
    a: &WorkflowExecutionStartedEventAttributes,
    run: RunIds<'_>,
) {
    ms.completion_callbacks = a.completion_callbacks.clone();
    ms.completion_callback_times = a.completion_callbacks.iter().map(|_| at.time).collect();
    let now = at.system_time();
    let backoff = from_dur(&a.first_workflow_task_backoff);
    let run_timeout = from_dur(&a.workflow_run_timeout);
    let execution_expiration = a.workflow_execution_expiration_time;
    // A run ends by its run timeout or by the chain's execution timeout, whichever is first.
    let run_expiration = {
        let by_run = (!run_timeout.is_zero()).then(|| now + backoff + run_timeout);
        let by_execution = opt_from_ts(&execution_expiration);
        match (by_run, by_execution) {
            (Some(r), Some(e)) => Some(r.min(e)),
            (r, e) => r.or(e),
        }
    };
    let workflow_id = if a.workflow_id.is_empty() {
        run.workflow_id.to_string()
    } else {
        a.workflow_id.clone()
    };
    let first_run_id = if a.first_execution_run_id.is_empty() {
        run.run_id.to_string()
    } else {
        a.first_execution_run_id.clone()
    };
    let parent = a
        .parent_workflow_execution
        .as_ref()
        .map(|execution| pb::ParentInfo {
            namespace_id: a.parent_workflow_namespace_id.clone(),
            namespace: a.parent_workflow_namespace.clone(),
            execution: Some(execution.clone()),
            initiated_event_id: a.parent_initiated_event_id,
        });
    let root = a
        .root_workflow_execution
        .clone()
        .unwrap_or_else(|| WorkflowExecution {
            workflow_id: workflow_id.clone(),
            run_id: run.run_id.to_string(),
        });
    // A run that may run again (retry, cron) keeps its input for the next run.
    let keeps_input = a.retry_policy.is_some() || !a.cron_schedule.is_empty();
    ms.execution_info = Some(pb::ExecutionInfo {
        namespace_id: run.namespace_id.to_string(),
        namespace: run.namespace.to_string(),
        workflow_id,
        run_id: run.run_id.to_string(),
        first_run_id,
        workflow_type: a.workflow_type.clone(),
        task_queue: a.task_queue.clone(),
        workflow_execution_timeout: a.workflow_execution_timeout,
        workflow_run_timeout: a.workflow_run_timeout,
        default_workflow_task_timeout: a.workflow_task_timeout,
        start_time: Some(at.time),
        execution_time: Some(ts(now + backoff)),
        execution_expiration_time: execution_expiration,
        run_expiration_time: run_expiration.map(ts),
        state: STATE_RUNNING,
        status: WorkflowExecutionStatus::Running as i32,
        create_request_id: run.request_id.to_string(),
        retry_policy: a.retry_policy.clone(),
        attempt: a.attempt,
        memo: a.memo.clone(),
        search_attributes: a.search_attributes.clone(),
        cron_schedule: a.cron_schedule.clone(),
        start_input: keeps_input.then(|| a.input.clone()).flatten(),
        start_header: keeps_input.then(|| a.header.clone()).flatten(),
        parent,
        root_execution: Some(root),
        last_completion_result: a.last_completion_result.clone(),
        continued_failure: a.continued_failure.clone(),
        first_workflow_task_backoff_until: (!backoff.is_zero()).then(|| ts(now + backoff)),
        auto_reset_points: a.prev_auto_reset_points.clone(),
        priority: a.priority.clone(),
        ..Default::default()
    });
    if let Some(info) = ms.execution_info.as_mut() {
        crate::versioning::apply_started(
            info,
            a.versioning_override.as_ref(),
            a.inherited_pinned_version.as_ref(),
            a.inherited_auto_upgrade_info
                .as_ref()
                .map(|i| i.continue_as_new_initial_versioning_behavior)
                .unwrap_or_default(),
        );
    }
}

/// The backoff timer of a run's first workflow task fired: schedule that task. Its
/// WorkflowTaskScheduled event ends the backoff ([`workflow_task::apply_scheduled`]), so the
/// state changes only with an event that replay applies the same way; a closed run is left
/// as it closed.
pub fn on_backoff_timer(txn: &mut Txn<'_>) {
    if !txn.is_running()
        || txn.info().first_workflow_task_backoff_until.is_none()
        || txn.has_pending_workflow_task()
    {
        return;
    }
    workflow_task::schedule(txn, 1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use temper_proto::temporal::api::common::v1::WorkflowType;
    use temper_proto::temporal::api::enums::v1::EventType;

    pub(crate) fn request() -> StartWorkflowExecutionRequest {
        StartWorkflowExecutionRequest {
            namespace: "default".into(),
            workflow_id: "wf".into(),
            workflow_type: Some(WorkflowType {
                name: "Greet".into(),
            }),
            task_queue: Some(TaskQueue {
                name: "tq".into(),
                ..Default::default()
            }),
            request_id: "req-1".into(),
            ..Default::default()
        }
    }

    #[test]
    fn partition_names_are_refused() {
        let limits = Limits::default();
        assert!(validate(&request(), &limits).is_ok());
        let mut r = request();
        r.task_queue = Some(TaskQueue {
            name: "/_sys/tq/2".into(),
            ..Default::default()
        });
        assert_eq!(
            validate(&r, &limits),
            Err(WorkflowError::InvalidArgument(RESERVED_TASK_QUEUE.into()))
        );
    }

    #[test]
    fn first_events_and_tasks() {
        let limits = Limits::default();
        let (ms, out) = new_execution(
            NewRun {
                namespace_id: "ns",
                run_id: "run",
                request_id: "req-1",
                now: SystemTime::UNIX_EPOCH,
                origin: Origin::default(),
            },
            &request(),
            &limits,
        );
        let types: Vec<i32> = out.events.iter().map(|e| e.event_type).collect();
        assert_eq!(
            types,
            vec![
                EventType::WorkflowExecutionStarted as i32,
                EventType::WorkflowTaskScheduled as i32
            ]
        );
        assert_eq!(out.events[0].event_id, 1);
        assert_eq!(out.events[1].event_id, 2);
        assert_eq!(ms.next_event_id, 3);
        assert_eq!(out.transfer.len(), 1);
        assert_eq!(out.transfer[0].scheduled_event_id, 2);
        assert!(out.timers.is_empty(), "no run timeout, no timer");
        assert_eq!(
            ms.workflow_task.as_ref().map(|w| w.scheduled_event_id),
            Some(2)
        );
    }

    /// Found by `temper-loadtest fuzz`: a start whose timeouts and start delay were
    /// `i64::MAX` seconds panicked the server ("overflow when adding duration to instant")
    /// computing the run's expiration. Durations are capped at 100 years, as Temporal does.
    #[test]
    fn absurd_timeouts_are_capped_not_a_panic() {
        let limits = Limits::default();
        let huge = Some(temper_proto::wkt::Duration {
            seconds: i64::MAX,
            nanos: 999_999_999,
        });
        let mut r = request();
        r.workflow_execution_timeout = huge;
        r.workflow_run_timeout = huge;
        r.workflow_task_timeout = huge;
        r.workflow_start_delay = huge;
        assert!(validate(&r, &limits).is_ok());
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        let (ms, _) = new_execution(
            NewRun {
                namespace_id: "ns",
                run_id: "run",
                request_id: "req-1",
                now,
                origin: Origin::default(),
            },
            &r,
            &limits,
        );
        let expiration = ms
            .execution_info
            .as_ref()
            .and_then(|i| i.run_expiration_time)
            .expect("a run expiration");
        let century = crate::time::MAX_DURATION_SECS;
        assert!(expiration.seconds <= 1_800_000_000 + 2 * century);
    }

    #[test]
    fn signal_with_start_orders_the_signal_before_the_first_task() {
        let limits = Limits::default();
        let (_, out) = new_execution_with_signal(
            NewRun {
                namespace_id: "ns",
                run_id: "run",
                request_id: "req-1",
                now: SystemTime::UNIX_EPOCH,
                origin: Origin::default(),
            },
            &request(),
            Some(crate::signal::Signal {
                name: "go",
                input: None,
                identity: "c",
                header: None,
                request_id: "req-1",
                external_execution: None,
                links: Vec::new(),
            }),
            &limits,
        );
        let types: Vec<i32> = out.events.iter().map(|e| e.event_type).collect();
        assert_eq!(
            types,
            vec![
                EventType::WorkflowExecutionStarted as i32,
                EventType::WorkflowExecutionSignaled as i32,
                EventType::WorkflowTaskScheduled as i32
            ]
        );
        assert_eq!(out.transfer.len(), 1, "one workflow task");
    }

    #[test]
    fn validation() {
        let limits = Limits::default();
        let mut r = request();
        r.workflow_id.clear();
        assert!(matches!(
            validate(&r, &limits),
            Err(WorkflowError::InvalidArgument(_))
        ));
        let mut r = request();
        r.task_queue = None;
        assert!(validate(&r, &limits).is_err());
        assert!(validate(&request(), &limits).is_ok());
    }
}
