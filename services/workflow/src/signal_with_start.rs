//! SignalWithStartWorkflowExecution's request: Temporal's checks, with its messages, and the
//! start request it makes. The RPC and System Nexus (a workflow's signal-with-start,
//! [`crate::system_nexus`]) check a request with the same function, as in Temporal.

use temper_proto::temporal::api::enums::v1::{WorkflowIdConflictPolicy, WorkflowIdReusePolicy};
use temper_proto::temporal::api::workflowservice::v1::{
    SignalWithStartWorkflowExecutionRequest, StartWorkflowExecutionRequest,
};

use crate::state::{MAX_ID_LENGTH, RESERVED_PREFIX, RESERVED_TASK_QUEUE};
use crate::time::is_negative;
use crate::{Limits, WorkflowError, priority, retry, start};

/// Check a SignalWithStartWorkflowExecution request as Temporal does (the signal-specific
/// checks first, then those of the start it makes).
pub fn validate(
    req: &SignalWithStartWorkflowExecutionRequest,
    limits: &Limits,
) -> Result<(), WorkflowError> {
    let bad = |m: String| Err(WorkflowError::InvalidArgument(m));
    let too_long = |what: &str, len: usize| {
        bad(format!(
            "{what} exceeds maximum allowed length ({len}/{MAX_ID_LENGTH})"
        ))
    };
    if req.workflow_id.is_empty() {
        return bad("WorkflowId is not set on request.".into());
    }
    if req.workflow_id.len() > MAX_ID_LENGTH {
        return too_long("WorkflowId", req.workflow_id.len());
    }
    if req.signal_name.is_empty() {
        return bad("signal not set".into());
    }
    if req.signal_name.len() > MAX_ID_LENGTH {
        return too_long("signal name", req.signal_name.len());
    }
    let workflow_type = req
        .workflow_type
        .as_ref()
        .map(|t| t.name.as_str())
        .unwrap_or_default();
    if workflow_type.is_empty() {
        return bad("workflow type not set".into());
    }
    if workflow_type.len() > MAX_ID_LENGTH {
        return too_long("workflow type name", workflow_type.len());
    }
    match &req.task_queue {
        None => return bad("taskQueue is not set".into()),
        Some(q) if q.name.is_empty() => return bad("missing task queue name".into()),
        Some(q) if q.name.len() > MAX_ID_LENGTH => {
            return bad("taskQueue length exceeds limit".into());
        }
        Some(q) if q.name.starts_with(RESERVED_PREFIX) => {
            return bad(RESERVED_TASK_QUEUE.into());
        }
        Some(_) => {}
    }
    if req.request_id.len() > MAX_ID_LENGTH {
        return too_long("Request ID", req.request_id.len());
    }
    for (what, d) in [
        (
            "WorkflowExecutionTimeoutSeconds",
            &req.workflow_execution_timeout,
        ),
        ("WorkflowRunTimeoutSeconds", &req.workflow_run_timeout),
        ("WorkflowTaskTimeoutSeconds", &req.workflow_task_timeout),
    ] {
        if is_negative(d) {
            return bad(format!(
                "An invalid {what} is set on request. cause: negative duration"
            ));
        }
    }
    if let Some(p) = &req.retry_policy {
        retry::validate_policy(p).map_err(WorkflowError::InvalidArgument)?;
    }
    if !req.cron_schedule.is_empty() && req.workflow_start_delay.is_some() {
        return bad("CronSchedule and WorkflowStartDelay may not be used together.".into());
    }
    if is_negative(&req.workflow_start_delay) {
        return bad(
            "An invalid WorkflowStartDelaySeconds is set on request. cause: negative duration"
                .into(),
        );
    }
    start::check_id_policies(
        req.workflow_id_reuse_policy,
        req.workflow_id_conflict_policy,
    )?;
    if req.workflow_id_conflict_policy == WorkflowIdConflictPolicy::Fail as i32 {
        return bad("Invalid WorkflowIDConflictPolicy: WORKFLOW_ID_CONFLICT_POLICY_FAIL is not supported for this operation.".into());
    }
    if let Err(m) = priority::validate(req.priority.as_ref()) {
        return bad(m.into());
    }
    let signal_size: usize = req
        .signal_input
        .as_ref()
        .map(|p| p.payloads.iter().map(|p| p.data.len()).sum())
        .unwrap_or(0);
    if signal_size > limits.max_payload_bytes {
        return bad("Blob data size exceeds limit.".into());
    }
    start::validate(&start_request(req, &req.request_id), limits)
}

