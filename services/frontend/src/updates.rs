//! Workflow update requests at the frontend (UpdateWorkflowExecution,
//! PollWorkflowExecutionUpdate, update-with-start): Temporal's validation and defaults, and the
//! link the response carries.

use temper_proto::temporal::api::common::v1::{Link, link};
use temper_proto::temporal::api::enums::v1::{
    EventType, UpdateWorkflowExecutionLifecycleStage as Stage,
};
use temper_proto::temporal::api::errordetails::v1::PermissionDeniedFailure;
use temper_proto::temporal::api::update::v1::WaitPolicy;
use temper_proto::temporal::api::workflowservice::v1::{
    ExecuteMultiOperationRequest, PollWorkflowExecutionUpdateRequest,
    StartWorkflowExecutionRequest, UpdateWorkflowExecutionRequest, UpdateWorkflowExecutionResponse,
    execute_multi_operation_request::operation::Operation,
};
use tonic::{Code, Status};

use temper_client::status::status_with_details;

/// Longest update id, as Temporal's id length limit.
const MAX_ID_LENGTH: usize = 1000;

/// Check an UpdateWorkflowExecution request the way Temporal's frontend does, filling in the
/// defaults (a generated update id, wait for COMPLETED).
pub fn prepare_update(r: &mut UpdateWorkflowExecutionRequest) -> Result<(), Status> {
    let Some(exec) = &r.workflow_execution else {
        return Err(Status::invalid_argument("Execution is not set on request."));
    };
    if exec.workflow_id.is_empty() {
        return Err(Status::invalid_argument(
            "WorkflowId is not set on request.",
        ));
    }
    if !exec.run_id.is_empty() && uuid::Uuid::parse_str(&exec.run_id).is_err() {
        return Err(Status::invalid_argument("Invalid RunId."));
    }
    let Some(request) = r.request.as_mut() else {
        return Err(Status::invalid_argument(
            "Update meta is not set on request.",
        ));
    };
    let Some(meta) = request.meta.as_mut() else {
        return Err(Status::invalid_argument(
            "Update meta is not set on request.",
        ));
    };
    if meta.update_id.len() > MAX_ID_LENGTH {
        return Err(Status::invalid_argument("UpdateId length exceeds limit."));
    }
    if meta.update_id.is_empty() {
        meta.update_id = uuid::Uuid::new_v4().to_string();
    }
    match &request.input {
        None => {
            return Err(Status::invalid_argument(
                "Update input is not set on request.",
            ));
        }
        Some(i) if i.name.is_empty() => {
            return Err(Status::invalid_argument(
                "Update name is not set on request.",
            ));
        }
        Some(_) => {}
    }
    let policy = r.wait_policy.get_or_insert_with(WaitPolicy::default);
    if policy.lifecycle_stage == Stage::Unspecified as i32 {
        policy.lifecycle_stage = Stage::Completed as i32;
    }
    if policy.lifecycle_stage == Stage::Admitted as i32 {
        return Err(status_with_details(
            Code::PermissionDenied,
            "UpdateWorkflowExecution issued asynchronously and waiting on update admitted is not supported.",
            &PermissionDeniedFailure::default(),
        ));
    }
    Ok(())
}

pub fn check_poll(r: &PollWorkflowExecutionUpdateRequest) -> Result<(), Status> {
    match &r.update_ref {
        None => Err(Status::invalid_argument("UpdateRef is not set on request.")),
        Some(u)
            if u.workflow_execution
                .as_ref()
                .is_none_or(|e| e.workflow_id.is_empty()) =>
        {
            Err(Status::invalid_argument(
                "WorkflowId is not set on request.",
            ))
        }
        Some(_) => Ok(()),
    }
}

/// The link Temporal puts on an update response: to the accepted event (by request id) once
/// accepted, to the workflow if the update failed or was rejected (no event to point at).
pub fn add_link(namespace: &str, request_id: String, resp: &mut UpdateWorkflowExecutionResponse) {
    let exec = resp
        .update_ref
        .as_ref()
        .and_then(|u| u.workflow_execution.clone())
        .unwrap_or_default();
    let failed = resp.outcome.as_ref().is_some_and(|o| {
        matches!(
            o.value,
            Some(temper_proto::temporal::api::update::v1::outcome::Value::Failure(_))
        )
    });
    let variant = if failed && resp.stage == Stage::Completed as i32 {
        link::Variant::Workflow(link::Workflow {
            namespace: namespace.to_string(),
            workflow_id: exec.workflow_id,
            run_id: exec.run_id,
            reason: "Update rejected".into(),
        })
    } else if resp.stage == Stage::Accepted as i32 || resp.stage == Stage::Completed as i32 {
        link::Variant::WorkflowEvent(link::WorkflowEvent {
            namespace: namespace.to_string(),
            workflow_id: exec.workflow_id,
            run_id: exec.run_id,
            reference: Some(link::workflow_event::Reference::RequestIdRef(
                link::workflow_event::RequestIdReference {
                    request_id,
                    event_type: EventType::WorkflowExecutionUpdateAccepted as i32,
                },
            )),
        })
    } else {
        return;
    };
    resp.link = Some(Link {
        variant: Some(variant),
    });
}

