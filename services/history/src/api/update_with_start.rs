//! ExecuteMultiOperation, which Temporal offers for one combination: update-with-start. The
//! update goes to the running workflow with the id (the start is deduplicated by its request
//! id, or the conflict policy says to use the existing run), or the workflow is started and
//! the update sent to the new run. Failures name the operation that failed
//! (MultiOperationExecutionFailure), as the SDKs expect.
//!
//! A new run is created with the update admitted (in memory, under the run's lock), so its
//! first workflow task carries the update, as on Temporal where the two are one transaction.

use temper_persistence::{ExecutionKey, run_state};
use temper_proto::temporal::api::enums::v1::{WorkflowExecutionStatus, WorkflowIdConflictPolicy};
use temper_proto::temporal::api::workflowservice::v1::{
    ExecuteMultiOperationRequest, ExecuteMultiOperationResponse, StartWorkflowExecutionRequest,
    StartWorkflowExecutionResponse, UpdateWorkflowExecutionRequest,
    UpdateWorkflowExecutionResponse,
    execute_multi_operation_request::operation::Operation,
    execute_multi_operation_response::{Response, response},
};
use temper_types::NamespaceId;
use temper_workflow::update::{self, Status as UpdateStatus};
use tonic::Status;

use crate::HistoryEngine;

const FAILED: &str = "Update-with-Start could not be executed.";

pub(crate) async fn execute(
    engine: &HistoryEngine,
    ns: &NamespaceId,
    req: ExecuteMultiOperationRequest,
) -> Result<ExecuteMultiOperationResponse, Status> {
    let mut ops = req.operations.into_iter().map(|o| o.operation);
    let (
        Some(Some(Operation::StartWorkflow(start))),
        Some(Some(Operation::UpdateWorkflow(up))),
        None,
    ) = (ops.next(), ops.next(), ops.next())
    else {
        return Err(Status::invalid_argument(
            "Operations have to be exactly [Start, Update].",
        ));
    };
    let aborted = temper_client::status::multi_operation_aborted;
    let fail_start = |e: Status| {
        temper_client::status::multi_operation_failure(FAILED, vec![Some(e), Some(aborted())])
    };
    let fail_update = |started: bool, e: Status| {
        let start = (!started).then(aborted);
        temper_client::status::multi_operation_failure(FAILED, vec![start, Some(e)])
    };

    let (run_id, started, status) = match existing_run(engine, ns, &start, &up).await {
        Ok(Some(Existing::Done(run_id, status, response))) => {
            return Ok(respond(run_id, false, status, response));
        }
        Ok(Some(Existing::Use(run_id))) => (run_id, false, WorkflowExecutionStatus::Running as i32),
        Ok(None) => {
            let r = super::start::start_with_update(
                engine,
                ns,
                start,
                Default::default(),
                up.request.as_ref(),
            )
            .await
            .map_err(|e| fail_start(e.into()))?;
            (r.run_id, r.started, r.status)
        }
        Err(e) => return Err(fail_start(e)),
    };
    let mut up = up;
    if let Some(exec) = up.workflow_execution.as_mut() {
        exec.run_id = run_id.clone();
    }
    let response = super::update::update_workflow(engine, ns, up)
        .await
        .map_err(|e| fail_update(started, e.into()))?;
    Ok(respond(run_id, started, status, response))
}

// Variants hold protobuf messages by value, built once and moved to one reader; boxing
// would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Existing {
    /// The update completed on this run already: its outcome, nothing to start.
    Done(String, i32, UpdateWorkflowExecutionResponse),
    /// Send the update to this running run.
    Use(String),
}

/// Whether the workflow id's current run takes the update instead of a new run.
async fn existing_run(
    engine: &HistoryEngine,
    ns: &NamespaceId,
    start: &StartWorkflowExecutionRequest,
    up: &UpdateWorkflowExecutionRequest,
) -> Result<Option<Existing>, Status> {
    let shard = engine.shard(ns, &start.workflow_id)?;
    let Some(current) = shard.current_run(ns, &start.workflow_id).await? else {
        return Ok(None);
    };
    let key = ExecutionKey {
        namespace_id: ns.clone(),
        workflow_id: start.workflow_id.clone(),
        run_id: current.run_id.clone(),
    };
    let update_id = up
        .request
        .as_ref()
        .and_then(|r| r.meta.as_ref())
        .map(|m| m.update_id.clone())
        .unwrap_or_default();
    let known = shard
        .with_updates(&key, |ms, run| {
            update::status(ms, &run.registry, &update_id)
        })
        .await?;
    // Only a completed update (one with a completed event) is found by its id once the run
    // is closed, as in Temporal; one the run's close left unfinished is not, and a closed
    // run goes to the start below like any other (its reuse policy decides).
    if matches!(known, Some(UpdateStatus::Completed { .. })) {
        // Its outcome, through the update API (which reads it from the history).
        let mut up = up.clone();
        if let Some(exec) = up.workflow_execution.as_mut() {
            exec.run_id = current.run_id.clone();
        }
        let response = super::update::update_workflow(engine, ns, up).await?;
        return Ok(Some(Existing::Done(
            current.run_id,
            current.status,
            response,
        )));
    }
    if current.state == run_state::COMPLETED {
        return Ok(None);
    }
    let use_existing = known.is_some()
        || current.create_request_id == start.request_id
        || start.workflow_id_conflict_policy == WorkflowIdConflictPolicy::UseExisting as i32;
    Ok(use_existing.then_some(Existing::Use(current.run_id)))
}

fn respond(
    run_id: String,
    started: bool,
    status: i32,
    update: UpdateWorkflowExecutionResponse,
) -> ExecuteMultiOperationResponse {
    ExecuteMultiOperationResponse {
        responses: vec![
            Response {
                response: Some(response::Response::StartWorkflow(
                    StartWorkflowExecutionResponse {
                        run_id,
                        started,
                        status,
                        ..Default::default()
                    },
                )),
            },
            Response {
                response: Some(response::Response::UpdateWorkflow(update)),
            },
        ],
    }
}
