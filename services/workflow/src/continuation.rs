//! Runs that continue another under the same workflow id: continue-as-new, workflow
//! retries and cron schedules. The closing run's close event names the new run, and the
//! new run is created in the same atomic commit (see [`crate::Mutation::new_run`]).

// The Temporal API marks failure deprecated, but SDKs and the server still fill them.
#![allow(deprecated)]

use std::time::Duration;

use temper_proto::temporal::api::command::v1::ContinueAsNewWorkflowExecutionCommandAttributes;
use temper_proto::temporal::api::common::v1::Payloads;
use temper_proto::temporal::api::enums::v1::{
    ContinueAsNewInitiator, RetryState, WorkflowExecutionStatus, WorkflowTaskFailedCause,
};
use temper_proto::temporal::api::failure::v1::Failure;
use temper_proto::temporal::api::history::v1::WorkflowExecutionContinuedAsNewEventAttributes;
use temper_proto::temporal::api::taskqueue::v1::TaskQueue;
use temper_proto::temporal::api::workflow::v1::ResetPoints;
use temper_proto::temporal::api::workflowservice::v1::StartWorkflowExecutionRequest;

use crate::BadCommand;
use crate::start::{Continued, NewRun, Origin};
use crate::time::{from_dur, from_ts, is_negative, opt_from_ts, ts};
use crate::{NewRunState, Txn, retry, start};

/// What the closing run turns into.
pub struct Next {
    pub continued: Continued,
    /// Overrides for the new run's start (continue-as-new); else the run's own settings.
    pub request: StartWorkflowExecutionRequest,
}

/// The start request a continuation of this run inherits: the same type, queue, timeouts,
/// policies, memo and search attributes, and the input it started with.
fn inherited_request(txn: &Txn<'_>) -> StartWorkflowExecutionRequest {
    let info = txn.info();
    StartWorkflowExecutionRequest {
        namespace: info.namespace.clone(),
        workflow_id: info.workflow_id.clone(),
        workflow_type: info.workflow_type.clone(),
        task_queue: info.task_queue.as_ref().map(|q| TaskQueue {
            name: q.name.clone(),
            ..Default::default()
        }),
        input: info.start_input.clone(),
        header: info.start_header.clone(),
        workflow_execution_timeout: info.workflow_execution_timeout,
        workflow_run_timeout: info.workflow_run_timeout,
        workflow_task_timeout: info.default_workflow_task_timeout,
        retry_policy: info.retry_policy.clone(),
        cron_schedule: info.cron_schedule.clone(),
        memo: info.memo.clone(),
        search_attributes: info.search_attributes.clone(),
        priority: info.priority.clone(),
        // The chain's callers are called back when the chain ends, by its last run.
        completion_callbacks: txn.ms.completion_callbacks.clone(),
        ..Default::default()
    }
}

fn continued(
    txn: &Txn<'_>,
    initiator: ContinueAsNewInitiator,
    attempt: i32,
    backoff: Duration,
    failure: Option<Failure>,
    last_completion_result: Option<Payloads>,
) -> Continued {
    let info = txn.info();
    Continued {
        previous_run_id: info.run_id.clone(),
        first_run_id: info.first_run_id.clone(),
        initiator,
        failure,
        last_completion_result,
        attempt,
        execution_expiration_time: info.execution_expiration_time,
        backoff,
        auto_reset_points: None,
        inherited_pinned_version: None,
        initial_versioning_behavior: 0,
    }
}

/// The reset points a continue-as-new carries over, as Temporal rolls them: points already
/// expired are dropped, and the closing run's own points expire after the namespace's
/// retention from now. The closing run keeps the same expiry on its points.
fn roll_over_reset_points(txn: &mut Txn<'_>) -> Option<ResetPoints> {
    let now = txn.now;
    let expire = txn.retention.map(|r| ts(now + r));
    let run_id = txn.info().run_id.clone();
    let points = txn.info_mut().auto_reset_points.as_mut()?;
    points
        .points
        .retain(|p| p.expire_time.as_ref().is_none_or(|t| from_ts(t) >= now));
    for p in &mut points.points {
        if p.run_id == run_id && expire.is_some() {
            p.expire_time = expire;
        }
    }
    Some(points.clone())
}

