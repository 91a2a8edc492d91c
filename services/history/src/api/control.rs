//! RequestCancelWorkflowExecution, TerminateWorkflowExecution, ResetStickyTaskQueue.

use temper_proto::temporal::api::workflowservice::v1::{
    RequestCancelWorkflowExecutionRequest, ResetStickyTaskQueueRequest,
    SignalWorkflowExecutionRequest, TerminateWorkflowExecutionRequest,
};
use temper_types::NamespaceId;
use temper_workflow::{WorkflowError, close, workflow_task};

use crate::{HistoryEngine, HistoryError};

fn execution(
    e: Option<&temper_proto::temporal::api::common::v1::WorkflowExecution>,
) -> Result<(String, String), HistoryError> {
    match e {
        Some(e) if !e.workflow_id.is_empty() => Ok((e.workflow_id.clone(), e.run_id.clone())),
        _ => Err(WorkflowError::InvalidArgument("WorkflowId is not set on request.".into()).into()),
    }
}

/// Check that the run named by `first_execution_run_id` (if given) is the chain we act on.
fn check_chain(
    ms: &temper_workflow::pb::MutableState,
    first_run_id: &str,
) -> Result<(), WorkflowError> {
    let info = ms.execution_info.as_ref();
    if !first_run_id.is_empty() && info.is_some_and(|i| i.first_run_id != first_run_id) {
        return Err(WorkflowError::NotFound(
            "workflow execution not found for the given first execution run id".into(),
        ));
    }
    Ok(())
}

pub(crate) async fn request_cancel(
    engine: &HistoryEngine,
    ns: &NamespaceId,
    req: RequestCancelWorkflowExecutionRequest,
) -> Result<(), HistoryError> {
    let (wf, run) = execution(req.workflow_execution.as_ref())?;
    let shard = engine.shard(ns, &wf)?;
    let key = shard.resolve(ns, &wf, &run).await?;
    shard
        .update(&key, |txn| {
            check_chain(txn.ms, &req.first_execution_run_id)?;
            close::request_cancel(txn, &req.reason, &req.identity, &req.request_id)
        })
        .await?;
    Ok(())
}

pub(crate) async fn terminate(
    engine: &HistoryEngine,
    ns: &NamespaceId,
    req: TerminateWorkflowExecutionRequest,
) -> Result<(), HistoryError> {
    let (wf, run) = execution(req.workflow_execution.as_ref())?;
    let shard = engine.shard(ns, &wf)?;
    let key = shard.resolve(ns, &wf, &run).await?;
    shard
        .update(&key, |txn| {
            check_chain(txn.ms, &req.first_execution_run_id)?;
            close::terminate(txn, &req.reason, req.details.clone(), &req.identity)
        })
        .await?;
    Ok(())
}

pub(crate) async fn reset_sticky(
    engine: &HistoryEngine,
    ns: &NamespaceId,
    req: ResetStickyTaskQueueRequest,
) -> Result<(), HistoryError> {
    let (wf, run) = execution(req.execution.as_ref())?;
    let shard = engine.shard(ns, &wf)?;
    let key = shard.resolve(ns, &wf, &run).await?;
    shard
        .update(&key, |txn| {
            workflow_task::clear_sticky(txn);
            Ok(())
        })
        .await?;
    Ok(())
}

pub(crate) async fn signal(
    engine: &HistoryEngine,
    ns: &NamespaceId,
    req: SignalWorkflowExecutionRequest,
) -> Result<(), HistoryError> {
    let (wf, run) = execution(req.workflow_execution.as_ref())?;
    let shard = engine.shard(ns, &wf)?;
    let key = shard.resolve(ns, &wf, &run).await?;
    shard
        .update(&key, |txn| {
            temper_workflow::signal::signal(
                txn,
                temper_workflow::signal::Signal {
                    name: &req.signal_name,
                    input: req.input.clone(),
                    identity: &req.identity,
                    header: req.header.clone(),
                    request_id: &req.request_id,
                },
            )
        })
        .await?;
    Ok(())
}