/// What a running workflow with the request's id does to it: it is signaled (Temporal's
/// default for signal-with-start, USE_EXISTING), or terminated and a new run started
/// (TERMINATE_EXISTING, or the older TERMINATE_IF_RUNNING reuse policy).
pub fn terminates_running(req: &SignalWithStartWorkflowExecutionRequest) -> bool {
    #[allow(deprecated)]
    let terminate_if_running =
        req.workflow_id_reuse_policy == WorkflowIdReusePolicy::TerminateIfRunning as i32;
    req.workflow_id_conflict_policy == WorkflowIdConflictPolicy::TerminateExisting as i32
        || terminate_if_running
}

/// The start request a signal-with-start makes when it starts a run (Temporal's conversion:
/// the links go on the started event too).
pub fn start_request(
    req: &SignalWithStartWorkflowExecutionRequest,
    request_id: &str,
) -> StartWorkflowExecutionRequest {
    StartWorkflowExecutionRequest {
        namespace: req.namespace.clone(),
        workflow_id: req.workflow_id.clone(),
        workflow_type: req.workflow_type.clone(),
        task_queue: req.task_queue.clone(),
        input: req.input.clone(),
        workflow_execution_timeout: req.workflow_execution_timeout,
        workflow_run_timeout: req.workflow_run_timeout,
        workflow_task_timeout: req.workflow_task_timeout,
        identity: req.identity.clone(),
        request_id: request_id.to_owned(),
        workflow_id_reuse_policy: req.workflow_id_reuse_policy,
        workflow_id_conflict_policy: req.workflow_id_conflict_policy,
        retry_policy: req.retry_policy.clone(),
        cron_schedule: req.cron_schedule.clone(),
        memo: req.memo.clone(),
        search_attributes: req.search_attributes.clone(),
        header: req.header.clone(),
        workflow_start_delay: req.workflow_start_delay,
        user_metadata: req.user_metadata.clone(),
        links: req.links.clone(),
        versioning_override: req.versioning_override.clone(),
        priority: req.priority.clone(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use temper_proto::temporal::api::common::v1::WorkflowType;
    use temper_proto::temporal::api::taskqueue::v1::TaskQueue;

    fn request() -> SignalWithStartWorkflowExecutionRequest {
        SignalWithStartWorkflowExecutionRequest {
            namespace: "default".into(),
            workflow_id: "wf".into(),
            workflow_type: Some(WorkflowType { name: "T".into() }),
            task_queue: Some(TaskQueue {
                name: "q".into(),
                ..Default::default()
            }),
            signal_name: "sig".into(),
            ..Default::default()
        }
    }

    fn message(req: SignalWithStartWorkflowExecutionRequest) -> String {
        match validate(&req, &Limits::default()) {
            Err(WorkflowError::InvalidArgument(m)) => m,
            other => panic!("expected an invalid argument, got {other:?}"),
        }
    }

    #[test]
    fn a_request_is_checked_with_temporals_messages() {
        assert!(validate(&request(), &Limits::default()).is_ok());
        let cases = [
            (
                SignalWithStartWorkflowExecutionRequest {
                    signal_name: String::new(),
                    ..request()
                },
                "signal not set",
            ),
            (
                SignalWithStartWorkflowExecutionRequest {
                    workflow_type: None,
                    ..request()
                },
                "workflow type not set",
            ),
            (
                SignalWithStartWorkflowExecutionRequest {
                    task_queue: Some(TaskQueue::default()),
                    ..request()
                },
                "missing task queue name",
            ),
            (
                SignalWithStartWorkflowExecutionRequest {
                    workflow_id_conflict_policy: WorkflowIdConflictPolicy::Fail as i32,
                    ..request()
                },
                "Invalid WorkflowIDConflictPolicy: WORKFLOW_ID_CONFLICT_POLICY_FAIL is not supported for this operation.",
            ),
            (
                SignalWithStartWorkflowExecutionRequest {
                    workflow_id: "x".repeat(1001),
                    ..request()
                },
                "WorkflowId exceeds maximum allowed length (1001/1000)",
            ),
        ];
        for (req, want) in cases {
            assert_eq!(message(req), want);
        }
    }

    #[test]
    fn terminate_existing_replaces_a_running_workflow() {
        assert!(!terminates_running(&request()));
        assert!(terminates_running(
            &SignalWithStartWorkflowExecutionRequest {
                workflow_id_conflict_policy: WorkflowIdConflictPolicy::TerminateExisting as i32,
                ..request()
            }
        ));
    }
}