const MULTI_OP_FAILED: &str = "Update-with-Start could not be executed.";

/// Check an ExecuteMultiOperation request as Temporal's frontend does: exactly a start and an
/// update of the same workflow id, with the start options update-with-start cannot honour
/// refused. A bad operation fails the request with a MultiOperationExecutionFailure naming it.
pub fn prepare_update_with_start(r: &mut ExecuteMultiOperationRequest) -> Result<(), Status> {
    let shape_ok = r.operations.len() == 2
        && matches!(r.operations[0].operation, Some(Operation::StartWorkflow(_)))
        && matches!(
            r.operations[1].operation,
            Some(Operation::UpdateWorkflow(_))
        );
    if !shape_ok {
        return Err(Status::invalid_argument(
            "Operations have to be exactly [Start, Update].",
        ));
    }
    let namespace = r.namespace.clone();
    let mut errors: Vec<Option<Status>> = vec![None, None];
    let mut ids = Vec::new();
    for (i, op) in r.operations.iter_mut().enumerate() {
        let checked = match op.operation.as_mut() {
            Some(Operation::StartWorkflow(s)) => {
                check_start(&namespace, s).map(|()| s.workflow_id.clone())
            }
            Some(Operation::UpdateWorkflow(u)) => check_update(&namespace, u).map(|()| {
                u.workflow_execution
                    .as_ref()
                    .map(|e| e.workflow_id.clone())
                    .unwrap_or_default()
            }),
            None => Err(Status::invalid_argument(
                "Operations have to be exactly [Start, Update].",
            )),
        };
        match checked {
            Ok(id) => ids.push(id),
            Err(e) => errors[i] = Some(e),
        }
    }
    if errors.iter().all(Option::is_none) && ids.len() == 2 && ids[0] != ids[1] {
        errors[1] = Some(Status::invalid_argument(
            "WorkflowId is not consistent with previous operation(s).",
        ));
    }
    if errors.iter().all(Option::is_none) {
        return Ok(());
    }
    let statuses = errors
        .into_iter()
        .map(|e| Some(e.unwrap_or_else(temper_client::status::multi_operation_aborted)))
        .collect();
    Err(temper_client::status::multi_operation_failure(
        MULTI_OP_FAILED,
        statuses,
    ))
}

fn check_start(namespace: &str, s: &StartWorkflowExecutionRequest) -> Result<(), Status> {
    if !s.namespace.is_empty() && s.namespace != namespace {
        return Err(Status::invalid_argument(
            "Operation namespace did not match request's namespace.",
        ));
    }
    if s.workflow_id.is_empty() {
        return Err(Status::invalid_argument(
            "WorkflowId is not set on request.",
        ));
    }
    if !s.cron_schedule.is_empty() {
        return Err(Status::invalid_argument("CronSchedule is not allowed."));
    }
    if s.request_eager_execution {
        return Err(Status::invalid_argument(
            "RequestEagerExecution is not supported.",
        ));
    }
    if s.workflow_start_delay
        .as_ref()
        .is_some_and(|d| d.seconds > 0 || d.nanos > 0)
    {
        return Err(Status::invalid_argument(
            "WorkflowStartDelay is not supported.",
        ));
    }
    Ok(())
}

fn check_update(namespace: &str, u: &mut UpdateWorkflowExecutionRequest) -> Result<(), Status> {
    if !u.namespace.is_empty() && u.namespace != namespace {
        return Err(Status::invalid_argument(
            "Operation namespace did not match request's namespace.",
        ));
    }
    prepare_update(u)?;
    if !u.first_execution_run_id.is_empty() {
        return Err(Status::invalid_argument(
            "FirstExecutionRunId is not allowed.",
        ));
    }
    if u.workflow_execution
        .as_ref()
        .is_some_and(|e| !e.run_id.is_empty())
    {
        return Err(Status::invalid_argument("RunId is not allowed."));
    }
    Ok(())
}
