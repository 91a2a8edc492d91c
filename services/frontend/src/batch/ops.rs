//! One operation of a batch on one run, through the same history client the frontend's own
//! Terminate/Cancel/Signal/Delete/Reset handlers use (so it reaches the run's shard wherever it
//! lives). As in Temporal, NOT_FOUND (the run closed or is gone) counts as done; the operations
//! that could repeat visibly (signal, reset, cancel) carry a request id derived from the job
//! and the run, so history recognizes an operation repeated after a restart.

use temper_client::HistoryClient;
use temper_proto::internal::v1 as internal;
use temper_proto::temporal::api::common::v1::{
    WorkflowExecution, reset_options::Target as ResetTarget,
};
use temper_proto::temporal::api::enums::v1::{EventType, ResetType};
use temper_proto::temporal::api::history::v1::HistoryEvent;
use temper_proto::temporal::api::workflowservice::v1::{
    self as ws, StartBatchOperationRequest, start_batch_operation_request::Operation,
};
use tonic::{Code, Request, Status};

use super::request::request_id;

/// Who the batch acts as when the request names no identity.
pub const IDENTITY: &str = "temporal-sys-batcher";

/// The run an operation targets.
pub struct Target<'a> {
    pub namespace_id: &'a str,
    pub execution: WorkflowExecution,
}

fn identity(s: &str) -> String {
    if s.is_empty() {
        IDENTITY.to_owned()
    } else {
        s.to_owned()
    }
}

/// Apply the batch's operation to one run. `Ok` when it took effect or had nothing to do.
pub async fn apply(
    history: &HistoryClient,
    batch: &StartBatchOperationRequest,
    t: Target<'_>,
) -> Result<(), Status> {
    let r = run(history, batch, &t).await;
    match r {
        Err(s) if s.code() == Code::NotFound => Ok(()),
        other => other,
    }
}