/// After a failure or timeout: the retry policy's next attempt, or else the next cron run.
/// Also gives the retry state to record on the close event.
pub fn after_failure(txn: &Txn<'_>, failure: Option<&Failure>) -> (Option<Next>, RetryState) {
    let info = txn.info();
    let state = match &info.retry_policy {
        Some(policy) => {
            let expiration = opt_from_ts(&info.execution_expiration_time);
            match retry::next_backoff(policy, info.attempt, failure, txn.now, expiration) {
                Ok(delay) => {
                    let c = continued(
                        txn,
                        ContinueAsNewInitiator::Retry,
                        info.attempt + 1,
                        delay,
                        failure.cloned(),
                        info.last_completion_result.clone(),
                    );
                    return (
                        Some(Next {
                            continued: c,
                            request: inherited_request(txn),
                        }),
                        RetryState::InProgress,
                    );
                }
                Err(state) => state,
            }
        }
        None if failure.is_none() => RetryState::Timeout,
        None => RetryState::RetryPolicyNotSet,
    };
    (
        cron_next(txn, failure.cloned(), info.last_completion_result.clone()),
        state,
    )
}

/// After a completion: the next cron run, if the run has a schedule.
pub fn after_completion(txn: &Txn<'_>, result: Option<Payloads>) -> Option<Next> {
    cron_next(txn, None, result)
}

fn cron_next(
    txn: &Txn<'_>,
    failure: Option<Failure>,
    last_completion_result: Option<Payloads>,
) -> Option<Next> {
    let info = txn.info();
    if info.cron_schedule.is_empty() {
        return None;
    }
    let start = info.execution_time.as_ref().map(from_ts).unwrap_or(txn.now);
    let backoff = crate::cron::backoff(&info.cron_schedule, start, txn.now).ok()?;
    if let Some(exp) = opt_from_ts(&info.execution_expiration_time)
        && txn.now + backoff >= exp
    {
        return None;
    }
    Some(Next {
        continued: continued(
            txn,
            ContinueAsNewInitiator::CronSchedule,
            1,
            backoff,
            failure,
            last_completion_result,
        ),
        request: inherited_request(txn),
    })
}

/// Create the next run (in the same commit); returns its run id.
pub fn start_next(txn: &mut Txn<'_>, next: Next) -> String {
    let run_id = match txn.new_run_id {
        Some(make) => make(),
        None => format!("{}-{}", txn.info().run_id, txn.ms.next_event_id),
    };
    let info = txn.info();
    let origin = Origin {
        parent: info.parent.clone(),
        root: info.root_execution.clone(),
        continued: Some(next.continued),
        scheduled_by: (!info.scheduled_by.is_empty()).then(|| info.scheduled_by.clone()),
        system: false,
    };
    let namespace_id = info.namespace_id.clone();
    let (ms, mutation) = start::new_execution(
        NewRun {
            namespace_id: &namespace_id,
            run_id: &run_id,
            request_id: &run_id,
            now: txn.now,
            origin,
        },
        &next.request,
        txn.limits,
    );
    txn.out.new_run = Some(Box::new(NewRunState { ms, mutation }));
    run_id
}