async fn run(
    history: &HistoryClient,
    batch: &StartBatchOperationRequest,
    t: &Target<'_>,
) -> Result<(), Status> {
    let ns = batch.namespace.clone();
    let namespace_id = t.namespace_id.to_owned();
    let e = t.execution.clone();
    let rid = |op: &str| request_id(&batch.job_id, op, &e.workflow_id, &e.run_id);
    let Some(op) = batch.operation.as_ref() else {
        return Err(Status::invalid_argument(
            "Batch operation is not set on request.",
        ));
    };
    match op {
        Operation::TerminationOperation(o) => {
            history
                .terminate_workflow_execution(Request::new(
                    internal::TerminateWorkflowExecutionRequest {
                        namespace_id,
                        request: Some(ws::TerminateWorkflowExecutionRequest {
                            namespace: ns,
                            workflow_execution: Some(e.clone()),
                            reason: batch.reason.clone(),
                            details: o.details.clone(),
                            identity: identity(&o.identity),
                            ..Default::default()
                        }),
                    },
                ))
                .await?;
        }
        Operation::CancellationOperation(o) => {
            history
                .request_cancel_workflow_execution(Request::new(
                    internal::RequestCancelWorkflowExecutionRequest {
                        namespace_id,
                        request: Some(ws::RequestCancelWorkflowExecutionRequest {
                            namespace: ns,
                            workflow_execution: Some(e.clone()),
                            identity: identity(&o.identity),
                            request_id: rid("cancel"),
                            reason: batch.reason.clone(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                ))
                .await?;
        }
        Operation::SignalOperation(o) => {
            history
                .signal_workflow_execution(Request::new(internal::SignalWorkflowExecutionRequest {
                    namespace_id,
                    request: Some(ws::SignalWorkflowExecutionRequest {
                        namespace: ns,
                        workflow_execution: Some(e.clone()),
                        signal_name: o.signal.clone(),
                        input: o.input.clone(),
                        header: o.header.clone(),
                        identity: identity(&o.identity),
                        request_id: request_id(
                            &batch.job_id,
                            &format!("signal:{}", o.signal),
                            &e.workflow_id,
                            &e.run_id,
                        ),
                        ..Default::default()
                    }),
                    ..Default::default()
                }))
                .await?;
        }
        Operation::DeletionOperation(_) => {
            history
                .delete_workflow_execution(Request::new(internal::DeleteWorkflowExecutionRequest {
                    namespace_id,
                    request: Some(ws::DeleteWorkflowExecutionRequest {
                        namespace: ns,
                        workflow_execution: Some(e.clone()),
                    }),
                }))
                .await?;
        }
        Operation::ResetOperation(o) => {
            #[allow(deprecated)]
            let (first, event_id, reapply, exclude) = match &o.options {
                Some(opts) => {
                    let (first, id) = match &opts.target {
                        Some(ResetTarget::FirstWorkflowTask(_)) => (true, None),
                        Some(ResetTarget::LastWorkflowTask(_)) => (false, None),
                        Some(ResetTarget::WorkflowTaskId(id)) => (false, Some(*id)),
                        Some(ResetTarget::BuildId(b)) => {
                            return Err(Status::invalid_argument(format!(
                                "Can't find reset point for {b}: reset by build id is not supported by temper"
                            )));
                        }
                        None => {
                            return Err(Status::invalid_argument("batch reset missing target"));
                        }
                    };
                    (
                        first,
                        id,
                        opts.reset_reapply_type,
                        opts.reset_reapply_exclude_types.clone(),
                    )
                }
                None => (
                    o.reset_type == ResetType::FirstWorkflowTask as i32,
                    None,
                    o.reset_reapply_type,
                    Vec::new(),
                ),
            };
            let event_id = match event_id {
                Some(id) => id,
                None => reset_point(history, t.namespace_id, &ns, &e, first).await?,
            };
            #[allow(deprecated)]
            let request = ws::ResetWorkflowExecutionRequest {
                namespace: ns,
                workflow_execution: Some(e.clone()),
                reason: batch.reason.clone(),
                workflow_task_finish_event_id: event_id,
                request_id: rid("reset"),
                reset_reapply_type: reapply,
                reset_reapply_exclude_types: exclude,
                post_reset_operations: o.post_reset_operations.clone(),
                identity: identity(&o.identity),
            };
            history
                .reset_workflow_execution(Request::new(internal::ResetWorkflowExecutionRequest {
                    namespace_id,
                    request: Some(request),
                }))
                .await?;
        }
        _ => {
            return Err(Status::invalid_argument(
                "The operation type is not supported",
            ));
        }
    }
    Ok(())
}

/// The event a reset to the first or last workflow task goes back to: that task's completed
/// event, or (when it never completed) the event after its scheduled event, as Temporal's
/// batcher picks it.
async fn reset_point(
    history: &HistoryClient,
    namespace_id: &str,
    namespace: &str,
    e: &WorkflowExecution,
    first: bool,
) -> Result<i64, Status> {
    let mut token = Vec::new();
    let mut found = 0;
    loop {
        let events: Vec<HistoryEvent>;
        let next: Vec<u8>;
        if first {
            let page = history
                .get_workflow_execution_history(Request::new(
                    internal::GetWorkflowExecutionHistoryRequest {
                        namespace_id: namespace_id.to_owned(),
                        request: Some(ws::GetWorkflowExecutionHistoryRequest {
                            namespace: namespace.to_owned(),
                            execution: Some(e.clone()),
                            maximum_page_size: 1000,
                            next_page_token: token.clone(),
                            ..Default::default()
                        }),
                        long_poll_timeout_ms: 0,
                    },
                ))
                .await?
                .into_inner();
            events = page.history.map(|h| h.events).unwrap_or_default();
            next = page.next_page_token;
        } else {
            let page = history
                .get_workflow_execution_history_reverse(Request::new(
                    internal::GetWorkflowExecutionHistoryReverseRequest {
                        namespace_id: namespace_id.to_owned(),
                        request: Some(ws::GetWorkflowExecutionHistoryReverseRequest {
                            namespace: namespace.to_owned(),
                            execution: Some(e.clone()),
                            maximum_page_size: 1000,
                            next_page_token: token.clone(),
                        }),
                    },
                ))
                .await?
                .into_inner();
            events = page.history.map(|h| h.events).unwrap_or_default();
            next = page.next_page_token;
        }
        for ev in events {
            if ev.event_type == EventType::WorkflowTaskCompleted as i32 {
                return Ok(ev.event_id);
            }
            if ev.event_type == EventType::WorkflowTaskScheduled as i32 && (!first || found == 0) {
                found = ev.event_id + 1;
            }
        }
        if next.is_empty() {
            break;
        }
        token = next;
    }
    if found == 0 {
        return Err(Status::failed_precondition(
            "unable to find any scheduled or completed task",
        ));
    }
    Ok(found)
}