/// The ContinueAsNewWorkflowExecution command.
pub fn continue_as_new(
    txn: &mut Txn<'_>,
    a: &ContinueAsNewWorkflowExecutionCommandAttributes,
    wft_completed_event_id: i64,
) -> Result<(), BadCommand> {
    let bad = |m: &str| {
        Err(BadCommand::new(
            WorkflowTaskFailedCause::BadContinueAsNewAttributes,
            m,
        ))
    };
    if is_negative(&a.workflow_run_timeout) {
        return bad("Invalid WorkflowRunTimeout.");
    }
    if is_negative(&a.workflow_task_timeout) {
        return bad("Invalid WorkflowTaskTimeout.");
    }
    if is_negative(&a.backoff_start_interval) {
        return bad("Invalid BackoffStartInterval.");
    }
    if let Some(p) = &a.retry_policy
        && let Err(m) = retry::validate_policy(p)
    {
        return bad(&m);
    }
    if !a.cron_schedule.is_empty()
        && let Err(m) = crate::cron::parse(&a.cron_schedule)
    {
        return bad(&m);
    }
    if let Some(input) = &a.input {
        let size: usize = input.payloads.iter().map(|p| p.data.len()).sum();
        if size > txn.limits.max_payload_bytes {
            return bad(
                "ContinueAsNewWorkflowExecutionCommandAttributes. Input exceeds size limit.",
            );
        }
    }
    let mut req = inherited_request(txn);
    if a.workflow_type.as_ref().is_some_and(|t| !t.name.is_empty()) {
        req.workflow_type = a.workflow_type.clone();
    }
    if a.task_queue.as_ref().is_some_and(|q| !q.name.is_empty()) {
        req.task_queue = a.task_queue.as_ref().map(|q| TaskQueue {
            name: q.name.clone(),
            ..Default::default()
        });
    }
    req.input = a.input.clone();
    req.header = a.header.clone();
    if !from_dur(&a.workflow_run_timeout).is_zero() {
        req.workflow_run_timeout = a.workflow_run_timeout;
    }
    if !from_dur(&a.workflow_task_timeout).is_zero() {
        req.workflow_task_timeout = a.workflow_task_timeout;
    }
    if a.retry_policy.is_some() {
        req.retry_policy = a.retry_policy.clone();
    }
    if !a.cron_schedule.is_empty() {
        req.cron_schedule = a.cron_schedule.clone();
    }
    // As the Temporal server: the new run has the memo and search attributes the command
    // gives, not the closing run's (SDKs copy them into the command when they should carry).
    req.memo = a.memo.clone();
    req.search_attributes = a.search_attributes.clone();
    let backoff = from_dur(&a.backoff_start_interval);
    let initiator = ContinueAsNewInitiator::try_from(a.initiator)
        .ok()
        .filter(|i| *i != ContinueAsNewInitiator::Unspecified)
        .unwrap_or(ContinueAsNewInitiator::Workflow);
    let mut carried = continued(
        txn,
        initiator,
        1,
        backoff,
        a.failure.clone(),
        a.last_completion_result.clone(),
    );
    carried.auto_reset_points = roll_over_reset_points(txn);
    let (over, pinned, initial) =
        crate::versioning::carried_over(txn.info(), a.initial_versioning_behavior);
    req.versioning_override = over;
    carried.inherited_pinned_version = pinned;
    carried.initial_versioning_behavior = initial;
    let next = Next {
        continued: carried,
        request: req.clone(),
    };
    let new_run_id = start_next(txn, next);
    let task_timeout = txn
        .out
        .new_run
        .as_ref()
        .and_then(|n| n.ms.execution_info.as_ref())
        .and_then(|i| i.default_workflow_task_timeout);
    let run_timeout = txn
        .out
        .new_run
        .as_ref()
        .and_then(|n| n.ms.execution_info.as_ref())
        .and_then(|i| i.workflow_run_timeout);
    crate::close::write_close(
        txn,
        WorkflowExecutionContinuedAsNewEventAttributes {
            new_execution_run_id: new_run_id,
            workflow_type: req.workflow_type.clone(),
            task_queue: req.task_queue.clone().map(|mut q| {
                q.kind = temper_proto::temporal::api::enums::v1::TaskQueueKind::Normal as i32;
                q
            }),
            input: a.input.clone(),
            workflow_run_timeout: run_timeout,
            workflow_task_timeout: task_timeout,
            workflow_task_completed_event_id: wft_completed_event_id,
            backoff_start_interval: a.backoff_start_interval,
            // The command's initiator as given (SDKs leave it unset), as the Temporal server
            // records it; the new run's started event names the effective one.
            initiator: a.initiator,
            failure: a.failure.clone(),
            last_completion_result: a.last_completion_result.clone(),
            header: a.header.clone(),
            memo: crate::properties::recorded_memo(&req.memo),
            search_attributes: crate::properties::recorded_search_attributes(
                &req.search_attributes,
            ),
            #[allow(deprecated)]
            inherit_build_id: a.inherit_build_id,
            ..Default::default()
        },
        WorkflowExecutionStatus::ContinuedAsNew,
    );
    Ok(())
}
